package reconcile

import (
	"context"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"
)

// RequestCatchUp asks Run for an incremental run covering the time since `since`. It never
// blocks: requests made while one is pending merge into the earliest `since`. Its signature
// matches listener.GapFunc.
func (r *Reconciler) RequestCatchUp(_ context.Context, since time.Time, reason string) {
	r.log.WithFields(logrus.Fields{"since": since, "reason": reason}).Info("catch-up requested")
	for {
		select {
		case r.gaps <- since:
			return
		default:
		}
		select {
		case pending := <-r.gaps:
			if !pending.IsZero() && (since.IsZero() || pending.Before(since)) {
				since = pending
			}
		default:
		}
	}
}

// Run reconciles until ctx ends: a catch-up run at once (incremental when a watermark exists,
// full otherwise), then incremental and full runs on their intervals, and a catch-up whenever
// RequestCatchUp is called. A failed run is logged and retried at the next occasion.
func (r *Reconciler) Run(ctx context.Context) error {
	r.runLogged(ctx, "start-up", func() (*Report, error) { return r.Incremental(ctx, time.Time{}) })

	full := tickerOrNil(r.cfg.FullInterval)
	incr := tickerOrNil(r.cfg.IncrementalInterval)
	defer stopTicker(full)
	defer stopTicker(incr)
	for {
		select {
		case <-ctx.Done():
			return nil
		case since := <-r.gaps:
			r.runLogged(ctx, "catch-up", func() (*Report, error) { return r.Incremental(ctx, since) })
		case <-tickC(incr):
			r.runLogged(ctx, "scheduled", func() (*Report, error) { return r.Incremental(ctx, time.Time{}) })
		case <-tickC(full):
			r.runLogged(ctx, "scheduled", func() (*Report, error) { return r.Full(ctx) })
		}
	}
}

func (r *Reconciler) runLogged(ctx context.Context, why string, run func() (*Report, error)) {
	rep, err := run()
	if ctx.Err() != nil {
		return
	}
	log := r.log.WithField("trigger", why)
	if rep != nil {
		log = log.WithFields(logrus.Fields{
			"kind": rep.Kind, "events": rep.Events, "gone": rep.GoneEvents,
			"filtered_out": rep.FilteredEvents, "duration": rep.Finished.Sub(rep.Started).String(),
		})
		for sink, s := range rep.Sinks {
			log = log.WithField("sink_"+sink, fmt.Sprintf("new=%d changed=%d unchanged=%d refreshed=%d revoked=%d", s.New, s.Changed, s.Unchanged, s.Refreshed, s.Revoked))
		}
		for _, e := range rep.Errors {
			r.log.WithError(e).Warn("reconcile: event not applied")
		}
	}
	if err != nil {
		log.WithError(err).Error("reconcile failed; retrying at the next occasion")
		return
	}
	log.Info("reconcile finished")
}

func tickerOrNil(d time.Duration) *time.Ticker {
	if d <= 0 {
		return nil
	}
	return time.NewTicker(d)
}

func stopTicker(t *time.Ticker) {
	if t != nil {
		t.Stop()
	}
}

func tickC(t *time.Ticker) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}
