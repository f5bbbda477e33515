package pusher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mispsentinel/listener/sentinel"
	"github.com/mispsentinel/listener/store"
)

// Config tunes one sink's pusher.
type Config struct {
	// Sink names the outbox to drain.
	Sink string
	// BatchSize is the most objects per upload (at most 100, Sentinel's limit). Default 100.
	BatchSize int
	// Linger is how long a partial batch may wait for more objects. Default 1 s.
	Linger time.Duration
	// ShutdownGrace bounds how long the batch in flight may take to finish after the context
	// ends. Default 10 s; what does not finish stays queued.
	ShutdownGrace time.Duration
	// Retry configures sentinel.Deliver's backoff.
	Retry sentinel.RetryOptions
}

func (c *Config) setDefaults() {
	if c.BatchSize <= 0 || c.BatchSize > 100 {
		c.BatchSize = 100
	}
	if c.Linger <= 0 {
		c.Linger = time.Second
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = 10 * time.Second
	}
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

// Pusher drains one sink's outbox. Create it with New and start it with Run.
type Pusher struct {
	cfg     Config
	outbox  Outbox
	up      sentinel.Uploader
	log     logrus.FieldLogger
	metrics *Metrics
	now     func() time.Time
	// retryPause is the pause after a store or non-retryable upload error.
	retryPause time.Duration
}

// New returns a pusher for cfg.Sink. metrics may be nil.
func New(cfg Config, outbox Outbox, up sentinel.Uploader, log logrus.FieldLogger, metrics *Metrics) *Pusher {
	cfg.setDefaults()
	if log == nil {
		log = logrus.StandardLogger()
	}
	return &Pusher{
		cfg:        cfg,
		outbox:     outbox,
		up:         up,
		log:        log.WithField("sink", cfg.Sink),
		metrics:    metrics,
		now:        time.Now,
		retryPause: time.Second,
	}
}

// ErrSinkStopped wraps the fatal error that stopped a sink (bad credentials, missing role,
// unknown workspace). Its objects stay queued for when the configuration is fixed.
var ErrSinkStopped = errors.New("sink stopped")

// Run drains the outbox until ctx ends (returning nil after finishing the batch in flight) or
// the sink fails fatally (returning an error wrapping ErrSinkStopped). A batch is sent once
// BatchSize objects are queued or the oldest queued object has waited Linger. Store and
// non-retryable upload errors are logged and retried after a pause.
func (p *Pusher) Run(ctx context.Context) error {
	ready := p.outbox.Ready(p.cfg.Sink)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		if ctx.Err() != nil {
			return nil
		}
		// wait is how long to sleep unless something is enqueued first; negative: only an
		// enqueue wakes the loop.
		wait, err := p.step(ctx)
		switch {
		case errors.Is(err, ErrSinkStopped):
			return err
		case err != nil:
			p.log.WithError(err).Error("push to sink failed; retrying")
			wait = p.retryPause
		case wait == 0:
			continue // a batch went out; more may be queued already
		}
		if wait > 0 {
			timer.Reset(wait)
		} else {
			timer.Stop()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ready:
		case <-timer.C:
		}
	}
}

// step sends one batch if one is due and returns 0; otherwise it returns how long until the
// queued objects are due (negative when nothing is queued).
func (p *Pusher) step(ctx context.Context) (time.Duration, error) {
	st, err := p.outbox.Stats(p.cfg.Sink)
	if err != nil {
		return 0, fmt.Errorf("read outbox of sink %s: %w", p.cfg.Sink, err)
	}
	if st.OutboxDepth <= 0 {
		return -1, nil
	}
	if st.OutboxDepth < int64(p.cfg.BatchSize) && !st.OldestEnqueuedAt.IsZero() {
		if until := st.OldestEnqueuedAt.Add(p.cfg.Linger).Sub(p.now()); until > 0 {
			return until, nil
		}
	}
	batch, err := p.outbox.Begin(p.cfg.Sink, p.cfg.BatchSize)
	if err != nil {
		return 0, fmt.Errorf("take batch from outbox: %w", err)
	}
	if len(batch.Items) == 0 {
		return -1, nil // Begin holds nothing for an empty batch: no End needed
	}
	if _, err := p.send(ctx, batch); err != nil {
		return 0, err
	}
	return 0, nil
}

// release hands a batch back untouched.
func (p *Pusher) release(b *store.Batch) {
	if len(b.Items) == 0 {
		return
	}
	retry := make([]int, len(b.Items))
	for i := range retry {
		retry[i] = i
	}
	if err := p.outbox.End(b, store.Outcome{Retry: retry}, p.now()); err != nil {
		p.log.WithError(err).Error("hand batch back to outbox")
	}
}

// send uploads one batch and commits its outcome. The upload continues for up to
// ShutdownGrace after ctx ends so that the batch in flight finishes on shutdown. It returns
// the committed outcome; when the batch could not be settled (shutdown, error) it is handed
// back untouched and the outcome is empty.
func (p *Pusher) send(ctx context.Context, b *store.Batch) (store.Outcome, error) {
	objects := make([]json.RawMessage, len(b.Items))
	for i, it := range b.Items {
		objects[i] = it.Object
	}
	upCtx, cancel := graceContext(ctx, p.cfg.ShutdownGrace)
	defer cancel()

	start := p.now()
	result, err := sentinel.Deliver(upCtx, p.up, objects, p.cfg.Retry)
	if err != nil {
		p.release(b)
		var fatal *sentinel.FatalError
		switch {
		case errors.As(err, &fatal):
			p.metrics.fatal(p.cfg.Sink)
			return store.Outcome{}, fmt.Errorf("%w: %s: %w", ErrSinkStopped, p.cfg.Sink, err)
		case upCtx.Err() != nil:
			// Shutting down and out of grace: the batch stays queued for the next start.
			return store.Outcome{}, nil
		default:
			// Deliver retries everything that can succeed later; what is left is
			// deterministic (a batch the client refuses to build or send). Retrying it would
			// loop on the head of the outbox for ever, so the sink stops loudly instead, its
			// objects kept queued.
			p.metrics.fatal(p.cfg.Sink)
			return store.Outcome{}, fmt.Errorf("%w: %s: upload batch of %d: %w", ErrSinkStopped, p.cfg.Sink, len(b.Items), err)
		}
	}
	p.metrics.observeUpload(p.cfg.Sink, p.now().Sub(start))

	outcome := outcomeOf(b, result)
	// Sentinel has the objects; if the outcome cannot be recorded they are sent again later
	// (after a restart at the latest), which an upsert by id and modified makes harmless.
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
		outcome = outcomeOf(b, result)
	}
	p.metrics.observeOutcome(p.cfg.Sink, b, outcome)
	for _, r := range outcome.Rejected {
		p.log.WithFields(logrus.Fields{"id": b.Items[r.Index].ID, "reason": r.Message}).
			Warn("Sentinel rejected an object; dead-lettered")
	}
	return outcome, nil
}

// retake waits a pause and takes the same batch again after a failed End (which released
// it). It fails when ctx ends or the head of the outbox is no longer the same batch.
func (p *Pusher) retake(ctx context.Context, old *store.Batch) (*store.Batch, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(p.retryPause):
	}
	b, err := p.outbox.Begin(p.cfg.Sink, len(old.Items))
	if err != nil {
		return nil, err
	}
	same := len(b.Items) == len(old.Items)
	for i := 0; same && i < len(b.Items); i++ {
		same = b.Items[i].Seq == old.Items[i].Seq
	}
	if !same {
		p.release(b)
		return nil, errors.New("outbox head changed")
	}
	return b, nil
}

// outcomeOf turns Sentinel's answer into the store's outcome: everything not rejected was
// accepted.
func outcomeOf(b *store.Batch, result sentinel.UploadResult) store.Outcome {
	var outcome store.Outcome
	rejected := make(map[int]string, len(result.Rejected))
	for _, r := range result.Rejected {
		if r.Index >= 0 && r.Index < len(b.Items) {
			rejected[r.Index] = r.Message
		}
	}
	for i := range b.Items {
		if msg, ok := rejected[i]; ok {
			outcome.Rejected = append(outcome.Rejected, store.Rejection{Index: i, Message: msg})
			continue
		}
		outcome.Accepted = append(outcome.Accepted, i)
	}
	return outcome
}

// DrainStats counts what Drain settled.
type DrainStats struct {
	Accepted int // upserts and revocations Sentinel accepted
	Revoked  int // of which revocations
	Rejected int // dead-lettered
}

// Drain uploads everything queued for the sink without waiting for lingering batches and
// returns when the outbox is empty, the sink fails fatally or ctx ends (with ctx's error).
// It serves `listener sync`.
func (p *Pusher) Drain(ctx context.Context) (DrainStats, error) {
	var stats DrainStats
	for {
		if err := ctx.Err(); err != nil {
			return stats, err
		}
		b, err := p.outbox.Begin(p.cfg.Sink, p.cfg.BatchSize)
		if err != nil {
			return stats, fmt.Errorf("take batch from outbox: %w", err)
		}
		if len(b.Items) == 0 {
			return stats, nil
		}
		o, err := p.send(ctx, b)
		if err != nil {
			return stats, err
		}
		if len(o.Accepted)+len(o.Rejected) == 0 {
			// Not settled: only a shutdown (or a closed store) does that.
			if err := ctx.Err(); err != nil {
				return stats, err
			}
			return stats, errors.New("drain: batch could not be settled")
		}
		stats.Accepted += len(o.Accepted)
		stats.Rejected += len(o.Rejected)
		for _, i := range o.Accepted {
			if b.Items[i].Revoke {
				stats.Revoked++
			}
		}
	}
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
