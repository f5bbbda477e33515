package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/mispsentinel/listener/sentinel"
	"github.com/mispsentinel/listener/stix"
	"github.com/mispsentinel/listener/store"
)

var t0 = time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)

// fakeReader lists fixed held objects.
type fakeReader []sentinel.HeldObject

func (f fakeReader) Each(_ context.Context, _ sentinel.Query, fn func(sentinel.HeldObject) error) error {
	for _, h := range f {
		if err := fn(h); err != nil {
			return err
		}
	}
	return nil
}

func id(n int) string { return fmt.Sprintf("indicator--%08d-0000-4000-8000-000000000000", n) }

func object(n int, confidence int) stix.Object {
	body, _ := json.Marshal(map[string]any{
		"type": "indicator", "spec_version": "2.1", "id": id(n),
		"created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
		"valid_from": "2026-01-01T00:00:00.000Z", "valid_until": "2027-06-01T00:00:00.000Z",
		"pattern": fmt.Sprintf("[domain-name:value = 'host%d.example']", n), "pattern_type": "stix",
		"confidence": confidence,
	})
	return stix.Object{ID: id(n), Type: "indicator", Hash: fmt.Sprint(n, confidence),
		ValidUntil: time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC), Body: body}
}

// settle accepts everything queued.
func settle(t *testing.T, st *store.Store, now time.Time) {
	t.Helper()
	for {
		b, err := st.Begin("ws", 100)
		if err != nil {
			t.Fatal(err)
		}
		if b == nil || len(b.Items) == 0 {
			return
		}
		if err := st.End(b, b.AcceptAll(), now); err != nil {
			t.Fatal(err)
		}
	}
}

// held renders what the store sent for id as the STIX-object view would, edited.
func held(t *testing.T, st *store.Store, n int, source string, edit func(map[string]any)) sentinel.HeldObject {
	t.Helper()
	body, err := st.SentObject("ws", id(n))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(m)
	}
	data, _ := json.Marshal(m)
	_ = json.Unmarshal(data, &m) // numbers as float64
	mod, _ := time.Parse(time.RFC3339Nano, m["modified"].(string))
	vu, _ := time.Parse(time.RFC3339Nano, m["valid_until"].(string))
	revoked, _ := m["revoked"].(bool)
	return sentinel.HeldObject{SourceSystem: source, ID: m["id"].(string), Pattern: m["pattern"].(string),
		Observables: sentinel.PatternObservables(m["pattern"].(string)), Modified: mod, ValidUntil: vu,
		Revoked: revoked, Confidence: int(m["confidence"].(float64)), Data: data}
}

func TestCompareKinds(t *testing.T) {
	st, err := store.Open("", store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var objs []stix.Object
	for n := 1; n <= 6; n++ {
		objs = append(objs, object(n, 50))
	}
	if _, err := st.Apply("ws", "ev", objs, t0); err != nil {
		t.Fatal(err)
	}
	settle(t, st, t0)
	// Indicator 6 is revoked (the event drops it) and the revocation accepted.
	if _, err := st.Apply("ws", "ev", objs[:5], t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	settle(t, st, t0.Add(time.Minute))
	// Indicator 7 is new and still queued: not judged.
	if _, err := st.Apply("ws", "ev2", []stix.Object{object(7, 50)}, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}

	older := held(t, st, 3, "MISP", nil)
	older.Modified = older.Modified.Add(-time.Hour)
	rd := fakeReader{
		held(t, st, 1, "MISP", nil), // equal
		// 2 is missing
		older, // 3: older modified
		held(t, st, 4, "MISP", func(m map[string]any) { m["confidence"] = 90 }), // 4: other content
		held(t, st, 5, "MISP", func(m map[string]any) {
			m["extensions"] = map[string]any{"sentinel-ext": map[string]any{"x": 1}} // Sentinel's own: equal
		}),
		held(t, st, 6, "MISP", func(m map[string]any) { delete(m, "revoked") }), // 6: live, revoked here
		// Copies of 1 and 7 under misp2sentinel; one of them revoked there (not foreign).
		held(t, st, 1, "misp2sentinel", func(m map[string]any) { m["id"] = id(101); m["pattern"] = "[domain-name:value = 'HOST1.example']" }),
		held(t, st, 1, "misp2sentinel", func(m map[string]any) { m["id"] = id(102); m["revoked"] = true }),
		{SourceSystem: "misp2sentinel", ID: id(103), Pattern: "[domain-name:value = 'host7.example']",
			Observables: sentinel.PatternObservables("[domain-name:value = 'host7.example']")},
		// Ours but unknown to the store.
		{SourceSystem: "MISP", ID: id(200), Pattern: "[domain-name:value = 'x.example']"},
	}
	now := t0.Add(2 * time.Minute)
	rep, err := Compare(context.Background(), st, rd, Options{Sink: "ws", SourceSystem: "MISP", Examples: 10, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		KindMissing: {id(2)}, KindStale: {id(3), id(4)}, KindLiveRevoked: {id(6)}, KindForeign: {id(101), id(103)},
	}
	for k, ids := range want {
		if rep.Counts[k] != len(ids) {
			t.Errorf("%s: %d, want %d (%v)", k, rep.Counts[k], len(ids), rep.Examples[k])
			continue
		}
		for i, ex := range rep.Examples[k] {
			if ex.ID != ids[i] {
				t.Errorf("%s example %d: %s, want %s", k, i, ex.ID, ids[i])
			}
		}
	}
	if rep.Judged != 6 || rep.NotJudged != 1 || rep.Unknown != 1 || rep.Differences() != 6 {
		t.Errorf("report %s", rep.Summary())
	}

	// Repair queues 2, 3, 4 (upserts) and 6 (a revocation), nothing else.
	rep, err = Compare(context.Background(), st, rd, Options{Sink: "ws", SourceSystem: "MISP", Examples: 1, Repair: true, Now: now})
	if err != nil || rep.Requeued != 4 || len(rep.Examples[KindStale]) != 1 {
		t.Fatalf("repair: %v %v", rep, err)
	}
	b, err := st.Begin("ws", 100)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, it := range b.Items {
		got[fmt.Sprintf("%s %v", it.ID, it.Revoke)] = true
	}
	for _, w := range []string{id(2) + " false", id(3) + " false", id(4) + " false", id(6) + " true", id(7) + " false"} {
		if !got[w] {
			t.Errorf("outbox lacks %s: %v", w, got)
		}
	}
	if len(b.Items) != 5 {
		t.Errorf("outbox holds %d items, want 5", len(b.Items))
	}
}

func TestStalenessWithTheIndicatorsView(t *testing.T) {
	want, _ := json.Marshal(map[string]any{"pattern": "[ipv4-addr:value = '10.0.0.1']", "valid_until": "2027-01-01T00:00:00.000Z",
		"valid_from": "2026-01-01T00:00:00Z", "confidence": 50, "modified": "2026-05-01T00:00:00.000Z"})
	ind := store.Indicator{Modified: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)}
	h := sentinel.HeldObject{Pattern: "[ipv4-addr:value = '10.0.0.1']", Modified: ind.Modified, Confidence: 50,
		ValidFrom: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), ValidUntil: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}
	if d := staleness(want, ind, h); d != "" {
		t.Errorf("equal: %q", d)
	}
	h.ValidUntil = h.ValidUntil.Add(time.Hour)
	h.Confidence = 80
	if d := staleness(want, ind, h); d != "different confidence, valid_until" {
		t.Errorf("changed: %q", d)
	}
}

func TestComparableTimestampsAsInstants(t *testing.T) {
	a := comparable(map[string]any{"valid_from": "2026-01-01T00:00:00.000Z", "modified": "x", "name": "n"})
	b := comparable(map[string]any{"valid_from": "2026-01-01T00:00:00Z", "name": "n",
		"extensions": map[string]any{"sentinel-ext": map[string]any{}}})
	if d := diffFields(a, b); d != "" {
		t.Errorf("equal objects differ: %s", d)
	}
}
