package stix

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mispsentinel/listener/misp"
)

// FuzzDecodeConvert feeds arbitrary bytes through decoding and both conversion profiles. It
// checks that nothing panics, that every object body is valid JSON, that every attribute gets
// a decision, that no indicator comes from an attribute with to_ids off or deleted, and that
// conversion is deterministic. Seeds: stix/testdata/seeds and, when present, the reference
// corpus.
func FuzzDecodeConvert(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "seeds", "*.json"))
	if shared := corpusSeedDir(); shared != "" {
		corpus, _ := filepath.Glob(filepath.Join(shared, "*.misp.json"))
		seeds = append(seeds, corpus...)
	}
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		events, err := misp.DecodeEvents(data)
		if err != nil {
			return
		}
		for _, ev := range events {
			for _, p := range []Profile{ProfileSentinel, ProfileMISPSTIX} {
				o := testOptions()
				o.Profile = p
				o.ExportPatternLanguages = PatternLanguages
				res := Convert(ev, o, now)
				checkResult(t, ev, res)
				again := Convert(ev, o, now)
				if len(again.Objects) != len(res.Objects) {
					t.Fatalf("non-deterministic object count")
				}
				for i := range res.Objects {
					if res.Objects[i].ID != again.Objects[i].ID || res.Objects[i].Hash != again.Objects[i].Hash {
						t.Fatalf("non-deterministic object %d", i)
					}
				}
				_ = Bundle(res.Objects)
			}
		}
	})
}

func checkResult(t *testing.T, ev *misp.Event, res Result) {
	t.Helper()
	if len(res.Decisions) != ev.AttributeCount() {
		t.Fatalf("%d decisions for %d attributes", len(res.Decisions), ev.AttributeCount())
	}
	i := 0
	ev.AllAttributes(func(obj *misp.Object, a *misp.Attribute) bool {
		d := res.Decisions[i]
		i++
		if len(d.Exported) > 0 && (!a.ToIDS || a.Deleted || (obj != nil && obj.Deleted)) {
			t.Fatalf("attribute %q exported with to_ids=%v deleted=%v", a.UUID, a.ToIDS, a.Deleted)
		}
		if len(d.Exported) == 0 && d.Reason == "" {
			t.Fatalf("attribute %q has neither export nor reason", a.UUID)
		}
		return true
	})
	for _, o := range res.Objects {
		var body map[string]any
		if err := json.Unmarshal(o.Body, &body); err != nil {
			t.Fatalf("object %s: invalid JSON: %v\n%q", o.ID, err, o.Body)
		}
		if body["id"] != o.ID {
			t.Fatalf("object %s: body id %v", o.ID, body["id"])
		}
		if o.Type == "indicator" && body["pattern_type"] == "stix" {
			cmp, ok := comparisons(body["pattern"].(string))
			if !ok || len(cmp) == 0 {
				t.Fatalf("object %s: malformed pattern %q", o.ID, body["pattern"])
			}
		}
	}
}

// corpusSeedDir returns the misp-stix corpus directory when it exists, else "".
func corpusSeedDir() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
	d := filepath.Join(dir, "..", "shared", "corpus", "misp-stix")
	if _, err := os.Stat(d); err != nil {
		return ""
	}
	return d
}
