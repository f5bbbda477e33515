package pusher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sirupsen/logrus"

	"github.com/mispsentinel/listener/sentinel"
	"github.com/mispsentinel/listener/stix"
	"github.com/mispsentinel/listener/store"
)

// fakeUploader records every Upload call and answers with respond (everything accepted when
// respond is nil).
type fakeUploader struct {
	respond func(ctx context.Context, call int, objects []json.RawMessage) (sentinel.UploadResult, error)

	mu      sync.Mutex
	calls   []uploadCall
	changed chan struct{} // receives (coalesced) after each call
}

type uploadCall struct {
	at  time.Time
	ids []string
	err error
}

func newFakeUploader(respond func(ctx context.Context, call int, objects []json.RawMessage) (sentinel.UploadResult, error)) *fakeUploader {
	return &fakeUploader{respond: respond, changed: make(chan struct{}, 1)}
}

func (f *fakeUploader) Upload(ctx context.Context, objects []json.RawMessage) (sentinel.UploadResult, error) {
	f.mu.Lock()
	call := len(f.calls)
	f.mu.Unlock()
	var res sentinel.UploadResult
	var err error
	if f.respond != nil {
		res, err = f.respond(ctx, call, objects)
	}
	ids := make([]string, len(objects))
	for i, o := range objects {
		var v struct {
			ID string `json:"id"`
		}
		if jerr := json.Unmarshal(o, &v); jerr != nil {
			panic(fmt.Sprintf("pusher sent invalid JSON: %v", jerr))
		}
		ids[i] = v.ID
	}
	f.mu.Lock()
	f.calls = append(f.calls, uploadCall{at: time.Now(), ids: ids, err: err})
	f.mu.Unlock()
	select {
	case f.changed <- struct{}{}:
	default:
	}
	return res, err
}

func (f *fakeUploader) snapshot() []uploadCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]uploadCall(nil), f.calls...)
}

// waitCalls waits until cond holds for the recorded calls. The bound is a liveness limit.
func (f *fakeUploader) waitCalls(t *testing.T, what string, cond func([]uploadCall) bool) []uploadCall {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		calls := f.snapshot()
		if cond(calls) {
			return calls
		}
		select {
		case <-f.changed:
		case <-deadline:
			t.Fatalf("%s: not reached; %d upload calls so far", what, len(calls))
		}
	}
}

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open("", store.Options{InMemory: true})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func quietLog() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func indicatorID(event, n int) string {
	return fmt.Sprintf("indicator--%08d-%04d-4000-8000-000000000000", event, n)
}

// enqueue makes sink's desired state for one event n indicators, queued at now.
func enqueue(t *testing.T, st *store.Store, sink string, event, n int, now time.Time) []string {
	t.Helper()
	objs := make([]stix.Object, n)
	ids := make([]string, n)
	for i := range objs {
		id := indicatorID(event, i)
		ids[i] = id
		body, _ := json.Marshal(map[string]any{
			"type": "indicator", "spec_version": "2.1", "id": id,
			"created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
			"pattern": fmt.Sprintf("[ipv4-addr:value = '10.%d.%d.%d']", event, i/256, i%256), "pattern_type": "stix",
		})
		objs[i] = stix.Object{ID: id, Type: "indicator", EventUUID: fmt.Sprint(event), Hash: fmt.Sprint(event, "/", i), Body: body}
	}
	if _, err := st.Apply(sink, fmt.Sprintf("event-%d", event), objs, now); err != nil {
		t.Fatalf("apply: %v", err)
	}
	return ids
}

func depth(t *testing.T, st *store.Store, sink string) int64 {
	t.Helper()
	s, err := st.Stats(sink)
	if err != nil {
		t.Fatal(err)
	}
	return s.OutboxDepth
}

// runPusher starts p.Run and returns a function that cancels it and returns Run's result.
func runPusher(t *testing.T, p *Pusher) (stop func() error, done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- p.Run(ctx) }()
	var once sync.Once
	var result error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case result = <-ch:
			case <-time.After(20 * time.Second):
				t.Fatal("Run did not return after cancellation")
			}
		})
		return result
	}
	t.Cleanup(func() { stop() })
	return stop, ch
}

func TestRunSendsFullBatchesAndHoldsThePartialOne(t *testing.T) {
	st := openStore(t)
	up := newFakeUploader(nil)
	p := New(Config{Sink: "s", Linger: time.Hour}, st, up, quietLog(), nil)
	stop, _ := runPusher(t, p)

	enqueue(t, st, "s", 1, 250, time.Now())
	calls := up.waitCalls(t, "two full batches", func(c []uploadCall) bool { return len(c) >= 2 })
	for i, c := range calls[:2] {
		if len(c.ids) != 100 {
			t.Errorf("batch %d has %d objects, want 100", i, len(c.ids))
		}
	}
	// The first 200 are acknowledged; the 50 left wait for the hour-long linger.
	waitDepth(t, st, "s", 50)
	if err := stop(); err != nil {
		t.Fatalf("Run = %v, want nil after cancellation", err)
	}
	if n := len(up.snapshot()); n != 2 {
		t.Errorf("%d uploads, want 2: the partial batch was sent before its linger", n)
	}
	if d := depth(t, st, "s"); d != 50 {
		t.Errorf("outbox depth after shutdown = %d, want 50 still queued", d)
	}
}

func waitDepth(t *testing.T, st *store.Store, sink string, want int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for depth(t, st, sink) != want {
		if time.Now().After(deadline) {
			t.Fatalf("outbox depth of %s = %d, want %d", sink, depth(t, st, sink), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRunSendsPartialBatchAfterLinger(t *testing.T) {
	const linger = 150 * time.Millisecond
	st := openStore(t)
	up := newFakeUploader(nil)
	p := New(Config{Sink: "s", Linger: linger}, st, up, quietLog(), nil)
	runPusher(t, p)

	queued := time.Now()
	ids := enqueue(t, st, "s", 1, 3, queued)
	// More arrives while the first items linger: it wakes the loop but must not shorten the
	// linger of the first ones, nor start a second batch.
	time.Sleep(linger / 3)
	ids = append(ids, enqueue(t, st, "s", 2, 2, time.Now())...)

	calls := up.waitCalls(t, "partial batch", func(c []uploadCall) bool { return len(c) >= 1 })
	// The store keeps enqueue times in milliseconds.
	if got := calls[0].at.Sub(queued.Truncate(time.Millisecond)); got < linger {
		t.Errorf("partial batch sent %s after the first enqueue, before the %s linger", got, linger)
	}
	if len(calls[0].ids) != len(ids) {
		t.Errorf("first batch has %d objects, want all %d queued during the linger", len(calls[0].ids), len(ids))
	}
	waitDepth(t, st, "s", 0)
}

func TestRejectedObjectsAreDeadLetteredWithMessage(t *testing.T) {
	st := openStore(t)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	up := newFakeUploader(func(_ context.Context, _ int, objects []json.RawMessage) (sentinel.UploadResult, error) {
		return sentinel.UploadResult{Rejected: []sentinel.Rejection{
			{Index: 1, Message: "pattern: invalid"},
			{Index: 99, Message: "out of range: ignored"},
		}}, nil
	})
	p := New(Config{Sink: "s", Linger: time.Millisecond}, st, up, quietLog(), m)
	ids := enqueue(t, st, "s", 1, 4, time.Now())

	stats, err := p.Drain(context.Background())
	if err != nil {
		t.Fatalf("drain: %v", err)
	}
	if stats != (DrainStats{Accepted: 3, Rejected: 1}) {
		t.Errorf("drain stats = %+v, want 3 accepted, 1 rejected", stats)
	}
	dead, err := st.DeadLetters("s", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 1 || dead[0].ID != ids[1] || dead[0].Message != "pattern: invalid" {
		t.Fatalf("dead letters = %+v, want %s with Sentinel's message", dead, ids[1])
	}
	if d := depth(t, st, "s"); d != 0 {
		t.Errorf("outbox depth = %d, want 0", d)
	}
	if got := testutil.ToFloat64(m.uploaded.WithLabelValues("s")); got != 3 {
		t.Errorf("uploaded metric = %v, want 3", got)
	}
	if got := testutil.ToFloat64(m.rejected.WithLabelValues("s")); got != 1 {
		t.Errorf("rejected metric = %v, want 1", got)
	}
}

func TestRetryableErrorsAreRetriedWithTheSameBatch(t *testing.T) {
	st := openStore(t)
	up := newFakeUploader(func(_ context.Context, call int, _ []json.RawMessage) (sentinel.UploadResult, error) {
		switch call {
		case 0:
			return sentinel.UploadResult{}, &sentinel.RetryableError{Status: 503, Err: errors.New("service unavailable")}
		case 1:
			return sentinel.UploadResult{}, &sentinel.RetryableError{Status: 429, After: 5 * time.Millisecond, Err: errors.New("throttled")}
		}
		return sentinel.UploadResult{}, nil
	})
	p := New(Config{Sink: "s", Retry: sentinel.RetryOptions{InitialInterval: time.Millisecond, MaxInterval: 5 * time.Millisecond}},
		st, up, quietLog(), nil)
	ids := enqueue(t, st, "s", 1, 7, time.Now())

	stats, err := p.Drain(context.Background())
	if err != nil {
		t.Fatalf("drain: %v", err)
	}
	if stats.Accepted != 7 {
		t.Errorf("accepted = %d, want 7", stats.Accepted)
	}
	calls := up.snapshot()
	if len(calls) != 3 {
		t.Fatalf("%d upload calls, want 3 (two retryable failures, one success)", len(calls))
	}
	for i, c := range calls {
		if fmt.Sprint(c.ids) != fmt.Sprint(ids) {
			t.Errorf("call %d sent %v, want the same batch %v", i, c.ids, ids)
		}
	}
}

func TestFatalErrorStopsOnlyThatSinkAndKeepsItsObjects(t *testing.T) {
	st := openStore(t)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	fatal := newFakeUploader(func(context.Context, int, []json.RawMessage) (sentinel.UploadResult, error) {
		return sentinel.UploadResult{}, &sentinel.FatalError{Status: 403, Cause: sentinel.CauseRole, Err: errors.New("forbidden")}
	})
	healthy := newFakeUploader(nil)
	bad := New(Config{Sink: "bad", Linger: time.Millisecond}, st, fatal, quietLog(), m)
	good := New(Config{Sink: "good", Linger: time.Millisecond}, st, healthy, quietLog(), m)
	badDone := make(chan error, 1)
	go func() { badDone <- bad.Run(context.Background()) }()
	stopGood, _ := runPusher(t, good)

	enqueue(t, st, "bad", 1, 5, time.Now())
	enqueue(t, st, "good", 1, 5, time.Now())

	select {
	case err := <-badDone:
		if !errors.Is(err, ErrSinkStopped) {
			t.Fatalf("Run of the failing sink = %v, want ErrSinkStopped", err)
		}
		var fe *sentinel.FatalError
		if !errors.As(err, &fe) || fe.Cause != sentinel.CauseRole {
			t.Errorf("error %v does not carry the FatalError", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the failing sink's Run did not return")
	}
	if n := len(fatal.snapshot()); n != 1 {
		t.Errorf("failing sink uploaded %d times, want 1 (fatal errors are not retried)", n)
	}
	if d := depth(t, st, "bad"); d != 5 {
		t.Errorf("failing sink's outbox depth = %d, want all 5 still queued", d)
	}
	// The batch was handed back: it can be taken again.
	b, err := st.Begin("bad", 100)
	if err != nil {
		t.Fatalf("begin after the fatal error: %v", err)
	}
	if len(b.Items) != 5 {
		t.Errorf("re-taken batch has %d items, want 5", len(b.Items))
	}
	waitDepth(t, st, "good", 0)
	if err := stopGood(); err != nil {
		t.Errorf("healthy sink's Run = %v", err)
	}
	if got := testutil.ToFloat64(m.fatalErrors.WithLabelValues("bad")); got != 1 {
		t.Errorf("fatal metric = %v, want 1", got)
	}
}

func TestShutdownFinishesTheBatchInFlight(t *testing.T) {
	st := openStore(t)
	started := make(chan struct{})
	finish := make(chan struct{})
	up := newFakeUploader(func(ctx context.Context, _ int, _ []json.RawMessage) (sentinel.UploadResult, error) {
		close(started)
		select {
		case <-finish:
			return sentinel.UploadResult{}, nil
		case <-ctx.Done():
			return sentinel.UploadResult{}, ctx.Err()
		}
	})
	p := New(Config{Sink: "s", Linger: time.Millisecond, ShutdownGrace: time.Minute}, st, up, quietLog(), nil)
	stop, done := runPusher(t, p)
	enqueue(t, st, "s", 1, 10, time.Now())
	<-started

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	// Run must not return while the upload is still running inside its grace.
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) before the batch in flight finished", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(finish)
	if err := <-stopped; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if d := depth(t, st, "s"); d != 0 {
		t.Errorf("outbox depth = %d, want 0: the batch in flight was not committed", d)
	}
}

func TestShutdownGraceExpiredKeepsTheBatchQueued(t *testing.T) {
	st := openStore(t)
	started := make(chan struct{})
	up := newFakeUploader(func(ctx context.Context, _ int, _ []json.RawMessage) (sentinel.UploadResult, error) {
		close(started)
		<-ctx.Done()
		return sentinel.UploadResult{}, ctx.Err()
	})
	p := New(Config{Sink: "s", Linger: time.Millisecond, ShutdownGrace: 20 * time.Millisecond}, st, up, quietLog(), nil)
	stop, _ := runPusher(t, p)
	enqueue(t, st, "s", 1, 10, time.Now())
	<-started
	if err := stop(); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if d := depth(t, st, "s"); d != 10 {
		t.Errorf("outbox depth = %d, want 10: an unfinished batch must stay queued", d)
	}
	if b, err := st.Begin("s", 100); err != nil || len(b.Items) != 10 {
		t.Errorf("begin after shutdown: %d items, err %v; want the 10 handed back", len(b.Items), err)
	}
}

func TestDrainSettlesUpsertsAndRevocations(t *testing.T) {
	st := openStore(t)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	up := newFakeUploader(nil)
	p := New(Config{Sink: "s", Linger: time.Hour}, st, up, quietLog(), m)

	now := time.Now()
	enqueue(t, st, "s", 1, 230, now)
	first, err := p.Drain(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if first != (DrainStats{Accepted: 230}) {
		t.Errorf("first drain = %+v, want 230 accepted", first)
	}
	// The event now yields only its first 30 indicators: 200 revocations.
	enqueue(t, st, "s", 1, 30, now.Add(time.Second))
	second, err := p.Drain(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if second != (DrainStats{Accepted: 200, Revoked: 200}) {
		t.Errorf("second drain = %+v, want 200 accepted revocations", second)
	}
	sizes := []int{}
	for _, c := range up.snapshot() {
		sizes = append(sizes, len(c.ids))
	}
	if fmt.Sprint(sizes) != "[100 100 30 100 100]" {
		t.Errorf("batch sizes = %v, want [100 100 30 100 100]", sizes)
	}
	if got := testutil.ToFloat64(m.uploaded.WithLabelValues("s")); got != 230 {
		t.Errorf("uploaded metric = %v, want 230 upserts", got)
	}
	if got := testutil.ToFloat64(m.revoked.WithLabelValues("s")); got != 200 {
		t.Errorf("revoked metric = %v, want 200", got)
	}
	// Nothing queued: Drain returns at once.
	if s, err := p.Drain(context.Background()); err != nil || s != (DrainStats{}) {
		t.Errorf("drain of an empty outbox = %+v, %v", s, err)
	}
}

func TestDrainFatalAndCancelled(t *testing.T) {
	st := openStore(t)
	enqueue(t, st, "s", 1, 3, time.Now())
	fatal := New(Config{Sink: "s"}, st, newFakeUploader(func(context.Context, int, []json.RawMessage) (sentinel.UploadResult, error) {
		return sentinel.UploadResult{}, &sentinel.FatalError{Status: 404, Cause: sentinel.CauseWorkspaceOrPath, Err: errors.New("not found")}
	}), quietLog(), nil)
	if _, err := fatal.Drain(context.Background()); !errors.Is(err, ErrSinkStopped) {
		t.Errorf("drain with a fatal error = %v, want ErrSinkStopped", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ok := New(Config{Sink: "s"}, st, newFakeUploader(nil), quietLog(), nil)
	if _, err := ok.Drain(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("drain with a cancelled context = %v, want context.Canceled", err)
	}
	if d := depth(t, st, "s"); d != 3 {
		t.Errorf("outbox depth = %d, want 3", d)
	}
}

// flakyOutbox fails the first End of an upload outcome, as a full disk would.
type flakyOutbox struct {
	*store.Store
	mu       sync.Mutex
	failures int
}

func (f *flakyOutbox) End(b *store.Batch, o store.Outcome, now time.Time) error {
	f.mu.Lock()
	fail := len(o.Accepted) > 0 && f.failures > 0
	if fail {
		f.failures--
	}
	f.mu.Unlock()
	if fail {
		// The store releases the batch on a failed End; simulate that with a real release.
		retry := make([]int, len(b.Items))
		for i := range retry {
			retry[i] = i
		}
		if err := f.Store.End(b, store.Outcome{Retry: retry}, now); err != nil {
			return err
		}
		return errors.New("disk full")
	}
	return f.Store.End(b, o, now)
}

func TestOutcomeIsRecordedAfterAFailedEnd(t *testing.T) {
	st := openStore(t)
	ob := &flakyOutbox{Store: st, failures: 2}
	up := newFakeUploader(nil)
	p := New(Config{Sink: "s"}, ob, up, quietLog(), nil)
	p.retryPause = time.Millisecond
	enqueue(t, st, "s", 1, 5, time.Now())
	stats, err := p.Drain(context.Background())
	if err != nil {
		t.Fatalf("drain: %v", err)
	}
	if stats.Accepted != 5 || depth(t, st, "s") != 0 {
		t.Errorf("stats %+v, depth %d: want 5 accepted and an empty outbox", stats, depth(t, st, "s"))
	}
	if n := len(up.snapshot()); n != 1 {
		t.Errorf("%d uploads, want 1: a failed End must not re-upload", n)
	}
}

func TestOutcomeOf(t *testing.T) {
	b := &store.Batch{Items: make([]store.Item, 4)}
	tests := []struct {
		name     string
		rejected []sentinel.Rejection
		accepted []int
		dead     []store.Rejection
	}{
		{"all accepted", nil, []int{0, 1, 2, 3}, nil},
		{"some rejected", []sentinel.Rejection{{Index: 3, Message: "b"}, {Index: 0, Message: "a"}}, []int{1, 2},
			[]store.Rejection{{Index: 0, Message: "a"}, {Index: 3, Message: "b"}}},
		{"out of range ignored", []sentinel.Rejection{{Index: -1}, {Index: 4}}, []int{0, 1, 2, 3}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := outcomeOf(b, sentinel.UploadResult{Rejected: tc.rejected})
			if fmt.Sprint(o.Accepted) != fmt.Sprint(tc.accepted) || fmt.Sprint(o.Rejected) != fmt.Sprint(tc.dead) || o.Retry != nil {
				t.Errorf("outcome = %+v, want accepted %v rejected %v", o, tc.accepted, tc.dead)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{BatchSize: 500}
	c.setDefaults()
	if c.BatchSize != 100 || c.Linger != time.Second || c.ShutdownGrace != 10*time.Second {
		t.Errorf("defaults = %+v", c)
	}
}

// TestDeterministicUploadErrorStopsTheSink: an error Deliver does not retry and that is not a
// FatalError (the client refusing to build the request) would fail the same way for ever; the
// sink stops loudly with its objects queued instead of looping on the head of the outbox.
func TestDeterministicUploadErrorStopsTheSink(t *testing.T) {
	st := openStore(t)
	broken := newFakeUploader(func(context.Context, int, []json.RawMessage) (sentinel.UploadResult, error) {
		return sentinel.UploadResult{}, errors.New("encode request: unsupported value")
	})
	p := New(Config{Sink: "s", Linger: time.Millisecond}, st, broken, quietLog(), nil)
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	enqueue(t, st, "s", 1, 3, time.Now())
	select {
	case err := <-done:
		if !errors.Is(err, ErrSinkStopped) {
			t.Fatalf("Run = %v, want ErrSinkStopped", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run kept retrying a deterministic error")
	}
	if n := len(broken.snapshot()); n != 1 {
		t.Errorf("%d upload attempts, want 1", n)
	}
	if d := depth(t, st, "s"); d != 3 {
		t.Errorf("outbox depth = %d, want the 3 objects still queued", d)
	}
}
