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
}

// Pusher drains one sink's outbox. Create it with New and start it with Run.
type Pusher struct {
	cfg     Config
	outbox  Outbox
	up      sentinel.Uploader
	log     logrus.FieldLogger
	metrics *Metrics
	now     func() time.Time
}

// New returns a pusher for cfg.Sink. metrics may be nil.
func New(cfg Config, outbox Outbox, up sentinel.Uploader, log logrus.FieldLogger, metrics *Metrics) *Pusher {
	cfg.setDefaults()
	if log == nil {
		log = logrus.StandardLogger()
	}
	return &Pusher{
		cfg:     cfg,
		outbox:  outbox,
		up:      up,
		log:     log.WithField("sink", cfg.Sink),
		metrics: metrics,
		now:     time.Now,
	}
}

// ErrSinkStopped wraps the fatal error that stopped a sink (bad credentials, missing role,
// unknown workspace). Its objects stay queued for when the configuration is fixed.
var ErrSinkStopped = errors.New("sink stopped")

// Run drains the outbox until ctx ends (returning nil after finishing the batch in flight) or
// the sink fails fatally (returning an error wrapping ErrSinkStopped). Store errors are
// retried: they are logged and the loop waits before trying again.
func (p *Pusher) Run(ctx context.Context) error {
	ready := p.outbox.Ready(p.cfg.Sink)
	var wait <-chan time.Time // nil: wait for ready only
	for {
		if ctx.Err() != nil {
			return nil
		}
		batch, err := p.outbox.Begin(p.cfg.Sink, p.cfg.BatchSize)
		if err != nil {
			p.log.WithError(err).Error("take batch from outbox; retrying")
			wait = time.After(time.Second)
		} else if len(batch.Items) == 0 {
			p.release(batch)
			wait = nil
		} else if due := p.dueAt(batch); len(batch.Items) < p.cfg.BatchSize && p.now().Before(due) {
			p.release(batch)
			wait = time.After(due.Sub(p.now()))
		} else {
			if _, err := p.send(ctx, batch); err != nil {
				if errors.Is(err, ErrSinkStopped) {
					return err
				}
				p.log.WithError(err).Error("upload batch; retrying")
				wait = time.After(time.Second)
			} else {
				continue // more may be queued already
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ready:
		case <-wait:
		}
	}
}

// dueAt is when a partial batch should be sent anyway: its oldest item's age reaches Linger.
func (p *Pusher) dueAt(b *store.Batch) time.Time {
	oldest := b.Items[0].EnqueuedAt
	for _, it := range b.Items[1:] {
		if it.EnqueuedAt.Before(oldest) {
			oldest = it.EnqueuedAt
		}
	}
	return oldest.Add(p.cfg.Linger)
}

// release hands a batch back untouched.
func (p *Pusher) release(b *store.Batch) {
	if b == nil {
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
// the committed outcome; on error the batch is handed back untouched.
func (p *Pusher) send(ctx context.Context, b *store.Batch) (store.Outcome, error) {
	objects := make([]json.RawMessage, len(b.Items))
	for i, it := range b.Items {
		objects[i] = it.Object
	}
	upCtx, cancel := graceContext(ctx, p.cfg.ShutdownGrace)
	defer cancel()

	start := p.now()
	result, err := sentinel.Deliver(upCtx, p.up, objects, p.cfg.Retry)
	p.metrics.observeUpload(p.cfg.Sink, p.now().Sub(start))
	if err != nil {
		p.release(b)
		var fatal *sentinel.FatalError
		if errors.As(err, &fatal) {
			p.metrics.fatal(p.cfg.Sink)
			return store.Outcome{}, fmt.Errorf("%w: %s: %w", ErrSinkStopped, p.cfg.Sink, err)
		}
		if upCtx.Err() != nil {
			// Shutting down: the batch stays queued for the next start.
			return store.Outcome{}, nil
		}
		return store.Outcome{}, fmt.Errorf("upload batch of %d: %w", len(b.Items), err)
	}

	outcome := store.Outcome{}
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
	for {
		err := p.outbox.End(b, outcome, p.now())
		if err == nil {
			break
		}
		// Sentinel has the objects; if the outcome cannot be recorded they are sent again
		// after a restart, which an upsert by id and modified makes harmless.
		p.log.WithError(err).Error("record upload outcome; retrying")
		select {
		case <-ctx.Done():
			return store.Outcome{}, nil
		case <-time.After(time.Second):
		}
	}
	p.metrics.observeOutcome(p.cfg.Sink, b, outcome)
	for _, r := range outcome.Rejected {
		p.log.WithFields(logrus.Fields{"id": b.Items[r.Index].ID, "reason": r.Message}).
			Warn("Sentinel rejected an object; dead-lettered")
	}
	return outcome, nil
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
			p.release(b)
			return stats, nil
		}
		o, err := p.send(ctx, b)
		if err != nil {
			return stats, err
		}
		if ctx.Err() != nil && len(o.Accepted)+len(o.Rejected) == 0 {
			return stats, ctx.Err()
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
