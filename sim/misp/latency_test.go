package misp_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	simmisp "github.com/mispsentinel/listener/sim/misp"
)

// TestSearchLatencyIsAppliedPerEventAndAttribute: each restSearch answer waits Fixed + PerEvent
// × events + PerAttribute × attributes returned (none with metadata), through the injected
// sleep, so no wall-clock time is measured.
func TestSearchLatencyIsAppliedPerEventAndAttribute(t *testing.T) {
	var mu sync.Mutex
	var slept []time.Duration
	clock := &fixedClock{t: time.Unix(5000, 0)}
	sim := simmisp.New(simmisp.Options{
		Now:           clock.now,
		SearchLatency: simmisp.RealisticSearchLatency(),
		Sleep: func(_ context.Context, d time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			slept = append(slept, d)
		},
	})
	var events []json.RawMessage
	if err := json.Unmarshal([]byte(filterFixture), &events); err != nil {
		t.Fatal(err)
	}
	for _, ev := range events {
		if err := sim.Put(ev); err != nil {
			t.Fatal(err)
		}
	}
	sim.Start()
	t.Cleanup(sim.Close)

	if r := post(t, sim, simmisp.DefaultKey, `{"uuid":["`+evB+`","`+evC+`"]}`); len(r.events) != 2 {
		t.Fatalf("uuid search returned %d events, want 2", len(r.events))
	}
	if r := post(t, sim, simmisp.DefaultKey, `{"metadata":true,"timestamp":"1"}`); len(r.events) != 3 {
		t.Fatalf("metadata search returned %d events, want 3", len(r.events))
	}
	want := []time.Duration{
		150*time.Millisecond + 2*2*time.Millisecond + 2*50*time.Microsecond, // B's url and C's object sha256
		150*time.Millisecond + 3*2*time.Millisecond,                         // metadata: no attributes
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(slept, want) {
		t.Fatalf("delays = %v, want %v", slept, want)
	}
}

// TestNoSearchLatencyByDefault: without SearchLatency the simulator answers at once, so the
// tests keep their speed.
func TestNoSearchLatencyByDefault(t *testing.T) {
	called := false
	sim := simmisp.New(simmisp.Options{Sleep: func(context.Context, time.Duration) { called = true }})
	sim.Start()
	t.Cleanup(sim.Close)
	post(t, sim, simmisp.DefaultKey, `{"uuid":"`+evA+`"}`)
	if called {
		t.Fatal("the simulator slept without a SearchLatency")
	}
}
