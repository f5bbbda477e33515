package pusher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/cenkalti/backoff/v5"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/mispsentinel/listener/stix"
	"github.com/mispsentinel/listener/store"
)

// fakeSink records every Send call and answers with respond (everything accepted when
// respond is nil).
type fakeSink struct {
	respond func(ctx context.Context, call int, objects []Object) ([]Rejection, error)

	mu      sync.Mutex
	calls   []uploadCall
	changed chan struct{} // receives (coalesced) after each call
}

type uploadCall struct {
	at  time.Time
	ids []string
	err error
}

func newFakeSink(respond func(ctx context.Context, call int, objects []Object) ([]Rejection, error)) *fakeSink {
	return &fakeSink{respond: respond, changed: make(chan struct{}, 1)}
}

func (f *fakeSink) Limits() Limits {
	return Limits{MaxBatch: 100, Upserts: []Quota{{Key: "fake", Requests: 1e9, Per: time.Minute}}}
}

func (f *fakeSink) Send(ctx context.Context, objects []Object, pace Pace) ([]Rejection, error) {
	if err := pace(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	call := len(f.calls)
	f.mu.Unlock()
	var res []Rejection
	var err error
	if f.respond != nil {
		res, err = f.respond(ctx, call, objects)
	}
	ids := make([]string, len(objects))
	for i, o := range objects {
		var v struct {
			ID string `json:"id"`
		}
		if jerr := json.Unmarshal(o.Body, &v); jerr != nil {
			panic(fmt.Sprintf("pusher sent invalid JSON: %v", jerr))
		}
		if v.ID != o.ID {
			panic(fmt.Sprintf("object %s carries body of %s", o.ID, v.ID))
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

func (f *fakeSink) snapshot() []uploadCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]uploadCall(nil), f.calls...)
}

// waitCalls waits until cond holds for the recorded calls. The bound is a liveness limit.
func (f *fakeSink) waitCalls(t *testing.T, what string, cond func([]uploadCall) bool) []uploadCall {
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

// newPusher returns a pusher for cfg with the daemon's defaults for every duration cfg leaves
// out, pacing with an unlimited quota.
func newPusher(t *testing.T, cfg Config, outbox Outbox, sink Sink, m *Metrics) *Pusher {
	t.Helper()
	def := Config{Linger: time.Second, ShutdownGrace: 10 * time.Second, RetryInitial: time.Second, RetryMax: time.Minute, MaxRetryAfter: 10 * time.Minute,
		FailingInitial: time.Minute, FailingMax: 15 * time.Minute}
	for _, f := range []struct{ v, d *time.Duration }{{&cfg.Linger, &def.Linger}, {&cfg.ShutdownGrace, &def.ShutdownGrace},
		{&cfg.RetryInitial, &def.RetryInitial}, {&cfg.RetryMax, &def.RetryMax}, {&cfg.MaxRetryAfter, &def.MaxRetryAfter},
		{&cfg.FailingInitial, &def.FailingInitial}, {&cfg.FailingMax, &def.FailingMax}} {
		if *f.v == 0 {
			*f.v = *f.d
		}
	}
	if cfg.InFlight == 0 {
		cfg.InFlight = 4
	}
	pacers, err := NewPacers(0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(cfg, outbox, sink, pacers, quietLog(), m)
	if err != nil {
		t.Fatal(err)
	}
	return p
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
	up := newFakeSink(nil)
	p := newPusher(t, Config{Sink: "s", Linger: time.Hour}, st, up, nil)
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
	up := newFakeSink(nil)
	p := newPusher(t, Config{Sink: "s", Linger: linger}, st, up, nil)
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
	up := newFakeSink(func(_ context.Context, _ int, objects []Object) ([]Rejection, error) {
		return []Rejection{
			{Index: 1, Message: "pattern: invalid"},
			{Index: 99, Message: "out of range: ignored"},
		}, nil
	})
	p := newPusher(t, Config{Sink: "s", Linger: time.Millisecond}, st, up, m)
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
	up := newFakeSink(func(_ context.Context, call int, _ []Object) ([]Rejection, error) {
		switch call {
		case 0:
			return nil, &RetryError{Reason: RetryServerError, Status: 503, Err: errors.New("service unavailable")}
		case 1:
			return nil, &RetryError{Reason: RetryThrottled, Status: 429, After: 5 * time.Millisecond, Err: errors.New("throttled")}
		}
		return nil, nil
	})
	p := newPusher(t, Config{Sink: "s", RetryInitial: time.Millisecond, RetryMax: 5 * time.Millisecond}, st, up, nil)
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

// waitState waits until p's state satisfies cond. The bound is a liveness limit.
func waitState(t *testing.T, p *Pusher, what string, cond func(State) bool) State {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := p.State()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached; state %+v", what, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFatalErrorFailsOnlyThatSinkAndKeepsItsObjects(t *testing.T) {
	st := openStore(t)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	fatal := newFakeSink(func(context.Context, int, []Object) ([]Rejection, error) {
		return nil, &FatalError{Status: 403, Cause: "role", Err: errors.New("forbidden:\n  the identity lacks\n  the role")}
	})
	healthy := newFakeSink(nil)
	bad := newPusher(t, Config{Sink: "bad", Linger: time.Millisecond, FailingInitial: time.Hour, FailingMax: time.Hour}, st, fatal, m)
	good := newPusher(t, Config{Sink: "good", Linger: time.Millisecond}, st, healthy, m)
	stopBad, _ := runPusher(t, bad)
	stopGood, _ := runPusher(t, good)

	enqueue(t, st, "bad", 1, 5, time.Now())
	enqueue(t, st, "good", 1, 5, time.Now())

	state := waitState(t, bad, "the failing state", func(s State) bool { return !s.Up })
	if !strings.Contains(state.LastError, "forbidden: the identity lacks the role") || strings.Contains(state.LastError, "\n") {
		t.Errorf("last error %q, want the FatalError on one line", state.LastError)
	}
	if state.FailingSince.IsZero() || !state.NextRetry.After(state.FailingSince) {
		t.Errorf("state %+v, want since and a later next retry", state)
	}
	waitDepth(t, st, "good", 0)
	if n := len(fatal.snapshot()); n != 1 {
		t.Errorf("failing sink uploaded %d times, want 1 until its backoff step passes", n)
	}
	if d := depth(t, st, "bad"); d != 5 {
		t.Errorf("failing sink's outbox depth = %d, want all 5 still queued", d)
	}
	if got := testutil.ToFloat64(m.up.WithLabelValues("bad")); got != 0 {
		t.Errorf("listener_sink_up{bad} = %v, want 0", got)
	}
	if got := testutil.ToFloat64(m.failingSince.WithLabelValues("bad")); got != float64(state.FailingSince.Unix()) {
		t.Errorf("listener_sink_failing_since_seconds{bad} = %v, want %d", got, state.FailingSince.Unix())
	}
	if got := testutil.ToFloat64(m.up.WithLabelValues("good")); got != 1 {
		t.Errorf("listener_sink_up{good} = %v, want 1", got)
	}
	if err := stopBad(); err != nil {
		t.Errorf("failing sink's Run = %v, want nil", err)
	}
	if err := stopGood(); err != nil {
		t.Errorf("healthy sink's Run = %v", err)
	}
	if got := testutil.ToFloat64(m.fatalErrors.WithLabelValues("bad")); got != 1 {
		t.Errorf("fatal metric = %v, want 1", got)
	}
}

// healingSink fails with a configuration error until Heal was called twice (a secret fixed
// after the first retry), then delivers.
type healingSink struct {
	*fakeSink
	mu    sync.Mutex
	heals int
}

func (h *healingSink) Heal(context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.heals++
	if h.heals == 1 {
		return errors.New("secret file still holds the old secret")
	}
	return nil
}

func (h *healingSink) healed() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.heals
}

// TestFailingSinkHealsWithoutRestart: a sink failing on a configuration error is retried
// after each backoff step, healed first, and delivers everything once its configuration is
// right again; Run never returns meanwhile and nothing is lost.
func TestFailingSinkHealsWithoutRestart(t *testing.T) {
	st := openStore(t)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	h := &healingSink{}
	h.fakeSink = newFakeSink(func(context.Context, int, []Object) ([]Rejection, error) {
		if h.healed() < 2 {
			return nil, &FatalError{Status: 401, Cause: "credential", Err: errors.New("invalid client secret")}
		}
		return nil, nil
	})
	p := newPusher(t, Config{Sink: "s", Linger: time.Millisecond, FailingInitial: 5 * time.Millisecond, FailingMax: 20 * time.Millisecond}, st, h, m)
	_, done := runPusher(t, p)
	enqueue(t, st, "s", 1, 150, time.Now())
	waitDepth(t, st, "s", 0)
	select {
	case err := <-done:
		t.Fatalf("Run returned %v while the sink was failing", err)
	default:
	}
	if s := waitState(t, p, "recovery", func(s State) bool { return s.Up }); s.LastError != "" {
		t.Errorf("state after recovery %+v", s)
	}
	if h.healed() != 2 {
		t.Errorf("%d heals, want 2 (one failed, one that fixed it)", h.healed())
	}
	if got := testutil.ToFloat64(m.up.WithLabelValues("s")); got != 1 {
		t.Errorf("listener_sink_up = %v, want 1 after recovery", got)
	}
	if got := testutil.ToFloat64(m.uploaded.WithLabelValues("s")); got != 150 {
		t.Errorf("uploaded %v, want all 150", got)
	}
}

func TestShutdownFinishesTheBatchInFlight(t *testing.T) {
	st := openStore(t)
	started := make(chan struct{})
	finish := make(chan struct{})
	up := newFakeSink(func(ctx context.Context, _ int, _ []Object) ([]Rejection, error) {
		close(started)
		select {
		case <-finish:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	p := newPusher(t, Config{Sink: "s", Linger: time.Millisecond, ShutdownGrace: time.Minute}, st, up, nil)
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
	up := newFakeSink(func(ctx context.Context, _ int, _ []Object) ([]Rejection, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	p := newPusher(t, Config{Sink: "s", Linger: time.Millisecond, ShutdownGrace: 20 * time.Millisecond}, st, up, nil)
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
	up := newFakeSink(nil)
	p := newPusher(t, Config{Sink: "s", Linger: time.Hour}, st, up, m)

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
	slices.Sort(sizes) // batches in flight together are recorded in any order
	if fmt.Sprint(sizes) != "[30 100 100 100 100]" {
		t.Errorf("batch sizes = %v, want two full batches and one of 30, then two full", sizes)
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
	fatal := newPusher(t, Config{Sink: "s"}, st, newFakeSink(func(context.Context, int, []Object) ([]Rejection, error) {
		return nil, &FatalError{Status: 404, Cause: "workspace_or_path", Err: errors.New("not found")}
	}), nil)
	if _, err := fatal.Drain(context.Background()); !errors.Is(err, ErrSinkStopped) {
		t.Errorf("drain with a fatal error = %v, want ErrSinkStopped", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ok := newPusher(t, Config{Sink: "s"}, st, newFakeSink(nil), nil)
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
	up := newFakeSink(nil)
	p := newPusher(t, Config{Sink: "s"}, ob, up, nil)
	p.storePause = time.Millisecond
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

func TestSettled(t *testing.T) {
	b := &store.Batch{Items: make([]store.Item, 4)}
	tests := []struct {
		name     string
		rejected []Rejection
		accepted []int
		dead     []store.Rejection
	}{
		{"all accepted", nil, []int{0, 1, 2, 3}, nil},
		{"some rejected", []Rejection{{Index: 3, Message: "b"}, {Index: 0, Message: "a"}}, []int{1, 2},
			[]store.Rejection{{Index: 0, Message: "a"}, {Index: 3, Message: "b"}}},
		{"out of range ignored", []Rejection{{Index: -1}, {Index: 4}}, []int{0, 1, 2, 3}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := settled(b, tc.rejected)
			if fmt.Sprint(o.Accepted) != fmt.Sprint(tc.accepted) || fmt.Sprint(o.Rejected) != fmt.Sprint(tc.dead) || len(o.Retry) != 0 {
				t.Errorf("outcome = %+v, want accepted %v rejected %v", o, tc.accepted, tc.dead)
			}
		})
	}
}

func TestNewValidatesConfig(t *testing.T) {
	pacers, _ := NewPacers(0)
	st := openStore(t)
	for _, c := range []Config{{}, {Sink: "s"}, {Sink: "s", Linger: time.Second, ShutdownGrace: time.Second, RetryInitial: time.Minute, RetryMax: time.Second, MaxRetryAfter: time.Minute, InFlight: 1, FailingInitial: time.Minute, FailingMax: time.Minute},
		{Sink: "s", Linger: time.Second, ShutdownGrace: time.Second, RetryInitial: time.Second, RetryMax: time.Second, MaxRetryAfter: time.Minute, FailingInitial: time.Minute, FailingMax: time.Minute}} {
		if _, err := New(c, st, newFakeSink(nil), pacers, quietLog(), nil); err == nil {
			t.Errorf("New(%+v) accepted an incomplete configuration", c)
		}
	}
}

// TestDeterministicUploadErrorFailsTheSink: an error that is neither retryable nor a
// FatalError (the sink refusing to build the request) would fail the same way for ever; the
// sink fails loudly with its objects queued instead of looping on the head of the outbox.
func TestDeterministicUploadErrorFailsTheSink(t *testing.T) {
	st := openStore(t)
	broken := newFakeSink(func(context.Context, int, []Object) ([]Rejection, error) {
		return nil, errors.New("encode request: unsupported value")
	})
	p := newPusher(t, Config{Sink: "s", Linger: time.Millisecond, FailingInitial: time.Hour, FailingMax: time.Hour}, st, broken, nil)
	runPusher(t, p)
	enqueue(t, st, "s", 1, 3, time.Now())
	if s := waitState(t, p, "failing", func(s State) bool { return !s.Up }); !strings.Contains(s.LastError, "unsupported value") {
		t.Errorf("state %+v", s)
	}
	if n := len(broken.snapshot()); n != 1 {
		t.Errorf("%d upload attempts, want 1", n)
	}
	if d := depth(t, st, "s"); d != 3 {
		t.Errorf("outbox depth = %d, want the 3 objects still queued", d)
	}
}

// TestRetryAfterIsCappedWithAWarning: a sink asking for a wait of years (a hostile or broken
// Retry-After) is obeyed only up to MaxRetryAfter, and the clamp is logged as a warning.
func TestRetryAfterIsCappedWithAWarning(t *testing.T) {
	st := openStore(t)
	up := newFakeSink(func(_ context.Context, call int, _ []Object) ([]Rejection, error) {
		if call == 0 {
			return nil, &RetryError{Reason: RetryThrottled, Status: 429, After: 999999999 * time.Second, Err: errors.New("throttled")}
		}
		return nil, nil
	})
	p := newPusher(t, Config{Sink: "s", MaxRetryAfter: 20 * time.Millisecond}, st, up, nil)
	hook := test.NewLocal(p.log.(*logrus.Entry).Logger)
	enqueue(t, st, "s", 1, 3, time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // a hang guard
	defer cancel()
	if stats, err := p.Drain(ctx); err != nil || stats.Accepted != 3 {
		t.Fatalf("drain = %+v, %v; want the batch accepted after the capped wait", stats, err)
	}
	warned := false
	for _, e := range hook.AllEntries() {
		warned = warned || (e.Level == logrus.WarnLevel && e.Data["asked"] == (999999999*time.Second).String())
	}
	if !warned {
		t.Error("no warning names the clamped wait")
	}
}

// TestThrottlingPausesEverySinkOfTheQuota: a 429 on one sink holds the other sinks of the
// same identity too, not only the one that was throttled.
func TestThrottlingPausesEverySinkOfTheQuota(t *testing.T) {
	st := openStore(t)
	pacers, _ := NewPacers(0)
	throttled := newFakeSink(func(_ context.Context, call int, _ []Object) ([]Rejection, error) {
		if call == 0 {
			return nil, &RetryError{Reason: RetryThrottled, Status: 429, After: time.Hour, Err: errors.New("throttled")}
		}
		return nil, nil
	})
	cfg := Config{Linger: time.Millisecond, ShutdownGrace: time.Second, RetryInitial: time.Millisecond, RetryMax: time.Millisecond, MaxRetryAfter: time.Hour, InFlight: 4,
		FailingInitial: time.Minute, FailingMax: time.Minute}
	cfg.Sink = "a"
	a, err := New(cfg, st, throttled, pacers, quietLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	enqueue(t, st, "a", 1, 1, time.Now())
	runPusher(t, a)
	throttled.waitCalls(t, "the throttled upload", func(c []uploadCall) bool { return len(c) == 1 })

	other := newFakeSink(nil)
	cfg.Sink = "b"
	b, err := New(cfg, st, other, pacers, quietLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	enqueue(t, st, "b", 2, 1, time.Now())
	if _, err := b.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("drain of the other sink = %v, want it held by the identity's pause", err)
	}
	if n := len(other.snapshot()); n != 0 {
		t.Fatalf("the other sink of the identity sent %d requests during the pause", n)
	}
}

// TestDeliverStopsOnContextEndNamingTheLastError: a shutdown in the middle of retries ends
// delivery with the context's error, naming what the last attempt failed with.
func TestDeliverStopsOnContextEndNamingTheLastError(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	sink := newFakeSink(func(_ context.Context, call int, _ []Object) ([]Rejection, error) {
		if call == 2 {
			cancel()
		}
		return nil, &RetryError{Reason: RetryServerError, Status: 500, Err: errors.New("HTTP 500: internal error")}
	})
	p := newPusher(t, Config{Sink: "s", RetryInitial: time.Millisecond, RetryMax: time.Millisecond}, openStore(t), sink, nil)
	_, err := p.deliver(ctx, []Object{{ID: "x", Body: json.RawMessage(`{"id":"x"}`)}})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "HTTP 500") {
		t.Fatalf("deliver = %v, want context.Canceled naming the last 500", err)
	}
}

func TestRetryReason(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&RetryError{Reason: RetryThrottled}, RetryThrottled},
		{fmt.Errorf("deliver: %w", &RetryError{Reason: RetryServerError}), RetryServerError},
		{&RetryError{Reason: RetryNetwork}, RetryNetwork},
		{&RetryError{Reason: "made-up"}, RetryOther},
		{&FatalError{Cause: "role"}, ""},
		{errors.New("something else"), ""},
	}
	for _, tt := range tests {
		if got := retryReason(tt.err); got != tt.want {
			t.Errorf("retryReason(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// TestVersionsOfOneIDNeverInFlightTogether runs a sink with 4 batches in flight while new
// versions of the same indicators keep arriving, and checks: no two versions of one id are
// ever in flight at once, every id's versions reach the sink with strictly increasing
// modified, and once the outbox is empty the last version sent of each id is its newest.
func TestVersionsOfOneIDNeverInFlightTogether(t *testing.T) {
	st := openStore(t)
	var (
		mu       sync.Mutex
		inFlight = map[string]bool{}
		sent     = map[string][]string{} // id -> modified of each version sent, in order
		lastSent = map[string]string{}   // id -> pattern of the last version sent
		overlap  []string
	)
	sink := newFakeSink(func(_ context.Context, call int, objects []Object) ([]Rejection, error) {
		mu.Lock()
		for _, o := range objects {
			if inFlight[o.ID] {
				overlap = append(overlap, o.ID)
			}
			inFlight[o.ID] = true
			var v struct{ Modified, Pattern string }
			_ = json.Unmarshal(o.Body, &v)
			sent[o.ID] = append(sent[o.ID], v.Modified)
			lastSent[o.ID] = v.Pattern
		}
		mu.Unlock()
		time.Sleep(time.Duration(call%5) * time.Millisecond) // batches come back out of order
		mu.Lock()
		for _, o := range objects {
			delete(inFlight, o.ID)
		}
		mu.Unlock()
		if call%7 == 3 { // some batches fail and are sent again
			return nil, &RetryError{Reason: RetryServerError, Status: 503, Err: errors.New("unavailable")}
		}
		return nil, nil
	})
	p := newPusher(t, Config{Sink: "s", Linger: time.Millisecond, RetryInitial: time.Millisecond, RetryMax: 2 * time.Millisecond, InFlight: 4}, st, sink, nil)
	runPusher(t, p)

	const ids, versions = 30, 12
	now := time.Now()
	for v := range versions {
		for e := range ids / 3 { // three indicators per event
			objs := make([]stix.Object, 3)
			for i := range objs {
				id := indicatorID(e, i)
				body, _ := json.Marshal(map[string]any{"type": "indicator", "id": id, "pattern": fmt.Sprintf("[ipv4-addr:value = '10.%d.%d.%d']", v, e, i)})
				objs[i] = stix.Object{ID: id, Type: "indicator", EventUUID: fmt.Sprint(e), Hash: fmt.Sprint(v), Body: body}
			}
			if _, err := st.Apply("s", fmt.Sprint("event-", e), objs, now.Add(time.Duration(v)*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Millisecond)
	}
	waitDepth(t, st, "s", 0)

	mu.Lock()
	defer mu.Unlock()
	if len(overlap) > 0 {
		t.Fatalf("versions of %v were in flight together", overlap)
	}
	for id, mods := range sent {
		for i := 1; i < len(mods); i++ {
			// A batch sent again after a retryable error repeats the same version.
			if mods[i] < mods[i-1] {
				t.Fatalf("%s: versions sent %v, not increasing", id, mods)
			}
		}
		if !strings.HasPrefix(lastSent[id], fmt.Sprintf("[ipv4-addr:value = '10.%d.", versions-1)) {
			t.Errorf("%s: last version sent is %s, want the newest (10.%d.*)", id, lastSent[id], versions-1)
		}
	}
	if len(sent) != ids {
		t.Errorf("%d ids sent, want %d", len(sent), ids)
	}
}

// TestUnnamedThrottleWaitIsTheQuotaWindow: a throttling answer that names no wait (no
// Retry-After, no "try again in" message) is waited out for the quota's whole window, the time
// the API counts requests against it; other retryable errors without a wait back off.
func TestUnnamedThrottleWaitIsTheQuotaWindow(t *testing.T) {
	p := newPusher(t, Config{Sink: "s", RetryInitial: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond}, openStore(t), newFakeSink(nil), nil)
	quotas := []Quota{{Key: "id", Requests: 100, Per: 30 * time.Second}, {Key: "id/day", Requests: 1000, Per: time.Minute}}
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval = 10*time.Millisecond, 20*time.Millisecond
	bo.Reset()
	if w := p.retryWait(&RetryError{Reason: RetryThrottled, Status: 429}, bo, quotas); w < time.Minute || w > 2*time.Minute {
		t.Errorf("unnamed throttle wait = %s, want the longest quota window (1m) plus jitter", w)
	}
	if w := p.retryWait(&RetryError{Reason: RetryServerError, Status: 503}, bo, quotas); w > time.Second {
		t.Errorf("a 503 without a wait waited %s, want the backoff step", w)
	}
}
