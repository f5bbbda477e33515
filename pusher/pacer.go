package pusher

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"
)

// Pacers keeps one sliding-window log per quota key, so that every sink sharing a quota (the
// sinks of one Entra identity) shares its requests. Create one with NewPacers and share it
// between all pushers. It is safe for concurrent use.
//
// A window allows at most Requests requests in any interval of the quota's length plus the
// headroom, counted by send time: requests go out at once while the window has room (a
// burst of a whole quota is sent immediately), and the request after the last one the window
// holds waits until the oldest of them left it. Unlike a token bucket, which has to choose
// between bursts and the bound, the log gives both: a sliding-minute quota is never
// exceeded and a ready backlog is never spread out.
//
// The headroom is time, not requests: the API counts requests as they arrive, and with a
// backlog the pacer sends request n+Requests exactly one window after request n. If request
// n was delayed on its way by more than request n+Requests, both would land in one minute of
// the API's and one would be refused, however many requests short of the quota the window
// were kept; stretching the window by the headroom (1 %: 0.6 s of a minute) absorbs that
// jitter at the same cost in throughput.
type Pacers struct {
	headroom float64
	now      func() time.Time

	mu      sync.Mutex
	windows map[string]*window
}

// window is the send log of one quota key.
type window struct {
	limit int
	per   time.Duration
	// sent holds the send times of the last limit requests, oldest first (a ring).
	sent        []time.Time
	next        int // ring position of the oldest entry once len(sent) == limit
	pausedUntil time.Time
}

// NewPacers returns an empty registry. headroom is the fraction of every quota's window
// added to it (0.01: 100 requests per 60.6 s for a quota of 100 per minute); it must be
// within [0, 1).
func NewPacers(headroom float64) (*Pacers, error) {
	if headroom < 0 || headroom >= 1 || math.IsNaN(headroom) {
		return nil, fmt.Errorf("pacers: headroom %v must be within [0, 1)", headroom)
	}
	return &Pacers{headroom: headroom, now: time.Now, windows: make(map[string]*window)}, nil
}

// Window returns the length of the window in which the pacer allows q.Requests requests:
// the quota's own window plus the headroom.
func (p *Pacers) Window(q Quota) time.Duration {
	return q.Per + time.Duration(p.headroom*float64(q.Per))
}

// window returns the log of q, creating it on first use. Callers hold p.mu.
func (p *Pacers) window(q Quota) *window {
	w, ok := p.windows[q.Key]
	if !ok {
		w = &window{limit: q.Requests, per: p.Window(q)}
		p.windows[q.Key] = w
	}
	return w
}

// checkQuotas validates quotas before use.
func checkQuotas(qs []Quota) error {
	for _, q := range qs {
		if q.Key == "" || q.Requests <= 0 || q.Per <= 0 {
			return fmt.Errorf("quota %+v: needs a key, requests > 0 and a window > 0", q)
		}
	}
	return nil
}

// until returns how long from now a request must wait for room in w (0: room now).
func (w *window) until(now time.Time) time.Duration {
	wait := w.pausedUntil.Sub(now)
	if len(w.sent) == w.limit {
		wait = max(wait, w.sent[w.next].Add(w.per).Sub(now))
	}
	return max(wait, 0)
}

// record logs a request sent at now.
func (w *window) record(now time.Time) {
	if len(w.sent) < w.limit {
		w.sent = append(w.sent, now)
		return
	}
	w.sent[w.next] = now
	w.next = (w.next + 1) % w.limit
}

// tryReserve records one request in every window of quotas if all have room now, returning
// 0; otherwise it records nothing and returns how long to wait before trying again.
func (p *Pacers) tryReserve(quotas []Quota, now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var wait time.Duration
	for _, q := range quotas {
		wait = max(wait, p.window(q).until(now))
	}
	if wait > 0 {
		return wait
	}
	for _, q := range quotas {
		p.window(q).record(now)
	}
	return 0
}

// Reserve blocks until one request fits in the window of every quota, records it, and
// returns; it returns ctx's error when ctx ends first.
func (p *Pacers) Reserve(ctx context.Context, quotas []Quota) error {
	for {
		wait := p.tryReserve(quotas, p.now())
		if wait == 0 {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wait for quota: %w", context.Cause(ctx))
		}
	}
}

// Pause holds every request counted against quotas until until (extending, never
// shortening, an earlier pause): the API asked every caller of the quota to wait.
func (p *Pacers) Pause(quotas []Quota, until time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, q := range quotas {
		if w := p.window(q); until.After(w.pausedUntil) {
			w.pausedUntil = until
		}
	}
}
