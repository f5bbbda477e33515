package store

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/mispsentinel/listener/stix"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

var t0 = time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)

func openTest(t testing.TB, opts Options) *Store {
	t.Helper()
	if opts.Logger == nil {
		l, _ := logtest.NewNullLogger()
		l.SetLevel(logrus.WarnLevel)
		opts.Logger = l
	}
	s, err := Open(t.TempDir(), opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// indicator builds a desired object whose body carries its hash in x_hash, so tests can tell
// which content version an upload carries.
func indicator(id, hash string, validUntil time.Time) stix.Object {
	body := map[string]any{
		"type": "indicator", "spec_version": "2.1", "id": id,
		"created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
		"pattern": fmt.Sprintf("[ipv4-addr:value = '%s']", hash), "pattern_type": "stix",
		"x_hash": hash,
	}
	if !validUntil.IsZero() {
		body["valid_until"] = stix.FormatTime(validUntil)
	}
	b, _ := json.Marshal(body)
	return stix.Object{ID: id, Type: "indicator", Hash: hash, ValidUntil: validUntil, Body: b}
}

func identity(id, hash string) stix.Object {
	b, _ := json.Marshal(map[string]any{"type": "identity", "spec_version": "2.1", "id": id, "name": hash, "x_hash": hash})
	return stix.Object{ID: id, Type: "identity", Hash: hash, Shared: true, Body: b}
}

func indicatorID(n int) string { return fmt.Sprintf("indicator--%08d-0000-4000-8000-000000000000", n) }

// upload is a decoded outbox item as Sentinel would see it.
type upload struct {
	Seq      uint64
	ID       string
	Hash     string
	Modified string
	Revoked  bool
}

func decodeUpload(t testing.TB, it Item) upload {
	t.Helper()
	var f struct {
		ID       string `json:"id"`
		Modified string `json:"modified"`
		Revoked  bool   `json:"revoked"`
		XHash    string `json:"x_hash"`
	}
	if err := json.Unmarshal(it.Object, &f); err != nil {
		t.Fatalf("item %d: bad JSON %q: %v", it.Seq, it.Object, err)
	}
	if f.ID != it.ID || f.Revoked != it.Revoke {
		t.Fatalf("item %d: body id/revoked %s/%v disagree with item %s/%v", it.Seq, f.ID, f.Revoked, it.ID, it.Revoke)
	}
	return upload{Seq: it.Seq, ID: f.ID, Hash: f.XHash, Modified: f.Modified, Revoked: f.Revoked}
}

// drain accepts everything queued for sink and returns it in upload order.
func drain(t testing.TB, s *Store, sink string, now time.Time) []upload {
	t.Helper()
	var out []upload
	for {
		b, err := s.Begin(sink, 100)
		if err != nil {
			t.Fatalf("begin: %v", err)
		}
		if len(b.Items) == 0 {
			return out
		}
		acc := make([]int, len(b.Items))
		for i, it := range b.Items {
			acc[i] = i
			out = append(out, decodeUpload(t, it))
		}
		if err := s.End(b, Outcome{Accepted: acc}, now); err != nil {
			t.Fatalf("end: %v", err)
		}
	}
}

// peek returns the outbox content without changing it.
func peek(t testing.TB, s *Store, sink string) []upload {
	t.Helper()
	b, err := s.Begin(sink, MaxBatch)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	var out []upload
	for _, it := range b.Items {
		out = append(out, decodeUpload(t, it))
	}
	if err := s.End(b, Outcome{}, t0); err != nil {
		t.Fatalf("end: %v", err)
	}
	return out
}
