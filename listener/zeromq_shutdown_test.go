package listener

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"

	simmisp "github.com/mispsentinel/listener/sim/misp"

	"github.com/mispsentinel/listener/pipeline"
)

// heldHandler holds every notice until release is closed (or its context ends), and keeps
// what it handled and what it was asked to record as pending.
type heldHandler struct {
	release chan struct{}
	mu      sync.Mutex
	handled []pipeline.Notice
	pending []pipeline.Notice
}

func (h *heldHandler) HandleNotice(ctx context.Context, n pipeline.Notice) error {
	select {
	case <-h.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.handled = append(h.handled, n)
	return nil
}

func (h *heldHandler) RecordPending(ns []pipeline.Notice) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pending = append(h.pending, ns...)
	return nil
}

// startHeld runs a subscriber with handler h, publishes a publish and a delete notice for each
// of events, waits until every one was received (queued or held by the handler) and returns
// the cancel function and Run's result channel.
func startHeld(t *testing.T, h *heldHandler, drain time.Duration, events []string) (context.CancelFunc, <-chan error) {
	t.Helper()
	p := newPublisher(t, simmisp.PublisherConfig{})
	m := NewMetrics(nil)
	z := NewZeroMQ(completeZeroMQ(ZeroMQConfig{Endpoint: p.Addr(), ReconnectMin: 5 * time.Millisecond, ReconnectMax: 50 * time.Millisecond, DrainTimeout: drain}),
		h, nil, testLogger(t), m)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- z.Run(ctx) }()
	t.Cleanup(cancel)
	waitSubscribed(t, p)
	for _, ev := range events {
		mustPublish(t, p, simmisp.ZMQTopicPublish, eventJSON(ev))
		mustPublish(t, p, simmisp.ZMQTopicEvent, []byte(`{"Event":{"id":"7","uuid":"`+ev+`"},"action":"delete"}`))
	}
	waitFor(t, "every notice received", func() bool {
		return testutil.ToFloat64(m.NoticesReceived.WithLabelValues(SourceZeroMQ, "published"))+
			testutil.ToFloat64(m.NoticesReceived.WithLabelValues(SourceZeroMQ, "deleted")) == float64(2*len(events))
	})
	return cancel, done
}

func newEvents(n int) []string {
	events := make([]string, n)
	for i := range events {
		events[i] = uuid.NewString()
	}
	return events
}

// TestZeroMQShutdownDrainsQueuedNotices: notices queued when the context ends are still handled
// within the drain, not dropped.
func TestZeroMQShutdownDrainsQueuedNotices(t *testing.T) {
	h := &heldHandler{release: make(chan struct{})}
	events := newEvents(20)
	cancel, done := startHeld(t, h, time.Minute, events)
	cancel()
	close(h.release)
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if len(h.handled) != 2*len(events) || len(h.pending) != 0 {
		t.Fatalf("after shutdown: %d handled, %d pending; want all %d handled within the drain", len(h.handled), len(h.pending), 2*len(events))
	}
}

// TestZeroMQShutdownRecordsWhatTheDrainDidNotReach: notices still unhandled when the drain ends
// are handed to RecordPending, each event's in the order received.
func TestZeroMQShutdownRecordsWhatTheDrainDidNotReach(t *testing.T) {
	h := &heldHandler{release: make(chan struct{})} // never released
	events := newEvents(20)
	cancel, done := startHeld(t, h, 20*time.Millisecond, events)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if len(h.handled) != 0 || len(h.pending) != 2*len(events) {
		t.Fatalf("after shutdown: %d handled, %d pending; want all %d recorded as pending", len(h.handled), len(h.pending), 2*len(events))
	}
	kinds := map[string][]pipeline.NoticeKind{}
	for _, n := range h.pending {
		kinds[n.EventUUID] = append(kinds[n.EventUUID], n.Kind)
	}
	for _, ev := range events {
		if got := kinds[ev]; len(got) != 2 || got[0] != pipeline.Published || got[1] != pipeline.Deleted {
			t.Errorf("event %s: pending %v, want published then deleted", ev, got)
		}
	}
}

// heldSubmitter is a pipeline.NoticeSubmitter that answers nothing until release is closed (or
// a notice's context ends), as the pipeline's queue does while a re-fetch is slow.
type heldSubmitter struct {
	heldHandler
	submitted chan struct{}
}

func (h *heldSubmitter) SubmitNotice(ctx context.Context, n pipeline.Notice, done func(error)) {
	h.submitted <- struct{}{}
	go func() { done(h.HandleNotice(ctx, n)) }()
}

// TestZeroMQSubmitsWithoutWaiting: with a NoticeSubmitter, every received notice is handed over
// while none is answered yet (so a pipeline can gather them into one re-fetch), and a shutdown
// still drains what is answered within the drain.
func TestZeroMQSubmitsWithoutWaiting(t *testing.T) {
	events := newEvents(30)
	h := &heldSubmitter{heldHandler: heldHandler{release: make(chan struct{})}, submitted: make(chan struct{}, 2*len(events))}
	p := newPublisher(t, simmisp.PublisherConfig{})
	z := NewZeroMQ(completeZeroMQ(ZeroMQConfig{Endpoint: p.Addr(), ReconnectMin: 5 * time.Millisecond, ReconnectMax: 50 * time.Millisecond, Workers: 2}),
		h, nil, testLogger(t), NewMetrics(nil))
	ctx, stop := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- z.Run(ctx) }()
	t.Cleanup(stop)
	waitSubscribed(t, p)
	for _, ev := range events {
		mustPublish(t, p, simmisp.ZMQTopicPublish, eventJSON(ev))
		mustPublish(t, p, simmisp.ZMQTopicEvent, []byte(`{"Event":{"id":"7","uuid":"`+ev+`"},"action":"delete"}`))
	}
	// Two workers, none answered: all 60 are submitted all the same.
	for range 2 * len(events) {
		<-h.submitted
	}
	stop()
	close(h.release)
	if err := <-runDone; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if len(h.handled) != 2*len(events) || len(h.pending) != 0 {
		t.Fatalf("after shutdown: %d handled, %d pending; want all %d handled within the drain", len(h.handled), len(h.pending), 2*len(events))
	}
}

// TestZeroMQSubmittedNoticesLeftAtDrainEndArePending: submitted notices not answered when the
// drain ends are recorded as pending, each event's in the order received.
func TestZeroMQSubmittedNoticesLeftAtDrainEndArePending(t *testing.T) {
	events := newEvents(20)
	h := &heldSubmitter{heldHandler: heldHandler{release: make(chan struct{})}, submitted: make(chan struct{}, 2*len(events))}
	p := newPublisher(t, simmisp.PublisherConfig{})
	z := NewZeroMQ(completeZeroMQ(ZeroMQConfig{Endpoint: p.Addr(), ReconnectMin: 5 * time.Millisecond, ReconnectMax: 50 * time.Millisecond, DrainTimeout: 20 * time.Millisecond}),
		h, nil, testLogger(t), NewMetrics(nil))
	ctx, stop := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- z.Run(ctx) }()
	t.Cleanup(stop)
	waitSubscribed(t, p)
	for _, ev := range events {
		mustPublish(t, p, simmisp.ZMQTopicPublish, eventJSON(ev))
		mustPublish(t, p, simmisp.ZMQTopicEvent, []byte(`{"Event":{"id":"7","uuid":"`+ev+`"},"action":"delete"}`))
	}
	for range 2 * len(events) {
		<-h.submitted
	}
	stop() // never released: the drain ends with every notice unanswered
	if err := <-runDone; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if len(h.handled) != 0 || len(h.pending) != 2*len(events) {
		t.Fatalf("after shutdown: %d handled, %d pending; want all %d recorded as pending", len(h.handled), len(h.pending), 2*len(events))
	}
	kinds := map[string][]pipeline.NoticeKind{}
	for _, n := range h.pending {
		if n.Event != nil {
			t.Errorf("a pending notice kept its payload")
		}
		kinds[n.EventUUID] = append(kinds[n.EventUUID], n.Kind)
	}
	for _, ev := range events {
		if got := kinds[ev]; len(got) != 2 || got[0] != pipeline.Published || got[1] != pipeline.Deleted {
			t.Errorf("event %s: pending %v, want published then deleted", ev, got)
		}
	}
}
