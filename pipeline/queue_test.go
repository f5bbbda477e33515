package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/mispsentinel/listener/misp"
	"github.com/mispsentinel/listener/store"
)

// gatedFetcher answers like MISP from events, read when a call starts, and holds every call
// until the test lets it go: started receives each call's uuids, release lets one call return.
type gatedFetcher struct {
	mu      sync.Mutex
	events  map[string]*misp.Event
	calls   [][]string
	started chan []string
	release chan struct{}
}

func newGatedFetcher() *gatedFetcher {
	return &gatedFetcher{events: map[string]*misp.Event{}, started: make(chan []string, 100), release: make(chan struct{}, 100)}
}

func (f *gatedFetcher) set(ev *misp.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events[ev.UUID] = ev
}

func (f *gatedFetcher) SearchEventsByUUID(ctx context.Context, uuids []string, _ map[string]any) ([]*misp.Event, error) {
	f.mu.Lock()
	f.calls = append(f.calls, slices.Clone(uuids))
	var out []*misp.Event
	for _, u := range uuids {
		if ev, ok := f.events[u]; ok {
			out = append(out, ev)
		}
	}
	f.mu.Unlock()
	f.started <- slices.Clone(uuids)
	select {
	case <-f.release:
		return out, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (f *gatedFetcher) callsSoFar() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// eventN returns event i: its own uuid and one ip-dst attribute per value.
func eventN(i int, ips ...string) *misp.Event {
	ev := testEvent(ips, nil)
	ev.UUID = fmt.Sprintf("%08d-0000-4000-8000-000000000000", i)
	for j := range ev.Attributes {
		ev.Attributes[j].UUID = fmt.Sprintf("%08d-%04d-4000-8000-000000000000", i, j)
	}
	return ev
}

func newQueuedPipeline(t *testing.T, f EventFetcher, batch, concurrency int) *Pipeline {
	t.Helper()
	p, err := New(Config{Sinks: twoSinks()[:1], EventFilters: map[string]any{"published": true}, Refetch: true,
		Fetcher: f, Store: openStore(t), RefetchBatch: batch, RefetchConcurrency: concurrency})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// submit submits n and returns the channel its answer arrives on.
func submit(p *Pipeline, ctx context.Context, n Notice) <-chan error {
	c := make(chan error, 1)
	p.SubmitNotice(ctx, n, func(err error) { c <- err })
	return c
}

func published(ev *misp.Event, source string) Notice {
	return Notice{Source: source, Kind: Published, EventUUID: ev.UUID, Event: ev}
}

func mustAnswer(t *testing.T, c <-chan error, what string) {
	t.Helper()
	if err := <-c; err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func liveObjects(t *testing.T, p *Pipeline) int64 {
	t.Helper()
	return live(t, p.cfg.Store.(*store.Store), "all")
}

func outboxDepth(t *testing.T, p *Pipeline) int64 {
	t.Helper()
	s, err := p.cfg.Store.(*store.Store).Stats("all")
	if err != nil {
		t.Fatal(err)
	}
	return s.OutboxDepth
}

func liveIDs(t *testing.T, p *Pipeline) map[string]bool {
	t.Helper()
	st := p.cfg.Store.(*store.Store)
	out := map[string]bool{}
	if err := st.Events("all", func(ev string) error { out[ev] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRefetchCoalescesWaitingNotices: notices that wait while a re-fetch is in flight are
// gathered into one restSearch call, and a ZeroMQ and a webhook notice of one publish cost one
// fetch of that event.
func TestRefetchCoalescesWaitingNotices(t *testing.T) {
	f := newGatedFetcher()
	p := newQueuedPipeline(t, f, 50, 1)
	evs := []*misp.Event{eventN(1, "192.0.2.1"), eventN(2, "192.0.2.2"), eventN(3, "192.0.2.3"), eventN(4, "192.0.2.4")}
	for _, ev := range evs {
		f.set(ev)
	}
	ctx := context.Background()
	first := submit(p, ctx, published(evs[0], "zeromq"))
	if got := <-f.started; !slices.Equal(got, []string{evs[0].UUID}) {
		t.Fatalf("first call asked for %v", got)
	}
	var answers []<-chan error
	for _, ev := range evs[1:] {
		answers = append(answers, submit(p, ctx, published(ev, "zeromq")), submit(p, ctx, published(ev, "webhook")))
	}
	f.release <- struct{}{}
	mustAnswer(t, first, "first notice")
	got := <-f.started
	f.release <- struct{}{}
	for i, c := range answers {
		mustAnswer(t, c, fmt.Sprint("notice ", i))
	}
	if want := []string{evs[1].UUID, evs[2].UUID, evs[3].UUID}; !slices.Equal(got, want) {
		t.Errorf("second call asked for %v, want the three waiting events once each %v", got, want)
	}
	if n := len(f.callsSoFar()); n != 2 {
		t.Errorf("%d restSearch calls for 7 notices of 4 events, want 2", n)
	}
	if live := liveIDs(t, p); len(live) != 4 {
		t.Errorf("events with live objects: %v, want all 4", live)
	}
}

// TestRefetchBatchAndConcurrencyBounds: no call asks for more than the batch, and no more calls
// are in flight than the concurrency.
func TestRefetchBatchAndConcurrencyBounds(t *testing.T) {
	f := newGatedFetcher()
	p := newQueuedPipeline(t, f, 3, 2)
	var answers []<-chan error
	for i := range 11 {
		ev := eventN(i+1, fmt.Sprintf("192.0.2.%d", i+1))
		f.set(ev)
		answers = append(answers, submit(p, context.Background(), published(ev, "zeromq")))
	}
	inFlight := 0
	seen := 0
	for seen < 11 {
		// Take what has started; with two calls in flight no third may start.
		for inFlight < 2 {
			got := <-f.started
			inFlight++
			seen += len(got)
			if len(got) > 3 {
				t.Fatalf("a call asked for %d events, batch is 3", len(got))
			}
			if seen == 11 {
				break
			}
		}
		select {
		case got := <-f.started:
			t.Fatalf("a third call %v started while two were in flight", got)
		default:
		}
		f.release <- struct{}{}
		inFlight--
	}
	for range inFlight {
		f.release <- struct{}{}
	}
	for _, c := range answers {
		mustAnswer(t, c, "notice")
	}
}

// TestRefetchKeepsEachEventsOrder: a notice about an event whose re-fetch is in flight waits
// for it, even with free fetch slots (other events go ahead), so the later content is applied
// last.
func TestRefetchKeepsEachEventsOrder(t *testing.T) {
	f := newGatedFetcher()
	p := newQueuedPipeline(t, f, 50, 4)
	v1 := eventN(1, "192.0.2.1")
	v2 := eventN(1, "192.0.2.1", "192.0.2.99") // the same event, one attribute added
	other := eventN(2, "192.0.2.2")
	f.set(v1)
	f.set(other)
	ctx := context.Background()
	a1 := submit(p, ctx, published(v1, "zeromq"))
	<-f.started // v1 read, held in flight
	f.set(v2)   // MISP changes the event and publishes again
	a2 := submit(p, ctx, published(v2, "webhook"))
	a3 := submit(p, ctx, published(other, "zeromq"))
	if got := <-f.started; !slices.Equal(got, []string{other.UUID}) {
		t.Fatalf("while event 1 was in flight a call asked for %v, want only event 2", got)
	}
	f.release <- struct{}{} // one of the two calls returns; release both
	f.release <- struct{}{}
	mustAnswer(t, a3, "other event")
	mustAnswer(t, a1, "first publish")
	if got := <-f.started; !slices.Equal(got, []string{v1.UUID}) {
		t.Fatalf("the second publish was fetched as %v, want event 1 after its first fetch", got)
	}
	f.release <- struct{}{}
	mustAnswer(t, a2, "second publish")
	if got := liveObjects(t, p); got != 1+1+2 {
		t.Errorf("%d live objects, want identity + event 2's indicator + event 1's two (the later content last)", got)
	}
}

// TestDeleteWhileFetchInFlightWins: a delete that arrives while its event's re-fetch is in
// flight is applied after it, and the fetch's (older) result is never applied: nothing of the
// event is ever queued for upload.
func TestDeleteWhileFetchInFlightWins(t *testing.T) {
	f := newGatedFetcher()
	p := newQueuedPipeline(t, f, 50, 4)
	ev := eventN(1, "192.0.2.1")
	f.set(ev)
	ctx := context.Background()
	pub := submit(p, ctx, published(ev, "webhook"))
	<-f.started
	del := submit(p, ctx, Notice{Source: "zeromq", Kind: Deleted, EventUUID: ev.UUID})
	select {
	case err := <-del:
		t.Fatalf("the delete was answered (%v) while the publish before it was in flight", err)
	default:
	}
	f.release <- struct{}{}
	mustAnswer(t, pub, "publish")
	mustAnswer(t, del, "delete")
	if got := liveObjects(t, p); got != 0 {
		t.Errorf("%d live objects after publish then delete, want 0", got)
	}
	if depth := outboxDepth(t, p); depth != 0 {
		t.Errorf("outbox holds %d items: the fetch's result was applied before the delete", depth)
	}
}

// TestDeleteAfterWaitingPublishWins: a delete that arrives while its event's publish still
// waits replaces it: the event is never fetched.
func TestDeleteAfterWaitingPublishWins(t *testing.T) {
	f := newGatedFetcher()
	p := newQueuedPipeline(t, f, 50, 1)
	busy := eventN(1, "192.0.2.1")
	ev := eventN(2, "192.0.2.2")
	f.set(busy)
	f.set(ev)
	ctx := context.Background()
	b := submit(p, ctx, published(busy, "zeromq"))
	<-f.started // the one slot is busy
	pub := submit(p, ctx, published(ev, "zeromq"))
	del := submit(p, ctx, Notice{Source: "zeromq", Kind: Deleted, EventUUID: ev.UUID})
	f.release <- struct{}{}
	mustAnswer(t, b, "busy event")
	mustAnswer(t, pub, "publish")
	mustAnswer(t, del, "delete")
	for _, call := range f.callsSoFar() {
		if slices.Contains(call, ev.UUID) {
			t.Errorf("the deleted event was fetched (%v)", call)
		}
	}
	if live := liveIDs(t, p); live[ev.UUID] {
		t.Error("the deleted event has live objects")
	}
}

// TestPublishAfterDeleteIsApplied: a publish after a delete (the same uuid imported again)
// still applies: the delete runs first, then the fetch.
func TestPublishAfterDeleteIsApplied(t *testing.T) {
	f := newGatedFetcher()
	p := newQueuedPipeline(t, f, 50, 1)
	busy := eventN(1, "192.0.2.1")
	ev := eventN(2, "192.0.2.2")
	f.set(busy)
	f.set(ev)
	ctx := context.Background()
	b := submit(p, ctx, published(busy, "zeromq"))
	<-f.started
	del := submit(p, ctx, Notice{Source: "zeromq", Kind: Deleted, EventUUID: ev.UUID})
	pub := submit(p, ctx, published(ev, "zeromq"))
	f.release <- struct{}{}
	<-f.started
	f.release <- struct{}{}
	mustAnswer(t, b, "busy event")
	mustAnswer(t, del, "delete")
	mustAnswer(t, pub, "publish")
	if live := liveIDs(t, p); !live[ev.UUID] {
		t.Error("the event published after its delete has no live objects")
	}
}

// TestHandleNoticeReturnsOnlyAfterCommit: HandleNotice (the webhook's call) does not return
// while its event's re-fetch is in flight, and when it returns the event is in the store.
func TestHandleNoticeReturnsOnlyAfterCommit(t *testing.T) {
	f := newGatedFetcher()
	p := newQueuedPipeline(t, f, 50, 4)
	ev := eventN(1, "192.0.2.1")
	f.set(ev)
	returned := make(chan error, 1)
	go func() { returned <- p.HandleNotice(context.Background(), published(ev, "webhook")) }()
	<-f.started
	select {
	case err := <-returned:
		t.Fatalf("HandleNotice returned (%v) while its re-fetch was in flight", err)
	default:
	}
	f.release <- struct{}{}
	if err := <-returned; err != nil {
		t.Fatal(err)
	}
	if live := liveIDs(t, p); !live[ev.UUID] {
		t.Error("HandleNotice returned before the event was committed")
	}
}

// TestWithdrawnNoticeIsNotFetched: a notice whose context ends while it waits is answered with
// the context's error and its event is not fetched.
func TestWithdrawnNoticeIsNotFetched(t *testing.T) {
	f := newGatedFetcher()
	p := newQueuedPipeline(t, f, 50, 1)
	busy := eventN(1, "192.0.2.1")
	ev := eventN(2, "192.0.2.2")
	f.set(busy)
	f.set(ev)
	b := submit(p, context.Background(), published(busy, "zeromq"))
	<-f.started
	ctx, cancel := context.WithCancel(context.Background())
	w := submit(p, ctx, published(ev, "zeromq"))
	cancel()
	if err := <-w; !errors.Is(err, context.Canceled) {
		t.Fatalf("withdrawn notice answered %v, want context.Canceled", err)
	}
	f.release <- struct{}{}
	mustAnswer(t, b, "busy event")
	// A later notice of the same event is fetched normally.
	again := submit(p, context.Background(), published(ev, "zeromq"))
	if got := <-f.started; !slices.Equal(got, []string{ev.UUID}) {
		t.Fatalf("call asked for %v", got)
	}
	f.release <- struct{}{}
	mustAnswer(t, again, "notice after the withdrawn one")
	if n := len(f.callsSoFar()); n != 2 {
		t.Errorf("%d calls, want 2 (the withdrawn notice fetched nothing)", n)
	}
}

// TestRefetchOrderUnderConcurrency: many notices of a few events from several goroutines, with
// MISP's content changing between them; when all are answered, each event holds its last
// content. Run with -race.
func TestRefetchOrderUnderConcurrency(t *testing.T) {
	f := &fakeFetcher{events: map[string]*misp.Event{}}
	p := newQueuedPipeline(t, f, 5, 3)
	const events, rounds = 8, 20
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range events {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var answers []<-chan error
			for r := range rounds {
				ips := []string{"192.0.2.1"}
				if r%2 == 1 {
					ips = append(ips, "192.0.2.2")
				}
				ev := eventN(i+1, ips...)
				mu.Lock()
				f.mu.Lock()
				f.events[ev.UUID] = ev
				f.mu.Unlock()
				mu.Unlock()
				kind := Published
				if r%7 == 3 {
					kind = Deleted
				}
				answers = append(answers, submit(p, context.Background(), Notice{Source: "zeromq", Kind: kind, EventUUID: ev.UUID, Event: ev}))
			}
			for _, c := range answers {
				if err := <-c; err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	// The last round (r = 19, odd) published two attributes for every event.
	if got := liveObjects(t, p); got != 1+2*events {
		t.Errorf("%d live objects, want identity + 2 per event = %d", got, 1+2*events)
	}
	for _, call := range f.uuids {
		if len(call) > 5 {
			t.Errorf("a call asked for %d events, batch is 5", len(call))
		}
	}
}
