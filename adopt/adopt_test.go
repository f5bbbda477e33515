package adopt

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/mispsentinel/listener/internal/stixtest"
	"github.com/mispsentinel/listener/misp"
	"github.com/mispsentinel/listener/sentinel"
	"github.com/mispsentinel/listener/stix"
)

const (
	evLive    = "5f3c1a2b-1111-4222-8333-444455556666"
	evDeleted = "5f3c1a2b-2222-4222-8333-444455556666"
)

func held(id, pattern, event string) sentinel.HeldObject {
	h := sentinel.HeldObject{SourceSystem: "MISP", ID: id, Pattern: pattern,
		Created: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), ValidFrom: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)}
	if event != "" {
		h.Description = "C2 - test event (42-" + event + ") by CIRCL on 2026-10-01"
	}
	return h
}

// TestClassify covers each verdict: every duplicate of an owned observable is superseded
// (whatever event it names), an attribute MISP no longer flags or a vanished event is gone,
// an attribute MISP still flags but the listener does not hold yet and an indicator without
// an event reference are unmatched, and the listener's own object under the same source
// system is left out.
func TestClassify(t *testing.T) {
	own := Own{
		SourceSystem: "MISP",
		IDs:          map[string]bool{"indicator--00000000-0000-4000-8000-000000000001": true},
		Observables:  map[string]string{"domain-name|evil.example": "indicator--00000000-0000-4000-8000-000000000001"},
	}
	hs := []sentinel.HeldObject{
		held("indicator--00000000-0000-4000-8000-000000000001", "[domain-name:value = 'evil.example']", evLive), // own
		held("indicator--aaaaaaaa-0000-4000-8000-000000000001", "[domain-name:value = 'EVIL.example']", evLive),
		held("indicator--aaaaaaaa-0000-4000-8000-000000000002", "[domain-name:value = 'evil.example']", ""),
		held("indicator--aaaaaaaa-0000-4000-8000-000000000003", "[ipv4-addr:value = '198.51.100.7']", evLive),
		held("indicator--aaaaaaaa-0000-4000-8000-000000000004", "[ipv4-addr:value = '198.51.100.8']", evLive),
		held("indicator--aaaaaaaa-0000-4000-8000-000000000005", "[url:value = 'http://x.example/a']", evDeleted),
		held("indicator--aaaaaaaa-0000-4000-8000-000000000006", "[url:value = 'http://x.example/b']", ""),
	}
	events := map[string]Verdict{
		evLive:    {Found: true, Flagged: map[string]bool{"ipv4-addr|198.51.100.8": true}},
		evDeleted: {Found: false},
	}
	p := Classify("main", "MISP", hs, own, events)
	got := map[Kind][]string{}
	for _, e := range p.Entries {
		got[e.Kind] = append(got[e.Kind], e.ID[len(e.ID)-1:])
	}
	want := map[Kind][]string{Superseded: {"1", "2"}, Gone: {"3", "5"}, Unmatched: {"4", "6"}}
	for _, k := range Kinds {
		if !slices.Equal(got[k], want[k]) {
			t.Errorf("%s = %v, want %v", k, got[k], want[k])
		}
	}
	if n := len(p.Revocations()); n != 4 {
		t.Errorf("revocations = %d, want 4", n)
	}
	if p.Entries[0].Owner != "indicator--00000000-0000-4000-8000-000000000001" {
		t.Errorf("owner = %q", p.Entries[0].Owner)
	}
}

func TestKeysAndEventRef(t *testing.T) {
	h := held("indicator--x", "[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '198.51.100.7' AND network-traffic:dst_port = '443']", "")
	if got := Keys(h); !slices.Equal(got, []string{"ipv4-addr|198.51.100.7"}) {
		t.Errorf("Keys(compound) = %q", got)
	}
	if got := PatternKeys("[file:hashes.'SHA-256' = 'ABCD']"); !slices.Equal(got, []string{"file:hashes.'sha-256'|abcd"}) {
		t.Errorf("PatternKeys(hash) = %q", got)
	}
	h.ExternalReferences = []sentinel.ExternalReference{{SourceName: "MISP", ExternalID: "5F3C1A2B-1111-4222-8333-444455556666"}}
	if got := EventRef(h); got != evLive {
		t.Errorf("EventRef(external reference) = %q", got)
	}
	if got := EventRef(held("indicator--y", "", evDeleted)); got != evDeleted {
		t.Errorf("EventRef(description) = %q", got)
	}
}

// TestRevocation builds the revoking object from a queryIndicators answer (no stored data)
// and from a stored object, keeping the id and source-system identity.
func TestRevocation(t *testing.T) {
	h := held("indicator--aaaaaaaa-0000-4000-8000-000000000003", "[ipv4-addr:value = '198.51.100.7']", evLive)
	h.ValidUntil = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	o, err := Revocation(h)
	if err != nil {
		t.Fatal(err)
	}
	var f map[string]any
	if err := json.Unmarshal(o.Body, &f); err != nil {
		t.Fatal(err)
	}
	if f["revoked"] != true || f["id"] != h.ID || f["pattern"] != h.Pattern || f["valid_until"] != "2027-01-01T00:00:00.000Z" || o.EventUUID != h.ID {
		t.Errorf("revocation = %s (event %s)", o.Body, o.EventUUID)
	}
	h.Data = json.RawMessage(`{"type":"indicator","spec_version":"2.1","id":"` + h.ID + `","created":"2026-11-01T00:00:00Z","modified":"2026-11-01T00:00:00Z","pattern":"[ipv4-addr:value = '198.51.100.7']","pattern_type":"stix","valid_from":"2026-10-01T00:00:00Z","name":"x","labels":["a"]}`)
	o, err = Revocation(h)
	if err != nil {
		t.Fatal(err)
	}
	f = nil
	_ = json.Unmarshal(o.Body, &f)
	if f["revoked"] != true || f["name"] != "x" {
		t.Errorf("revocation from stored data = %s", o.Body)
	}
}

type fakeWorkspace []sentinel.HeldObject

func (w fakeWorkspace) List(_ context.Context, q sentinel.Query) ([]sentinel.HeldObject, error) {
	var out []sentinel.HeldObject
	for _, h := range w {
		if slices.Contains(q.SourceSystems, h.SourceSystem) {
			out = append(out, h)
		}
	}
	return out, nil
}

type fakeMISP struct {
	events  map[string]*misp.Event
	lookups []string
}

func (m *fakeMISP) SearchEvent(_ context.Context, uuid string, _ map[string]any) (*misp.Event, bool, error) {
	m.lookups = append(m.lookups, uuid)
	ev, ok := m.events[uuid]
	return ev, ok, nil
}

// TestBuildLooksEachEventUpOnce converts the looked-up event with the sink's options: an
// attribute whose to_ids is off is gone, one still flagged is unmatched until the listener
// holds it.
func TestBuildLooksEachEventUpOnce(t *testing.T) {
	ev := &misp.Event{UUID: evLive, Info: "e", Attributes: []misp.Attribute{
		{UUID: "11111111-1111-4111-8111-111111111111", Type: "ip-dst", Value: "198.51.100.8", ToIDS: true},
		{UUID: "11111111-1111-4111-8111-111111111112", Type: "ip-dst", Value: "198.51.100.7", ToIDS: false},
	}}
	m := &fakeMISP{events: map[string]*misp.Event{evLive: ev}}
	ws := fakeWorkspace{
		held("indicator--aaaaaaaa-0000-4000-8000-000000000003", "[ipv4-addr:value = '198.51.100.7']", evLive),
		held("indicator--aaaaaaaa-0000-4000-8000-000000000004", "[ipv4-addr:value = '198.51.100.8']", evLive),
		held("indicator--aaaaaaaa-0000-4000-8000-000000000005", "[ipv4-addr:value = '198.51.100.8']", evLive),
	}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	p, err := Build(context.Background(), ws, m, Options{
		Sink: "main", SourceSystem: "MISP", Own: Own{SourceSystem: "MISP-listener"},
		Convert: func(ev *misp.Event) []stix.Object { return stix.Convert(ev, stixtest.Options(), now).Objects },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.lookups) != 1 {
		t.Errorf("MISP lookups = %v, want one", m.lookups)
	}
	if p.Count(Gone) != 1 || p.Count(Unmatched) != 2 || p.Count(Superseded) != 0 {
		t.Errorf("plan: %s", p.Summary())
	}
}
