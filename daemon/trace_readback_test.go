package daemon

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mispsentinel/listener/sentinel"
)

type fakeLookup struct {
	held    []sentinel.HeldObject
	err     error
	sources []string
}

func (f *fakeLookup) Lookup(_ context.Context, _ string, sourceSystems ...string) ([]sentinel.HeldObject, error) {
	f.sources = sourceSystems
	return f.held, f.err
}

// TestSentinelReadBack checks the adapter trace reads Sentinel through: the sink's source
// system is asked for, the latest copy wins, none is "not found", an error is passed on.
func TestSentinelReadBack(t *testing.T) {
	t1 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	f := &fakeLookup{held: []sentinel.HeldObject{
		{ID: "indicator--a", Modified: t1, Pattern: "[x:value = 'old']"},
		{ID: "indicator--a", Modified: t1.Add(time.Hour), ValidUntil: t1.Add(48 * time.Hour), Revoked: true, Pattern: "[x:value = 'new']"},
	}}
	rb := SentinelReadBack(f, "MISP")
	h, found, err := rb.ReadIndicator(context.Background(), "indicator--a")
	if err != nil || !found || !h.Modified.Equal(t1.Add(time.Hour)) || !h.Revoked || h.Pattern != "[x:value = 'new']" || !h.ValidUntil.Equal(t1.Add(48*time.Hour)) {
		t.Errorf("read = %+v %v %v", h, found, err)
	}
	if len(f.sources) != 1 || f.sources[0] != "MISP" {
		t.Errorf("asked for source systems %v, want [MISP]", f.sources)
	}
	f.held = nil
	if _, found, err := rb.ReadIndicator(context.Background(), "indicator--a"); found || err != nil {
		t.Errorf("nothing held = %v %v", found, err)
	}
	f.err = errors.New("read-back: HTTP 403")
	if _, _, err := rb.ReadIndicator(context.Background(), "indicator--a"); err == nil {
		t.Error("the read-back's error was lost")
	}
}
