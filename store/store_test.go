package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/mispsentinel/listener/stix"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"go.uber.org/goleak"
)

func TestApplyDiff(t *testing.T) {
	s := openTest(t, Options{})
	const sink, ev = "ws1", "ev-1"
	a, b, c := indicatorID(1), indicatorID(2), indicatorID(3)

	steps := []struct {
		name    string
		desired []stix.Object
		want    DiffStats
		uploads []upload // ID, Hash, Revoked checked
	}{
		{"first version", []stix.Object{indicator(a, "a1", time.Time{}), indicator(b, "b1", time.Time{})},
			DiffStats{New: 2}, []upload{{ID: a, Hash: "a1"}, {ID: b, Hash: "b1"}}},
		{"same again uploads nothing", []stix.Object{indicator(a, "a1", time.Time{}), indicator(b, "b1", time.Time{})},
			DiffStats{Unchanged: 2}, nil},
		{"change one, add one, drop one", []stix.Object{indicator(a, "a2", time.Time{}), indicator(c, "c1", time.Time{})},
			DiffStats{New: 1, Changed: 1, Revoked: 1},
			[]upload{{ID: a, Hash: "a2"}, {ID: c, Hash: "c1"}, {ID: b, Hash: "b1", Revoked: true}}},
		{"dropped one comes back under a new id", []stix.Object{indicator(a, "a2", time.Time{}), indicator(b, "b1", time.Time{}), indicator(c, "c1", time.Time{})},
			DiffStats{New: 1, Unchanged: 2}, []upload{{ID: stix.GenerationID(b, 1), Hash: "b1"}}},
	}
	for i, step := range steps {
		now := t0.Add(time.Duration(i) * time.Minute)
		got, err := s.Apply(sink, ev, step.desired, now)
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if got != step.want {
			t.Errorf("%s: stats %+v, want %+v", step.name, got, step.want)
		}
		ups := drain(t, s, sink, now)
		if len(ups) != len(step.uploads) {
			t.Fatalf("%s: uploads %+v, want %+v", step.name, ups, step.uploads)
		}
		for j, u := range ups {
			w := step.uploads[j]
			if u.ID != w.ID || u.Hash != w.Hash || u.Revoked != w.Revoked {
				t.Errorf("%s: upload %d = %+v, want %+v", step.name, j, u, w)
			}
			if u.Modified != stix.FormatTime(now) {
				t.Errorf("%s: upload %d modified %s, want %s", step.name, j, u.Modified, stix.FormatTime(now))
			}
		}
	}
	st, err := s.Stats(sink)
	if err != nil {
		t.Fatal(err)
	}
	if st.Live != 3 || st.OutboxDepth != 0 || st.LastAccepted.IsZero() {
		t.Errorf("stats %+v, want 3 live, empty outbox", st)
	}
}

func TestModifiedStrictlyIncreasesWithFrozenClock(t *testing.T) {
	s := openTest(t, Options{})
	a := indicatorID(1)
	var last string
	for i := range 5 {
		if _, err := s.Apply("ws", "ev", []stix.Object{indicator(a, fmt.Sprint("h", i), time.Time{})}, t0); err != nil {
			t.Fatal(err)
		}
		ups := drain(t, s, "ws", t0)
		if len(ups) != 1 {
			t.Fatalf("version %d: %d uploads", i, len(ups))
		}
		if ups[0].Modified <= last {
			t.Errorf("version %d: modified %s not after %s", i, ups[0].Modified, last)
		}
		last = ups[0].Modified
	}
	if _, err := s.RemoveEvent("ws", "ev", t0); err != nil {
		t.Fatal(err)
	}
	ups := drain(t, s, "ws", t0)
	if len(ups) != 1 || !ups[0].Revoked || ups[0].Modified <= last {
		t.Errorf("revocation %+v, want revoked with modified after %s", ups, last)
	}
}

func TestRefreshWindow(t *testing.T) {
	window := 24 * time.Hour
	tests := []struct {
		name         string
		sent, wanted time.Time
		want         DiffStats
	}{
		{"far from expiry", t0.Add(72 * time.Hour), t0.Add(96 * time.Hour), DiffStats{Unchanged: 1}},
		{"inside window, later expiry", t0.Add(2 * time.Hour), t0.Add(30 * 24 * time.Hour), DiffStats{Refreshed: 1}},
		{"already expired, later expiry", t0.Add(-time.Hour), t0.Add(30 * 24 * time.Hour), DiffStats{Refreshed: 1}},
		{"inside window, same expiry", t0.Add(2 * time.Hour), t0.Add(2 * time.Hour), DiffStats{Unchanged: 1}},
		{"no expiry", time.Time{}, time.Time{}, DiffStats{Unchanged: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t, Options{RefreshWindow: window})
			a := indicatorID(1)
			if _, err := s.Apply("ws", "ev", []stix.Object{indicator(a, "h", tt.sent)}, t0.Add(-48*time.Hour)); err != nil {
				t.Fatal(err)
			}
			drain(t, s, "ws", t0)
			got, err := s.Apply("ws", "ev", []stix.Object{indicator(a, "h", tt.wanted)}, t0)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("stats %+v, want %+v", got, tt.want)
			}
			ups := drain(t, s, "ws", t0)
			if len(ups) != got.Refreshed {
				t.Errorf("%d uploads for %+v", len(ups), got)
			}
			// A refreshed object is not refreshed again on the next reconcile.
			again, err := s.Apply("ws", "ev", []stix.Object{indicator(a, "h", tt.wanted)}, t0)
			if err != nil {
				t.Fatal(err)
			}
			if again != (DiffStats{Unchanged: 1}) {
				t.Errorf("second reconcile %+v, want unchanged", again)
			}
		})
	}
}

func TestSharedObjectsAreNeverRevoked(t *testing.T) {
	s := openTest(t, Options{})
	org := "identity--00000000-0000-4000-8000-0000000000aa"
	a, b := indicatorID(1), indicatorID(2)
	if _, err := s.Apply("ws", "ev-a", []stix.Object{identity(org, "org"), indicator(a, "a", time.Time{})}, t0); err != nil {
		t.Fatal(err)
	}
	got, err := s.Apply("ws", "ev-b", []stix.Object{identity(org, "org"), indicator(b, "b", time.Time{})}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if got != (DiffStats{New: 1, Unchanged: 1}) {
		t.Errorf("second event %+v: the identity should be unchanged", got)
	}
	drain(t, s, "ws", t0)
	got, err = s.RemoveEvent("ws", "ev-a", t0)
	if err != nil {
		t.Fatal(err)
	}
	ups := drain(t, s, "ws", t0)
	if got != (DiffStats{Revoked: 1}) || len(ups) != 1 || ups[0].ID != a {
		t.Errorf("remove: %+v uploads %+v, want only %s revoked", got, ups, a)
	}
	got, err = s.Apply("ws", "ev-b", []stix.Object{identity(org, "org2"), indicator(b, "b", time.Time{})}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if got != (DiffStats{Changed: 1, Unchanged: 1}) {
		t.Errorf("identity change %+v, want one change", got)
	}
	var events []string
	if err := s.Events("ws", func(e string) error { events = append(events, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(events, []string{"ev-b"}) {
		t.Errorf("events %v, want [ev-b]", events)
	}
}

func TestOutboxOutcome(t *testing.T) {
	s := openTest(t, Options{})
	var desired []stix.Object
	for i := range 6 {
		desired = append(desired, indicator(indicatorID(i), "h", time.Time{}))
	}
	if _, err := s.Apply("ws", "ev", desired, t0); err != nil {
		t.Fatal(err)
	}
	b, err := s.Begin("ws", 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Items) != 4 {
		t.Fatalf("batch of %d, want 4", len(b.Items))
	}
	// A second batch may be in flight at once: it holds the items after the first.
	second, err := s.Begin("ws", 4)
	if err != nil || len(second.Items) != 2 || second.Items[0].Seq <= b.Items[3].Seq {
		t.Fatalf("second Begin: %+v, %v; want the 2 items after the first batch", second, err)
	}
	if err := s.End(second, second.KeepAll(), t0); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Outcome{{Accepted: []int{4}}, {Accepted: []int{1}, Retry: []int{1}}, {Rejected: []Rejection{{Index: -1}}}} {
		if err := s.End(b, bad, t0); err == nil {
			t.Errorf("End(%+v) accepted an invalid outcome", bad)
		}
		if b, err = s.Begin("ws", 4); err != nil { // the failed End released the batch
			t.Fatal(err)
		}
	}
	// 0 accepted, 1 rejected, 2 retried, 3 not mentioned (retried).
	if err := s.End(b, Outcome{Accepted: []int{0}, Rejected: []Rejection{{Index: 1, Message: "bad pattern"}}, Retry: []int{2}}, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	left := peek(t, s, "ws")
	var ids []string
	for _, u := range left {
		ids = append(ids, u.ID)
	}
	if want := []string{indicatorID(2), indicatorID(3), indicatorID(4), indicatorID(5)}; !slices.Equal(ids, want) {
		t.Errorf("outbox after End %v, want %v", ids, want)
	}
	dl, err := s.DeadLetters("ws", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dl) != 1 || dl[0].ID != indicatorID(1) || dl[0].Message != "bad pattern" || !dl[0].RejectedAt.Equal(t0.Add(time.Second)) {
		t.Fatalf("dead letters %+v", dl)
	}
	st, err := s.Stats("ws")
	if err != nil {
		t.Fatal(err)
	}
	if st.OutboxDepth != 4 || st.DeadLetters != 1 || !st.OldestEnqueuedAt.Equal(t0) {
		t.Errorf("stats %+v", st)
	}

	// The rejected content is not queued again by a reconcile; a content change is.
	got, err := s.Apply("ws", "ev", desired, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if got.Enqueued() != 0 {
		t.Errorf("reconcile re-queued %+v", got)
	}
	// Requeue sends it again with a later modified.
	n, err := s.Requeue("ws", nil, t0.Add(2*time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("requeue: %d, %v", n, err)
	}
	ups := drain(t, s, "ws", t0)
	if len(ups) != 5 || ups[4].ID != indicatorID(1) || ups[4].Modified != stix.FormatTime(t0.Add(2*time.Minute)) {
		t.Errorf("after requeue uploads %+v", ups)
	}
	if st, _ := s.Stats("ws"); st.DeadLetters != 0 || st.OutboxDepth != 0 {
		t.Errorf("stats after drain %+v", st)
	}
}

func TestRequeueDropsSupersededDeadLetters(t *testing.T) {
	s := openTest(t, Options{})
	a := indicatorID(1)
	if _, err := s.Apply("ws", "ev", []stix.Object{indicator(a, "v1", time.Time{})}, t0); err != nil {
		t.Fatal(err)
	}
	b, _ := s.Begin("ws", 10)
	if err := s.End(b, Outcome{Rejected: []Rejection{{Index: 0, Message: "no"}}}, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply("ws", "ev", []stix.Object{indicator(a, "v2", time.Time{})}, t0); err != nil {
		t.Fatal(err)
	}
	n, err := s.Requeue("ws", []uint64{b.Items[0].Seq, 999}, t0)
	if err != nil || n != 0 {
		t.Fatalf("requeue: %d, %v; want 0 (superseded)", n, err)
	}
	ups := drain(t, s, "ws", t0)
	if len(ups) != 1 || ups[0].Hash != "v2" {
		t.Errorf("uploads %+v, want only v2", ups)
	}
	if dl, _ := s.DeadLetters("ws", 0); len(dl) != 0 {
		t.Errorf("dead letters left: %+v", dl)
	}
}

func TestCoalescing(t *testing.T) {
	s := openTest(t, Options{})
	a, b := indicatorID(1), indicatorID(2)
	if _, err := s.Apply("ws", "ev", []stix.Object{indicator(a, "a1", time.Time{}), indicator(b, "b1", time.Time{})}, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply("ws", "ev", []stix.Object{indicator(a, "a2", time.Time{}), indicator(b, "b1", time.Time{})}, t0); err != nil {
		t.Fatal(err)
	}
	got := peek(t, s, "ws")
	if len(got) != 2 || got[0].ID != b || got[1].Hash != "a2" {
		t.Fatalf("pending a1 should be replaced by a2 at the tail: %+v", got)
	}
	// An item in flight is never replaced: the newer version queues behind it.
	batch, err := s.Begin("ws", 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply("ws", "ev", []stix.Object{indicator(a, "a3", time.Time{}), indicator(b, "b1", time.Time{})}, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.End(batch, Outcome{Accepted: []int{0, 1}}, t0); err != nil {
		t.Fatal(err)
	}
	ups := drain(t, s, "ws", t0)
	if len(ups) != 1 || ups[0].Hash != "a3" || ups[0].Modified <= got[1].Modified {
		t.Errorf("after in-flight ack: %+v", ups)
	}
	if st, _ := s.Stats("ws"); st.OutboxDepth != 0 {
		t.Errorf("depth %d after drain", st.OutboxDepth)
	}
}

func TestLargeEventIsChunkedAndComplete(t *testing.T) {
	s := openTest(t, Options{})
	const n = 12000
	desired := make([]stix.Object, n)
	for i := range desired {
		desired[i] = benchIndicator(i, "v1") // about 1 KB each: 12 MB of outbox, many chunks
	}
	got, err := s.Apply("ws", "big", desired, t0)
	if err != nil {
		t.Fatal(err)
	}
	if got.New != n {
		t.Fatalf("stats %+v", got)
	}
	if st, _ := s.Stats("ws"); st.OutboxDepth != n || st.Live != n {
		t.Errorf("stats %+v", st)
	}
	got, err = s.RemoveEvent("ws", "big", t0)
	if err != nil || got.Revoked != n {
		t.Fatalf("remove: %+v, %v", got, err)
	}
	ups := drain(t, s, "ws", t0)
	if len(ups) != n {
		t.Fatalf("%d uploads after coalescing, want %d revocations", len(ups), n)
	}
	for _, u := range ups {
		if !u.Revoked {
			t.Fatalf("upload %+v is not a revocation", u)
		}
	}
}

func TestPersistsAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply("ws", "ev", []stix.Object{indicator(indicatorID(1), "h", time.Time{})}, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.SetWatermark("reconcile/ws", t0); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); err == nil {
		t.Error("second Open of a locked directory succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Begin("ws", 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Begin after Close: %v", err)
	}
	s = openTest(t, Options{})
	s2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	wm, err := s2.Watermark("reconcile/ws")
	if err != nil || !wm.Equal(t0) {
		t.Errorf("watermark %v, %v", wm, err)
	}
	if wm, err := s2.Watermark("absent"); err != nil || !wm.IsZero() {
		t.Errorf("absent watermark %v, %v", wm, err)
	}
	sinks, err := s2.Sinks()
	if err != nil || !slices.Equal(sinks, []string{"ws"}) {
		t.Errorf("sinks %v, %v", sinks, err)
	}
	if ups := peek(t, s2, "ws"); len(ups) != 1 {
		t.Errorf("outbox after reopen %+v", ups)
	}
	if got, err := s2.Apply("ws", "ev", []stix.Object{indicator(indicatorID(1), "h", time.Time{})}, t0); err != nil || got != (DiffStats{Unchanged: 1}) {
		t.Errorf("re-apply after reopen %+v, %v", got, err)
	}
}

func TestReadySignals(t *testing.T) {
	s := openTest(t, Options{})
	ready := s.Ready("ws")
	select {
	case <-ready:
		t.Fatal("ready before anything was queued")
	default:
	}
	for i := range 3 {
		if _, err := s.Apply("ws", "ev", []stix.Object{indicator(indicatorID(i), "h", time.Time{})}, t0); err != nil {
			t.Fatal(err)
		}
	}
	<-ready // coalesced: one signal for three enqueues
	select {
	case <-ready:
		t.Fatal("signals were not coalesced")
	default:
	}
	if _, err := s.RemoveEvent("ws", "ev", t0); err != nil {
		t.Fatal(err)
	}
	<-ready
}

func TestBadInput(t *testing.T) {
	s := openTest(t, Options{})
	a := indicatorID(1)
	tests := []struct {
		name    string
		sink    string
		event   string
		desired []stix.Object
	}{
		{"empty sink", "", "ev", nil},
		{"empty event", "ws", "", nil},
		{"empty id", "ws", "ev", []stix.Object{{Hash: "h", Body: []byte("{}")}}},
		{"empty hash", "ws", "ev", []stix.Object{{ID: a, Body: []byte("{}")}}},
		{"empty body", "ws", "ev", []stix.Object{{ID: a, Hash: "h"}}},
		{"duplicate id, different content", "ws", "ev", []stix.Object{indicator(a, "1", time.Time{}), indicator(a, "2", time.Time{})}},
		{"body not JSON", "ws", "ev", []stix.Object{{ID: a, Hash: "h", Body: []byte("{not json")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.Apply(tt.sink, tt.event, tt.desired, t0); err == nil {
				t.Error("accepted")
			}
		})
	}
	if st, _ := s.Stats("ws"); st != (SinkStats{}) {
		t.Errorf("failed applies left state behind: %+v", st)
	}
	if _, err := s.Begin("ws", 0); err == nil {
		t.Error("Begin(0) accepted")
	}
	if err := s.End(&Batch{Sink: "ws", Items: []Item{{Seq: 7}}}, Outcome{}, t0); err == nil {
		t.Error("End of a batch that was never begun accepted")
	}
	got, err := s.Apply("ws", "ev", []stix.Object{indicator(a, "1", time.Time{}), indicator(a, "1", time.Time{})}, t0)
	if err != nil || got != (DiffStats{New: 1}) {
		t.Errorf("exact duplicate: %+v, %v", got, err)
	}
}

func TestDecodersRejectGarbage(t *testing.T) {
	inputs := [][]byte{nil, {}, {0}, {recordVersion}, {recordVersion, 0xff}, {recordVersion, 0x80, 0x80, 0x80},
		append([]byte{recordVersion}, 0xfe, 0xff, 0xff, 0xff, 0x0f)}
	for _, in := range inputs {
		if _, err := decodeState(in); err == nil {
			t.Errorf("decodeState(%x) accepted", in)
		}
		if _, err := decodeItem(in); err == nil {
			t.Errorf("decodeItem(%x) accepted", in)
		}
		if _, err := decodeDead(in); err == nil {
			t.Errorf("decodeDead(%x) accepted", in)
		}
		if _, err := decodeMeta(in); err == nil {
			t.Errorf("decodeMeta(%x) accepted", in)
		}
		_, _ = decodeIDList(in) // must not panic; an empty list is valid
	}
}

func TestConcurrentUse(t *testing.T) {
	s := openTest(t, Options{})
	sinks := []string{"ws1", "ws2"}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for v := range 20 {
				var desired []stix.Object
				for i := range 10 {
					desired = append(desired, indicator(indicatorID(w*100+i), fmt.Sprint(v%3), time.Time{}))
				}
				for _, sink := range sinks {
					if _, err := s.Apply(sink, fmt.Sprint("ev", w), desired, t0.Add(time.Duration(v)*time.Second)); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	uploads := make(map[string][]upload)
	var mu sync.Mutex
	stop := make(chan struct{})
	var pushers sync.WaitGroup
	for _, sink := range sinks {
		pushers.Go(func() {
			for {
				b, err := s.Begin(sink, 7)
				if err != nil {
					t.Error(err)
					return
				}
				if len(b.Items) == 0 {
					select {
					case <-stop:
						return
					case <-s.Ready(sink):
					case <-time.After(10 * time.Millisecond):
					}
					continue
				}
				var acc []int
				mu.Lock()
				for i, it := range b.Items {
					acc = append(acc, i)
					uploads[sink] = append(uploads[sink], decodeUpload(t, it))
				}
				mu.Unlock()
				if err := s.End(b, Outcome{Accepted: acc}, t0); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	pushers.Wait()
	for _, sink := range sinks {
		uploads[sink] = append(uploads[sink], drain(t, s, sink, t0)...)
		last := make(map[string]upload)
		for _, u := range uploads[sink] {
			if p, ok := last[u.ID]; ok && u.Modified <= p.Modified {
				t.Errorf("%s: %s modified %s after %s", sink, u.ID, u.Modified, p.Modified)
			}
			last[u.ID] = u
		}
		if len(last) != 40 {
			t.Errorf("%s: %d ids uploaded, want 40", sink, len(last))
		}
		for id, u := range last {
			if u.Hash != "1" { // version 19 % 3
				t.Errorf("%s: %s ends with %q", sink, id, u.Hash)
			}
		}
	}
}

func TestInterruptedLargeApplyConverges(t *testing.T) {
	s := openTest(t, Options{})
	old := make([]stix.Object, 3000)
	for i := range old {
		old[i] = benchIndicator(i, "v1")
	}
	if _, err := s.Apply("ws", "big", old, t0); err != nil {
		t.Fatal(err)
	}
	drain(t, s, "ws", t0)
	// The new version drops the first half and adds 3000 new objects; it dies after chunk 2.
	desired := slices.Clone(old[1500:])
	for i := range 3000 {
		desired = append(desired, benchIndicator(10000+i, "v1"))
	}
	crash := errors.New("simulated crash")
	afterChunkCommit = func(chunk int) error {
		if chunk == 2 {
			return crash
		}
		return nil
	}
	_, err := s.Apply("ws", "big", desired, t0)
	afterChunkCommit = nil
	if !errors.Is(err, crash) {
		t.Fatalf("apply: %v, want the simulated crash", err)
	}
	var ids []string
	if err := s.db.View(func(txn *badger.Txn) error {
		var err error
		ids, err = readIDList(txn, "ws", "big")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 6000 {
		t.Errorf("id list after the interrupted apply has %d ids, want the union of 6000", len(ids))
	}
	st, err := s.Stats("ws")
	if err != nil {
		t.Fatal(err)
	}
	partial := int(st.OutboxDepth)
	if partial == 0 || partial >= 3000 || st.Live != 3000+st.OutboxDepth {
		t.Fatalf("interrupted apply left %+v, want some but not all of the 3000 new objects", st)
	}
	// Applying the same version again completes it without queueing anything twice.
	got, err := s.Apply("ws", "big", desired, t0)
	if err != nil {
		t.Fatal(err)
	}
	if want := (DiffStats{New: 3000 - partial, Unchanged: 1500 + partial, Revoked: 1500}); got != want {
		t.Errorf("completing apply %+v, want %+v", got, want)
	}
	ups := drain(t, s, "ws", t0)
	revoked := 0
	seen := map[string]bool{}
	for _, u := range ups {
		if seen[u.ID] {
			t.Fatalf("%s uploaded twice", u.ID)
		}
		seen[u.ID] = true
		if u.Revoked {
			revoked++
		}
	}
	if len(ups) != 4500 || revoked != 1500 {
		t.Errorf("%d uploads, %d revocations; want 4500 and 1500", len(ups), revoked)
	}
	if st, _ := s.Stats("ws"); st.Live != 4500 {
		t.Errorf("live %d, want 4500", st.Live)
	}
}

func TestCloseStopsEveryGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s, err := Open(t.TempDir(), Options{GCInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply("ws", "ev", []stix.Object{indicator(indicatorID(1), "h", time.Time{})}, t0); err != nil {
		t.Fatal(err)
	}
	drain(t, s, "ws", t0)
	time.Sleep(5 * time.Millisecond) // let the GC ticker fire at least once
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestBadgerLoggerRoutesLevels(t *testing.T) {
	l, hook := logtest.NewNullLogger()
	l.SetLevel(logrus.DebugLevel)
	bl := badgerLogger{l.WithField("component", "badger")}
	bl.Debugf("debug %d\n", 1)
	bl.Infof("info %d\n", 2)
	bl.Warningf("warning %d\n", 3)
	bl.Errorf("error %d\n", 4)
	var got []string
	for _, e := range hook.AllEntries() {
		got = append(got, e.Level.String()+":"+e.Message)
	}
	if want := []string{"debug:info 2", "warning:warning 3", "error:error 4"}; !slices.Equal(got, want) {
		t.Errorf("logged %q, want %q", got, want)
	}
}

func TestBackupIntoScratchCopy(t *testing.T) {
	dir := t.TempDir()
	real, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := indicatorID(1), indicatorID(2)
	if _, err := real.Apply("ws", "ev", []stix.Object{indicator(a, "a1", time.Time{}), indicator(b, "b1", time.Time{})}, t0); err != nil {
		t.Fatal(err)
	}
	drain(t, real, "ws", t0)
	if _, err := Open(dir, Options{ReadOnly: true}); err == nil {
		t.Error("read-only open succeeded while the store is open for writing")
	}
	if err := real.Close(); err != nil {
		t.Fatal(err)
	}

	ro, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var snap bytes.Buffer
	if err := ro.Backup(&snap); err != nil {
		t.Fatal(err)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	scratch := openTest(t, Options{InMemory: true})
	if err := scratch.Load(&snap); err != nil {
		t.Fatal(err)
	}
	// The copy diffs against the real state: only the change is queued.
	got, err := scratch.Apply("ws", "ev", []stix.Object{indicator(a, "a2", time.Time{})}, t0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if got != (DiffStats{Changed: 1, Revoked: 1}) {
		t.Errorf("apply on the copy %+v", got)
	}
	// The real store is untouched.
	again, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if st, _ := again.Stats("ws"); st.OutboxDepth != 0 || st.Live != 2 {
		t.Errorf("real store changed: %+v", st)
	}
}

// TestExpiredNotRevoked: an object the event stops yielding after its valid_until has passed
// (a decayed indicator) is ended without an upload; one that comes back gets a new
// generation id, as after a revocation.
func TestExpiredNotRevoked(t *testing.T) {
	s := openTest(t, Options{})
	id1, id2 := indicatorID(1), indicatorID(2)
	until := t0.Add(24 * time.Hour)
	if _, err := s.Apply("a", "ev", []stix.Object{indicator(id1, "h1", until), indicator(id2, "h2", until.Add(48*time.Hour))}, t0); err != nil {
		t.Fatal(err)
	}
	drain(t, s, "a", t0)

	// A day and a minute later: id1 expired in Sentinel; the event yields only id2 now.
	later := until.Add(time.Minute)
	st, err := s.Apply("a", "ev", []stix.Object{indicator(id2, "h2", until.Add(48*time.Hour))}, later)
	if err != nil {
		t.Fatal(err)
	}
	if st.Expired != 1 || st.Revoked != 0 || st.Enqueued() != 0 {
		t.Errorf("stats %+v, want one expired and nothing queued", st)
	}
	if got := peek(t, s, "a"); len(got) != 0 {
		t.Errorf("queued %+v, want nothing", got)
	}
	// Not yet expired: removal still revokes.
	st, err = s.Apply("a", "ev", nil, later)
	if err != nil || st.Revoked != 1 || st.Expired != 0 {
		t.Errorf("stats %+v, %v; want id2 revoked", st, err)
	}
	drain(t, s, "a", later)

	// id1 comes back (its score rose): a new generation, never the expired id.
	st, err = s.Apply("a", "ev", []stix.Object{indicator(id1, "h1", later.Add(24*time.Hour))}, later)
	if err != nil || st.New != 1 {
		t.Fatalf("stats %+v, %v; want one new", st, err)
	}
	got := drain(t, s, "a", later)
	if len(got) != 1 || got[0].ID != stix.GenerationID(id1, 1) || got[0].Revoked {
		t.Errorf("re-activation uploads %+v, want %s", got, stix.GenerationID(id1, 1))
	}
}

// TestEarlierValidUntilIsSent: an unchanged object whose desired valid_until moves earlier
// (a decaying model now ends it sooner) is re-sent once, fast path or not; a move of seconds
// (a score-derived time recovered again) is not.
func TestEarlierValidUntilIsSent(t *testing.T) {
	s := openTest(t, Options{RefreshWindow: 24 * time.Hour})
	id := indicatorID(1)
	far := t0.Add(180 * 24 * time.Hour)
	apply := func(until time.Time, now time.Time) DiffStats {
		t.Helper()
		st, err := s.Apply("a", "ev", []stix.Object{indicator(id, "h1", until)}, now)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	apply(far, t0)
	drain(t, s, "a", t0)
	if st := apply(far, t0); st.Unchanged != 1 { // records the digest for the fast path
		t.Fatalf("stats %+v", st)
	}
	soon := t0.Add(3 * 24 * time.Hour)
	if st := apply(soon, t0.Add(time.Minute)); st.Refreshed != 1 {
		t.Errorf("earlier valid_until: stats %+v, want one re-send", st)
	}
	got := drain(t, s, "a", t0)
	if len(got) != 1 || got[0].ID != id {
		t.Fatalf("uploads %+v", got)
	}
	for _, jitter := range []time.Duration{-20 * time.Second, 20 * time.Second, 0} {
		if st := apply(soon.Add(jitter), t0.Add(2*time.Minute)); st.Enqueued() != 0 {
			t.Errorf("valid_until moved by %s: stats %+v, want nothing queued", jitter, st)
		}
	}
}

// TestBatchesInFlightHoldBackLaterVersions: several batches of a sink may be in flight, but
// never two versions of one id; the later version is handed out once the earlier one is
// ended, and the head of the outbox never passes an item still queued, whatever order the
// batches end in.
func TestBatchesInFlightHoldBackLaterVersions(t *testing.T) {
	s := openTest(t, Options{})
	apply := func(ev, id, hash string) {
		t.Helper()
		if _, err := s.Apply("ws", ev, []stix.Object{indicator(id, hash, time.Time{})}, t0); err != nil {
			t.Fatal(err)
		}
	}
	begin := func() *Batch {
		t.Helper()
		b, err := s.Begin("ws", 10)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ids := func(b *Batch) []string {
		var out []string
		for _, it := range b.Items {
			out = append(out, it.ID)
		}
		return out
	}
	a, c := indicatorID(1), indicatorID(2)
	apply("ev-a", a, "v1")
	first := begin() // [a v1]
	apply("ev-a", a, "v2")
	apply("ev-c", c, "v1")
	second := begin() // a v2 held back: [c]
	if got := ids(second); !slices.Equal(got, []string{c}) {
		t.Fatalf("second batch %v, want only %s (a's second version waits for its first)", got, c)
	}
	if b := begin(); len(b.Items) != 0 {
		t.Fatalf("third batch %v, want nothing while a is in flight", ids(b))
	}
	// The later batch ends first: the head must not pass a's queued second version.
	if err := s.End(second, second.AcceptAll(), t0); err != nil {
		t.Fatal(err)
	}
	if err := s.End(first, first.AcceptAll(), t0); err != nil {
		t.Fatal(err)
	}
	third := begin()
	if got := ids(third); !slices.Equal(got, []string{a}) {
		t.Fatalf("after both ended: %v, want a's second version", got)
	}
	var obj struct {
		XHash string `json:"x_hash"`
	}
	if err := json.Unmarshal(third.Items[0].Object, &obj); err != nil || obj.XHash != "v2" {
		t.Fatalf("handed out %s, want version v2", third.Items[0].Object)
	}
	if err := s.End(third, third.AcceptAll(), t0); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Stats("ws"); err != nil || st.OutboxDepth != 0 {
		t.Fatalf("stats %+v, %v; want an empty outbox", st, err)
	}
}

// TestApplyAgedNeverRefreshes: an event that aged out of the search's time window keeps what
// Sentinel holds until its valid_until; what changed in it is still sent and what it no longer
// yields is still revoked.
func TestApplyAgedNeverRefreshes(t *testing.T) {
	s := openTest(t, Options{RefreshWindow: 24 * time.Hour})
	a, b, c := indicatorID(1), indicatorID(2), indicatorID(3)
	expiring := t0.Add(2 * time.Hour)
	if _, err := s.Apply("ws", "ev", []stix.Object{indicator(a, "h", expiring), indicator(b, "h", expiring), indicator(c, "h", expiring)}, t0.Add(-48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	drain(t, s, "ws", t0)
	later := t0.Add(30 * 24 * time.Hour)
	// a unchanged (inside the refresh window), b changed, c no longer yielded.
	got, err := s.ApplyAged("ws", "ev", []stix.Object{indicator(a, "h", later), indicator(b, "h2", later)}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if want := (DiffStats{Unchanged: 1, Changed: 1, Revoked: 1}); got != want {
		t.Errorf("ApplyAged stats %+v, want %+v", got, want)
	}
	if ups := drain(t, s, "ws", t0); len(ups) != 2 {
		t.Errorf("%d uploads, want the change and the revocation", len(ups))
	}
	// The same event back inside the window is refreshed as usual.
	got, err = s.Apply("ws", "ev", []stix.Object{indicator(a, "h", later), indicator(b, "h2", later)}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if want := (DiffStats{Unchanged: 1, Refreshed: 1}); got != want {
		t.Errorf("Apply after ApplyAged %+v, want %+v", got, want)
	}
}
