package store

import (
	"testing"
	"time"

	"github.com/mispsentinel/listener/stix"
)

// TestIndicatorLookup follows one object through the states `listener trace` shows: queued,
// accepted, dead letter with its message, revocation queued, revoked and, after it comes
// back, the next generation found by its own id; and an unknown id.
func TestIndicatorLookup(t *testing.T) {
	s := openTest(t, Options{})
	const sink, ev = "s", "event-1"
	id := indicatorID(1)
	vu := t0.Add(30 * 24 * time.Hour)
	look := func(what, id string) Indicator {
		t.Helper()
		ind, found, err := s.Indicator(sink, id)
		if err != nil || !found {
			t.Fatalf("%s: lookup %s = %v, found %v", what, id, err, found)
		}
		return ind
	}
	end := func(o func(b *Batch) Outcome, at time.Time) {
		t.Helper()
		b, err := s.Begin(sink, 10)
		if err != nil || len(b.Items) != 1 {
			t.Fatalf("begin = %v, %d items", err, len(b.Items))
		}
		if err := s.End(b, o(b), at); err != nil {
			t.Fatal(err)
		}
	}
	if _, found, err := s.Indicator(sink, id); found || err != nil {
		t.Fatalf("lookup before anything = %v %v", found, err)
	}
	if _, err := s.Apply(sink, ev, []stix.Object{indicator(id, "v1", vu)}, t0); err != nil {
		t.Fatal(err)
	}
	ind := look("queued", id)
	if !ind.Queued || !ind.QueuedAt.Equal(t0) || ind.Event != ev || ind.ID != id || !ind.ValidUntil.Equal(vu) || ind.Accepted || ind.Revoked {
		t.Errorf("queued = %+v", ind)
	}
	if ids, err := s.EventIndicators(sink, ev); err != nil || len(ids) != 1 || ids[0] != id {
		t.Errorf("event indicators = %v %v", ids, err)
	}
	end((*Batch).AcceptAll, t0.Add(time.Second))
	ind = look("accepted", id)
	if ind.Queued || !ind.Accepted || !ind.AcceptedModified.Equal(ind.Modified) {
		t.Errorf("accepted = %+v", ind)
	}

	// A changed version Sentinel rejects: a dead letter with the message.
	if _, err := s.Apply(sink, ev, []stix.Object{indicator(id, "v2", vu)}, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	end(func(b *Batch) Outcome { return b.AcceptAll().Reject(0, "bad pattern") }, t0.Add(2*time.Minute))
	ind = look("rejected", id)
	if !ind.Rejected || ind.Accepted || ind.DeadLetter == nil || ind.DeadLetter.Message != "bad pattern" || ind.AcceptedModified.Equal(ind.Modified) {
		t.Errorf("rejected = %+v (dead letter %+v)", ind, ind.DeadLetter)
	}

	// The event stops yielding it: a revocation queued, then accepted.
	if _, err := s.Apply(sink, ev, nil, t0.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if ind = look("revoking", id); !ind.Revoked || !ind.Queued {
		t.Errorf("revocation queued = %+v", ind)
	}
	end((*Batch).AcceptAll, t0.Add(4*time.Minute))
	if ind = look("revoked", id); !ind.Revoked || ind.Queued || !ind.Accepted {
		t.Errorf("revoked = %+v", ind)
	}

	// It comes back as generation 1; its new id finds it too.
	if _, err := s.Apply(sink, ev, []stix.Object{indicator(id, "v3", vu)}, t0.Add(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	ind = look("back", id)
	gen1 := stix.GenerationID(id, 1)
	if ind.Gen != 1 || ind.ID != gen1 || ind.Revoked || !ind.Queued {
		t.Errorf("back = %+v, want generation 1 queued", ind)
	}
	if byGen := look("by generation id", gen1); byGen.Base != id || byGen.Gen != 1 {
		t.Errorf("lookup by the generation id = %+v", byGen)
	}
	if _, found, err := s.Indicator(sink, indicatorID(2)); found || err != nil {
		t.Errorf("unknown id = %v %v", found, err)
	}
}
