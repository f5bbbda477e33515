package misp_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/mispsentinel/listener/internal/sharedref"
	simmisp "github.com/mispsentinel/listener/sim/misp"
)

// TestMetadataSearchAnswersAsMISP: restSearch with metadata true leaves out Attribute, Object,
// ShadowAttribute and EventReport (Event::fetchEvent drops those contains) but keeps the event's
// columns, attribute_count (the stored count, not zero), timestamp and publish_timestamp, its
// tags, Org, Orgc, Galaxy, RelatedEvent and CryptographicKey; membership and X-Result-Count are
// those of the same search without metadata, and a uuid list selects events.
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
		for _, k := range []string{"Attribute", "Object", "ShadowAttribute", "EventReport"} {
			if _, ok := e.Event[k]; ok {
				t.Errorf("metadata event %d has %s", i, k)
			}
		}
		for _, k := range []string{"uuid", "timestamp", "publish_timestamp", "Tag", "Org", "Orgc", "Galaxy", "RelatedEvent", "CryptographicKey"} {
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

// shapedEvent has what the shaping parameters leave out: an event galaxy, an attribute galaxy,
// a sharing group on the event and on an attribute, and a local tag on both.
const shapedEvent = `{"Event":{"id":"7","uuid":"7a1e0000-0000-4000-8000-000000000007","info":"shaped","date":"2026-02-01",
 "timestamp":"1769900000","published":true,"publish_timestamp":"1769900000","distribution":"4","sharing_group_id":"1",
 "Orgc":{"id":"2","name":"CIRCL","uuid":"55f6ea5e-2c60-40e5-964f-47a8950d210f","local":false},
 "SharingGroup":{"id":"1","name":"partners","SharingGroupOrg":[{"org_id":"2"}]},
 "Galaxy":[{"id":"1","name":"Attack Pattern","GalaxyCluster":[{"value":"Phishing - T1566","tag_name":"misp-galaxy:mitre-attack-pattern=\"Phishing - T1566\""}]}],
 "Tag":[{"id":"1","name":"tlp:green","local":false},{"id":"2","name":"triage:local","local":true}],
 "Attribute":[{"id":"70","uuid":"7a1e0000-0000-4000-8000-000000000070","type":"domain","category":"Network activity","value":"shaped.example.org","to_ids":true,
  "distribution":"4","sharing_group_id":"1","SharingGroup":{"id":"1","name":"partners"},
  "Galaxy":[{"id":"1","name":"Attack Pattern","GalaxyCluster":[{"value":"Phishing - T1566"}]}],
  "Tag":[{"id":"3","name":"kill-chain:Delivery","local":false},{"id":"4","name":"seen:here","local":1}]}]}}`

// TestSearchShapingParametersAnswerAsMISP: excludeGalaxy empties the event's and the
// attributes' Galaxy lists (Event::__attachGalaxies still sets them), sgReferenceOnly leaves
// the SharingGroup objects out (sharing_group_id stays), excludeLocalTags leaves local event and
// attribute tags out. None of them changes which events or attributes are returned.
func TestSearchShapingParametersAnswerAsMISP(t *testing.T) {
	sim := simmisp.New(simmisp.Options{})
	if err := sim.Put([]byte(shapedEvent)); err != nil {
		t.Fatal(err)
	}
	sim.Start()
	defer sim.Close()
	decode := func(body []byte) map[string]json.RawMessage {
		t.Helper()
		var doc struct {
			Response []struct {
				Event map[string]json.RawMessage
			} `json:"response"`
		}
		if err := json.Unmarshal(body, &doc); err != nil || len(doc.Response) != 1 {
			t.Fatalf("answer %s: %v", body, err)
		}
		return doc.Response[0].Event
	}
	attribute := func(ev map[string]json.RawMessage) map[string]json.RawMessage {
		t.Helper()
		var attrs []map[string]json.RawMessage
		if err := json.Unmarshal(ev["Attribute"], &attrs); err != nil || len(attrs) != 1 {
			t.Fatalf("attributes %s: %v", ev["Attribute"], err)
		}
		return attrs[0]
	}
	tagNames := func(raw json.RawMessage) []string {
		var tags []struct{ Name string }
		_ = json.Unmarshal(raw, &tags)
		var out []string
		for _, tg := range tags {
			out = append(out, tg.Name)
		}
		return out
	}

	plain := decode(post(t, sim, simmisp.DefaultKey, `{"uuid":"7a1e0000-0000-4000-8000-000000000007"}`).body)
	if string(plain["Galaxy"]) == "[]" || plain["SharingGroup"] == nil || len(tagNames(plain["Tag"])) != 2 {
		t.Fatalf("without parameters the event lost its galaxy, sharing group or local tag: %v", plain)
	}
	if a := attribute(plain); string(a["Galaxy"]) == "[]" || a["SharingGroup"] == nil || len(tagNames(a["Tag"])) != 2 {
		t.Fatalf("without parameters the attribute lost its galaxy, sharing group or local tag: %v", a)
	}

	shaped := decode(post(t, sim, simmisp.DefaultKey, `{"uuid":"7a1e0000-0000-4000-8000-000000000007","excludeGalaxy":true,"sgReferenceOnly":1,"excludeLocalTags":true}`).body)
	if string(shaped["Galaxy"]) != "[]" {
		t.Errorf("excludeGalaxy: event Galaxy %s, want []", shaped["Galaxy"])
	}
	if _, ok := shaped["SharingGroup"]; ok || string(shaped["sharing_group_id"]) != `"1"` {
		t.Errorf("sgReferenceOnly: event SharingGroup %s, sharing_group_id %s; want no object, the id kept", shaped["SharingGroup"], shaped["sharing_group_id"])
	}
	if got := tagNames(shaped["Tag"]); len(got) != 1 || got[0] != "tlp:green" {
		t.Errorf("excludeLocalTags: event tags %v, want [tlp:green]", got)
	}
	a := attribute(shaped)
	if string(a["Galaxy"]) != "[]" {
		t.Errorf("excludeGalaxy: attribute Galaxy %s, want []", a["Galaxy"])
	}
	if _, ok := a["SharingGroup"]; ok {
		t.Errorf("sgReferenceOnly: attribute SharingGroup %s, want none", a["SharingGroup"])
	}
	if got := tagNames(a["Tag"]); len(got) != 1 || got[0] != "kill-chain:Delivery" {
		t.Errorf("excludeLocalTags: attribute tags %v, want [kill-chain:Delivery]", got)
	}
}

// TestGeneratedTagsCarryMISPsTagFields: a tag the simulator writes has the keys MISP 2.5
// writes for an attached tag (the tags table's columns without org_id, which JSONConverterTool
// drops, then local and relationship_type, which Event::__attachTags sets), in that order.
func TestGeneratedTagsCarryMISPsTagFields(t *testing.T) {
	sim := simmisp.New(simmisp.Options{})
	sim.Generate(1, 1, 1)
	sim.Start()
	defer sim.Close()
	res := post(t, sim, simmisp.DefaultKey, `{"metadata":true}`)
	i := bytes.Index(res.body, []byte(`"Tag":[{`))
	if i < 0 {
		t.Fatalf("no tag in %s", res.body)
	}
	dec := json.NewDecoder(bytes.NewReader(res.body[i+len(`"Tag":[`):]))
	var keys []string
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"id", "name", "colour", "exportable", "user_id", "hide_tag", "numerical_value", "is_galaxy", "is_custom_galaxy", "local_only", "local", "relationship_type"}
	if !slices.Equal(keys, want) {
		t.Errorf("tag keys %v, want %v", keys, want)
	}
}

// TestMetadataShareOfRealEvents answers restSearch for each real MISP event of the corpus
// (corpus/events/misp and corpus/events/pymisp) in full and with metadata: the metadata answer
// has exactly the full answer's keys without Attribute, Object, ShadowAttribute and EventReport,
// and excludeGalaxy changes only Galaxy. It logs each event's metadata bytes as a share of its
// full bytes, with and without excludeGalaxy (docs/BENCHMARKS.md, catch-up after a restart):
//
//	go test ./sim/misp -run TestMetadataShareOfRealEvents -v
func TestMetadataShareOfRealEvents(t *testing.T) {
	dir := filepath.Join(sharedref.Dir(t), "corpus", "events")
	var files []string
	for _, sub := range []string{"misp", "pymisp"} {
		found, err := filepath.Glob(filepath.Join(dir, sub, "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, found...)
	}
	if len(files) == 0 {
		t.Skipf("no events under %s", dir)
	}
	keys := func(body []byte) (map[string]json.RawMessage, int) {
		t.Helper()
		var doc struct {
			Response []struct {
				Event map[string]json.RawMessage
			} `json:"response"`
		}
		if err := json.Unmarshal(body, &doc); err != nil || len(doc.Response) != 1 {
			t.Fatalf("answer: %v (%d events)", err, len(doc.Response))
		}
		return doc.Response[0].Event, len(body) - len(`{"response":[]}`)
	}
	var full, meta, metaNoGalaxy, n int
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sim := simmisp.New(simmisp.Options{})
		if err := sim.Put(data); err != nil {
			t.Logf("%s: not a whole event (%v); skipped", filepath.Base(f), err)
			continue
		}
		sim.Start()
		uuid := sim.Events()[0]
		fe, fn := keys(post(t, sim, simmisp.DefaultKey, `{"uuid":"`+uuid+`"}`).body)
		me, mn := keys(post(t, sim, simmisp.DefaultKey, `{"uuid":"`+uuid+`","metadata":true}`).body)
		ge, gn := keys(post(t, sim, simmisp.DefaultKey, `{"uuid":"`+uuid+`","metadata":true,"excludeGalaxy":true}`).body)
		sim.Close()
		for k := range fe {
			_, inMeta := me[k]
			if dropped := slices.Contains([]string{"Attribute", "Object", "ShadowAttribute", "EventReport"}, k); dropped == inMeta {
				t.Errorf("%s: key %s in the metadata answer: %v, want %v", filepath.Base(f), k, inMeta, !dropped)
			}
		}
		for k, v := range me {
			if _, ok := fe[k]; !ok {
				t.Errorf("%s: metadata key %s not in the full answer", filepath.Base(f), k)
			}
			if k == "Galaxy" && string(ge[k]) != "[]" || k != "Galaxy" && string(ge[k]) != string(v) {
				t.Errorf("%s: excludeGalaxy changed %s", filepath.Base(f), k)
			}
		}
		t.Logf("%-55s full %7d B  metadata %6d B (%5.1f %%)  with excludeGalaxy %6d B (%5.1f %%)",
			filepath.Base(f), fn, mn, 100*float64(mn)/float64(fn), gn, 100*float64(gn)/float64(fn))
		full, meta, metaNoGalaxy, n = full+fn, meta+mn, metaNoGalaxy+gn, n+1
	}
	t.Logf("%d events: full %d B, metadata %d B (%.1f %%), with excludeGalaxy %d B (%.1f %%)",
		n, full, meta, 100*float64(meta)/float64(full), metaNoGalaxy, 100*float64(metaNoGalaxy)/float64(full))
}
