package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/pusher"
	"github.com/mispsentinel/listener/sentinel"
	"github.com/mispsentinel/listener/verify"
)

// newReader builds the read-back client of a Sentinel sink with a read_back block.
func (d *Daemon) newReader(s config.Sink, pacers *pusher.Pacers) (*sentinel.Reader, error) {
	rcfg, err := ReaderConfig(s, d.cfg.Pusher)
	if err != nil {
		return nil, err
	}
	if d.opts.SentinelRoots != nil {
		rcfg.TLSRootCAs = d.opts.SentinelRoots
	}
	if d.opts.LimiterMinute > 0 {
		rcfg.QuotaMinute = d.opts.LimiterMinute
	}
	r, err := sentinel.NewReader(rcfg, pacers)
	if err != nil {
		return nil, fmt.Errorf("sink %s: %w", s.Name, err)
	}
	return r, nil
}

// verifyMetrics are the scheduled comparison's metrics.
type verifyMetrics struct {
	drift *prometheus.GaugeVec
	runs  *prometheus.CounterVec
	last  *prometheus.GaugeVec
}

func newVerifyMetrics(reg prometheus.Registerer) *verifyMetrics {
	m := &verifyMetrics{
		drift: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "listener_drift_objects",
			Help: "Objects that differ between the store and the sink's workspace at the last comparison, by kind (missing, stale, live_revoked, foreign).",
		}, []string{"sink", "kind"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "listener_verify_runs_total",
			Help: "Comparisons of a sink with its workspace, by result.",
		}, []string{"sink", "result"}),
		last: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "listener_verify_last_success_timestamp_seconds",
			Help: "Unix time of the last comparison of a sink with its workspace that completed.",
		}, []string{"sink"}),
	}
	reg.MustRegister(m.drift, m.runs, m.last)
	return m
}

func (m *verifyMetrics) record(sink string, rep *verify.Report, err error, now time.Time) {
	if err != nil {
		m.runs.WithLabelValues(sink, "failed").Inc()
		return
	}
	m.runs.WithLabelValues(sink, "ok").Inc()
	m.last.WithLabelValues(sink).Set(float64(now.Unix()))
	for _, k := range verify.Kinds {
		m.drift.WithLabelValues(sink, k).Set(float64(rep.Counts[k]))
	}
}

// VerifyOptions configure one comparison of the sinks with their workspaces.
type VerifyOptions struct {
	// Sink limits the run to one sink; empty compares every sink with a read_back block.
	Sink string
	// Repair re-queues missing and stale objects and lost revocations.
	Repair bool
	// Deliver drains the repaired sinks' outboxes before returning (`listener verify
	// --repair`, when no daemon runs the pushers).
	Deliver bool
}

// VerifyResult is the comparison of one sink.
type VerifyResult struct {
	Sink   string
	Report *verify.Report
	// Delivered is what draining the outbox did after a repair (with Deliver).
	Delivered *SinkResult
	Err       error
}

// ErrNoReadBack is returned when no sink (or not the named one) has a read_back block.
var ErrNoReadBack = errors.New("no sink with a read_back block")

// Verify compares the sinks with a read_back block (or the one named) with what their
// workspaces hold. A failure of one sink is in its result; the error is for a bad request.
func (d *Daemon) Verify(ctx context.Context, o VerifyOptions) ([]VerifyResult, error) {
	var out []VerifyResult
	found := false
	for _, s := range d.sinks {
		if o.Sink != "" && s.name != o.Sink {
			continue
		}
		found = true
		if !s.readBack.Enabled() {
			if o.Sink != "" {
				return nil, fmt.Errorf("sink %s: %w", s.name, ErrNoReadBack)
			}
			continue
		}
		out = append(out, d.verifySink(ctx, s, o))
	}
	switch {
	case o.Sink != "" && !found:
		return nil, fmt.Errorf("no sink named %q", o.Sink)
	case len(out) == 0:
		return nil, ErrNoReadBack
	}
	return out, nil
}

func (d *Daemon) verifySink(ctx context.Context, s *sinkRunner, o VerifyOptions) VerifyResult {
	res := VerifyResult{Sink: s.name}
	if res.Err = s.readBackErr(); res.Err != nil {
		return res
	}
	now := d.opts.Now()
	res.Report, res.Err = verify.Compare(ctx, d.store, s.reader, verify.Options{
		Sink: s.name, SourceSystem: s.sourceName, Lag: s.readBack.Lag,
		Examples: d.cfg.Verify.Examples, Repair: o.Repair, Now: now,
	})
	d.verifyMetrics.record(s.name, res.Report, res.Err, now)
	if res.Err == nil && o.Deliver && res.Report.Requeued > 0 {
		stats, err := s.pusher.Drain(ctx)
		if err != nil && errors.Is(err, pusher.ErrSinkStopped) {
			err = fmt.Errorf("sink stopped: %w", errors.Unwrap(err))
		}
		res.Delivered = &SinkResult{DrainStats: stats, Err: err}
	}
	return res
}

// runVerify compares every read-back sink with its workspace every verify.interval until
// ctx ends, repairing when verify.repair is set (the running pushers deliver); a failed
// comparison is logged and tried again at the next interval.
func (d *Daemon) runVerify(ctx context.Context) {
	t := time.NewTicker(d.cfg.Verify.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		results, err := d.Verify(ctx, VerifyOptions{Repair: d.cfg.Verify.Repair})
		if err != nil {
			d.log.WithError(err).Warn("scheduled verify: nothing to compare")
			return
		}
		for _, r := range results {
			log := d.log.WithField("sink", r.Sink)
			switch {
			case r.Err != nil && ctx.Err() == nil:
				log.WithError(r.Err).Warn("scheduled verify failed; tried again at the next interval")
			case r.Err == nil && r.Report.Differences() > 0:
				log.WithField("examples", r.Report.Examples).Warn("drift: " + r.Report.Summary())
			case r.Err == nil:
				log.Info("verify: " + r.Report.Summary())
			}
		}
	}
}

// readBackErr is why s cannot be read back: the sink failed to start, or its read-back did.
func (s *sinkRunner) readBackErr() error {
	if s.err != nil {
		return s.err
	}
	return s.readErr
}
