package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/internal/stixtest"
	"github.com/mispsentinel/listener/misp"
	"github.com/mispsentinel/listener/sim/lab"
	simmisp "github.com/mispsentinel/listener/sim/misp"
	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
	"github.com/mispsentinel/listener/stix"
)

// Targets and reference figures of ARCHITECTURE.md.
const (
	targetConversion    = 200_000 // attributes/s on one core
	targetQuota         = 0.98
	targetLatencyP99    = 2 * time.Second
	targetReconcileWall = 60 * time.Second
	targetReconcileRSS  = 150_000_000
	targetIdleRSS       = 60_000_000

	refMispStix      = "misp-stix ≈ 510 attributes/s"
	refMisp2Sentinel = "misp2sentinel: its cron period (hours)"
)

// conversion measures MISP JSON bytes → decode → convert → STIX bundle bytes on one core:
// GOMAXPROCS is 1 for the duration and one goroutine converts.
func (r *runner) conversion(ctx context.Context) ([]Figure, error) {
	n := r.sizes.ConversionAttributes
	input := simmisp.ConversionBenchmarkEvent(n)
	opts := stixtest.Options()
	now := time.Now()
	convertOnce := func() error {
		ev, err := misp.DecodeEvent(input)
		if err != nil {
			return fmt.Errorf("decode benchmark event: %w", err)
		}
		res := stix.Convert(ev, opts, now)
		if len(stix.Bundle(res.Objects)) == 0 {
			return errors.New("empty bundle")
		}
		return nil
	}
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	if err := convertOnce(); err != nil { // warm-up
		return nil, err
	}
	runtime.GC()
	budget := time.Duration(r.sizes.ConversionSeconds * float64(time.Second))
	start := time.Now()
	iterations := 0
	for time.Since(start) < budget && ctx.Err() == nil {
		if err := convertOnce(); err != nil {
			return nil, err
		}
		iterations++
	}
	elapsed := time.Since(start)
	rate := float64(n*iterations) / elapsed.Seconds()
	return []Figure{{
		Key: "conversion_attributes_per_s", Name: "conversion, one core",
		Value: rate, Unit: "attributes/s", Display: thousands(int64(rate)) + " attributes/s",
		Target: "≥ 200,000 attributes/s", Pass: rate >= targetConversion,
		Reference: fmt.Sprintf("%s (ours ≈ %.0f×)", refMispStix, rate/510),
		Detail: fmt.Sprintf("%d × one %s-attribute event (%.2f MB of MISP JSON) decoded, converted and written as a STIX bundle in %.2f s, GOMAXPROCS=1",
			iterations, thousands(int64(n)), float64(len(input))/1e6, elapsed.Seconds()),
	}}, nil
}

// upload measures quota utilisation: a backlog of events of 100 attributes, delivered by the
// whole daemon (start-up reconcile → store → pusher → Sentinel) to a simulator enforcing 100
// requests per sliding minute per identity, the minute scaled down by UploadTimeScale.
func (r *runner) upload(ctx context.Context) ([]Figure, error) {
	scale := r.sizes.UploadTimeScale
	l, cfg, err := r.newLab("upload", lab.Options{Sentinel: simsentinel.Options{TimeScale: scale}})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	l.MISP.Generate(r.sizes.UploadEvents, 100, r.opts.Seed)
	_, stop, err := r.runDaemon(ctx, cfg, daemon.Options{LimiterMinute: l.Sentinel.Minute()})
	if err != nil {
		return nil, err
	}
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	_, convErr := l.WaitConverged(waitCtx, cfg, 1)
	stopErr := stop()
	if convErr != nil {
		return nil, fmt.Errorf("backlog not delivered: %w", convErr)
	}
	if stopErr != nil {
		return nil, fmt.Errorf("daemon: %w", stopErr)
	}
	st := l.Sentinel.Stats()
	if st.Served < 2 {
		return nil, fmt.Errorf("only %d upload requests served: backlog too small", st.Served)
	}
	quotaMinutes := st.LastServed.Sub(st.FirstServed).Minutes() * scale
	util := float64(st.Served-1) / quotaMinutes / simsentinel.DefaultQuotaPerMinute
	return []Figure{{
		Key: "upload_quota_utilisation", Name: "upload quota used, with a backlog",
		Value: 100 * util, Unit: "%", Display: fmt.Sprintf("%.2f %%, %d × 429", 100*util, st.Throttled),
		Target: "≥ 98 %, no 429", Pass: util >= targetQuota && st.Throttled == 0,
		Reference: "Sentinel's quota: 100 requests × 100 objects per minute per identity",
		Detail: fmt.Sprintf("%s objects in %d requests (%.0f objects per quota minute) over %.1f quota minutes (minute scaled %g× down); %d answered 429",
			thousands(int64(st.ObjectsAccepted)), st.UploadRequests, float64(st.ObjectsAccepted)/quotaMinutes, quotaMinutes, scale, st.Throttled),
	}}, nil
}

// latency measures publish → accepted: events published one by one over ZeroMQ, each timed
// from the publish to the moment the Sentinel simulator stored the last of its indicators.
func (r *runner) latency(ctx context.Context) ([]Figure, error) {
	l, cfg, err := r.newLab("latency", lab.Options{ZeroMQ: true, Linger: time.Second})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	_, stop, err := r.runDaemon(ctx, cfg, daemon.Options{})
	if err != nil {
		return nil, err
	}
	defer stop()
	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := l.Publisher.WaitForSubscription(waitCtx, "misp_json"); err != nil {
		return nil, fmt.Errorf("daemon never subscribed: %w", err)
	}
	published := map[string]time.Time{}
	for i := range r.sizes.LatencyEvents {
		uuid := l.MISP.Generate(1, 5, r.opts.Seed+uint64(i)+1000)[0]
		published[uuid] = time.Now()
		if err := l.MISP.PublishZMQ(l.Publisher, uuid); err != nil {
			return nil, err
		}
		select {
		case <-waitCtx.Done():
			return nil, waitCtx.Err()
		case <-time.After(r.sizes.LatencyGap):
		}
	}
	if _, err := l.WaitConverged(waitCtx, cfg, 1); err != nil {
		return nil, fmt.Errorf("published events not delivered: %w", err)
	}
	sink := cfg.Sinks[0]
	stored := l.Sentinel.Indicators(l.Opts.Sinks[0].WorkspaceID, sink.SourceSystem)
	opts := daemon.ConversionOptions(cfg, sink)
	var lat []time.Duration
	for uuid, at := range published {
		ev, ok := l.MISP.GetEvent(uuid)
		if !ok {
			return nil, fmt.Errorf("event %s vanished", uuid)
		}
		var last time.Time
		for _, o := range stix.Convert(ev, opts, time.Now()).Objects {
			if o.Type != "indicator" {
				continue
			}
			// WaitConverged has checked that Sentinel holds exactly what the filtered search
			// yields; an attribute the search leaves out (warninglist) is simply not there.
			rec, ok := stored[o.ID]
			if !ok {
				continue
			}
			if rec.FirstIngested.After(last) {
				last = rec.FirstIngested
			}
		}
		if !last.IsZero() { // an event whose attributes are all filtered yields nothing to time
			lat = append(lat, last.Sub(at))
		}
	}
	if len(lat) == 0 {
		return nil, errors.New("no published event yielded an indicator")
	}
	slices.Sort(lat)
	p50, p99 := percentile(lat, 50), percentile(lat, 99)
	detail := fmt.Sprintf("%d events of 5 attributes published on ZeroMQ %s apart, pusher linger 1 s; %d yielded indicators; min %s, max %s",
		r.sizes.LatencyEvents, r.sizes.LatencyGap, len(lat), lat[0].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	return []Figure{
		{Key: "latency_p50_s", Name: "publish → accepted, p50", Value: p50.Seconds(), Unit: "s",
			Display: fmt.Sprintf("%.2f s", p50.Seconds()), Pass: true, Reference: refMisp2Sentinel, Detail: detail},
		{Key: "latency_p99_s", Name: "publish → accepted, p99", Value: p99.Seconds(), Unit: "s",
			Display: fmt.Sprintf("%.2f s", p99.Seconds()), Target: "≤ 2 s (1 s linger)", Pass: p99 <= targetLatencyP99,
			Reference: refMisp2Sentinel},
	}, nil
}

// reconcile measures two full syncs of an unchanged MISP: the first (in-process, quota lifted)
// uploads everything; the second, measured, runs `listener sync` in a child process for its
// wall time and peak RSS and must upload nothing.
func (r *runner) reconcile(ctx context.Context) ([]Figure, error) {
	if r.opts.Command == nil {
		return nil, errors.New("no command to start the listener as a child process")
	}
	attrs := r.sizes.ReconcileAttributes
	events := max(1, attrs/100)
	l, cfg, err := r.newLab("reconcile", lab.Options{
		// Only the first sync uploads; the quota is lifted and the minute shortened so that it
		// does not take hours. The measured sync must upload nothing at all.
		Sentinel: simsentinel.Options{QuotaPerMinute: -1, TimeScale: 1000},
	})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	l.MISP.Generate(events, 100, r.opts.Seed)
	total := l.MISP.AttributeCount()

	r.progress("reconcile: first sync of %s attributes (%d events), in-process, uploads everything", thousands(int64(total)), events)
	first := time.Now()
	d, err := daemon.New(cfg, daemon.Options{Logger: r.quietLogger(), LimiterMinute: l.Sentinel.Minute(),
		Progress: r.pageProgress("first sync")})
	if err != nil {
		return nil, fmt.Errorf("first sync: %w", err)
	}
	rep, syncErr := d.Sync(ctx, daemon.SyncOptions{})
	// A running daemon compacts its store every hour (store.Options.CompactInterval); do it
	// now so that the measured sync sees the steady state rather than a million fresh writes
	// still waiting for Badger's compactions.
	compactErr := d.Store().Compact()
	closeErr := errors.Join(compactErr, d.Close())
	if rep.Failed(syncErr) || closeErr != nil {
		return nil, fmt.Errorf("first sync failed: %s: %w", rep.Summary(), errors.Join(syncErr, closeErr))
	}
	firstWall := time.Since(first)
	indicators := 0
	for _, s := range rep.Sinks {
		indicators += s.Accepted
	}
	r.progress("reconcile: first sync done in %.1f s: %s", firstWall.Seconds(), rep.Summary())
	before := l.Sentinel.Stats()

	r.progress("reconcile: measured sync, `sync -c` in a child process")
	start := time.Now()
	p, err := lab.StartProcess(r.opts.Command("sync", "-c", l.ConfigPath), l.Opts.Dir+"/sync.log")
	if err != nil {
		return nil, err
	}
	peakAnon := sampleAnon(p)
	runErr := p.Wait()
	wall := time.Since(start)
	if runErr != nil {
		return nil, fmt.Errorf("measured sync: %w\n%s", runErr, p.LogTail(10))
	}
	peak, err := p.PeakRSS()
	if err != nil {
		return nil, err
	}
	after := l.Sentinel.Stats()
	uploaded := after.ObjectsAccepted - before.ObjectsAccepted
	requests := after.UploadRequests - before.UploadRequests
	perIndicator := 0.0
	if indicators > 0 {
		perIndicator = float64(uploaded) / float64(indicators)
	}
	size := thousands(int64(total))
	return []Figure{
		{Key: "steady_state_uploads_per_indicator", Name: "uploads per unchanged indicator",
			Value: perIndicator, Unit: "uploads/indicator", Display: fmt.Sprintf("%g (%d requests)", perIndicator, requests),
			Target: "0", Pass: uploaded == 0 && indicators > 0,
			Reference: "misp2sentinel: 1 (re-uploads everything each run)",
			Detail: fmt.Sprintf("second full sync of an unchanged MISP (%s indicators from %s attributes) uploaded %d objects in %d requests; the first uploaded %s in %.1f s",
				thousands(int64(indicators)), size, uploaded, requests, thousands(int64(indicators)), firstWall.Seconds())},
		{Key: "reconcile_wall_s", Name: "full reconcile of " + size + " attributes, unchanged: wall",
			Value: wall.Seconds(), Unit: "s", Display: fmt.Sprintf("%.1f s", wall.Seconds()),
			Target: "≤ 60 s", Pass: wall <= targetReconcileWall,
			Reference: "misp2sentinel: a full re-upload, hours at the quota",
			Detail: fmt.Sprintf("`listener sync -c` in a child process, process start to exit, MISP simulator in the parent on the same %d cores; the child reported: %s",
				DescribeMachine().CPUs, syncSummary(p.LogTail(50)))},
		{Key: "reconcile_peak_rss_bytes", Name: "full reconcile of " + size + " attributes, unchanged: peak RSS",
			Value: float64(peak), Unit: "bytes", Display: fmt.Sprintf("%s (anonymous %s)", megabytes(peak), megabytes(peakAnon.get())),
			Target: "≤ 150 MB", Pass: peak <= targetReconcileRSS,
			Detail: fmt.Sprintf("peak VmHWM of the child sampled from /proc every 20 ms (includes Badger's memory-mapped table pages); peak anonymous memory sampled every 100 ms: %s", megabytes(peakAnon.get()))},
	}, nil
}

// pageProgress reports the reconciler's progress about every 10 s.
func (r *runner) pageProgress(what string) func(kind string, pages, events int) {
	var last time.Time
	return func(_ string, pages, events int) {
		if time.Since(last) >= 10*time.Second {
			last = time.Now()
			r.progress("reconcile: %s: %d pages, %d events", what, pages, events)
		}
	}
}

// peakValue is a maximum updated by a sampling goroutine.
type peakValue struct {
	mu  sync.Mutex
	max int64
}

func (p *peakValue) get() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.max
}

// sampleAnon samples the child's anonymous RSS every 100 ms until it exits.
func sampleAnon(p *lab.Process) *peakValue {
	pv := &peakValue{}
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if m, err := p.Memory(); err == nil {
				pv.mu.Lock()
				pv.max = max(pv.max, m.Anon)
				pv.mu.Unlock()
			}
			select {
			case <-p.Done():
				return
			case <-t.C:
			}
		}
	}()
	return pv
}

// idle measures the RSS of a running daemon (`run -c` in a child process, ZeroMQ and webhook
// on) once its start-up reconcile has delivered everything and it has settled.
func (r *runner) idle(ctx context.Context) ([]Figure, error) {
	if r.opts.Command == nil {
		return nil, errors.New("no command to start the listener as a child process")
	}
	l, cfg, err := r.newLab("idle", lab.Options{ZeroMQ: true, Webhook: true})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	l.MISP.Generate(100, 10, r.opts.Seed)
	p, err := lab.StartProcess(r.opts.Command("run", "-c", l.ConfigPath), l.Opts.Dir+"/run.log")
	if err != nil {
		return nil, err
	}
	defer p.Stop(30 * time.Second)
	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if _, err := l.WaitConverged(waitCtx, cfg, 1); err != nil {
		return nil, fmt.Errorf("daemon did not deliver its start-up reconcile: %w\n%s", err, p.LogTail(10))
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.Done():
		return nil, fmt.Errorf("daemon exited: %v\n%s", p.Wait(), p.LogTail(10))
	case <-time.After(r.sizes.IdleSettle):
	}
	var samples []lab.Memory
	for range 5 {
		m, err := p.Memory()
		if err != nil {
			return nil, err
		}
		samples = append(samples, m)
		time.Sleep(500 * time.Millisecond)
	}
	last := samples[len(samples)-1]
	maxRSS := int64(0)
	for _, m := range samples {
		maxRSS = max(maxRSS, m.RSS)
	}
	return []Figure{{
		Key: "idle_rss_bytes", Name: "daemon idle RSS",
		Value: float64(maxRSS), Unit: "bytes", Display: megabytes(maxRSS),
		Target: "≤ 60 MB", Pass: maxRSS <= targetIdleRSS,
		Reference: "misp2sentinel: a Python process per cron run",
		Detail: fmt.Sprintf("`listener run -c` in a child process (ZeroMQ subscriber, webhook, 1 sink, %s indicators delivered), read %s after it delivered its start-up reconcile: VmRSS %s (anonymous %s, file %s), peak VmHWM %s",
			thousands(int64(l.Sentinel.Stats().ObjectsAccepted)), r.sizes.IdleSettle, megabytes(last.RSS), megabytes(last.Anon), megabytes(last.File), megabytes(last.Peak)),
	}}, nil
}

// syncSummary picks the summary line `sync` prints ("events=… | sink: new=… unchanged=…") out
// of its log.
func syncSummary(log string) string {
	lines := strings.Split(log, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "events=") {
			return lines[i]
		}
	}
	return "(no summary line)"
}
