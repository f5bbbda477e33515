package store

import (
	"errors"
	"fmt"
	"testing"

	"github.com/mispsentinel/listener/stix"
)

// eventWithContext is an event's desired set: n indicators (ids from first), the attack
// patterns aps, and a relationship from every indicator to every pattern.
func eventWithContext(first, n int, aps ...string) []stix.Object {
	var out, rels []stix.Object
	for i := range n {
		out = append(out, indicator(indicatorID(first+i), "v1", t0.AddDate(1, 0, 0)))
	}
	for k, ap := range aps {
		o := contextObject(k, "p")
		o.ID = ap
		out = append(out, o)
		for i := range n {
			rels = append(rels, relationshipTo(indicatorID(first+i), ap))
		}
	}
	return append(out, rels...)
}

func apID(n int) string { return fmt.Sprintf("attack-pattern--%08d-0000-4000-8000-00000000a0a0", n) }

func references(t *testing.T, s *Store, id string) int64 {
	t.Helper()
	n, err := s.References("ws", id)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSharedAttackPatternLifecycle: two events sharing a technique give one attack pattern
// and a relationship each; deleting one revokes its indicator and relationship only;
// deleting the other revokes the rest, the attack pattern last.
func TestSharedAttackPatternLifecycle(t *testing.T) {
	s := openTest(t, Options{})
	ap := apID(1)
	if _, err := s.Apply("ws", "ev-1", eventWithContext(1, 1, ap), t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply("ws", "ev-2", eventWithContext(2, 1, ap), t0); err != nil {
		t.Fatal(err)
	}
	ups := drain(t, s, "ws", t0)
	count := map[string]int{}
	for _, u := range ups {
		count[u.ID]++
	}
	if len(ups) != 5 || count[ap] != 1 {
		t.Fatalf("uploads %+v: want two indicators, one attack pattern, two relationships", ups)
	}
	if n := references(t, s, ap); n != 2 {
		t.Fatalf("%s has %d references, want 2", ap, n)
	}
	// A re-publication of an event changes nothing.
	if st, err := s.Apply("ws", "ev-1", eventWithContext(1, 1, ap), t0.Add(1e9)); err != nil || st.Enqueued() != 0 {
		t.Fatalf("re-publication queued %+v (%v)", st, err)
	}

	st, err := s.RemoveEvent("ws", "ev-1", t0.Add(2e9))
	if err != nil {
		t.Fatal(err)
	}
	ups = drain(t, s, "ws", t0.Add(2e9))
	if st.Revoked != 2 || len(ups) != 2 {
		t.Fatalf("removing ev-1: %+v, uploads %+v; want its indicator and relationship revoked", st, ups)
	}
	for _, u := range ups {
		if !u.Revoked || u.ID == ap {
			t.Errorf("removing ev-1 uploaded %+v", u)
		}
	}
	if n := references(t, s, ap); n != 1 {
		t.Fatalf("after removing ev-1 %s has %d references, want 1", ap, n)
	}

	st, err = s.RemoveEvent("ws", "ev-2", t0.Add(3e9))
	if err != nil {
		t.Fatal(err)
	}
	ups = drain(t, s, "ws", t0.Add(3e9))
	if st.Revoked != 3 || len(ups) != 3 || ups[2].ID != ap || !ups[2].Revoked {
		t.Fatalf("removing ev-2: %+v, uploads %+v; want its indicator, relationship and then the attack pattern revoked", st, ups)
	}
	if n := references(t, s, ap); n != 0 {
		t.Fatalf("after removing both %s has %d references", ap, n)
	}
	if stats, _ := s.Stats("ws"); stats.Live != 0 {
		t.Errorf("%d objects still live", stats.Live)
	}

	// The technique comes back: a new generation, and the relationship names it.
	if _, err := s.Apply("ws", "ev-3", eventWithContext(3, 1, ap), t0.Add(4e9)); err != nil {
		t.Fatal(err)
	}
	b, err := s.Begin("ws", 10)
	if err != nil {
		t.Fatal(err)
	}
	gen1 := stix.GenerationID(ap, 1)
	var rel Item
	for _, it := range b.Items {
		if stix.IsRelationship(it.ID) {
			rel = it
		}
	}
	if _, target, err := stix.RelationshipRefs(rel.Object); err != nil || target != gen1 {
		t.Fatalf("relationship after the pattern came back names %q (%v), want %s", target, err, gen1)
	}
	if err := s.End(b, b.AcceptAll(), t0.Add(4e9)); err != nil {
		t.Fatal(err)
	}
}

// TestRelationshipWaitsForItsObjects: a relationship is not handed out before the objects it
// names were accepted, unless they come earlier in the same batch.
func TestRelationshipWaitsForItsObjects(t *testing.T) {
	s := openTest(t, Options{})
	ap := apID(1)
	if _, err := s.Apply("ws", "ev-1", eventWithContext(1, 1, ap), t0); err != nil {
		t.Fatal(err)
	}
	first, err := s.Begin("ws", 1) // the indicator only
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.Begin("ws", 10) // the attack pattern; the relationship must wait
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Items) != 1 || len(second.Items) != 1 || second.Items[0].ID != ap {
		t.Fatalf("batches %v and %v: want the indicator, then the attack pattern alone", ids(first), ids(second))
	}
	if first.Held != 0 || second.Held != 1 {
		t.Fatalf("held %d and %d: want the relationship counted as held once, by the second Begin", first.Held, second.Held)
	}
	if err := s.End(second, second.AcceptAll(), t0); err != nil {
		t.Fatal(err)
	}
	if third, err := s.Begin("ws", 10); err != nil || len(third.Items) != 0 || third.Held != 0 {
		t.Fatalf("relationship handed out (%v, %v) before its indicator was accepted, or its hold counted twice (%d)", ids(third), err, third.Held)
	}
	if err := s.End(first, first.AcceptAll(), t0); err != nil {
		t.Fatal(err)
	}
	third, err := s.Begin("ws", 10)
	if err != nil || len(third.Items) != 1 || !stix.IsRelationship(third.Items[0].ID) {
		t.Fatalf("after both were accepted: %v, %v", ids(third), err)
	}
	if err := s.End(third, third.AcceptAll(), t0); err != nil {
		t.Fatal(err)
	}
}

func ids(b *Batch) []string {
	if b == nil {
		return nil
	}
	var out []string
	for _, it := range b.Items {
		out = append(out, it.ID)
	}
	return out
}

// TestReferenceCountsSurviveACrashBetweenChunks: a large event whose apply and removal each
// die after the fifth chunk (in the middle of the relationships) leaves exact counts once applied (or removed) again.
func TestReferenceCountsSurviveACrashBetweenChunks(t *testing.T) {
	s := openTest(t, Options{})
	ap, other := apID(1), apID(2)
	if _, err := s.Apply("ws", "small", eventWithContext(90000, 1, ap), t0); err != nil {
		t.Fatal(err)
	}
	desired := eventWithContext(1, 2500, ap, other)
	crash := errors.New("simulated crash")
	afterChunkCommit = func(chunk int) error {
		if chunk == 5 {
			return crash
		}
		return nil
	}
	_, err := s.Apply("ws", "big", desired, t0)
	afterChunkCommit = nil
	if !errors.Is(err, crash) {
		t.Fatalf("apply: %v, want the simulated crash", err)
	}
	if n := references(t, s, ap); n <= 1 || n >= 2501 {
		t.Fatalf("after the crash %s has %d references: want a partial count", ap, n)
	}
	if _, err := s.Apply("ws", "big", desired, t0); err != nil {
		t.Fatal(err)
	}
	if a, o := references(t, s, ap), references(t, s, other); a != 2501 || o != 2500 {
		t.Fatalf("after completing: %d and %d references, want 2501 and 2500", a, o)
	}
	drain(t, s, "ws", t0)

	afterChunkCommit = func(chunk int) error {
		if chunk == 5 {
			return crash
		}
		return nil
	}
	_, err = s.RemoveEvent("ws", "big", t0.Add(1e9))
	afterChunkCommit = nil
	if !errors.Is(err, crash) {
		t.Fatalf("remove: %v, want the simulated crash", err)
	}
	if _, err := s.RemoveEvent("ws", "big", t0.Add(2e9)); err != nil {
		t.Fatal(err)
	}
	if a, o := references(t, s, ap), references(t, s, other); a != 1 || o != 0 {
		t.Fatalf("after removing: %d and %d references, want 1 and 0", a, o)
	}
	revoked := map[string]bool{}
	for _, u := range drain(t, s, "ws", t0.Add(2e9)) {
		if u.Revoked {
			revoked[u.ID] = true
		}
	}
	if revoked[ap] || !revoked[other] || len(revoked) != 2500*3+1 {
		t.Fatalf("removal revoked %d objects (pattern still referenced: %v, unreferenced: %v); want 7501 with %s and without %s",
			len(revoked), revoked[ap], revoked[other], other, ap)
	}
}
