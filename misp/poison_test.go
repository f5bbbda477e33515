package misp_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/mispsentinel/listener/misp"
	simmisp "github.com/mispsentinel/listener/sim/misp"
)

// poison makes the event undecodable: its first attribute's first_seen becomes "not-a-date"
// (issue 19 row 3), and MISP serves it verbatim.
func poison(t testing.TB, sim *simmisp.MISP, uuid string) {
	t.Helper()
	data, ok := sim.Get(uuid)
	if !ok {
		t.Fatalf("no event %s", uuid)
	}
	var doc map[string]map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	attrs, _ := doc["Event"]["Attribute"].([]any)
	if len(attrs) == 0 {
		t.Fatalf("event %s has no attribute to poison", uuid)
	}
	attrs[0].(map[string]any)["first_seen"] = "not-a-date"
	data, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Put(data); err != nil {
		t.Fatal(err)
	}
}

// TestPoisonedEventInEveryPage is issue 19 row 3: one attribute with first_seen "not-a-date"
// failed its whole restSearch page, and the run with it, for ever. Now every page holds one
// such event and the search finishes: the good events are all delivered, each bad one is
// reported once with its uuid and the failing field.
func TestPoisonedEventInEveryPage(t *testing.T) {
	sim := simmisp.New(simmisp.Options{})
	uuids := sim.Generate(45, 3, 7)
	sim.Start()
	t.Cleanup(sim.Close)
	poisoned := map[string]bool{}
	for i := 0; i < len(uuids); i += 10 { // events are paged by id: one per page of 10
		poison(t, sim, uuids[i])
		poisoned[uuids[i]] = true
	}
	c := newClient(t, misp.ClientConfig{URL: sim.URL(), MaxPageAttempts: 2})
	got := map[string]bool{}
	var bad []misp.UndecodableEvent
	stats, err := c.StreamEvents(context.Background(), nil, 10, misp.Visitor{
		Event:       func(ev *misp.Event) error { got[ev.UUID] = true; return nil },
		Undecodable: func(u misp.UndecodableEvent) { bad = append(bad, u) },
	})
	if err != nil {
		t.Fatalf("search with a poisoned event in every page: %v", err)
	}
	if len(got) != len(uuids)-len(poisoned) || stats.Events != len(got) {
		t.Errorf("%d good events delivered (stats %d), want %d", len(got), stats.Events, len(uuids)-len(poisoned))
	}
	if len(bad) != len(poisoned) || stats.Undecodable != len(poisoned) {
		t.Fatalf("%d undecodable events reported (stats %d), want %d", len(bad), stats.Undecodable, len(poisoned))
	}
	for _, u := range bad {
		if !poisoned[u.UUID] || got[u.UUID] {
			t.Errorf("undecodable event %q is not one of the poisoned ones", u.UUID)
		}
		if !strings.Contains(u.Error(), "first_seen") || !strings.Contains(u.Error(), u.UUID) {
			t.Errorf("report %q does not name the event and the failing field", u.Error())
		}
	}
	if stats.Retries != 0 {
		t.Errorf("%d retries: an undecodable event is not a broken page", stats.Retries)
	}

	// The pager's SearchEvents skips and counts them too.
	_, pstats, err := collect(t, c, nil, 10)
	if err != nil || pstats.Undecodable != len(poisoned) || pstats.Events != len(got) {
		t.Errorf("SearchEvents: %+v, %v", pstats, err)
	}

	// One at a time, the event is an error naming the field; a good one still decodes.
	var u misp.UndecodableEvent
	for id := range poisoned {
		_, found, err := c.SearchEvent(context.Background(), id, nil)
		if found || !errors.As(err, &u) || u.UUID != id || !strings.Contains(err.Error(), "first_seen") {
			t.Errorf("SearchEvent of poisoned %s: found %v, err %v", id, found, err)
		}
	}
	if _, found, err := c.SearchEvent(context.Background(), uuids[1], nil); !found || err != nil {
		t.Errorf("SearchEvent of a good event: found %v, err %v", found, err)
	}
}

// TestSearchEventsPageOverLimitRetriedSmaller is issue 13: a response over the size limit is
// not an error for the run when a smaller page fits; the search halves its page (here 10 → 5 →
// 2) and delivers every event exactly as before, once.
func TestSearchEventsPageOverLimitRetriedSmaller(t *testing.T) {
	sim := newSim(t, simmisp.Options{}, 25)
	c := newClient(t, misp.ClientConfig{URL: sim.URL()})
	var biggest int64
	for _, uuid := range sim.Events() {
		before := sim.BytesServed()
		if _, found, err := c.SearchEvent(context.Background(), uuid, nil); !found || err != nil {
			t.Fatalf("baseline %s: %v %v", uuid, found, err)
		}
		biggest = max(biggest, sim.BytesServed()-before)
	}
	limit := biggest*2 + biggest/2 // two events fit, five do not
	c = newClient(t, misp.ClientConfig{URL: sim.URL(), MaxResponseBytes: limit})
	seen := map[string]int{}
	stats, err := c.StreamEvents(context.Background(), nil, 10, misp.Visitor{
		Event: func(ev *misp.Event) error { seen[ev.UUID]++; return nil },
	})
	if err != nil {
		t.Fatalf("search with pages over %d bytes: %v", limit, err)
	}
	if len(seen) != 25 || stats.Undecodable != 0 {
		t.Errorf("%d distinct events, %d undecodable; want 25, 0", len(seen), stats.Undecodable)
	}
	if stats.PageSize != 2 || stats.Shrunk != 2 {
		t.Errorf("page size %d after %d halvings, want 2 after 2", stats.PageSize, stats.Shrunk)
	}
}

// TestSearchEventsByUUIDNeverReportsAnUndecodableEventAbsent: the coalesced re-fetch must not
// let an undecodable event look filtered out (its indicators would be revoked).
func TestSearchEventsByUUIDNeverReportsAnUndecodableEventAbsent(t *testing.T) {
	sim := simmisp.New(simmisp.Options{})
	uuids := sim.Generate(3, 3, 7)
	sim.Start()
	t.Cleanup(sim.Close)
	poison(t, sim, uuids[1])
	c := newClient(t, misp.ClientConfig{URL: sim.URL()})
	evs, err := c.SearchEventsByUUID(context.Background(), uuids, nil)
	var u misp.UndecodableEvent
	if !errors.As(err, &u) || u.UUID != uuids[1] || evs != nil {
		t.Fatalf("events %d, err %v; want an error naming the undecodable event", len(evs), err)
	}
	if evs, err := c.SearchEventsByUUID(context.Background(), []string{uuids[0], uuids[2]}, nil); err != nil || len(evs) != 2 {
		t.Errorf("good events: %d, %v", len(evs), err)
	}
}
