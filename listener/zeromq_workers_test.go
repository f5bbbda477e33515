package listener

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	simmisp "github.com/mispsentinel/listener/sim/misp"

	"github.com/mispsentinel/listener/pipeline"
)

// orderHandler records, per event, the kinds of the notices it handled, and blocks the first
// notice of the event named block until another event's notice has been handled meanwhile.
type orderHandler struct {
	mu       sync.Mutex
	kinds    map[string][]pipeline.NoticeKind
	total    int
	block    string
	overtook chan struct{} // closed once a notice was handled while block's was held
}

func (h *orderHandler) HandleNotice(ctx context.Context, n pipeline.Notice) error {
	h.mu.Lock()
	first := n.EventUUID == h.block && len(h.kinds[n.EventUUID]) == 0
	h.mu.Unlock()
	if first {
		select {
		case <-h.overtook:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.kinds[n.EventUUID] = append(h.kinds[n.EventUUID], n.Kind)
	h.total++
	if n.EventUUID != h.block {
		select {
		case <-h.overtook:
		default:
			close(h.overtook)
		}
	}
	return nil
}

func (h *orderHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.total
}

// TestZeroMQWorkersKeepPerEventOrder shows both halves of the worker contract: a notice stuck
// in the Handler does not hold up other events (another event's notice is handled while the
// first one waits), and the notices of one event are handled in the order they arrived.
func TestZeroMQWorkersKeepPerEventOrder(t *testing.T) {
	p := newPublisher(t, simmisp.PublisherConfig{})
	events := make([]string, 40)
	for i := range events {
		events[i] = uuid.NewString()
	}
	h := &orderHandler{kinds: map[string][]pipeline.NoticeKind{}, block: events[0], overtook: make(chan struct{})}
	z := NewZeroMQ(completeZeroMQ(ZeroMQConfig{Endpoint: p.Addr(), ReconnectMin: 5 * time.Millisecond, ReconnectMax: 50 * time.Millisecond, Workers: 4}),
		h, nil, testLogger(t), NewMetrics(nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- z.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()
	waitSubscribed(t, p)

	for _, ev := range events {
		mustPublish(t, p, simmisp.ZMQTopicPublish, eventJSON(ev))
		mustPublish(t, p, simmisp.ZMQTopicEvent, []byte(`{"Event":{"id":"7","uuid":"`+ev+`"},"action":"delete"}`))
	}
	waitFor(t, "every notice", func() bool { return h.count() == 2*len(events) })
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ev := range events {
		if got := h.kinds[ev]; len(got) != 2 || got[0] != pipeline.Published || got[1] != pipeline.Deleted {
			t.Errorf("event %s: handled %v, want published then deleted", ev, got)
		}
	}
}
