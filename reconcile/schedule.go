package reconcile

import (
	"context"
	"errors"
	"fmt"
	"time"

	cron "github.com/netresearch/go-cron"
	"github.com/sirupsen/logrus"
)

// Schedule says when the next scheduled run after t is. A zero time means never again.
type Schedule interface {
	Next(t time.Time) time.Time
}

// every is a fixed-interval schedule.
type every time.Duration

func (e every) Next(t time.Time) time.Time { return t.Add(time.Duration(e)) }

// cronParser reads standard 5-field expressions and descriptors (@daily, @every 6h). Day of
// month and day of week combine with OR, as in Vixie cron and crontab(5): go-cron's own
// default is AND, which would surprise anyone who copies a line from a crontab.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor | cron.DowOrDom)

// ParseSchedule parses a cron expression (minute hour day-of-month month day-of-week, or a
// descriptor such as @hourly or @every 6h). Times are computed in the zone of the time passed
// to Next (the reconciler passes local time), unless the expression starts with CRON_TZ=.
func ParseSchedule(spec string) (Schedule, error) {
	s, err := cronParser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("parse schedule %q: %w", spec, err)
	}
	return s, nil
}

// fullSchedule returns the schedule of full runs: the cron expression when one is set, the
// interval otherwise, nil when neither is.
func (r *Reconciler) fullSchedule() (Schedule, error) {
	if r.cfg.FullSchedule != "" {
		return ParseSchedule(r.cfg.FullSchedule)
	}
	if r.cfg.FullInterval > 0 {
		return every(r.cfg.FullInterval), nil
	}
	return nil, nil
}

// catchUp is a pending request for a catch-up run.
type catchUp struct {
	// since is when messages may first have been missed.
	since time.Time
}

// RequestCatchUp asks Run for a catch-up covering the time since `since`: a listing run
// (Incremental), which fetches only the events new or changed since their last full apply and
// notices the events deleted meanwhile. It never blocks: requests made while one is pending
// merge. Its signature matches pipeline.GapFunc.
func (r *Reconciler) RequestCatchUp(_ context.Context, since time.Time, reason string) {
	r.log.WithFields(logrus.Fields{"since": since, "reason": reason}).Info("catch-up requested")
	r.enqueue(catchUp{since: since})
}

// enqueue adds a catch-up request, merging it with a pending one; it never blocks.
func (r *Reconciler) enqueue(req catchUp) {
	for {
		select {
		case r.gaps <- req:
			return
		default:
		}
		select {
		case pending := <-r.gaps:
			if !pending.since.IsZero() && (req.since.IsZero() || pending.since.Before(req.since)) {
				req.since = pending.since
			}
		default:
		}
	}
}

// Run reconciles until ctx ends: a listing run at once (Incremental: it notices what changed
// or was deleted while the daemon was down and fetches only that; a store never reconciled
// gets a full run), then full runs on their schedule (cron expression or interval), listing
// runs on the incremental interval, and a listing catch-up whenever RequestCatchUp is called. Runs never overlap;
// a run that comes due while another runs starts after it. A failed run is logged and retried
// at the next occasion. Run returns an error only for an invalid configuration, such as a full
// schedule that does not parse.
func (r *Reconciler) Run(ctx context.Context) error {
	if err := r.cfg.validate(); err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	sched, err := r.fullSchedule()
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	if !r.runLogged(ctx, "start-up", func() (*Report, error) { return r.Incremental(ctx, time.Time{}) }) {
		r.retryLater(ctx, catchUp{})
	}

	full := newScheduleTimer(sched, r.now, r.log)
	defer full.stop()
	incr := newScheduleTimer(nonZeroEvery(r.cfg.IncrementalInterval), r.now, r.log)
	defer incr.stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case c := <-r.gaps:
			ok := r.runLogged(ctx, "catch-up", func() (*Report, error) { return r.Incremental(ctx, c.since) })
			if !ok {
				r.retryLater(ctx, c)
			}
		case <-incr.C():
			r.runLogged(ctx, "scheduled", func() (*Report, error) { return r.Incremental(ctx, time.Time{}) })
			incr.arm()
		case <-full.C():
			r.runLogged(ctx, "scheduled", func() (*Report, error) { return r.Full(ctx) })
			full.arm()
		}
	}
}

func nonZeroEvery(d time.Duration) Schedule {
	if d <= 0 {
		return nil
	}
	return every(d)
}

// scheduleTimer fires at a schedule's next time after the reconciler's clock. It is re-armed
// after each run from the time the run ended, so that a run longer than the interval does not
// queue a burst of runs.
type scheduleTimer struct {
	sched Schedule
	now   func() time.Time
	log   logrus.FieldLogger
	timer *time.Timer
}

func newScheduleTimer(s Schedule, now func() time.Time, log logrus.FieldLogger) *scheduleTimer {
	t := &scheduleTimer{sched: s, now: now, log: log}
	t.arm()
	return t
}

func (t *scheduleTimer) arm() {
	if t.sched == nil {
		return
	}
	now := t.now()
	next := t.sched.Next(now)
	if next.IsZero() {
		t.log.Warn("reconcile schedule has no further run time; scheduled full runs stop")
		t.sched = nil
		return
	}
	wait := max(next.Sub(now), 0)
	if t.timer == nil {
		t.timer = time.NewTimer(wait)
		return
	}
	t.timer.Reset(wait)
}

// C is the timer's channel, nil (never ready) without a schedule.
func (t *scheduleTimer) C() <-chan time.Time {
	if t.sched == nil || t.timer == nil {
		return nil
	}
	return t.timer.C
}

func (t *scheduleTimer) stop() {
	if t.timer != nil {
		t.timer.Stop()
	}
}

// retryLater puts a failed catch-up back after CatchUpRetry, unless ctx ends first.
func (r *Reconciler) retryLater(ctx context.Context, c catchUp) {
	t := time.NewTimer(r.cfg.CatchUpRetry)
	go func() {
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
			r.enqueue(c)
		}
	}()
}

// runLogged runs one reconcile, logs its outcome and reports whether its search succeeded.
func (r *Reconciler) runLogged(ctx context.Context, why string, run func() (*Report, error)) bool {
	rep, err := run()
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return true // shutting down: nothing to retry
	}
	log := r.log.WithField("trigger", why)
	if rep != nil {
		log = log.WithFields(logrus.Fields{
			"kind": rep.Kind, "events": rep.Events, "gone": rep.GoneEvents,
			"filtered_out": rep.FilteredEvents, "in_grace": rep.GracedEvents, "superseded": rep.SupersededEvents, "aged_out_of_window": rep.AgedEvents,
			"undecodable": rep.UndecodableEvents, "listed": rep.Listed, "fetched": rep.Fetched,
			"duration": rep.Finished.Sub(rep.Started).String(),
		})
		for sink, s := range rep.Sinks {
			log = log.WithField("sink_"+sink, fmt.Sprintf("new=%d changed=%d unchanged=%d refreshed=%d revoked=%d expired=%d", s.New, s.Changed, s.Unchanged, s.Refreshed, s.Revoked, s.Expired))
		}
		for _, e := range rep.Errors {
			r.log.WithError(e).Warn("reconcile: event not applied")
		}
	}
	if err != nil {
		log.WithError(err).Error("reconcile failed; it will be retried")
		return false
	}
	log.Info("reconcile finished")
	return true
}
