package reconcile

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mispsentinel/listener/internal/stixtest"
	"github.com/mispsentinel/listener/misp"
	"github.com/mispsentinel/listener/pipeline"
	"github.com/mispsentinel/listener/store"
)

// A reconcile page read before a real-time delete must not re-apply the deleted event's old
// copy after the delete (it would stay active until the next full run).
func TestRealtimeDeleteDuringPageIsNotUndone(t *testing.T) {
	st, err := store.Open("", store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	p, err := pipeline.New(pipeline.Config{
		Sinks: []pipeline.Sink{{Name: "ws", Options: stixtest.Options()}}, Store: st, RefetchBatch: 50, RefetchConcurrency: 4,
		Now: func() time.Time { return t0 },
	})
	if err != nil {
		t.Fatal(err)
	}
	m := newFakeMISP()
	org := misp.Org{ID: "1", UUID: "a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d", Name: "ACME"}
	const uuid = "5e1b1d3c-7a52-4b8e-9d7e-0c3f5a1b2c3d"
	m.events[uuid] = &misp.Event{
		ID: "1", UUID: uuid, Info: "race", Date: "2026-02-28", Published: true, Distribution: "1",
		ThreatLevelID: "2", Analysis: "2", Timestamp: t0.Add(-time.Hour), PublishTimestamp: t0.Add(-time.Hour),
		Org: org, Orgc: org,
		Attributes: []misp.Attribute{{
			ID: "1", UUID: "00000001-1111-4222-8333-444455556666", EventID: "1", Type: "ip-dst",
			Category: "Network activity", Value: "198.51.100.7", ToIDS: true, Distribution: "5",
			Timestamp: t0.Add(-time.Hour),
		}},
	}
	m.inFilter[uuid] = true
	log := logrus.New()
	log.SetOutput(io.Discard)
	r := New(Config{PageSize: 10, CatchUpRetry: time.Minute}, m, p, st, log, nil)
	r.SetClock(func() time.Time { return t0 })
	liveIn := func() int64 {
		t.Helper()
		s, err := st.Stats("ws")
		if err != nil {
			t.Fatal(err)
		}
		return s.Live
	}
	if _, err := r.Full(context.Background()); err != nil {
		t.Fatal(err)
	}
	if liveIn() == 0 {
		t.Fatal("the first full run exported nothing")
	}

	// The event is deleted in MISP after the page holding it was read; the real-time delete
	// lands before the reconciler applies the page.
	var afterDelete int64 // the creator identity stays: it is shared by every event
	m.beforePage = func([]*misp.Event) {
		m.beforePage = nil
		m.mu.Lock()
		delete(m.events, uuid)
		m.mu.Unlock()
		if err := p.HandleNotice(context.Background(), pipeline.Notice{Source: "zeromq", Kind: pipeline.Deleted, EventUUID: uuid}); err != nil {
			t.Fatal(err)
		}
		afterDelete = liveIn()
	}
	rep, err := r.Full(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := liveIn(); n != afterDelete || rep.Sinks["ws"].New != 0 {
		t.Errorf("the run that read the event before its delete re-applied it: %d live objects (%d after the delete), %+v", n, afterDelete, rep.Sinks["ws"])
	}
	if rep.SupersededEvents != 1 {
		t.Errorf("superseded events %d, want 1", rep.SupersededEvents)
	}

	// A later run reads the event again (gone) and still exports nothing.
	if _, err := r.Full(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := liveIn(); n != afterDelete {
		t.Errorf("after the next full run: %d live objects, want %d", n, afterDelete)
	}
}
