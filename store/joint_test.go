package store

import (
	"errors"
	"fmt"
	"testing"

	"github.com/mispsentinel/listener/stix"
)

func taID(n int) string { return fmt.Sprintf("threat-actor--%08d-0000-4000-8000-00000000a0a0", n) }

// eventWithActor is eventWithContext with the threat actor ta, a relationship from every
// indicator to it and, when uses is set, the joint relationship "ta uses each pattern".
func eventWithActor(first, n int, ta string, uses bool, aps ...string) []stix.Object {
	desired := eventWithContext(first, n, aps...)
	o := contextObject(3, "a")
	o.ID = ta
	desired = append(desired, o)
	for i := range n {
		desired = append(desired, relationshipTo(indicatorID(first+i), ta))
	}
	if uses {
		for _, ap := range aps {
			desired = append(desired, jointRelationship(ta, "uses", ap))
		}
	}
	return desired
}

// TestJointRelationshipLifecycle: a relationship between two context objects that two events
// yield is uploaded once, stays live while one of them yields it, and is revoked (with the
// threat actor nothing else references) when the last one stops; the attack pattern, still
// indicated, stays.
func TestJointRelationshipLifecycle(t *testing.T) {
	s := openTest(t, Options{})
	ap, ta := apID(1), taID(1)
	uses := stix.RelationshipID(ta, "uses", ap)
	for i, ev := range []string{"ev-1", "ev-2"} {
		if _, err := s.Apply("ws", ev, eventWithActor(i+1, 1, ta, true, ap), t0); err != nil {
			t.Fatal(err)
		}
	}
	count := map[string]int{}
	for _, u := range drain(t, s, "ws", t0) {
		count[u.ID]++
	}
	if count[uses] != 1 || count[ta] != 1 || count[ap] != 1 {
		t.Fatalf("uploads %v: want the relationship, the actor and the pattern once each", count)
	}
	if u, a, p := references(t, s, uses), references(t, s, ta), references(t, s, ap); u != 2 || a != 3 || p != 3 {
		t.Fatalf("references: uses %d (events desiring it), actor %d, pattern %d; want 2, 3, 3", u, a, p)
	}
	if st, err := s.Apply("ws", "ev-1", eventWithActor(1, 1, ta, true, ap), t0.Add(1e9)); err != nil || st.Enqueued() != 0 {
		t.Fatalf("re-publication queued %+v (%v)", st, err)
	}

	st, err := s.RemoveEvent("ws", "ev-1", t0.Add(2e9))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range drain(t, s, "ws", t0.Add(2e9)) {
		if u.ID == uses || u.ID == ta || u.ID == ap {
			t.Errorf("removing ev-1 uploaded %+v: ev-2 still yields it", u)
		}
	}
	if st.Revoked != 3 || references(t, s, uses) != 1 {
		t.Fatalf("removing ev-1: %+v, uses has %d owners; want its indicator and two relationships revoked, one owner left", st, references(t, s, uses))
	}

	// ev-2 drops the actor: the relationship and the actor go, the pattern stays.
	st, err = s.Apply("ws", "ev-2", eventWithContext(2, 1, ap), t0.Add(3e9))
	if err != nil {
		t.Fatal(err)
	}
	revoked := map[string]bool{}
	for _, u := range drain(t, s, "ws", t0.Add(3e9)) {
		if !u.Revoked {
			t.Errorf("dropping the actor uploaded %+v", u)
		}
		revoked[u.ID] = true
	}
	if st.Revoked != 3 || !revoked[uses] || !revoked[ta] || revoked[ap] {
		t.Fatalf("dropping the actor: %+v, revoked %v; want the indicates to the actor, uses and the actor", st, revoked)
	}
	if u, a, p := references(t, s, uses), references(t, s, ta), references(t, s, ap); u != 0 || a != 0 || p != 1 {
		t.Fatalf("references: uses %d, actor %d, pattern %d; want 0, 0, 1", u, a, p)
	}
	// It comes back under a new generation when an event yields it again.
	if _, err := s.Apply("ws", "ev-2", eventWithActor(2, 1, ta, true, ap), t0.Add(4e9)); err != nil {
		t.Fatal(err)
	}
	back := map[string]bool{}
	for _, u := range drain(t, s, "ws", t0.Add(4e9)) {
		back[u.ID] = !u.Revoked
	}
	if !back[stix.GenerationID(uses, 1)] || !back[stix.GenerationID(ta, 1)] || references(t, s, uses) != 1 {
		t.Fatalf("re-added: uploads %v; want generation 1 of the relationship and the actor", back)
	}
}

// TestJointRelationshipSurvivesACrashBetweenChunks: an apply and a removal that die after
// the fifth chunk leave the owner count and the ends' counts exact once done again.
func TestJointRelationshipSurvivesACrashBetweenChunks(t *testing.T) {
	s := openTest(t, Options{})
	ap, ta := apID(1), taID(1)
	uses := stix.RelationshipID(ta, "uses", ap)
	if _, err := s.Apply("ws", "small", eventWithActor(90000, 1, ta, true, ap), t0); err != nil {
		t.Fatal(err)
	}
	desired := eventWithActor(1, 2500, ta, true, ap)
	crash := errors.New("simulated crash")
	for _, step := range []struct {
		name string
		do   func() error
	}{
		{"apply", func() error { _, err := s.Apply("ws", "big", desired, t0); return err }},
		{"remove", func() error { _, err := s.RemoveEvent("ws", "big", t0.Add(1e9)); return err }},
	} {
		afterChunkCommit = func(chunk int) error {
			if chunk == 5 {
				return crash
			}
			return nil
		}
		err := step.do()
		afterChunkCommit = nil
		if !errors.Is(err, crash) {
			t.Fatalf("%s: %v, want the simulated crash", step.name, err)
		}
		if err := step.do(); err != nil {
			t.Fatal(err)
		}
		want := [3]int64{2, 2502, 2502} // uses, actor, pattern after the apply
		if step.name == "remove" {
			want = [3]int64{1, 2, 2}
		}
		if got := [3]int64{references(t, s, uses), references(t, s, ta), references(t, s, ap)}; got != want {
			t.Fatalf("after the %s: references (uses, actor, pattern) %v, want %v", step.name, got, want)
		}
		drain(t, s, "ws", t0.Add(1e9))
	}
}
