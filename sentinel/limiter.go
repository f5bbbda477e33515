package sentinel

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Rate limits of the upload APIs.
const (
	// QuotaPerMinute is Sentinel's documented limit: 100 requests per minute per identity
	// ("all limits are applied per user").
	QuotaPerMinute = 100
	// DefaultHeadroom is the fraction of the quota the limiter leaves unused. Sentinel counts
	// requests in a sliding minute as they arrive; a limiter releasing exactly 100 requests a
	// minute puts request n+100 inside request n's minute whenever request n was delayed on
	// its way by a little more than request n+100, and that one request is answered 429. One
	// percent (0.6 s per minute) absorbs ordinary network jitter.
	DefaultHeadroom = 0.01
)

// LimiterOptions configure a Limiters registry.
type LimiterOptions struct {
	// RequestsPerMinute is the quota per identity; default QuotaPerMinute.
	RequestsPerMinute float64
	// Headroom is the fraction of the quota left unused; default DefaultHeadroom. Set a
	// negative value for none.
	Headroom float64
	// Minute is the length of a minute; default time.Minute. Simulators with a time scale
	// shorten it.
	Minute time.Duration
}

// Limiters hands out one rate limiter per Entra identity, so that every Client using the
// same identity shares its quota. The zero value is not usable; create one with NewLimiters
// and share it between all sinks. It is safe for concurrent use.
type Limiters struct {
	opts LimiterOptions

	mu     sync.Mutex
	limits map[Identity]*IdentityLimit
}

// IdentityLimit paces the requests of one identity: a token bucket with a burst of one (a
// larger burst would overrun a sliding-minute quota in the first minute), plus a pause set
// when Sentinel answers 429 so that every sink of the identity waits, not only the one that
// was throttled.
type IdentityLimit struct {
	limiter *rate.Limiter

	mu          sync.Mutex
	pausedUntil time.Time
}

// NewLimiters returns an empty registry.
func NewLimiters(opts LimiterOptions) *Limiters {
	if opts.RequestsPerMinute <= 0 {
		opts.RequestsPerMinute = QuotaPerMinute
	}
	if opts.Headroom == 0 {
		opts.Headroom = DefaultHeadroom
	}
	if opts.Headroom < 0 || opts.Headroom >= 1 {
		opts.Headroom = 0
	}
	if opts.Minute <= 0 {
		opts.Minute = time.Minute
	}
	return &Limiters{opts: opts, limits: make(map[Identity]*IdentityLimit)}
}

// Interval returns the spacing between two requests of one identity.
func (l *Limiters) Interval() time.Duration {
	perMinute := l.opts.RequestsPerMinute * (1 - l.opts.Headroom)
	return time.Duration(float64(l.opts.Minute) / perMinute)
}

// For returns the limit of identity, creating it on first use.
func (l *Limiters) For(identity Identity) *IdentityLimit {
	l.mu.Lock()
	defer l.mu.Unlock()
	if lim, ok := l.limits[identity]; ok {
		return lim
	}
	lim := &IdentityLimit{limiter: rate.NewLimiter(rate.Every(l.Interval()), 1)}
	l.limits[identity] = lim
	return lim
}

// Wait blocks until the identity may send one request or ctx ends.
func (l *IdentityLimit) Wait(ctx context.Context) error {
	for {
		l.mu.Lock()
		wait := time.Until(l.pausedUntil)
		l.mu.Unlock()
		if wait <= 0 {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wait for rate limit: %w", context.Cause(ctx))
		}
	}
	if err := l.limiter.Wait(ctx); err != nil {
		return fmt.Errorf("wait for rate limit: %w", err)
	}
	return nil
}

// Pause holds every request of the identity until until (extending, never shortening, an
// earlier pause).
func (l *IdentityLimit) Pause(until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if until.After(l.pausedUntil) {
		l.pausedUntil = until
	}
}
