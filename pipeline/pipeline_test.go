package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/internal/stixtest"
	"github.com/mispsentinel/listener/misp"
	"github.com/mispsentinel/listener/stix"
	"github.com/mispsentinel/listener/store"
)

var now = time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)

const eventUUID = "5e1b1d3c-7a52-4b8e-9d7e-0c3f5a1b2c3d"

// testEvent returns an event with one ip-dst and one domain attribute per value given, all
// to_ids.
func testEvent(ips, domains []string) *misp.Event {
	org := misp.Org{ID: "1", UUID: "a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d", Name: "ACME"}
	ev := &misp.Event{
		ID: "1", UUID: eventUUID, Info: "test", Date: "2026-11-20", Published: true,
		Distribution: "1", ThreatLevelID: "2", Analysis: "2",
		Timestamp: now.Add(-time.Hour), PublishTimestamp: now.Add(-time.Hour), Org: org, Orgc: org,
	}
	n := 0
	add := func(typ, category, value string) {
		n++
		ev.Attributes = append(ev.Attributes, misp.Attribute{
			ID: fmt.Sprint(n), UUID: fmt.Sprintf("%08d-1111-4222-8333-444455556666", n), EventID: "1",
			Type: typ, Category: category, Value: value, ToIDS: true, Distribution: "5",
			Timestamp: now.Add(-time.Hour),
		})
	}
	for _, ip := range ips {
		add("ip-dst", "Network activity", ip)
	}
	for _, d := range domains {
		add("domain", "Network activity", d)
	}
	return ev
}

// fakeFetcher answers SearchEvent from a map and records the calls.
type fakeFetcher struct {
	mu     sync.Mutex
	events map[string]*misp.Event
	err    error
	calls  []map[string]any
	uuids  [][]string // the uuids of each call
}

func (f *fakeFetcher) SearchEventsByUUID(_ context.Context, uuids []string, filters map[string]any) ([]*misp.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, filters)
	f.uuids = append(f.uuids, slices.Clone(uuids))
	if f.err != nil {
		return nil, f.err
	}
	var out []*misp.Event
	for _, u := range uuids {
		if ev, ok := f.events[u]; ok {
			out = append(out, ev)
		}
	}
	return out, nil
}

func (f *fakeFetcher) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open("", store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// live returns the number of queued-or-sent, not revoked objects of a sink.
func live(t *testing.T, st *store.Store, sink string) int64 {
	t.Helper()
	s, err := st.Stats(sink)
	if err != nil {
		t.Fatal(err)
	}
	return s.Live
}

func twoSinks() []Sink {
	all := stixtest.Options()
	domainsOnly := stixtest.Options()
	domainsOnly.Filter.IncludeTypes = []string{"domain"}
	return []Sink{{Name: "all", Options: all}, {Name: "domains", Options: domainsOnly}}
}

func TestNewChecksItsWiring(t *testing.T) {
	st := openStore(t)
	if _, err := New(Config{}); err == nil {
		t.Error("New without a store succeeded")
	}
	if _, err := New(Config{RefetchBatch: 50, RefetchConcurrency: 4, Store: st, Refetch: true}); err == nil {
		t.Error("New without a fetcher succeeded although notices may be re-fetched")
	}
	if _, err := New(Config{RefetchBatch: 50, RefetchConcurrency: 4, Store: st}); err != nil {
		t.Errorf("New without a fetcher and without re-fetch: %v", err)
	}
}

func TestApplyEventConvertsPerSink(t *testing.T) {
	st := openStore(t)
	p, err := New(Config{RefetchBatch: 50, RefetchConcurrency: 4, Sinks: twoSinks(), Store: st, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	stats, err := p.ApplyEvent(testEvent([]string{"203.0.113.5", "203.0.113.6"}, []string{"evil.example"}))
	if err != nil {
		t.Fatal(err)
	}
	// The identity of the creator org plus the indicators each sink's filter lets through.
	if got := stats["all"].New; got != 4 {
		t.Errorf("sink all queued %d new objects, want 4 (identity + 3 indicators)", got)
	}
	if got := stats["domains"].New; got != 2 {
		t.Errorf("sink domains queued %d new objects, want 2 (identity + 1 domain)", got)
	}
	// Applying the same content again changes nothing.
	again, err := p.ApplyEvent(testEvent([]string{"203.0.113.5", "203.0.113.6"}, []string{"evil.example"}))
	if err != nil {
		t.Fatal(err)
	}
	for sink, d := range again {
		if d.Enqueued() != 0 {
			t.Errorf("sink %s: re-applying unchanged content queued %+v", sink, d)
		}
	}
	if _, err := p.ApplyEvent(&misp.Event{}); err == nil {
		t.Error("ApplyEvent of an event without uuid succeeded")
	}
}

func TestRemoveEventRevokesInEverySink(t *testing.T) {
	st := openStore(t)
	p, err := New(Config{RefetchBatch: 50, RefetchConcurrency: 4, Sinks: twoSinks(), Store: st, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.ApplyEvent(testEvent([]string{"203.0.113.5"}, []string{"evil.example"})); err != nil {
		t.Fatal(err)
	}
	if err := p.HandleNotice(context.Background(), Notice{Source: "zeromq", Kind: Deleted, EventUUID: eventUUID}); err != nil {
		t.Fatalf("delete notice: %v", err)
	}
	for _, sink := range []string{"all", "domains"} {
		if n := live(t, st, sink); n != 1 {
			// The shared identity stays: it is never revoked because one event stops yielding it.
			t.Errorf("sink %s: %d live objects after the delete, want only the shared identity", sink, n)
		}
	}
	if _, err := p.RemoveEvent(""); err == nil {
		t.Error("RemoveEvent without uuid succeeded")
	}
}

func TestHandleNoticeRefetchPolicy(t *testing.T) {
	payload := testEvent([]string{"203.0.113.5", "8.8.8.8"}, nil) // unfiltered: warninglisted value included
	filtered := testEvent([]string{"203.0.113.5"}, nil)           // what MISP's filtered search answers
	filters := map[string]any{"published": true, "enforceWarninglist": true}
	tests := []struct {
		name        string
		policy      string // misp.realtime_fetch
		filters     map[string]any
		wantFetches int
		wantLive    int64 // identity + indicators
	}{
		{"auto, with filters", config.RealtimeFetchAuto, filters, 1, 2},
		{"auto, without filters", config.RealtimeFetchAuto, nil, 0, 3},
		{"always", config.RealtimeFetchAlways, nil, 1, 2},
		{"never", config.RealtimeFetchNever, filters, 0, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t)
			f := &fakeFetcher{events: map[string]*misp.Event{eventUUID: filtered}}
			refetch := config.MISP{EventFilters: tc.filters, RealtimeFetch: tc.policy}.RefetchOnNotice()
			p, err := New(Config{RefetchBatch: 50, RefetchConcurrency: 4, Sinks: twoSinks()[:1], EventFilters: tc.filters, Refetch: refetch, Fetcher: f, Store: st})
			if err != nil {
				t.Fatal(err)
			}
			n := Notice{Source: "zeromq", Kind: Published, EventUUID: eventUUID, Event: payload}
			if err := p.HandleNotice(context.Background(), n); err != nil {
				t.Fatal(err)
			}
			if got := f.callCount(); got != tc.wantFetches {
				t.Errorf("%d re-fetches, want %d", got, tc.wantFetches)
			}
			if want := withoutPublication(tc.filters); tc.wantFetches > 0 && fmt.Sprint(f.calls[0]) != fmt.Sprint(want) {
				t.Errorf("re-fetched with filters %v, want the event filters without the publication ones %v", f.calls[0], want)
			}
			if got := live(t, st, "all"); got != tc.wantLive {
				t.Errorf("%d live objects, want %d", got, tc.wantLive)
			}
		})
	}
}

func TestHandleNoticeRefetchOutcomes(t *testing.T) {
	st := openStore(t)
	f := &fakeFetcher{events: map[string]*misp.Event{}}
	p, err := New(Config{RefetchBatch: 50, RefetchConcurrency: 4, Sinks: twoSinks(), EventFilters: map[string]any{"tags": []string{"tlp:green"}}, Refetch: true, Fetcher: f, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.ApplyEvent(testEvent([]string{"203.0.113.5"}, []string{"evil.example"})); err != nil {
		t.Fatal(err)
	}
	published := Notice{Source: "webhook", Kind: Published, EventUUID: eventUUID,
		Event: testEvent([]string{"203.0.113.5"}, []string{"evil.example"})}

	// A failed re-fetch changes nothing and is reported, so the caller can retry or catch up.
	f.err = errors.New("connection refused")
	if err := p.HandleNotice(context.Background(), published); err == nil {
		t.Error("a failed re-fetch was not reported")
	}
	if got := live(t, st, "all"); got != 3 {
		t.Errorf("after a failed re-fetch: %d live objects, want the 3 from before", got)
	}
	// The filtered search no longer returns the event (a tag was removed): it is revoked.
	f.err = nil
	if err := p.HandleNotice(context.Background(), published); err != nil {
		t.Fatal(err)
	}
	for _, sink := range []string{"all", "domains"} {
		if got := live(t, st, sink); got != 1 {
			t.Errorf("sink %s: %d live objects after the event left the filters, want only the identity", sink, got)
		}
	}
}

func TestHandleNoticeRejectsBadNotices(t *testing.T) {
	p, err := New(Config{RefetchBatch: 50, RefetchConcurrency: 4, Sinks: twoSinks(), Store: openStore(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []Notice{
		{Kind: Published, EventUUID: eventUUID}, // no content and nothing to re-fetch
		{Kind: 0, EventUUID: eventUUID},
		{Kind: Deleted},
	} {
		if err := p.HandleNotice(context.Background(), n); err == nil {
			t.Errorf("notice %+v accepted", n)
		}
	}
}

// failingStore fails Apply for one sink.
type failingStore struct {
	*store.Store
	failSink string
}

func (f failingStore) Apply(sink, event string, desired []stix.Object, now time.Time) (store.DiffStats, error) {
	if sink == f.failSink {
		return store.DiffStats{}, errors.New("disk full")
	}
	return f.Store.Apply(sink, event, desired, now)
}

func (f failingStore) ApplyAged(sink, event string, desired []stix.Object, now time.Time) (store.DiffStats, error) {
	if sink == f.failSink {
		return store.DiffStats{}, errors.New("disk full")
	}
	return f.Store.ApplyAged(sink, event, desired, now)
}

func TestApplyEventFailureInOneSinkStillAppliesTheOthers(t *testing.T) {
	st := openStore(t)
	p, err := New(Config{RefetchBatch: 50, RefetchConcurrency: 4, Sinks: twoSinks(), Store: failingStore{Store: st, failSink: "all"}})
	if err != nil {
		t.Fatal(err)
	}
	stats, err := p.ApplyEvent(testEvent([]string{"203.0.113.5"}, []string{"evil.example"}))
	if err == nil {
		t.Fatal("the failing sink's error was not returned")
	}
	if stats["domains"].New != 2 {
		t.Errorf("sink domains: %+v, want its 2 objects applied despite the other sink's failure", stats["domains"])
	}
}

func TestNoticesAreCountedOnlyWhenApplied(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	f := &fakeFetcher{events: map[string]*misp.Event{eventUUID: testEvent([]string{"203.0.113.5"}, nil)}, err: errors.New("timeout")}
	p, err := New(Config{RefetchBatch: 50, RefetchConcurrency: 4, Sinks: twoSinks(), Refetch: true, Fetcher: f, Store: openStore(t), Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	n := Notice{Source: "webhook", Kind: Published, EventUUID: eventUUID}
	if err := p.HandleNotice(context.Background(), n); err == nil {
		t.Fatal("failed re-fetch not reported")
	}
	if got := testutil.ToFloat64(m.notices.WithLabelValues("webhook")); got != 0 {
		t.Errorf("a failed notice was counted as applied (%v)", got)
	}
	f.err = nil
	if err := p.HandleNotice(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.notices.WithLabelValues("webhook")); got != 1 {
		t.Errorf("applied notices = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.exported.WithLabelValues("all")); got != 1 {
		t.Errorf("exported attributes of sink all = %v, want 1", got)
	}
}

func withoutPublication(filters map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range filters {
		if k != "published" && k != "publish_timestamp" && k != "last" {
			out[k] = v
		}
	}
	return out
}

// TestPublishNoticeIsRefetchedWithoutPublicationFilters: MISP sends the event-publish webhook
// (and fetches misp_json's payload) before it saves published=1, so a re-fetch that kept
// `published: true` would miss a first publication and revoke a republished event.
func TestPublishNoticeIsRefetchedWithoutPublicationFilters(t *testing.T) {
	st := openStore(t)
	unpublished := testEvent([]string{"203.0.113.5"}, nil)
	f := &publishAwareFetcher{event: unpublished}
	filters := map[string]any{"published": true, "publish_timestamp": "14d", "tags": []any{"tlp:green"}}
	p, err := New(Config{RefetchBatch: 50, RefetchConcurrency: 4, Sinks: twoSinks()[:1], EventFilters: filters, Refetch: true, Fetcher: f, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	n := Notice{Source: "webhook", Kind: Published, EventUUID: eventUUID, Event: unpublished}
	if err := p.HandleNotice(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	if got := live(t, st, "all"); got != 2 {
		t.Fatalf("%d live objects after the publish notice, want 2 (identity + indicator)", got)
	}
	if _, ok := f.lastFilters["tags"]; !ok {
		t.Errorf("re-fetch dropped the tag filter: %v", f.lastFilters)
	}
}

// publishAwareFetcher answers like MISP while the publication is not saved yet: the event is
// found unless the search asks for published events.
type publishAwareFetcher struct {
	event       *misp.Event
	lastFilters map[string]any
}

func (f *publishAwareFetcher) SearchEventsByUUID(_ context.Context, _ []string, filters map[string]any) ([]*misp.Event, error) {
	f.lastFilters = filters
	if _, ok := filters["published"]; ok {
		return nil, nil
	}
	if _, ok := filters["publish_timestamp"]; ok {
		return nil, nil
	}
	return []*misp.Event{f.event}, nil
}
