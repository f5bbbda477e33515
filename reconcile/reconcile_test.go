package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/misp"
	"github.com/mispsentinel/listener/pipeline"
	"github.com/mispsentinel/listener/store"
)

// fakeMISP holds events; inFilter says which the user's filters select. A search with a
// "uuid" filter returns that event only if it is in the filter; a search with a "timestamp" or
// "publish_timestamp" window returns the selected events whose field is inside it.
type fakeMISP struct {
	mu       sync.Mutex
	events   map[string]*misp.Event
	inFilter map[string]bool
	searches []map[string]any
	views    []string
	// failAfterPages makes the search fail once this many pages were delivered (0: never).
	failAfterPages int
	viewErr        error
	// skipInPages holds events the paged search misses although they match (as offset
	// paging does when an earlier event leaves the result mid-scan); SearchEvent finds them.
	skipInPages    map[string]bool
	singleSearches []string
	// beforePage, when set, runs after a page was read and before the reconciler gets it.
	beforePage func(page []*misp.Event)
	// poisoned events cannot be decoded with their attributes (a metadata listing reads them).
	poisoned map[string]bool
	// listConcurrency is the concurrency of the last ListEvents call.
	listConcurrency int
}

func newFakeMISP() *fakeMISP {
	return &fakeMISP{events: map[string]*misp.Event{}, inFilter: map[string]bool{}}
}

func (f *fakeMISP) add(uuid string, inFilter bool, modified, published time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events[uuid] = &misp.Event{UUID: uuid, Timestamp: modified, PublishTimestamp: published}
	f.inFilter[uuid] = inFilter
}

func (f *fakeMISP) SearchEvent(_ context.Context, uuid string, filters map[string]any) (*misp.Event, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.singleSearches = append(f.singleSearches, uuid)
	ev, ok := f.events[uuid]
	if !ok || !f.inFilter[uuid] {
		return nil, false, nil
	}
	if f.poisoned[uuid] {
		return nil, false, fmt.Errorf("search event %s: %w", uuid, misp.UndecodableEvent{UUID: uuid, Err: errors.New("field Event.Attribute[0].first_seen: not a time")})
	}
	if !inWindow(filters, "timestamp", ev.Timestamp) || !inWindow(filters, "publish_timestamp", ev.PublishTimestamp) {
		return nil, false, nil
	}
	return ev, true, nil
}

func (f *fakeMISP) StreamEvents(ctx context.Context, filters map[string]any, pageSize int, v misp.Visitor) (misp.SearchStats, error) {
	f.mu.Lock()
	f.searches = append(f.searches, maps.Clone(filters))
	var out []*misp.Event
	for _, uuid := range slices.Sorted(maps.Keys(f.events)) {
		ev := f.events[uuid]
		if !f.inFilter[uuid] || f.skipInPages[uuid] {
			continue
		}
		if want, ok := filters["uuid"]; ok && !uuidWanted(want, uuid) {
			continue
		}
		if !inWindow(filters, "timestamp", ev.Timestamp) || !inWindow(filters, "publish_timestamp", ev.PublishTimestamp) {
			continue
		}
		out = append(out, ev)
	}
	failAfter, beforePage, poisoned := f.failAfterPages, f.beforePage, maps.Clone(f.poisoned)
	f.mu.Unlock()
	var st misp.SearchStats
	for pages := 0; len(out) > 0; pages++ {
		if failAfter > 0 && pages == failAfter {
			return st, errors.New("page failed: 500 after 4 attempts")
		}
		if v.Request != nil {
			v.Request()
		}
		n := min(pageSize, len(out))
		if beforePage != nil {
			beforePage(out[:n])
		}
		for _, ev := range out[:n] {
			if poisoned[ev.UUID] && filters["metadata"] != true {
				st.Undecodable++
				v.Undecodable(misp.UndecodableEvent{UUID: ev.UUID, Err: errors.New("field Event.Attribute[0].first_seen: not a time")})
				continue
			}
			if err := v.Event(ev); err != nil {
				return st, err
			}
			st.Events++
		}
		if v.PageEnd != nil {
			if err := v.PageEnd(); err != nil {
				return st, err
			}
		}
		st.Pages++
		out = out[n:]
	}
	return st, nil
}

// ListEvents lists as StreamEvents does (the fake has no network to overlap); it records the
// concurrency it was asked for.
func (f *fakeMISP) ListEvents(ctx context.Context, filters map[string]any, pageSize, concurrency int, v misp.Visitor) (misp.SearchStats, error) {
	if v.Request != nil {
		return misp.SearchStats{}, errors.New("list events: a listing takes no Request callback")
	}
	f.mu.Lock()
	f.listConcurrency = concurrency
	f.mu.Unlock()
	return f.StreamEvents(ctx, filters, pageSize, v)
}

// uuidWanted reports whether a restSearch "uuid" filter (one uuid or a list) selects uuid.
func uuidWanted(filter any, uuid string) bool {
	switch w := filter.(type) {
	case string:
		return w == uuid
	case []string:
		return slices.Contains(w, uuid)
	}
	return false
}

func inWindow(filters map[string]any, key string, t time.Time) bool {
	v, ok := filters[key]
	if !ok {
		return true
	}
	var from int64
	fmt.Sscan(v.(string), &from)
	return !t.IsZero() && t.Unix() >= from
}

func (f *fakeMISP) ViewEvent(_ context.Context, uuid string) (*misp.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.views = append(f.views, uuid)
	if f.viewErr != nil {
		return nil, f.viewErr
	}
	ev, ok := f.events[uuid]
	if !ok {
		return nil, fmt.Errorf("view event %s: %w", uuid, misp.ErrEventNotFound)
	}
	return ev, nil
}

// fakeApplier records what the reconciler applied and removed and keeps the set of events
// each sink exports, like the store's event index.
type fakeApplier struct {
	mu       sync.Mutex
	sinks    []string
	applied  []string
	aged     []string // events applied without refresh (outside the time window)
	removed  []string
	exported map[string]map[string]bool // sink -> events
	failOn   string
}

func newFakeApplier(sinks ...string) *fakeApplier {
	a := &fakeApplier{sinks: sinks, exported: map[string]map[string]bool{}}
	for _, s := range sinks {
		a.exported[s] = map[string]bool{}
	}
	return a
}

func (a *fakeApplier) ApplyEvent(ev *misp.Event) (pipeline.Stats, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ev.UUID == a.failOn {
		return nil, fmt.Errorf("apply event %s: disk full", ev.UUID)
	}
	a.applied = append(a.applied, ev.UUID)
	st := pipeline.Stats{}
	for _, s := range a.sinks {
		if a.exported[s][ev.UUID] {
			st[s] = store.DiffStats{Unchanged: 1}
		} else {
			st[s] = store.DiffStats{New: 1}
		}
		a.exported[s][ev.UUID] = true
	}
	return st, nil
}

func (a *fakeApplier) ApplyAgedEvent(ev *misp.Event) (pipeline.Stats, error) {
	a.mu.Lock()
	a.aged = append(a.aged, ev.UUID)
	a.mu.Unlock()
	return a.ApplyEvent(ev)
}

func (a *fakeApplier) RemoveEvent(uuid string) (pipeline.Stats, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.removed = append(a.removed, uuid)
	st := pipeline.Stats{}
	for _, s := range a.sinks {
		if a.exported[s][uuid] {
			st[s] = store.DiffStats{Revoked: 1}
		}
		delete(a.exported[s], uuid)
	}
	return st, nil
}

// ReadMark, ApplyRead and RemoveRead: the fake has no real-time path, so nothing is
// superseded (TestRealtimeDeleteDuringPageIsNotUndone uses the real pipeline).
func (a *fakeApplier) ReadMark() uint64 { return 0 }

func (a *fakeApplier) ApplyRead(ev *misp.Event, _ uint64) (pipeline.Stats, bool, error) {
	st, err := a.ApplyEvent(ev)
	return st, false, err
}

func (a *fakeApplier) ApplyAgedRead(ev *misp.Event, _ uint64) (pipeline.Stats, bool, error) {
	st, err := a.ApplyAgedEvent(ev)
	return st, false, err
}

func (a *fakeApplier) RemoveRead(uuid string, _ uint64) (pipeline.Stats, bool, error) {
	st, err := a.RemoveEvent(uuid)
	return st, false, err
}

func (a *fakeApplier) Sinks() []pipeline.Sink {
	var out []pipeline.Sink
	for _, s := range a.sinks {
		out = append(out, pipeline.Sink{Name: s})
	}
	return out
}

func (a *fakeApplier) appliedList() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.applied)
}

func (a *fakeApplier) removedList() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := slices.Clone(a.removed)
	sort.Strings(out)
	return out
}

func (a *fakeApplier) reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.applied, a.removed = nil, nil
}

// fakeState lists the applier's exported events and keeps watermarks in memory.
type fakeState struct {
	mu     sync.Mutex
	apply  *fakeApplier
	marks  map[string]time.Time
	graces map[string]time.Time // grace marks by event uuid
	stamps map[string]store.EventStamp
}

func (s *fakeState) Events(sink string, fn func(string) error) error {
	s.apply.mu.Lock()
	events := slices.Sorted(maps.Keys(s.apply.exported[sink]))
	s.apply.mu.Unlock()
	for _, ev := range events {
		if err := fn(ev); err != nil {
			return err
		}
	}
	return nil
}

func (s *fakeState) Watermark(name string) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.marks[name], nil
}

func (s *fakeState) SetWatermark(name string, t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.marks[name] = t
	return nil
}

func (s *fakeState) GraceMark(eventUUID string) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.graces[eventUUID], nil
}

func (s *fakeState) SetGraceMark(eventUUID string, t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.graces[eventUUID] = t
	return nil
}

func (s *fakeState) EventStamps(uuids []string) (map[string]store.EventStamp, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]store.EventStamp{}
	for _, u := range uuids {
		if st, ok := s.stamps[u]; ok {
			out[u] = st
		}
	}
	return out, nil
}

func (s *fakeState) SetEventStamps(stamps map[string]store.EventStamp, forget []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stamps == nil {
		s.stamps = map[string]store.EventStamp{}
	}
	maps.Copy(s.stamps, stamps)
	for _, u := range forget {
		delete(s.stamps, u)
	}
	return nil
}

func (s *fakeState) DeleteGraceMark(eventUUID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.graces, eventUUID)
	return nil
}

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type rig struct {
	misp  *fakeMISP
	apply *fakeApplier
	state *fakeState
	clock *testClock
	r     *Reconciler
}

// complete returns cfg with the zero fields the reconciler needs set as the daemon sets them
// for an empty configuration: the reconciler keeps no defaults of its own.
func complete(cfg Config) Config {
	d := config.Default()
	if cfg.PageSize == 0 {
		cfg.PageSize = d.MISP.PageSize
	}
	if cfg.Overlap == 0 {
		cfg.Overlap = d.Reconcile.Overlap
	}
	if cfg.CatchUpRetry == 0 {
		cfg.CatchUpRetry = config.ReconcileCatchUpRetry
	}
	if cfg.ListPageSize == 0 {
		cfg.ListPageSize = config.ReconcileListPageSize
	}
	if cfg.FetchBatch == 0 {
		cfg.FetchBatch = config.ReconcileFetchBatch
	}
	if cfg.ListConcurrency == 0 {
		cfg.ListConcurrency = d.MISP.RefetchConcurrency
	}
	return cfg
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newRig(cfg Config) *rig {
	m := newFakeMISP()
	a := newFakeApplier("a", "b")
	st := &fakeState{apply: a, marks: map[string]time.Time{}, graces: map[string]time.Time{}}
	c := &testClock{t: t0}
	log := logrus.New()
	log.SetOutput(io.Discard)
	r := New(complete(cfg), m, a, st, log, nil)
	r.SetClock(c.Now)
	return &rig{misp: m, apply: a, state: st, clock: c, r: r}
}

func TestFullAppliesEverythingAndRevokesGoneAndFilteredOut(t *testing.T) {
	tests := []struct {
		name         string
		grace        time.Duration
		wantRemoved  []string
		wantGone     int
		wantFiltered int
		wantGraced   int
	}{
		{name: "no grace", grace: 0, wantRemoved: []string{"e2", "e3"}, wantGone: 1, wantFiltered: 1},
		{name: "grace keeps the filtered-out event", grace: time.Hour, wantRemoved: []string{"e3"}, wantGone: 1, wantGraced: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newRig(Config{PageSize: 2, GoneGrace: tc.grace})
			for i := 1; i <= 5; i++ {
				g.misp.add(fmt.Sprintf("e%d", i), true, t0, t0)
			}
			rep, err := g.r.Full(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if rep.Events != 5 || rep.Pages != 3 || rep.Sinks["a"].New != 5 || rep.Sinks["b"].New != 5 {
				t.Fatalf("first run: %+v", rep)
			}
			// e2 leaves the filter, e3 is deleted from MISP.
			g.misp.inFilter["e2"] = false
			delete(g.misp.events, "e3")
			g.apply.reset()
			rep, err = g.r.Full(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got := g.apply.removedList(); !slices.Equal(got, tc.wantRemoved) {
				t.Errorf("removed %v, want %v", got, tc.wantRemoved)
			}
			if rep.GoneEvents != tc.wantGone || rep.FilteredEvents != tc.wantFiltered || rep.GracedEvents != tc.wantGraced {
				t.Errorf("gone %d filtered %d graced %d; want %d %d %d", rep.GoneEvents, rep.FilteredEvents, rep.GracedEvents, tc.wantGone, tc.wantFiltered, tc.wantGraced)
			}
			if rep.Sinks["a"].Unchanged != 3 || rep.Sinks["a"].Revoked != len(tc.wantRemoved) {
				t.Errorf("sink a: %+v", rep.Sinks["a"])
			}
			if mark, _ := g.state.Watermark(WatermarkFull); !mark.Equal(t0) {
				t.Errorf("full watermark %v, want %v", mark, t0)
			}
		})
	}
}

func TestGoneGraceSurvivesRestartsAndEndsWhenTheEventReturns(t *testing.T) {
	cfg := Config{GoneGrace: time.Hour}
	g := newRig(cfg)
	g.misp.add("e1", true, t0, t0)
	g.misp.add("e2", true, t0, t0)
	if _, err := g.r.Full(context.Background()); err != nil {
		t.Fatal(err)
	}
	g.misp.inFilter["e2"] = false

	// Each run uses a new Reconciler over the same state, as one-shot `listener sync` does.
	restart := func() *Reconciler {
		r := New(complete(cfg), g.misp, g.apply, g.state, logrus.New(), nil)
		r.SetClock(g.clock.Now)
		return r
	}
	steps := []struct {
		advance     time.Duration
		wantRemoved bool
	}{
		{0, false},                // grace starts
		{59 * time.Minute, false}, // still inside
		{time.Minute, true},       // an hour after it was first found outside
	}
	for i, s := range steps {
		g.clock.Add(s.advance)
		g.apply.reset()
		if _, err := restart().Full(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := slices.Contains(g.apply.removedList(), "e2"); got != s.wantRemoved {
			t.Fatalf("step %d: removed=%v, want %v", i, got, s.wantRemoved)
		}
	}
	if _, ok := g.state.graces["e2"]; ok {
		t.Error("grace mark kept after the revocation")
	}

	// An event that comes back into the filter before its grace ends starts afresh later.
	g.misp.add("e3", true, t0, t0)
	if _, err := restart().Full(context.Background()); err != nil {
		t.Fatal(err)
	}
	g.misp.inFilter["e3"] = false
	if _, err := restart().Full(context.Background()); err != nil {
		t.Fatal(err)
	}
	g.clock.Add(50 * time.Minute)
	g.misp.inFilter["e3"] = true
	if _, err := restart().Full(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := g.state.graces["e3"]; ok {
		t.Fatal("grace mark kept after the event matched the filters again")
	}
	g.misp.inFilter["e3"] = false
	g.clock.Add(50 * time.Minute)
	g.apply.reset()
	if _, err := restart().Full(context.Background()); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(g.apply.removedList(), "e3") {
		t.Error("e3 revoked by a grace period that had ended when it came back")
	}
}

func TestFullSearchFailureKeepsAppliedPagesAndRevokesNothing(t *testing.T) {
	g := newRig(Config{PageSize: 2})
	for i := 1; i <= 6; i++ {
		g.misp.add(fmt.Sprintf("e%d", i), true, t0, t0)
	}
	if _, err := g.r.Full(context.Background()); err != nil {
		t.Fatal(err)
	}
	// e6 is deleted, and the third page fails: e6 must not be revoked on that evidence.
	delete(g.misp.events, "e6")
	g.misp.failAfterPages = 2
	g.apply.reset()
	g.clock.Add(time.Hour)
	rep, err := g.r.Full(context.Background())
	if err == nil {
		t.Fatal("a failed search reported success")
	}
	if got := g.apply.appliedList(); !slices.Equal(got, []string{"e1", "e2", "e3", "e4"}) {
		t.Errorf("applied %v, want the first two pages", got)
	}
	if got := g.apply.removedList(); len(got) != 0 || len(g.misp.views) != 0 {
		t.Errorf("revoked %v (looked up %v) after an incomplete search", got, g.misp.views)
	}
	if rep == nil || rep.Events != 4 {
		t.Errorf("report %+v, want the 4 events done", rep)
	}
	if mark, _ := g.state.Watermark(WatermarkFull); !mark.Equal(t0) {
		t.Errorf("full watermark moved to %v by a failed run", mark)
	}
}

func TestViewFailureIsReportedAndRevokesNothing(t *testing.T) {
	g := newRig(Config{})
	g.misp.add("e1", true, t0, t0)
	if _, err := g.r.Full(context.Background()); err != nil {
		t.Fatal(err)
	}
	delete(g.misp.events, "e1")
	g.misp.viewErr = errors.New("502 bad gateway")
	rep, err := g.r.Full(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Errors) != 1 || len(g.apply.removedList()) != 0 {
		t.Errorf("errors %v, removed %v; want one error and nothing removed", rep.Errors, g.apply.removedList())
	}
}

func TestApplyErrorIsReportedAndTheRunGoesOn(t *testing.T) {
	g := newRig(Config{})
	g.misp.add("e1", true, t0, t0)
	g.misp.add("e2", true, t0, t0)
	g.apply.failOn = "e1"
	rep, err := g.r.Full(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Errors) != 1 || !slices.Equal(g.apply.appliedList(), []string{"e2"}) {
		t.Errorf("errors %v applied %v", rep.Errors, g.apply.appliedList())
	}
	if mark, _ := g.state.Watermark(WatermarkFull); !mark.IsZero() {
		t.Error("a run with errors moved the watermark")
	}
}

func TestEventKeepsTheFiltersAndChecksOnlyThatEvent(t *testing.T) {
	g := newRig(Config{EventFilters: map[string]any{"tags": []string{"x"}, "published": true}})
	g.misp.add("e1", true, t0, t0)
	g.misp.add("e2", true, t0, t0)
	if _, err := g.r.Full(context.Background()); err != nil {
		t.Fatal(err)
	}
	delete(g.misp.events, "e2") // gone, but not the event asked for
	g.misp.searches = nil
	g.apply.reset()
	rep, err := g.r.Event(context.Background(), "e1")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"tags": []string{"x"}, "published": true, "uuid": "e1"}
	if len(g.misp.searches) != 1 || fmt.Sprint(g.misp.searches[0]) != fmt.Sprint(want) {
		t.Errorf("searches %v, want one with %v", g.misp.searches, want)
	}
	if !slices.Equal(g.apply.appliedList(), []string{"e1"}) || len(g.apply.removedList()) != 0 || rep.Events != 1 {
		t.Errorf("applied %v removed %v", g.apply.appliedList(), g.apply.removedList())
	}

	// The event asked for no longer matches: it is looked up and revoked.
	g.misp.inFilter["e1"] = false
	if _, err := g.r.Event(context.Background(), "e1"); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(g.apply.removedList(), []string{"e1"}) {
		t.Errorf("removed %v, want [e1]", g.apply.removedList())
	}
	if mark, _ := g.state.Watermark(WatermarkFull); !mark.Equal(t0) {
		t.Error("a one-event run moved the full watermark")
	}
}

// TestListingCatchUpFetchesOnlyChangedAndRevokesDeleted is issue 13's cheap catch-up: the
// run lists the filters' events with metadata only (ListConcurrency pages at once), fetches in uuid lists of at most FetchBatch
// only the events that are new or whose timestamp or publish_timestamp moved, and revokes an
// event deleted from MISP after the one-event lookup, as a full run does. Changing what shapes
// the indicators (here the filters) makes every event stale.
func TestListingCatchUpFetchesOnlyChangedAndRevokesDeleted(t *testing.T) {
	g := newRig(Config{FetchBatch: 2, EventFilters: map[string]any{"published": true}})
	for _, id := range []string{"e1", "e2", "e3", "e4"} {
		g.misp.add(id, true, t0, t0)
	}
	// Never reconciled: the first catch-up is a full run.
	rep, err := g.r.Incremental(context.Background(), time.Time{})
	if err != nil || rep.Kind != "full" {
		t.Fatalf("first catch-up: %v %v, want a full run", rep, err)
	}
	g.misp.add("e1", true, t0.Add(time.Minute), t0)   // edited
	g.misp.add("e2", true, t0, t0.Add(2*time.Minute)) // published again
	delete(g.misp.events, "e4")                       // deleted (no webhook for that)
	g.misp.add("e5", true, t0.Add(time.Minute), t0.Add(time.Minute))
	g.misp.searches = nil
	g.apply.reset()

	rep, err = g.r.Incremental(context.Background(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	want := []map[string]any{
		{"published": true, "metadata": true, "excludeGalaxy": true, "sgReferenceOnly": true, "excludeLocalTags": true},
		{"published": true, "uuid": []string{"e1", "e2"}},
		{"published": true, "uuid": []string{"e5"}},
	}
	if fmt.Sprint(g.misp.searches) != fmt.Sprint(want) {
		t.Errorf("searches %v, want %v", g.misp.searches, want)
	}
	applied := g.apply.appliedList()
	sort.Strings(applied)
	if !slices.Equal(applied, []string{"e1", "e2", "e5"}) {
		t.Errorf("applied %v, want only the changed and new events", applied)
	}
	if !slices.Equal(g.apply.removedList(), []string{"e4"}) || !slices.Contains(g.misp.views, "e4") || rep.GoneEvents != 1 {
		t.Errorf("removed %v after views %v (gone %d), want e4 revoked after its lookup", g.apply.removedList(), g.misp.views, rep.GoneEvents)
	}
	if rep.Kind != "incremental" || rep.Listed != 4 || rep.Fetched != 3 || len(rep.Errors) != 0 {
		t.Errorf("report %+v", rep)
	}
	if g.misp.listConcurrency != g.r.cfg.ListConcurrency {
		t.Errorf("listing asked %d pages at once, want ListConcurrency %d", g.misp.listConcurrency, g.r.cfg.ListConcurrency)
	}

	// Nothing changed: the listing alone.
	g.misp.searches = nil
	g.apply.reset()
	if _, err := g.r.Incremental(context.Background(), time.Time{}); err != nil {
		t.Fatal(err)
	}
	if len(g.misp.searches) != 1 || len(g.apply.appliedList()) != 0 {
		t.Errorf("unchanged MISP: searches %v, applied %v; want the listing only", g.misp.searches, g.apply.appliedList())
	}

	// Other filters: stamps written under the old ones vouch for nothing.
	g.r.cfg.EventFilters = map[string]any{"published": true, "tags": "tlp:white"}
	g.apply.reset()
	if _, err := g.r.Incremental(context.Background(), time.Time{}); err != nil {
		t.Fatal(err)
	}
	if n := len(g.apply.appliedList()); n != 4 {
		t.Errorf("after a filter change %d events applied, want all 4", n)
	}
}

func TestParseSchedule(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		spec string
		from string
		want string
	}{
		{"0 */6 * * *", "2026-03-01T05:59:00Z", "2026-03-01T06:00:00Z"},
		{"0 */6 * * *", "2026-03-01T06:00:00Z", "2026-03-01T12:00:00Z"},
		{"30 2 * * 1-5", "2026-02-27T03:00:00Z", "2026-03-02T02:30:00Z"}, // Friday after 02:30 -> Monday
		{"15 3 1 * *", "2026-03-15T00:00:00Z", "2026-04-01T03:15:00Z"},
		// Day of month OR day of week, as in crontab(5): the 13th, or any Friday.
		{"0 0 13 * fri", "2026-03-01T00:00:00Z", "2026-03-06T00:00:00Z"},
		{"0 0 1 jan *", "2026-03-01T00:00:00Z", "2027-01-01T00:00:00Z"},
		{"0 0 * * 7", "2026-03-01T00:00:00Z", "2026-03-08T00:00:00Z"}, // 7 is Sunday too
		{"@daily", "2026-03-01T10:00:00Z", "2026-03-02T00:00:00Z"},
		{"@every 6h", "2026-03-01T10:00:00Z", "2026-03-01T16:00:00Z"},
	}
	for _, tc := range tests {
		s, err := ParseSchedule(tc.spec)
		if err != nil {
			t.Fatalf("%q: %v", tc.spec, err)
		}
		if got := s.Next(at(tc.from)); !got.Equal(at(tc.want)) {
			t.Errorf("%q after %s: %s, want %s", tc.spec, tc.from, got.Format(time.RFC3339), tc.want)
		}
	}
	for _, bad := range []string{"", "* * *", "61 * * * *", "0 0 * * 8", "@fortnightly", "every 6h"} {
		if _, err := ParseSchedule(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// TestEventSkippedByPagingIsNotRevoked: an event the paged search missed although it matches
// is confirmed with a one-event search and applied, not treated as filtered out.
func TestEventSkippedByPagingIsNotRevoked(t *testing.T) {
	g := newRig(Config{})
	g.misp.add("e1", true, t0, t0)
	g.misp.add("e2", true, t0, t0)
	if _, err := g.r.Full(context.Background()); err != nil {
		t.Fatal(err)
	}
	g.misp.mu.Lock()
	g.misp.skipInPages = map[string]bool{"e2": true}
	g.misp.mu.Unlock()
	rep, err := g.r.Full(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.FilteredEvents != 0 || rep.GoneEvents != 0 {
		t.Errorf("report %+v: the skipped event was revoked", rep)
	}
	if !slices.Contains(g.misp.singleSearches, "e2") {
		t.Errorf("the missing event was not confirmed with a one-event search: %v", g.misp.singleSearches)
	}
}

// TestWatermarkIsClampedToTheNewestMISPTimestamp: a forward jump of the local clock must not
// push the incremental window past events MISP modifies afterwards. The window starts at the
// newest MISP timestamp a run saw, never later than the run's start by the local clock.
func TestWatermarkIsClampedToTheNewestMISPTimestamp(t *testing.T) {
	g := newRig(Config{Overlap: 5 * time.Minute})
	g.misp.add("old", true, t0.Add(-time.Hour), t0.Add(-time.Hour))
	if _, err := g.r.Full(context.Background()); err != nil {
		t.Fatal(err)
	}
	if mark, _ := g.state.Watermark(watermarkWindow); !mark.Equal(t0.Add(-time.Hour)) {
		t.Errorf("window watermark %v, want the newest event timestamp %v", mark, t0.Add(-time.Hour))
	}

	// The local clock jumps 30 days ahead for one incremental run; nothing changed in MISP.
	g.clock.Add(30 * 24 * time.Hour)
	if _, err := g.r.Incremental(context.Background(), time.Time{}); err != nil {
		t.Fatal(err)
	}
	g.clock.Add(-30 * 24 * time.Hour) // the clock is corrected

	// An event edited in MISP ten minutes later must be found by the next incremental run.
	g.clock.Add(10 * time.Minute)
	g.misp.add("edited", true, t0.Add(10*time.Minute), time.Time{})
	g.apply.reset()
	if _, err := g.r.Incremental(context.Background(), time.Time{}); err != nil {
		t.Fatal(err)
	}
	if applied := g.apply.appliedList(); !slices.Contains(applied, "edited") {
		t.Fatalf("applied %v after a clock jump: the edited event was skipped (searches %v)", applied, g.misp.searches[len(g.misp.searches)-2:])
	}
	if mark, _ := g.state.Watermark(watermarkWindow); !mark.Equal(t0.Add(10 * time.Minute)) {
		t.Errorf("window watermark %v, want the edited event's timestamp", mark)
	}

	// MISP's clock ahead of ours: the watermark never passes the local start of the run.
	g.misp.add("future", true, t0.Add(48*time.Hour), time.Time{})
	if _, err := g.r.Incremental(context.Background(), time.Time{}); err != nil {
		t.Fatal(err)
	}
	if mark, _ := g.state.Watermark(watermarkWindow); !mark.Equal(g.clock.Now()) {
		t.Errorf("window watermark %v, want the run's start %v", mark, g.clock.Now())
	}
}

// TestTimeWindowScansButNeverRevokes: a publish_timestamp window in the filters (misp2sentinel's
// default "14d") limits what a full run fetches. An event that aged out of it but still matches
// every other filter is applied without refresh and never revoked for its age; a deleted event
// and one that no longer matches a non-time filter are still revoked.
func TestTimeWindowScansButNeverRevokes(t *testing.T) {
	window := strconv.FormatInt(t0.Add(-14*24*time.Hour).Unix(), 10)
	r := newRig(Config{EventFilters: map[string]any{"published": true, "publish_timestamp": window}})
	recent, old := t0.Add(-24*time.Hour), t0.Add(-330*24*time.Hour)
	r.misp.add("fresh", true, recent, recent)
	r.misp.add("aged", true, old, old)
	r.misp.add("untagged", false, old, old) // exists, fails a non-time filter
	for _, s := range []string{"a", "b"} {
		for _, uuid := range []string{"fresh", "aged", "untagged", "deleted"} {
			r.apply.exported[s][uuid] = true
		}
	}
	rep, err := r.r.Full(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(r.apply.removed)
	if want := []string{"deleted", "untagged"}; !slices.Equal(r.apply.removed, want) {
		t.Errorf("revoked %v, want %v: a time window must not revoke the aged event", r.apply.removed, want)
	}
	if want := []string{"aged"}; !slices.Equal(r.apply.aged, want) {
		t.Errorf("applied without refresh %v, want %v", r.apply.aged, want)
	}
	if rep.AgedEvents != 1 || rep.GoneEvents != 1 || rep.FilteredEvents != 1 {
		t.Errorf("report: aged %d gone %d filtered %d, want 1 1 1", rep.AgedEvents, rep.GoneEvents, rep.FilteredEvents)
	}
	for _, s := range []string{"a", "b"} {
		if !r.apply.exported[s]["aged"] || !r.apply.exported[s]["fresh"] {
			t.Errorf("sink %s no longer exports the fresh and aged events: %v", s, r.apply.exported[s])
		}
	}
}
