package misp_test

import (
	"encoding/json"
	"strconv"
	"testing"

	simmisp "github.com/mispsentinel/listener/sim/misp"
)

// TestMetadataSearchAnswersAsMISP: restSearch with metadata true leaves out Attribute and
// Object (Event::fetchEvent drops those contains) but keeps the event's columns, attribute_count
// (the stored count, not zero), timestamp and publish_timestamp, and its tags; membership and
// X-Result-Count are those of the same search without metadata, and a uuid list selects events.
func TestMetadataSearchAnswersAsMISP(t *testing.T) {
	sim := simmisp.New(simmisp.Options{})
	uuids := sim.Generate(5, 4, 3)
	sim.Start()
	defer sim.Close()
	full := post(t, sim, simmisp.DefaultKey, `{"limit":3,"page":1}`)
	meta := post(t, sim, simmisp.DefaultKey, `{"limit":3,"page":1,"metadata":true}`)
	if full.header.Get("X-Result-Count") != meta.header.Get("X-Result-Count") || len(meta.events) != 3 {
		t.Fatalf("metadata: count %s, %d events; full: count %s", meta.header.Get("X-Result-Count"), len(meta.events), full.header.Get("X-Result-Count"))
	}
	var doc struct {
		Response []struct {
			Event map[string]json.RawMessage
		} `json:"response"`
	}
	if err := json.Unmarshal(meta.body, &doc); err != nil {
		t.Fatal(err)
	}
	for i, e := range doc.Response {
		for _, k := range []string{"Attribute", "Object"} {
			if _, ok := e.Event[k]; ok {
				t.Errorf("metadata event %d has %s", i, k)
			}
		}
		for _, k := range []string{"uuid", "timestamp", "publish_timestamp", "Tag", "Orgc"} {
			if _, ok := e.Event[k]; !ok {
				t.Errorf("metadata event %d lacks %s", i, k)
			}
		}
		var count string
		_ = json.Unmarshal(e.Event["attribute_count"], &count)
		if n, _ := strconv.Atoi(count); n != full.events[i].AttributeCount() || n == 0 {
			t.Errorf("metadata event %d attribute_count %q, want %d", i, count, full.events[i].AttributeCount())
		}
		if full.events[i].Timestamp != meta.events[i].Timestamp {
			t.Errorf("event %d timestamp differs with metadata", i)
		}
	}
	list := post(t, sim, simmisp.DefaultKey, `{"metadata":true,"uuid":["`+uuids[1]+`","`+uuids[3]+`"]}`)
	if len(list.events) != 2 || list.events[0].UUID != uuids[1] || list.events[1].UUID != uuids[3] {
		t.Errorf("uuid list selected %v", uuidsOf(list.events))
	}
}
