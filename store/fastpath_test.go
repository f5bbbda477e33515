package store

import (
	"testing"
	"time"

	"github.com/mispsentinel/listener/stix"
)

// The unchanged-event fast path must decide exactly what the full diff decides. These cases
// are the ones where a stored digest still matches but the full diff would act.
func TestUnchangedEventFastPathMatchesTheFullDiff(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	week := 7 * 24 * time.Hour
	s := openTest(t, Options{RefreshWindow: week})
	apply := func(event string, desired ...stix.Object) DiffStats {
		t.Helper()
		st, err := s.Apply("a", event, desired, now)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	vu := now.Add(50 * 24 * time.Hour)
	x1, x2 := indicator(indicatorID(1), "h1", vu), indicator(indicatorID(2), "h2", vu)
	org := identity("identity--00000000-0000-4000-8000-000000000001", "org")

	if st := apply("e1", x1, x2, org); st.New != 3 {
		t.Fatalf("first apply: %+v", st)
	}
	drain(t, s, "a", now)
	// Twice unchanged: the first records the digest, the second takes the fast path.
	for i := range 2 {
		if st := apply("e1", x1, x2, org); st != (DiffStats{Unchanged: 3}) {
			t.Fatalf("unchanged apply %d: %+v", i, st)
		}
	}

	// Another event takes x2 over; it then leaves e2. e1 still yields x2, so e1's next apply
	// must reclaim it instead of trusting its digest, and x2 must not be revoked later.
	if st := apply("e2", x2); st != (DiffStats{Unchanged: 1}) {
		t.Fatalf("e2 takes x2: %+v", st)
	}
	if st := apply("e1", x1, x2, org); st != (DiffStats{Unchanged: 3}) {
		t.Fatalf("e1 after the takeover: %+v", st)
	}
	if st := apply("e2"); st.Revoked != 0 {
		t.Fatalf("e2 revoked %d objects e1 still yields", st.Revoked)
	}
	if got := peek(t, s, "a"); len(got) != 0 {
		t.Fatalf("queued %v", got)
	}

	// The shared identity changed through another event: e1's digest still matches, but
	// the identity is no longer what e1 yields, so the full diff (re-upload) must run.
	if st := apply("e3", indicator(indicatorID(3), "h3", vu), identity(org.ID, "org-renamed")); st.New != 1 || st.Changed != 1 {
		t.Fatalf("e3: %+v", st)
	}
	drain(t, s, "a", now)
	if st := apply("e1", x1, x2, org); st.Changed != 1 || st.Unchanged != 2 {
		t.Fatalf("e1 after the identity changed elsewhere: %+v", st)
	}
	drain(t, s, "a", now)
	apply("e1", x1, x2, org) // records the digest again

	// Inside the refresh window the fast path must step aside.
	now = vu.Add(-week + time.Hour)
	later := now.Add(50 * 24 * time.Hour)
	if st := apply("e1", indicator(x1.ID, "h1", later), indicator(x2.ID, "h2", later), org); st.Refreshed != 2 || st.Unchanged != 1 {
		t.Fatalf("apply in the refresh window: %+v", st)
	}
	drain(t, s, "a", now)
	if st := apply("e1", indicator(x1.ID, "h1", later), indicator(x2.ID, "h2", later), org); st != (DiffStats{Unchanged: 3}) {
		t.Fatalf("apply after the refresh: %+v", st)
	}
	// A removal ignores the digest.
	if st := apply("e1"); st.Revoked != 2 {
		t.Fatalf("remove: %+v", st)
	}
	if st := apply("e1", x1, x2, org); st.New != 2 {
		t.Fatalf("re-add after removal: %+v", st)
	}
}
