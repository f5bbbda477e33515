package pusher

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/sirupsen/logrus"

	"github.com/mispsentinel/listener/store"
)

// Config tunes one sink's pusher. Every field is required: the daemon passes the values of
// config.Default(), New only validates them.
type Config struct {
	// Sink names the outbox to drain.
	Sink string
	// Linger is how long a partial batch may wait for more objects.
	Linger time.Duration
	// ShutdownGrace bounds how long the batches in flight may take to finish after the
	// context ends; what does not finish stays queued.
	ShutdownGrace time.Duration
	// RetryInitial and RetryMax bound the exponential backoff after a retryable error that
	// names no wait (5xx, timeouts, connection errors).
	RetryInitial, RetryMax time.Duration
	// MaxRetryAfter caps a wait the sink's API asks for (a Retry-After of years is clamped
	// to it, with a warning).
	MaxRetryAfter time.Duration
	// InFlight is the most batches in flight at once (≥ 1), so that a slow API still gets
	// the whole quota. The outbox never hands out two versions of one id at once.
	InFlight int
	// FailingInitial and FailingMax bound the exponential backoff of a failing sink (one
	// that hit a configuration error): Run tries it again after each step, healing it
	// first when the sink is a Healer.
	FailingInitial, FailingMax time.Duration
	// Heartbeat, when positive, wakes an idle Run at least this often so that LastBeat
	// shows the loop is alive (the daemon's /healthz); zero wakes it only for work.
	Heartbeat time.Duration
}

func (c Config) validate() error {
	var errs []error
	if c.Sink == "" {
		errs = append(errs, errors.New("sink name is empty"))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"linger", c.Linger}, {"shutdown grace", c.ShutdownGrace}, {"retry initial", c.RetryInitial}, {"retry max", c.RetryMax},
		{"max retry-after", c.MaxRetryAfter}, {"failing initial", c.FailingInitial}, {"failing max", c.FailingMax}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s %s must be positive", d.name, d.v))
		}
	}
	if c.InFlight < 1 {
		errs = append(errs, fmt.Errorf("in flight %d must be at least 1", c.InFlight))
	}
	if c.FailingMax < c.FailingInitial {
		errs = append(errs, fmt.Errorf("failing max %s is below failing initial %s", c.FailingMax, c.FailingInitial))
	}
	if c.RetryMax < c.RetryInitial {
		errs = append(errs, fmt.Errorf("retry max %s is below retry initial %s", c.RetryMax, c.RetryInitial))
	}
	return errors.Join(errs...)
}

// Outbox is the part of the store a pusher uses.
type Outbox interface {
	Begin(sink string, max int) (*store.Batch, error)
	End(b *store.Batch, o store.Outcome, now time.Time) error
	Ready(sink string) <-chan struct{}
	// Stats is read to decide whether a batch is due without taking it: handing a batch back
	// untouched is a synced write.
	Stats(sink string) (store.SinkStats, error)
}

// Pusher drains one sink's outbox. Create it with New and start it with Run (or Drain).
type Pusher struct {
	cfg     Config
	outbox  Outbox
	sink    Sink
	limits  Limits
	pacers  *Pacers
	log     logrus.FieldLogger
	metrics *Metrics
	now     func() time.Time
	// jitter returns the random extra wait added to a wait the API asked for, so that the
	// sinks of one identity do not all come back at the same instant.
	jitter func(time.Duration) time.Duration
	// storePause is the pause after a store error.
	storePause time.Duration

	mu    sync.Mutex
	state State
	// beat is the wall-clock time (UnixNano) the loop last went round.
	beat atomic.Int64
	// kick asks Run to try a failing sink now (RetryNow).
	kick chan struct{}
}

// RetryNow makes Run try a failing sink at once instead of at the end of its backoff step
// (healing it first when it is a Healer), e.g. after SIGHUP re-read its secret. It does
// nothing to a sink that is up.
func (p *Pusher) RetryNow() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// LastBeat returns when the delivery loop last went round (zero before Run or Drain); with
// Config.Heartbeat it goes round at least that often while the loop is alive.
func (p *Pusher) LastBeat() time.Time {
	if n := p.beat.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// New returns a pusher draining outbox into sink, pacing requests with pacers (shared by
// every pusher so that sinks of one identity share its quota). metrics may be nil.
func New(cfg Config, outbox Outbox, sink Sink, pacers *Pacers, log logrus.FieldLogger, metrics *Metrics) (*Pusher, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("pusher for sink %q: %w", cfg.Sink, err)
	}
	if outbox == nil || sink == nil || pacers == nil {
		return nil, fmt.Errorf("pusher for sink %q: outbox, sink and pacers are required", cfg.Sink)
	}
	limits := sink.Limits()
	if limits.MaxBatch < 1 || limits.MaxBatch > store.MaxBatch {
		return nil, fmt.Errorf("pusher for sink %q: batch size %d must be within 1..%d", cfg.Sink, limits.MaxBatch, store.MaxBatch)
	}
	if len(limits.Upserts) == 0 {
		return nil, fmt.Errorf("pusher for sink %q: the sink reports no quota", cfg.Sink)
	}
	if err := checkQuotas(append(limits.Upserts, limits.Revocations...)); err != nil {
		return nil, fmt.Errorf("pusher for sink %q: %w", cfg.Sink, err)
	}
	if limits.Revocations != nil {
		// Batches of one kind need an outbox that can hand out upserts and revocations
		// apart; until a sink needs it, refuse rather than mix them.
		return nil, fmt.Errorf("pusher for sink %q: separate revocation calls are not supported yet", cfg.Sink)
	}
	if log == nil {
		log = logrus.StandardLogger()
	}
	return &Pusher{
		cfg:        cfg,
		outbox:     outbox,
		sink:       sink,
		limits:     limits,
		pacers:     pacers,
		log:        log.WithField("sink", cfg.Sink),
		metrics:    metrics,
		now:        time.Now,
		jitter:     func(d time.Duration) time.Duration { return rand.N(d/10 + 1) },
		storePause: time.Second,
		state:      State{Up: true},
		kick:       make(chan struct{}, 1),
	}, nil
}

// ErrSinkStopped wraps the fatal error that stopped a sink (bad credentials, missing role,
// unknown workspace, a batch the sink cannot build). Its objects stay queued for when the
// configuration is fixed.
var ErrSinkStopped = errors.New("sink stopped")

// Healer is implemented by a sink that can pick up a fixed configuration by itself, e.g. by
// resolving its credential's secret again (a rotated secret in a file, an environment
// variable or Key Vault). Run calls Heal before each retry of a failing sink; an error keeps
// the sink failing until the next step.
type Healer interface {
	Heal(ctx context.Context) error
}

// State is a sink's health as Run sees it.
type State struct {
	// Up is false while the sink is failing: a configuration error (a refused credential, a
	// missing role, an unknown workspace) stopped its uploads; its objects stay queued.
	Up bool
	// LastError is the error that made the sink fail, on one line.
	LastError string
	// FailingSince is when the sink started failing; NextRetry when Run tries it again.
	FailingSince, NextRetry time.Time
}

// State returns the sink's health.
func (p *Pusher) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// Run drains the outbox until ctx ends, returning nil after finishing the batches in flight.
// A batch is sent once a full batch is queued or the oldest queued object has waited Linger;
// up to InFlight batches are in flight at once. Retryable errors are retried with the same
// batch without limit; a store error is logged and the loop tries again after a pause. A
// fatal or deterministic upload error makes the sink failing (State): its objects stay
// queued, and Run tries one batch again after a capped exponential backoff (FailingInitial
// to FailingMax), healing the sink first when it is a Healer, until the sink recovers.
func (p *Pusher) Run(ctx context.Context) error {
	_, err := p.loop(ctx, false)
	return err
}

// fail records that the sink is failing with err and returns when to try it again.
func (p *Pusher) fail(err error, bo *backoff.ExponentialBackOff) time.Time {
	now := p.now()
	next := now.Add(bo.NextBackOff())
	p.mu.Lock()
	wasUp := p.state.Up
	if wasUp {
		p.state.FailingSince = now
	}
	p.state.Up, p.state.LastError, p.state.NextRetry = false, OneLine(err.Error()), next
	since := p.state.FailingSince
	p.mu.Unlock()
	if wasUp {
		p.metrics.fatal(p.cfg.Sink)
	}
	p.metrics.setFailing(p.cfg.Sink, since)
	p.log.WithFields(logrus.Fields{"failing_since": since.UTC().Format(time.RFC3339), "next_retry": next.UTC().Format(time.RFC3339)}).
		WithError(oneLineError{err}).
		Error("sink failing: fix its configuration (a rotated secret is read again before each retry); its objects stay queued")
	return next
}

// recover records that the sink delivered again.
func (p *Pusher) recover(bo *backoff.ExponentialBackOff) {
	p.mu.Lock()
	was := p.state
	p.state = State{Up: true}
	p.mu.Unlock()
	bo.Reset()
	if !was.Up {
		p.metrics.setUp(p.cfg.Sink)
		p.log.WithField("failing_since", was.FailingSince.UTC().Format(time.RFC3339)).Info("sink recovered")
	}
}

// oneLineError is err with its text on one line, still unwrapping to err.
type oneLineError struct{ err error }

func (e oneLineError) Error() string { return OneLine(e.err.Error()) }
func (e oneLineError) Unwrap() error { return e.err }

// OneLine folds a multi-line error text (the Azure SDK's) into one line.
func OneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// DrainStats counts what Drain settled.
type DrainStats struct {
	Accepted int // upserts and revocations the sink accepted
	Revoked  int // of which revocations
	Rejected int // dead-lettered
}

// Drain uploads everything queued for the sink without waiting for lingering batches and
// returns when the outbox is empty, the sink fails fatally or ctx ends (with ctx's error).
// It serves `listener sync`.
func (p *Pusher) Drain(ctx context.Context) (DrainStats, error) {
	return p.loop(ctx, true)
}

// settledBatch is what one batch in flight came back with.
type settledBatch struct {
	batch   *store.Batch
	outcome store.Outcome
	err     error
}

// loop is Run (drain false) and Drain (drain true): it keeps up to InFlight batches in
// flight, each delivered and committed by its own goroutine, and waits for an enqueue, a
// lingering batch falling due or a batch coming back.
func (p *Pusher) loop(ctx context.Context, drain bool) (DrainStats, error) {
	ready := p.outbox.Ready(p.cfg.Sink)
	done := make(chan settledBatch, p.cfg.InFlight)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var (
		stats         DrainStats
		inFlight      int
		inFlightItems int
		lastTaken     time.Time
		stopErr       error
		failing       bool      // Run only: a configuration error stopped uploads
		retryAt       time.Time // when a failing sink is tried again
		healed        bool      // the sink was healed for the coming retry
	)
	fbo := backoff.NewExponentialBackOff()
	fbo.InitialInterval, fbo.MaxInterval = p.cfg.FailingInitial, p.cfg.FailingMax
	fbo.Reset()
	if !drain {
		p.metrics.setUp(p.cfg.Sink)
	}
	for {
		p.beat.Store(time.Now().UnixNano())
		// wait is how long to sleep unless something is enqueued or a batch comes back first;
		// negative: only those wake the loop.
		wait := time.Duration(-1)
		if failing && ctx.Err() == nil {
			// One batch probes a failing sink, once its backoff step has passed.
			if until := retryAt.Sub(p.now()); until > 0 {
				wait = until
			} else if inFlight == 0 && !healed {
				if h, ok := p.sink.(Healer); ok {
					if err := h.Heal(ctx); err != nil && ctx.Err() == nil {
						retryAt = p.fail(fmt.Errorf("heal: %w", err), fbo)
						continue
					}
				}
				healed = true
			}
		}
		for stopErr == nil && ctx.Err() == nil && inFlight < p.cfg.InFlight && (!failing || (healed && inFlight == 0)) {
			b, until, err := p.take(drain, inFlight, inFlightItems, lastTaken)
			if err != nil {
				if drain {
					stopErr = err
					break
				}
				p.log.WithError(err).Error("push to sink failed; retrying")
				wait = p.storePause
				break
			}
			if b == nil {
				wait = until
				break
			}
			lastTaken = p.now()
			inFlight++
			inFlightItems += len(b.Items)
			go func() {
				o, err := p.send(ctx, b)
				done <- settledBatch{batch: b, outcome: o, err: err}
			}()
		}
		if inFlight == 0 {
			switch {
			case stopErr != nil:
				return stats, stopErr
			case ctx.Err() != nil && drain:
				return stats, ctx.Err()
			case ctx.Err() != nil:
				return stats, nil
			case drain && wait < 0:
				return stats, nil // nothing queued
			}
		}
		if hb := p.cfg.Heartbeat; hb > 0 && !drain && (wait < 0 || wait > hb) {
			wait = hb
		}
		if wait > 0 {
			timer.Reset(wait)
		} else {
			timer.Stop()
		}
		var ctxDone <-chan struct{}
		if ctx.Err() == nil && stopErr == nil {
			ctxDone = ctx.Done()
		}
		select {
		case r := <-done:
			inFlight--
			inFlightItems -= len(r.batch.Items)
			switch {
			case r.err != nil && !drain:
				// A batch sent before the sink started failing adds nothing: only the first
				// failure and each failed probe move the backoff on.
				if !failing || healed {
					failing, healed = true, false
					retryAt = p.fail(r.err, fbo)
				}
			case r.err != nil:
				if stopErr == nil {
					p.metrics.fatal(p.cfg.Sink)
					stopErr = r.err
				}
			case !drain && len(r.outcome.Accepted)+len(r.outcome.Rejected) > 0:
				failing = false
				p.recover(fbo)
			case drain && len(r.outcome.Accepted)+len(r.outcome.Rejected) == 0 && ctx.Err() == nil:
				// Not settled: only a shutdown (or a closed store) does that.
				if stopErr == nil {
					stopErr = errors.New("drain: batch could not be settled")
				}
			}
			stats.add(r.batch, r.outcome)
		case <-ready:
		case <-timer.C:
		case <-ctxDone:
		case <-p.kick:
			if failing && !drain {
				retryAt = p.now()
			}
		}
	}
}

// add counts a committed outcome.
func (s *DrainStats) add(b *store.Batch, o store.Outcome) {
	s.Accepted += len(o.Accepted)
	s.Rejected += len(o.Rejected)
	for _, i := range o.Accepted {
		if b.Items[i].Revoke {
			s.Revoked++
		}
	}
}

// take returns the next batch if one is due, or how long until the queued objects are due
// (negative when only an enqueue or a batch coming back can make one due). Objects in
// flight do not count as queued; a partial batch lingers from the later of the oldest
// queued object and the last batch taken.
func (p *Pusher) take(drain bool, inFlight, inFlightItems int, lastTaken time.Time) (*store.Batch, time.Duration, error) {
	st, err := p.outbox.Stats(p.cfg.Sink)
	if err != nil {
		return nil, 0, fmt.Errorf("read outbox of sink %s: %w", p.cfg.Sink, err)
	}
	queued := st.OutboxDepth - int64(inFlightItems)
	if queued <= 0 {
		return nil, -1, nil
	}
	if !drain && queued < int64(p.limits.MaxBatch) {
		since := st.OldestEnqueuedAt
		if inFlight > 0 && lastTaken.After(since) {
			since = lastTaken
		}
		if until := since.Add(p.cfg.Linger).Sub(p.now()); !since.IsZero() && until > 0 {
			return nil, until, nil
		}
	}
	b, err := p.outbox.Begin(p.cfg.Sink, p.limits.MaxBatch)
	if err != nil {
		return nil, 0, fmt.Errorf("take batch from outbox: %w", err)
	}
	p.metrics.observeHeld(p.cfg.Sink, b.Held)
	if len(b.Items) == 0 {
		// Everything queued is a later version of an id in flight (Begin holds nothing for
		// an empty batch: no End needed).
		return nil, -1, nil
	}
	return b, 0, nil
}

// keep hands a batch back untouched.
func (p *Pusher) keep(b *store.Batch) {
	if err := p.outbox.End(b, b.KeepAll(), p.now()); err != nil {
		p.log.WithError(err).Error("hand batch back to outbox")
	}
}

// send delivers one batch and commits its outcome. The delivery continues for up to
// ShutdownGrace after ctx ends so that the batch in flight finishes on shutdown. It returns
// the committed outcome; when the batch could not be settled (shutdown, error) it is handed
// back untouched and the outcome is empty.
func (p *Pusher) send(ctx context.Context, b *store.Batch) (store.Outcome, error) {
	objects := make([]Object, len(b.Items))
	for i, it := range b.Items {
		objects[i] = Object{ID: it.ID, Revoke: it.Revoke, Body: it.Object}
	}
	upCtx, cancel := graceContext(ctx, p.cfg.ShutdownGrace)
	defer cancel()

	start := p.now()
	rejected, err := p.deliver(upCtx, objects)
	if err != nil {
		p.keep(b)
		var fatal *FatalError
		switch {
		case errors.As(err, &fatal):
			return store.Outcome{}, fmt.Errorf("%w: %s: %w", ErrSinkStopped, p.cfg.Sink, err)
		case upCtx.Err() != nil:
			// Shutting down and out of grace: the batch stays queued for the next start.
			return store.Outcome{}, nil
		default:
			// Everything that can succeed later was retried; what is left is deterministic
			// (a batch the sink refuses to build or send). Retrying it would loop on the
			// head of the outbox for ever, so the sink stops loudly instead, its objects
			// kept queued.
			return store.Outcome{}, fmt.Errorf("%w: %s: upload batch of %d: %w", ErrSinkStopped, p.cfg.Sink, len(b.Items), err)
		}
	}
	p.metrics.observeUpload(p.cfg.Sink, p.now().Sub(start))

	// The API has the objects; if the outcome cannot be recorded they are sent again later
	// (after a restart at the latest), which an upsert by id and modified makes harmless.
	outcome := settled(b, rejected)
	for {
		err := p.outbox.End(b, outcome, p.now())
		if err == nil {
			break
		}
		p.log.WithError(err).Error("record upload outcome; retrying")
		if errors.Is(err, store.ErrClosed) {
			return store.Outcome{}, nil
		}
		if b, err = p.retake(upCtx, b); err != nil {
			return store.Outcome{}, nil
		}
		outcome = settled(b, rejected)
	}
	p.metrics.observeOutcome(p.cfg.Sink, b, outcome)
	for _, r := range outcome.Rejected {
		p.log.WithFields(logrus.Fields{"id": b.Items[r.Index].ID, "revoke": b.Items[r.Index].Revoke, "message": OneLine(r.Message)}).
			Warn("the sink rejected an object; dead-lettered")
	}
	return outcome, nil
}

// debug reports whether the pusher's log takes debug lines (the per-request lines cost a
// closure per attempt otherwise).
func (p *Pusher) debug() bool {
	if e, ok := p.log.(*logrus.Entry); ok {
		return e.Logger.IsLevelEnabled(logrus.DebugLevel)
	}
	return true
}

// quotaKeys names the identities whose quota a throttled batch counts against.
func quotaKeys(qs []Quota) string {
	keys := make([]string, len(qs))
	for i, q := range qs {
		keys[i] = q.Key
	}
	return strings.Join(keys, ",")
}

// settled is the outcome of a delivered batch: everything accepted but the rejected objects
// (indices outside the batch name nothing we sent and are ignored).
func settled(b *store.Batch, rejected []Rejection) store.Outcome {
	o := b.AcceptAll()
	for _, r := range rejected {
		o = o.Reject(r.Index, r.Message)
	}
	return o
}

// deliver sends objects until the sink settles them, fails fatally or ctx ends. It is the
// one retry loop: retryable errors are retried without limit, after the wait the API asked
// for (capped at MaxRetryAfter, with jitter; a throttling wait pauses every sink sharing the
// quota) or after an exponential backoff; nothing is ever skipped. When ctx ends first it
// returns an error wrapping ctx's cause that names the last upload error.
func (p *Pusher) deliver(ctx context.Context, objects []Object) ([]Rejection, error) {
	quotas := p.limits.Upserts
	pace := func(ctx context.Context) error { return p.pacers.Reserve(ctx, quotas) }
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = p.cfg.RetryInitial
	bo.MaxInterval = p.cfg.RetryMax
	bo.Reset()
	var last error
	for attempt := 1; ; attempt++ {
		start := p.now()
		sendCtx := ctx
		if p.debug() {
			sendCtx = withRequestReporter(ctx, func(r Request) {
				e := p.log.WithFields(logrus.Fields{"attempt": attempt, "objects": r.Objects, "accepted": r.Accepted,
					"rejected": r.Rejected, "status": r.Status, "duration": r.Duration.Round(time.Millisecond).String()})
				if r.RequestID != "" {
					e = e.WithField("request_id", r.RequestID)
				}
				e.Debug("upload request")
			})
		}
		rejected, err := p.sink.Send(sendCtx, objects, pace)
		if err == nil {
			p.log.WithFields(logrus.Fields{"attempt": attempt, "objects": len(objects), "accepted": len(objects) - len(rejected),
				"rejected": len(rejected), "duration": p.now().Sub(start).Round(time.Millisecond).String()}).Debug("batch delivered")
			return rejected, nil
		}
		if ctx.Err() != nil {
			if last == nil {
				last = err
			}
			return nil, fmt.Errorf("deliver batch of %d objects: %w (last attempt: %v)", len(objects), context.Cause(ctx), last)
		}
		last = err
		reason := retryReason(err)
		if reason == "" {
			return nil, err
		}
		wait := p.retryWait(err, bo, quotas)
		if reason == RetryThrottled {
			p.pacers.Pause(quotas, p.now().Add(wait))
		}
		p.metrics.retry(p.cfg.Sink, reason)
		entry := p.log.WithFields(logrus.Fields{"reason": reason, "attempt": attempt, "objects": len(objects), "wait": wait.Round(time.Millisecond).String()}).WithError(oneLineError{err})
		if reason == RetryThrottled {
			entry.WithField("identity", quotaKeys(quotas)).Info("upload throttled; waiting as the API asked")
		} else {
			entry.Warn("upload failed; retrying")
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("deliver batch of %d objects: %w (last attempt: %v)", len(objects), context.Cause(ctx), last)
		}
	}
}

// retryWait is the wait before sending a batch again after the retryable err: the wait the
// API asked for, capped at MaxRetryAfter and with jitter added; for a throttling answer that
// names no wait, the longest window of quotas (the time the API counts requests against
// it); otherwise the next backoff step.
func (p *Pusher) retryWait(err error, bo *backoff.ExponentialBackOff, quotas []Quota) time.Duration {
	var re *RetryError
	if !errors.As(err, &re) {
		return bo.NextBackOff()
	}
	after := re.After
	if after <= 0 && re.Reason == RetryThrottled {
		for _, q := range quotas {
			after = max(after, q.Per)
		}
	}
	if after <= 0 {
		return bo.NextBackOff()
	}
	if after > p.cfg.MaxRetryAfter {
		p.log.WithFields(logrus.Fields{"asked": after.String(), "cap": p.cfg.MaxRetryAfter.String()}).
			Warn("the API asked for a wait longer than pusher.max_retry_after; waiting the cap")
		after = p.cfg.MaxRetryAfter
	}
	return after + p.jitter(after)
}

// retake waits a pause and takes the same batch again after a failed End (which released
// it). It fails when ctx ends or the head of the outbox is no longer the same batch.
func (p *Pusher) retake(ctx context.Context, old *store.Batch) (*store.Batch, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(p.storePause):
	}
	b, err := p.outbox.Begin(p.cfg.Sink, len(old.Items))
	if err != nil {
		return nil, err
	}
	p.metrics.observeHeld(p.cfg.Sink, b.Held)
	same := len(b.Items) == len(old.Items)
	for i := 0; same && i < len(b.Items); i++ {
		same = b.Items[i].Seq == old.Items[i].Seq
	}
	if !same {
		p.keep(b)
		return nil, errors.New("outbox head changed")
	}
	return b, nil
}

// graceContext returns a context that ends grace after parent ends (or when cancelled).
func graceContext(parent context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	stop := context.AfterFunc(parent, func() {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-ctx.Done():
		}
	})
	return ctx, func() { stop(); cancel() }
}
