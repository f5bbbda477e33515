package reconcile

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mispsentinel/listener/pipeline"
)

// searchKinds counts the rig's searches by what they filter on.
func (g *rig) searchKinds() (full, incremental int) {
	g.misp.mu.Lock()
	defer g.misp.mu.Unlock()
	for _, s := range g.misp.searches {
		if s["metadata"] == true {
			incremental++ // a listing run
		} else if _, ok := s["uuid"]; !ok {
			full++
		}
	}
	return full, incremental
}

func (g *rig) searchList() []map[string]any {
	g.misp.mu.Lock()
	defer g.misp.mu.Unlock()
	return append([]map[string]any(nil), g.misp.searches...)
}

// runUntil runs r.Run until cond holds (a liveness bound, not a speed assertion), then stops
// it and returns Run's error.
func runUntil(t *testing.T, g *rig, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.r.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("%s: not reached; searches %v", what, g.searchList())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}

func TestRunStartsWithACatchUpAndFollowsIntervals(t *testing.T) {
	g := newRig(Config{FullInterval: 20 * time.Millisecond, IncrementalInterval: 15 * time.Millisecond})
	g.misp.add("e1", true, t0, t0)
	runUntil(t, g, "two scheduled full and two incremental runs", func() bool {
		full, incr := g.searchKinds()
		return full >= 3 && incr >= 2
	})
	// The very first run had no watermark, so it was a full run.
	if first := g.searchList()[0]; len(first) != 0 {
		t.Errorf("start-up run searched %v, want the unwindowed full search", first)
	}
}

func TestRunStartUpIsAListingRun(t *testing.T) {
	g := newRig(Config{})
	if _, err := g.r.Full(context.Background()); err != nil {
		t.Fatal(err)
	}
	g.misp.searches = nil
	runUntil(t, g, "the start-up run", func() bool { return len(g.searchList()) >= 1 })
	if full, incr := g.searchKinds(); full != 0 || incr != 1 {
		t.Errorf("start-up searches %v, want one metadata listing: it notices deletions while the daemon was down without fetching every event again", g.searchList())
	}
}

func TestCatchUpAfterADisconnectionIsAListingRun(t *testing.T) {
	g := newRig(Config{})
	if _, err := g.r.Full(context.Background()); err != nil {
		t.Fatal(err)
	}
	g.r.RequestCatchUp(context.Background(), t0.Add(-time.Hour), pipeline.GapReasonStart)
	g.r.RequestCatchUp(context.Background(), t0.Add(-time.Minute), "receive_error")
	if n := len(g.r.gaps); n != 1 {
		t.Fatalf("%d pending catch-ups, want them merged into one", n)
	}
	g.misp.searches = nil
	// Start-up, then the merged catch-up: both listings.
	runUntil(t, g, "start-up and catch-up", func() bool { return len(g.searchList()) >= 2 })
	if full, incr := g.searchKinds(); full != 0 || incr != 2 {
		t.Errorf("searches %v, want two listings", g.searchList())
	}
}

func TestRunFollowsTheCronScheduleWithTheInjectedClock(t *testing.T) {
	g := newRig(Config{FullSchedule: "0 */6 * * *", FullInterval: time.Hour})
	// The injected clock stands 50 ms before 06:00: the schedule's next run is 50 ms away in
	// real time (and the interval, an hour, is ignored).
	g.clock.t = time.Date(2026, 3, 1, 5, 59, 59, 950_000_000, time.UTC)
	runUntil(t, g, "a scheduled full run after the start-up run", func() bool {
		full, _ := g.searchKinds()
		return full >= 2
	})
}

func TestRunRejectsABadSchedule(t *testing.T) {
	g := newRig(Config{FullSchedule: "0 25 * * *"})
	err := g.r.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "schedule") {
		t.Fatalf("Run with an invalid schedule: %v", err)
	}
	if len(g.searchList()) != 0 {
		t.Error("Run searched before rejecting its schedule")
	}
}

func TestScheduleTimerStopsWhenTheScheduleEnds(t *testing.T) {
	never := scheduleFunc(func(time.Time) time.Time { return time.Time{} })
	g := newRig(Config{})
	st := newScheduleTimer(never, g.clock.Now, g.r.log)
	defer st.stop()
	if st.C() != nil {
		t.Error("a schedule without a next time armed a timer")
	}
}

type scheduleFunc func(time.Time) time.Time

func (f scheduleFunc) Next(t time.Time) time.Time { return f(t) }

// TestFailedCatchUpIsRetried: a start-up run whose search fails (MISP down while ZeroMQ
// reconnected, say) is tried again rather than dropped.
func TestFailedCatchUpIsRetried(t *testing.T) {
	g := newRig(Config{CatchUpRetry: 10 * time.Millisecond})
	g.misp.add("e1", true, t0, t0)
	g.misp.add("e2", true, t0, t0)
	g.misp.mu.Lock()
	g.misp.failAfterPages = 1
	g.misp.mu.Unlock()
	g.r.cfg.PageSize = 1
	runUntil(t, g, "a retried start-up run", func() bool {
		if len(g.searchList()) == 1 {
			g.misp.mu.Lock()
			g.misp.failAfterPages = 0 // MISP is back
			g.misp.mu.Unlock()
		}
		return len(g.searchList()) >= 2
	})
	if full, _ := g.searchKinds(); full < 2 {
		t.Errorf("searches %v, want the failed full run tried again as a full run", g.searchList())
	}
}
