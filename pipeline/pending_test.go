package pipeline

import (
	"context"
	"errors"
	"testing"

	"github.com/mispsentinel/listener/misp"
)

// TestPendingNoticesAreAppliedAtStart: notices recorded at shutdown are applied by the next
// start: a published event is re-fetched by uuid and applied, a deleted one is removed, and a
// notice whose re-fetch fails stays recorded.
func TestPendingNoticesAreAppliedAtStart(t *testing.T) {
	st := openStore(t)
	gone := testEvent([]string{"198.51.100.7"}, nil)
	gone.UUID = "0d0d0d0d-0000-4000-8000-00000000000d"
	f := &fakeFetcher{events: map[string]*misp.Event{eventUUID: testEvent([]string{"203.0.113.5"}, nil)}}
	p, err := New(Config{RefetchBatch: 50, RefetchConcurrency: 4, Sinks: twoSinks()[:1], Refetch: true, Fetcher: f, Store: st, Pending: st})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.ApplyEvent(gone); err != nil {
		t.Fatal(err)
	}
	err = p.RecordPending([]Notice{
		{Kind: Published, EventUUID: gone.UUID}, {Kind: Published, EventUUID: eventUUID}, {Kind: Deleted, EventUUID: gone.UUID},
	})
	if err != nil {
		t.Fatal(err)
	}

	f.err = errors.New("MISP unreachable")
	if n, err := p.ApplyPending(context.Background()); err == nil || n != 1 {
		t.Fatalf("ApplyPending with MISP down = %d, %v; want the delete applied and the publish's error", n, err)
	}
	if left, _ := st.PendingNotices(); len(left) != 1 || left[0].EventUUID != eventUUID {
		t.Fatalf("pending after a failed re-fetch = %v; want the published notice kept", left)
	}
	f.err = nil
	if n, err := p.ApplyPending(context.Background()); err != nil || n != 1 {
		t.Fatalf("ApplyPending = %d, %v; want 1 applied", n, err)
	}
	if left, _ := st.PendingNotices(); len(left) != 0 {
		t.Fatalf("pending after ApplyPending = %v; want none", left)
	}
	var events []string
	if err := st.Events("all", func(ev string) error { events = append(events, ev); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0] != eventUUID {
		t.Errorf("events with live objects = %v; want only %s (the re-fetched one; the deleted one revoked)", events, eventUUID)
	}
}
