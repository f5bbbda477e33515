package pusher

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestPacerSlidingWindowProperty drives the pacers with random arrival patterns on a virtual
// clock (bursts, trickles, several sinks of one identity) and checks, for every pattern:
// no window of the quota's length holds more than the limit of sends (the bound), and a
// request that arrives while its window has room goes out at once (no spreading).
func TestPacerSlidingWindowProperty(t *testing.T) {
	const per = time.Minute
	for seed := range uint64(100) {
		rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		requests := 1 + rng.IntN(120)
		headroom := []float64{0, 0.01, 0.1}[rng.IntN(3)]
		p, err := NewPacers(headroom)
		if err != nil {
			t.Fatal(err)
		}
		q := Quota{Key: "identity", Requests: requests, Per: per}
		limit, window := q.Requests, p.Window(q)

		// Arrivals: a mix of bursts (many at one instant) and gaps, over a few windows.
		var arrivals []time.Duration
		at := time.Duration(0)
		for len(arrivals) < 3*requests+rng.IntN(200) {
			switch rng.IntN(4) {
			case 0: // a burst
				for range 1 + rng.IntN(2*requests) {
					arrivals = append(arrivals, at)
				}
			default:
				arrivals = append(arrivals, at)
			}
			at += time.Duration(rng.Int64N(int64(per / 4)))
		}

		// Each request tries at its arrival and again when told to wait, in time order, as
		// concurrent senders would.
		type pending struct{ at, arrived time.Duration }
		queue := make([]pending, len(arrivals))
		for i, a := range arrivals {
			queue[i] = pending{a, a}
		}
		var sends []time.Duration
		inWindow := func(now time.Duration) int {
			n := 0
			for _, s := range sends {
				if s > now-window && s <= now {
					n++
				}
			}
			return n
		}
		t0 := time.Unix(0, 0)
		for len(queue) > 0 {
			slices.SortStableFunc(queue, func(a, b pending) int { return int(a.at - b.at) })
			r := queue[0]
			queue = queue[1:]
			wait := p.tryReserve([]Quota{q}, t0.Add(r.at))
			if wait > 0 {
				// Waiting is only allowed when the window is full.
				if n := inWindow(r.at); n < limit {
					t.Fatalf("seed %d: request at %s told to wait %s with %d of %d sends in its window", seed, r.at, wait, n, limit)
				}
				queue = append(queue, pending{r.at + wait, r.arrived})
				continue
			}
			sends = append(sends, r.at)
		}
		slices.Sort(sends)
		for i := range sends {
			// The bound: never more than the quota in any window of the quota's length,
			// with the headroom to spare.
			if i+limit < len(sends) && sends[i+limit]-sends[i] < window {
				t.Fatalf("seed %d: %d sends within %s (from %s to %s), limit %d per %s",
					seed, limit+1, sends[i+limit]-sends[i], sends[i], sends[i+limit], limit, window)
			}
		}
		if len(sends) != len(arrivals) {
			t.Fatalf("seed %d: %d sends for %d requests", seed, len(sends), len(arrivals))
		}
	}
}

func TestPacerBurstGoesOutAtOnce(t *testing.T) {
	p, _ := NewPacers(0.01)
	q := Quota{Key: "id", Requests: 100, Per: time.Minute}
	now := time.Unix(1000, 0)
	for i := range 100 {
		if w := p.tryReserve([]Quota{q}, now); w != 0 {
			t.Fatalf("request %d of a burst waits %s, want 0 (the window has room for 100)", i, w)
		}
	}
	if w := p.tryReserve([]Quota{q}, now); w != 60600*time.Millisecond {
		t.Fatalf("the 101st request waits %s, want 60.6 s (a minute and 1 %% headroom)", w)
	}
}

func TestPacersShareAQuotaKey(t *testing.T) {
	p, _ := NewPacers(0)
	a := Quota{Key: "tenant/app", Requests: 2, Per: time.Minute}
	b := Quota{Key: "tenant/other", Requests: 2, Per: time.Minute}
	now := time.Unix(1000, 0)
	p.tryReserve([]Quota{a}, now)
	p.tryReserve([]Quota{a}, now)
	if w := p.tryReserve([]Quota{a}, now); w == 0 {
		t.Fatal("a third request of one key went out within the window")
	}
	if w := p.tryReserve([]Quota{b}, now); w != 0 {
		t.Fatalf("another key waits %s", w)
	}
	// A request needs room in every quota it counts against.
	if w := p.tryReserve([]Quota{b, a}, now); w == 0 {
		t.Fatal("a request counted against a full quota went out")
	}
	if w := p.tryReserve([]Quota{b}, now); w != 0 {
		t.Fatalf("the refused two-quota request was recorded anyway: wait %s", w)
	}
}

func TestPacerPauseHoldsEveryWaiter(t *testing.T) {
	p, _ := NewPacers(0)
	q := Quota{Key: "x", Requests: 1e6, Per: time.Minute}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := p.Reserve(ctx, []Quota{q}); err != nil {
		t.Fatalf("unpaused reserve: %v", err)
	}
	p.Pause([]Quota{q}, time.Now().Add(time.Hour))
	p.Pause([]Quota{q}, time.Now()) // never shortens
	if err := p.Reserve(ctx, []Quota{q}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("paused reserve: %v, want the context deadline", err)
	}
}

func TestNewPacersRefusesABadHeadroom(t *testing.T) {
	for _, h := range []float64{-0.1, 1, 2} {
		if _, err := NewPacers(h); err == nil {
			t.Errorf("NewPacers(%v) accepted", h)
		}
	}
}
