package stix

import (
	"encoding/json"
	"hash/maphash"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAppendStringIsValidJSON(t *testing.T) {
	for _, s := range []string{
		"", "plain", `quote " backslash \ slash /`, "ctl \x00\x01\x1f\t\n\r", "café 日本 😀",
		"invalid \xff\xfe utf-8", "line sep \u2028 para sep \u2029", strings.Repeat("ab'\\", 100),
	} {
		out := appendString(nil, s)
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Errorf("%q: %s is not JSON: %v", s, out, err)
			continue
		}
		want := string([]rune(s)) // each invalid byte becomes U+FFFD
		if back != want {
			t.Errorf("%q round-trips to %q", s, back)
		}
		if !utf8.Valid(out) {
			t.Errorf("%q: output is not valid UTF-8", s)
		}
	}
}

func TestBundle(t *testing.T) {
	a := Object{ID: "identity--1", Hash: "h1", Body: []byte(`{"type":"identity","id":"identity--1"}`)}
	b := Object{ID: "indicator--2", Hash: "h2", Body: []byte(`{"type":"indicator","id":"indicator--2"}`)}
	out := Bundle([]Object{a, b, a})
	var bundle struct {
		Type    string            `json:"type"`
		ID      string            `json:"id"`
		Objects []json.RawMessage `json:"objects"`
	}
	if err := json.Unmarshal(out, &bundle); err != nil {
		t.Fatalf("bundle is not JSON: %v\n%s", err, out)
	}
	if bundle.Type != "bundle" || !strings.HasPrefix(bundle.ID, "bundle--") || len(bundle.Objects) != 2 {
		t.Errorf("bundle = %s", out)
	}
	if again := Bundle([]Object{a, b}); string(again) != string(out) {
		t.Error("same objects gave a different bundle")
	}
	b.Hash = "h3"
	if other := Bundle([]Object{a, b}); strings.Contains(string(other), bundle.ID) {
		t.Error("changed content kept the bundle id")
	}
	var empty struct{ Objects []json.RawMessage }
	if err := json.Unmarshal(Bundle(nil), &empty); err != nil || len(empty.Objects) != 0 {
		t.Errorf("empty bundle: %v %s", err, Bundle(nil))
	}
}

// TestIDSetCollision checks the bundle's duplicate detection when two ids share a 64-bit hash
// (simulated: B's hash is recorded as A's): both are kept once, repeats of either are dropped.
func TestIDSetCollision(t *testing.T) {
	objects := []Object{{ID: "A"}, {ID: "B"}, {ID: "B"}, {ID: "A"}, {ID: "C"}}
	s := newIDSet(len(objects))
	s.first[maphash.String(s.seed, "B")] = "A"
	var got []bool
	for _, o := range objects {
		got = append(got, s.add(o.ID))
	}
	if want := []bool{true, true, false, false, true}; !slices.Equal(got, want) {
		t.Errorf("added %v, want %v", got, want)
	}
}
