package misp_test

import (
	"context"
	"slices"
	"testing"

	"github.com/mispsentinel/listener/misp"
	simmisp "github.com/mispsentinel/listener/sim/misp"
)

// TestSearchEventsByUUIDIsOneRequest: the events of a uuid list come back in one restSearch
// request carrying the list and the filters; unknown uuids are absent, not an error.
func TestSearchEventsByUUIDIsOneRequest(t *testing.T) {
	sim := newSim(t, simmisp.Options{}, 10)
	c := newClient(t, misp.ClientConfig{URL: sim.URL()})
	all := sim.Events()
	want := []string{all[1], all[4], all[7]}
	ask := append(slices.Clone(want), "99999999-1111-4111-8111-111111111111")
	evs, err := c.SearchEventsByUUID(context.Background(), ask, map[string]any{"enforceWarninglist": true})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range evs {
		got = append(got, ev.UUID)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	reqs := searchRequests(t, sim)
	if len(reqs) != 1 {
		t.Fatalf("%d restSearch requests, want 1", len(reqs))
	}
	if uuids, _ := reqs[0]["uuid"].([]any); len(uuids) != len(ask) || reqs[0]["enforceWarninglist"] != true {
		t.Errorf("request %v, want the uuid list and the filters", reqs[0])
	}
	if _, err := c.SearchEventsByUUID(context.Background(), []string{"not a uuid"}, nil); err == nil {
		t.Error("a malformed uuid was sent")
	}
}
