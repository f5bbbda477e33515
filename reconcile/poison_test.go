package reconcile

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestPoisonedEventInEveryPage is issue 19 row 3 at the reconciler: one undecodable event
// (first_seen "not-a-date") failed its page and the whole run, retried every 30 s for ever
// and never reaching the gone check. With a poisoned event in every page, a full run now
// finishes: every good event is applied, a deleted event is still revoked, the poisoned ones
// are counted and never revoked, and each is tried again alone by the next run, applied as
// soon as it decodes.
func TestPoisonedEventInEveryPage(t *testing.T) {
	g := newRig(Config{PageSize: 10})
	reg := prometheus.NewRegistry()
	g.r.metrics = NewMetrics(reg)
	var all []string
	for i := range 45 {
		id := fmt.Sprintf("e%02d", i)
		all = append(all, id)
		g.misp.add(id, true, t0, t0)
	}
	if _, err := g.r.Full(context.Background()); err != nil {
		t.Fatal(err)
	}
	poisoned := []string{"e00", "e10", "e20", "e30", "e40"}
	g.misp.poisoned = map[string]bool{}
	for _, id := range poisoned {
		g.misp.poisoned[id] = true
	}
	delete(g.misp.events, "e44") // deleted meanwhile: still revoked
	g.apply.reset()

	rep, err := g.r.Full(context.Background())
	if err != nil {
		t.Fatalf("full run with a poisoned event in every page: %v", err)
	}
	if len(rep.Errors) != 0 {
		t.Errorf("errors: %v", rep.Errors)
	}
	if rep.Events != 39 || rep.UndecodableEvents != 5 || rep.Pages != 5 {
		t.Errorf("events %d, undecodable %d, pages %d; want 39, 5, 5", rep.Events, rep.UndecodableEvents, rep.Pages)
	}
	if got := g.apply.removedList(); !slices.Equal(got, []string{"e44"}) {
		t.Errorf("removed %v, want only the deleted e44 (never an undecodable event)", got)
	}
	for _, id := range poisoned {
		if slices.Contains(g.apply.appliedList(), id) {
			t.Errorf("undecodable %s applied", id)
		}
	}
	if n := testutil.ToFloat64(g.r.metrics.undecodable); n != 5 {
		t.Errorf("listener_reconcile_undecodable_events_total = %v, want 5", n)
	}
	if mark, _ := g.state.Watermark(WatermarkFull); mark.IsZero() {
		t.Error("a run that skipped undecodable events did not count as successful")
	}

	// The next run tries each alone first; e10 decodes now and is applied.
	delete(g.misp.poisoned, "e10")
	g.misp.singleSearches = nil
	g.apply.reset()
	rep, err = g.r.Full(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(g.misp.singleSearches)
	if !slices.Equal(g.misp.singleSearches, poisoned) {
		t.Errorf("retried alone %v, want %v", g.misp.singleSearches, poisoned)
	}
	if !slices.Contains(g.apply.appliedList(), "e10") || rep.UndecodableEvents != 4 {
		t.Errorf("e10 applied %v, undecodable %d; want applied and 4", slices.Contains(g.apply.appliedList(), "e10"), rep.UndecodableEvents)
	}
	if len(g.apply.removedList()) != 0 {
		t.Errorf("removed %v", g.apply.removedList())
	}
	if _, still := g.r.undecodable["e10"]; still || len(g.r.undecodable) != 4 {
		t.Errorf("undecodable set %v", g.r.undecodable)
	}
}
