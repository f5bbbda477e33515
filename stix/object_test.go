package stix

import (
	"encoding/json"
	"testing"
	"time"
)

func TestGenerationIDIsStableAndNeverReusesTheBase(t *testing.T) {
	base := "indicator--5d9b3e37-8f3e-4d5b-9a2e-6a1f0c3b2d41"
	if got := GenerationID(base, 0); got != base {
		t.Fatalf("generation 0: got %s, want %s", got, base)
	}
	g1, g2 := GenerationID(base, 1), GenerationID(base, 2)
	if g1 == base || g2 == base || g1 == g2 {
		t.Fatalf("generations collide: %s %s %s", base, g1, g2)
	}
	if again := GenerationID(base, 1); again != g1 {
		t.Fatalf("generation 1 not deterministic: %s then %s", g1, again)
	}
	if g1[:len("indicator--")] != "indicator--" {
		t.Fatalf("generation id lost its type: %s", g1)
	}
}

func TestStampSetsIDModifiedAndRevoked(t *testing.T) {
	body := []byte(`{"type":"indicator","id":"indicator--x","modified":"2020-01-01T00:00:00.000Z","pattern":"[url:value = 'a']"}`)
	at := time.Date(2026, 11, 22, 7, 30, 1, 234_000_000, time.FixedZone("x", 3600))
	out, err := Stamp(body, "indicator--y", at, true)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if got["id"] != "indicator--y" || got["modified"] != "2026-11-22T06:30:01.234Z" || got["revoked"] != true || got["pattern"] != "[url:value = 'a']" {
		t.Fatalf("stamped object wrong: %s", out)
	}
	if _, err := Stamp([]byte(`not json`), "indicator--y", at, false); err == nil {
		t.Fatal("Stamp accepted malformed JSON")
	}
}
