package misp

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mispsentinel/listener/internal/sharedref"
)

func TestDecodeEventLayouts(t *testing.T) {
	const body = `"uuid":"5f3c1a2b-1111-4222-8333-444455556666","info":"x","timestamp":"1603642920",
		"Attribute":[{"uuid":"a","type":"ip-dst","value":"1.2.3.4","to_ids":true}]`
	cases := map[string]string{
		"wrapped":         `{"Event":{` + body + `}}`,
		"bare":            `{` + body + `}`,
		"response":        `{"response":[{"Event":{` + body + `}}]}`,
		"list":            `[{"Event":{` + body + `}}]`,
		"webhook extras":  `{"Event":{` + body + `,"_AttributeFlattened":[{"uuid":"a","_allTags":[{"name":"t","inherited":true}]}]}}`,
		"leading space":   " \n\t{\"Event\":{" + body + "}}\n",
		"misp_json_event": `{"Event":{` + body + `},"Orgc":{"name":"CIRCL","uuid":"55f6ea5e-2c60-40e5-964f-47a8950d210f"},"action":"edit"}`,
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			ev, err := DecodeEvent([]byte(in))
			if err != nil {
				t.Fatalf("DecodeEvent: %v", err)
			}
			if ev.UUID != "5f3c1a2b-1111-4222-8333-444455556666" || ev.Info != "x" {
				t.Errorf("event = %+v", ev)
			}
			if !ev.Timestamp.Equal(time.Unix(1603642920, 0)) {
				t.Errorf("timestamp = %v", ev.Timestamp)
			}
			if len(ev.Attributes) != 1 || ev.Attributes[0].Value != "1.2.3.4" || !ev.Attributes[0].ToIDS {
				t.Errorf("attributes = %+v", ev.Attributes)
			}
		})
	}
}

func TestDecodeOrgcBesideEvent(t *testing.T) {
	ev, err := DecodeEvent([]byte(`{"Event":{"uuid":"u"},"Orgc":{"name":"CIRCL"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Orgc.Name != "CIRCL" {
		t.Errorf("Orgc = %+v", ev.Orgc)
	}
}

func TestDecodeFlexibleScalars(t *testing.T) {
	cases := []struct {
		name, attr string
		check      func(a Attribute) bool
	}{
		{"to_ids bool", `"to_ids":true`, func(a Attribute) bool { return a.ToIDS }},
		{"to_ids string 1", `"to_ids":"1"`, func(a Attribute) bool { return a.ToIDS }},
		{"to_ids number 1", `"to_ids":1`, func(a Attribute) bool { return a.ToIDS }},
		{"to_ids string 0", `"to_ids":"0"`, func(a Attribute) bool { return !a.ToIDS }},
		{"to_ids number 0", `"to_ids":0`, func(a Attribute) bool { return !a.ToIDS }},
		{"to_ids absent", ``, func(a Attribute) bool { return !a.ToIDS && !a.Deleted }},
		{"deleted string", `"deleted":"1"`, func(a Attribute) bool { return a.Deleted }},
		{"deleted false", `"deleted":false`, func(a Attribute) bool { return !a.Deleted }},
		{"id number", `"id":42`, func(a Attribute) bool { return a.ID == "42" }},
		{"id string", `"id":"42"`, func(a Attribute) bool { return a.ID == "42" }},
		{"timestamp number", `"timestamp":1603642920`, func(a Attribute) bool { return a.Timestamp.Equal(time.Unix(1603642920, 0)) }},
		{"timestamp string", `"timestamp":"1603642920"`, func(a Attribute) bool { return a.Timestamp.Equal(time.Unix(1603642920, 0)) }},
		{"timestamp empty", `"timestamp":""`, func(a Attribute) bool { return a.Timestamp.IsZero() }},
		{"first_seen null", `"first_seen":null`, func(a Attribute) bool { return a.FirstSeen == nil }},
		{"first_seen misp", `"first_seen":"2020-10-25T16:22:00.123456+00:00"`, func(a Attribute) bool {
			return a.FirstSeen != nil && a.FirstSeen.Equal(time.Date(2020, 10, 25, 16, 22, 0, 123456000, time.UTC))
		}},
		{"last_seen offset", `"last_seen":"2020-10-25T18:22:00+02:00"`, func(a Attribute) bool {
			return a.LastSeen != nil && a.LastSeen.Equal(time.Date(2020, 10, 25, 16, 22, 0, 0, time.UTC)) && a.LastSeen.Location() == time.UTC
		}},
		{"last_seen micros", `"last_seen":1603642920000000`, func(a Attribute) bool {
			return a.LastSeen != nil && a.LastSeen.Equal(time.Unix(1603642920, 0))
		}},
		{"value1 value2", `"value1":"a.example","value2":"1.2.3.4"`, func(a Attribute) bool { return a.Value == "a.example|1.2.3.4" }},
		{"tags", `"Tag":[{"name":"tlp:red","local":"1","exportable":false}]`, func(a Attribute) bool {
			return len(a.Tags) == 1 && a.Tags[0].Local && !a.Tags[0].Exportable
		}},
		{"unicode escape", `"value":"caf\u00e9.example"`, func(a Attribute) bool { return a.Value == "café.example" }},
		{"surrogate pair", `"value":"\ud83d\ude00"`, func(a Attribute) bool { return a.Value == "😀" }},
		{"lone surrogate", `"value":"a\ud800b"`, func(a Attribute) bool { return a.Value == "a\uFFFDb" }},
		{"invalid utf-8", "\"value\":\"a\xffb\"", func(a Attribute) bool { return a.Value == "a\uFFFDb" }},
		{"escapes", `"value":"a\/b\\c\"d\n\t"`, func(a Attribute) bool { return a.Value == "a/b\\c\"d\n\t" }},
		{"raw utf-8", `"value":"日本.example"`, func(a Attribute) bool { return a.Value == "日本.example" }},
		{"value number", `"value":443`, func(a Attribute) bool { return a.Value == "443" }},
		{"value boolean", `"value":false`, func(a Attribute) bool { return a.Value == "false" }},
		{"object_relation null", `"object_relation":null`, func(a Attribute) bool { return a.ObjectRelation == "" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			attr := `{"uuid":"a","type":"domain"`
			if tc.attr != "" {
				attr += "," + tc.attr
			}
			attr += "}"
			ev, err := DecodeEvent([]byte(`{"Event":{"uuid":"e","Attribute":[` + attr + `]}}`))
			if err != nil {
				t.Fatalf("DecodeEvent: %v", err)
			}
			if !tc.check(ev.Attributes[0]) {
				t.Errorf("unexpected attribute %+v", ev.Attributes[0])
			}
		})
	}
}

func TestDecodeErrorsNameTheField(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"bad to_ids", `{"Event":{"uuid":"e","Attribute":[{"to_ids":"yes"}]}}`, "Event.Attribute[0].to_ids"},
		{"bad timestamp", `{"Event":{"uuid":"e","timestamp":"yesterday"}}`, "timestamp"},
		{"bad attr timestamp", `{"Event":{"uuid":"e","Attribute":[{"timestamp":[1]}]}}`, "Event.Attribute[0].timestamp"},
		{"bad first_seen", `{"Event":{"uuid":"e","Attribute":[{"first_seen":"soon"}]}}`, "Event.Attribute[0].first_seen"},
		{"bad published", `{"Event":{"uuid":"e","published":"maybe"}}`, "published"},
		{"object attribute", `{"Event":{"uuid":"e","Object":[{"Attribute":[{"deleted":2}]}]}}`, "Event.Object[0].Attribute[0].deleted"},
		{"value object", `{"Event":{"uuid":"e","Attribute":[{"value":{}}]}}`, "Event.Attribute[0].value"},
		{"attributes not list", `{"Event":{"uuid":"e","Attribute":{}}}`, "Attribute"},
		{"missing uuid", `{"Event":{"info":"x"}}`, "uuid"},
		{"empty", ``, "empty input"},
		{"not json", `hello`, "not a JSON object"},
		{"truncated", `{"Event":{"uuid":"e"`, "unexpected end"},
		{"no event", `{"foo":1}`, "no MISP event"},
		{"response object", `{"response":{"Attribute":[]}}`, "response"},
		{"two events", `{"response":[{"Event":{"uuid":"a"}},{"Event":{"uuid":"b"}}]}`, "2 events"},
		{"null", `null`, "not a JSON object"},
		{"trailing data", `{"Event":{"uuid":"e"}} x`, "after the top-level"},
		{"deep nesting", `{"Event":{"uuid":"e","x":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}}`, "nested deeper"},
		{"bad escape", `{"Event":{"uuid":"e\q"}}`, "invalid escape"},
		{"control char", "{\"Event\":{\"uuid\":\"a\x01\"}}", "control character"},
		{"bad number", `{"Event":{"uuid":"e","id":01}}`, "expected ',' or '}'"},
		{"bad literal", `{"Event":{"uuid":"e","published":tru}}`, "invalid literal"},
		{"missing colon", `{"Event" {}}`, "expected ':'"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeEvent([]byte(tc.in))
			if err == nil {
				t.Fatal("DecodeEvent succeeded, want error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestDecodeEvents(t *testing.T) {
	evs, err := DecodeEvents([]byte(`{"response":[]}`))
	if err != nil || len(evs) != 0 {
		t.Fatalf("empty response: %v %v", evs, err)
	}
	evs, err = DecodeEvents([]byte(`{"response":[{"Event":{"uuid":"a"}},{"uuid":"b"}]}`))
	if err != nil || len(evs) != 2 || evs[0].UUID != "a" || evs[1].UUID != "b" {
		t.Fatalf("two events: %v %v", evs, err)
	}
	if _, err := DecodeEvents([]byte(`[{"Event":{"uuid":"a"}},{"x":1}]`)); err == nil || !strings.Contains(err.Error(), "[1]") {
		t.Errorf("bad element error = %v", err)
	}
	if _, err := DecodeEvent([]byte(`{"response":[]}`)); !errors.Is(err, ErrNoEvent) {
		t.Errorf("DecodeEvent(empty response) = %v, want ErrNoEvent", err)
	}
}

func TestDecodeCorpus(t *testing.T) {
	shared := sharedref.Dir(t)
	var files []string
	for _, pattern := range []string{"corpus/misp-stix/*.misp.json", "corpus/events/*/*.json"} {
		m, _ := filepath.Glob(filepath.Join(shared, pattern))
		files = append(files, m...)
	}
	// Files that are not events, or not complete ones, and the error each must give.
	notEvents := map[string]string{
		"test_attributes_collection_1.json":      "response",   // attributes restSearch reply
		"test_objects_collection_1.json":         "Object",     // objects restSearch reply
		"mispevent_testfiles_attribute_del.json": "Event.uuid", // PyMISP fragment without uuid
	}
	attrs, decoded := 0, 0
	for _, f := range files {
		if strings.Contains(f, "stix21") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		evs, err := DecodeEvents(data)
		if want, ok := notEvents[filepath.Base(f)]; ok {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error = %v, want one naming %q", filepath.Base(f), err, want)
			}
			continue
		}
		decoded++
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
			continue
		}
		for _, ev := range evs {
			attrs += ev.AttributeCount()
		}
	}
	t.Logf("decoded %d event files, %d attributes", decoded, attrs)
}

func TestDecodeClusterRelations(t *testing.T) {
	// The shape MISP gives a cluster fetched in full (GalaxyCluster::fetchGalaxyClusters):
	// its own relations, and the relations of other clusters that reference it.
	const in = `{"Event":{"uuid":"e","Galaxy":[{"type":"threat-actor","GalaxyCluster":[{
		"uuid":"7cdff317-a673-4474-84ec-4f1754947823","type":"threat-actor","value":"APT29",
		"GalaxyClusterRelation":[
			{"id":"1","galaxy_cluster_id":"10","referenced_galaxy_cluster_id":"11",
			 "referenced_galaxy_cluster_uuid":"2b742742-28c3-4e1b-bab7-8350d6300fa7",
			 "referenced_galaxy_cluster_type":"uses","galaxy_cluster_uuid":"7cdff317-a673-4474-84ec-4f1754947823",
			 "distribution":"3","sharing_group_id":null,"default":true,"Tag":[{"name":"estimative-language:likelihood-probability=\"likely\""}]},
			{"referenced_galaxy_cluster_uuid":"","referenced_galaxy_cluster_type":"similar"}],
		"TargetingClusterRelation":[
			{"referenced_galaxy_cluster_uuid":"7cdff317-a673-4474-84ec-4f1754947823",
			 "referenced_galaxy_cluster_type":"attributed-to","galaxy_cluster_uuid":"899ce53f-13a0-479b-a0e4-67d46e241542"}]
	}]}]}}`
	ev, err := DecodeEvent([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	got := ev.Galaxies[0].Clusters[0].Relations
	want := []ClusterRelation{
		{Source: "7cdff317-a673-4474-84ec-4f1754947823", Type: "uses", Target: "2b742742-28c3-4e1b-bab7-8350d6300fa7"},
		{Source: "899ce53f-13a0-479b-a0e4-67d46e241542", Type: "attributed-to", Target: "7cdff317-a673-4474-84ec-4f1754947823"},
	}
	if len(got) != len(want) {
		t.Fatalf("relations %+v, want %+v (the one without a target dropped)", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("relation %d = %+v, want %+v", i, got[i], want[i])
		}
	}

	_, err = DecodeEvent([]byte(`{"Event":{"uuid":"e","Galaxy":[{"GalaxyCluster":[{"uuid":"c","GalaxyClusterRelation":{"x":1}}]}]}}`))
	if err == nil || !strings.Contains(err.Error(), "GalaxyClusterRelation") {
		t.Errorf("a relation list that is not an array: error %v, want one naming GalaxyClusterRelation", err)
	}
}
