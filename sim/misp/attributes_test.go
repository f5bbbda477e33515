package misp_test

import (
	"context"
	"strings"
	"testing"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/misp"
	simmisp "github.com/mispsentinel/listener/sim/misp"
)

// TestAttributeSearch checks POST /attributes/restSearch as misp.Client.SearchAttributes
// reads it: a value matches the whole value or either half of a composite one,
// case-insensitively and with % as a wildcard, soft-deleted attributes are left out, a uuid
// finds the attribute, each hit names its event, and limit cuts the answer.
func TestAttributeSearch(t *testing.T) {
	sim := simmisp.New(simmisp.Options{})
	sim.Start()
	defer sim.Close()
	const evUUID = "22222222-0000-4000-8000-000000000000"
	ev := &misp.Event{UUID: evUUID, Info: "attribute search", Published: true,
		Attributes: []misp.Attribute{
			{UUID: "22222222-0000-4000-8000-000000000001", Type: "ip-dst", Value: "198.51.100.7", ToIDS: true},
			{UUID: "22222222-0000-4000-8000-000000000002", Type: "ip-dst|port", Value: "198.51.100.7|443", ToIDS: true},
			{UUID: "22222222-0000-4000-8000-000000000003", Type: "domain", Value: "Evil.Example", ToIDS: true},
			{UUID: "22222222-0000-4000-8000-000000000004", Type: "domain", Value: "gone.example", ToIDS: true, Deleted: true},
		}}
	if err := sim.PutEvent(ev); err != nil {
		t.Fatal(err)
	}
	mcfg := daemon.MISPClientConfig(config.Default().MISP)
	mcfg.URL, mcfg.Key = sim.URL(), simmisp.DefaultKey
	c, err := misp.NewClient(mcfg)
	if err != nil {
		t.Fatal(err)
	}
	search := func(filters map[string]any, limit int) []misp.AttributeHit {
		t.Helper()
		hits, err := c.SearchAttributes(context.Background(), filters, limit)
		if err != nil {
			t.Fatalf("search %v: %v", filters, err)
		}
		return hits
	}
	uuids := func(hits []misp.AttributeHit) []string {
		var out []string
		for _, h := range hits {
			out = append(out, h.UUID[len(h.UUID)-1:])
		}
		return out
	}
	for _, tt := range []struct {
		filters map[string]any
		limit   int
		want    string
	}{
		{map[string]any{"value": "198.51.100.7"}, 0, "12"},
		{map[string]any{"value": "443"}, 0, "2"},
		{map[string]any{"value": "evil.example"}, 0, "3"},
		{map[string]any{"value": "%.example"}, 0, "3"},
		{map[string]any{"value": "gone.example"}, 0, ""},
		{map[string]any{"value": "nothing.example"}, 0, ""},
		{map[string]any{"uuid": "22222222-0000-4000-8000-000000000003"}, 0, "3"},
		{map[string]any{"value": "198.51.100.7"}, 1, "1"},
	} {
		got := uuids(search(tt.filters, tt.limit))
		if s := strings.Join(got, ""); s != tt.want {
			t.Errorf("search %v limit %d = %q, want %q", tt.filters, tt.limit, s, tt.want)
		}
	}
	hits := search(map[string]any{"value": "evil.example"}, 0)
	if h := hits[0]; h.EventUUID != evUUID || h.EventInfo != "attribute search" || h.EventID == "" || h.Type != "domain" || !h.ToIDS {
		t.Errorf("hit = %+v", h)
	}
}
