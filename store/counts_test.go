package store

import (
	"testing"
	"time"

	"github.com/mispsentinel/listener/stix"
)

// StateCounts tells objects Sentinel accepted from those only queued, and both from revoked
// ones: a queued object that was never uploaded is not live in Sentinel.
func TestStateCountsSeparateQueuedAcceptedRevoked(t *testing.T) {
	s := openTest(t, Options{})
	now := time.Now()
	until := now.Add(30 * 24 * time.Hour)
	objs := []stix.Object{indicator(indicatorID(1), "a", until), indicator(indicatorID(2), "b", until)}
	if _, err := s.Apply("soc", "event-1", objs, now); err != nil {
		t.Fatal(err)
	}
	if c, err := s.StateCounts("soc"); err != nil || c != (StateCounts{Queued: 2}) {
		t.Fatalf("before any upload: %+v %v, want 2 queued", c, err)
	}
	drain(t, s, "soc", now)
	if _, err := s.Apply("soc", "event-2", []stix.Object{indicator(indicatorID(3), "c", until)}, now); err != nil {
		t.Fatal(err)
	}
	if c, err := s.StateCounts("soc"); err != nil || c != (StateCounts{Accepted: 2, Queued: 1}) {
		t.Fatalf("after an upload and a new event: %+v %v, want 2 accepted and 1 queued", c, err)
	}
	if _, err := s.RemoveEvent("soc", "event-1", now); err != nil {
		t.Fatal(err)
	}
	if c, err := s.StateCounts("soc"); err != nil || c != (StateCounts{Revoked: 2, Queued: 1}) {
		t.Fatalf("after revoking event-1: %+v %v, want 2 revoked and 1 queued", c, err)
	}
	if c, err := s.StateCounts("other"); err != nil || c != (StateCounts{}) {
		t.Fatalf("another sink: %+v %v, want nothing", c, err)
	}
}
