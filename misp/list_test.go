package misp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"github.com/mispsentinel/listener/misp"
	simmisp "github.com/mispsentinel/listener/sim/misp"
)

// listAll runs ListEvents and returns the uuids delivered, page by page (a page ends at
// PageEnd).
func listAll(t *testing.T, c *misp.Client, filters map[string]any, pageSize, concurrency int) ([][]string, misp.SearchStats, error) {
	t.Helper()
	var pages [][]string
	var page []string
	stats, err := c.ListEvents(context.Background(), filters, pageSize, concurrency, misp.Visitor{
		Event: func(ev *misp.Event) error { page = append(page, ev.UUID); return nil },
		PageEnd: func() error {
			if len(page) > 0 {
				pages = append(pages, page)
			}
			page = nil
			return nil
		},
	})
	return pages, stats, err
}

// TestListEventsDeliversInOrder: a listing with pages asked ahead delivers what the sequential
// search delivers, in id order and page by page, and asks for no page past the end MISP's
// X-Result-Count announces (one empty page when the count is an exact multiple, as the
// sequential search reads; without a count, the pages asked ahead of the end are empty).
func TestListEventsDeliversInOrder(t *testing.T) {
	tests := []struct {
		name         string
		events       int
		pageSize     int
		concurrency  int
		hideCount    bool
		wantPages    []int
		wantRequests int
		// extraRequests may be asked ahead of the end and abandoned (they may not reach the
		// server before the end is known).
		extraRequests int
	}{
		{name: "one page costs one request", events: 3, pageSize: 10, concurrency: 4, wantPages: []int{3}, wantRequests: 1},
		{name: "empty MISP", events: 0, pageSize: 10, concurrency: 4, wantRequests: 1},
		{name: "short last page", events: 95, pageSize: 10, concurrency: 4, wantPages: []int{10, 10, 10, 10, 10, 10, 10, 10, 10, 5}, wantRequests: 10},
		{name: "exact multiple reads one empty page", events: 40, pageSize: 10, concurrency: 3, wantPages: []int{10, 10, 10, 10}, wantRequests: 5},
		{name: "without X-Result-Count the pages asked ahead are empty", events: 25, pageSize: 10, concurrency: 4, hideCount: true, wantPages: []int{10, 10, 5}, wantRequests: 3, extraRequests: 3},
		{name: "concurrency 1 is the sequential search", events: 25, pageSize: 10, concurrency: 1, wantPages: []int{10, 10, 5}, wantRequests: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim := simmisp.New(simmisp.Options{})
			sim.Generate(tt.events, 2, 1)
			var h http.Handler = sim.Handler()
			if tt.hideCount {
				h = withoutResultCount(h)
			}
			srv := httptest.NewServer(h)
			defer srv.Close()
			c := newClient(t, misp.ClientConfig{URL: srv.URL})

			pages, stats, err := listAll(t, c, map[string]any{"metadata": true}, tt.pageSize, tt.concurrency)
			if err != nil {
				t.Fatalf("ListEvents: %v", err)
			}
			var sizes []int
			var got []string
			for _, p := range pages {
				sizes = append(sizes, len(p))
				got = append(got, p...)
			}
			if !slices.Equal(sizes, tt.wantPages) {
				t.Errorf("page sizes = %v, want %v", sizes, tt.wantPages)
			}
			if want := sim.Events(); !slices.Equal(got, want) {
				t.Errorf("events out of id order or missing:\n got %v\nwant %v", got, want)
			}
			reqs := searchRequests(t, sim)
			if len(reqs) < tt.wantRequests || len(reqs) > tt.wantRequests+tt.extraRequests {
				t.Errorf("requests = %d, want %d (+ up to %d)", len(reqs), tt.wantRequests, tt.extraRequests)
			}
			seen := map[float64]bool{}
			for _, r := range reqs {
				if r["limit"] != float64(tt.pageSize) || r["metadata"] != true || r["order"] != "Event.id asc" || seen[r["page"].(float64)] {
					t.Errorf("request %v: want limit %d, metadata, id order, each page once", r, tt.pageSize)
				}
				seen[r["page"].(float64)] = true
			}
			if stats.Events != len(got) || stats.Pages != len(pages) {
				t.Errorf("stats = %+v, want %d events, %d pages", stats, len(got), len(pages))
			}
		})
	}
}

// TestListEventsAsksPagesAtOnce: after a full first page, up to concurrency pages are in
// flight together. The server holds every later page until that many are waiting; a
// sequential listing would never get past the second page.
func TestListEventsAsksPagesAtOnce(t *testing.T) {
	sim := simmisp.New(simmisp.Options{})
	sim.Generate(50, 1, 1)
	const concurrency = 4
	var (
		mu      sync.Mutex
		waiting int
		release = make(chan struct{})
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		raw, _ := readBody(r)
		_ = json.Unmarshal(raw, &body)
		if body["page"] != float64(1) {
			mu.Lock()
			waiting++
			if waiting == concurrency {
				close(release)
			}
			mu.Unlock()
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		sim.Handler().ServeHTTP(w, r)
	}))
	defer srv.Close()
	c := newClient(t, misp.ClientConfig{URL: srv.URL})
	pages, _, err := listAll(t, c, map[string]any{"metadata": true}, 10, concurrency)
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) != 5 {
		t.Errorf("%d pages, want 5", len(pages))
	}
}

// TestListEventsShrinksAnOversizedPage: a page over MaxResponseBytes makes the rest of the
// listing sequential with smaller pages; every event is delivered.
func TestListEventsShrinksAnOversizedPage(t *testing.T) {
	sim := newSim(t, simmisp.Options{}, 40)
	c := newClient(t, misp.ClientConfig{URL: sim.URL(), MaxResponseBytes: 8 << 10})
	got := map[string]bool{}
	stats, err := c.ListEvents(context.Background(), map[string]any{"metadata": true}, 10, 4, misp.Visitor{
		Event: func(ev *misp.Event) error { got[ev.UUID] = true; return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, uuid := range sim.Events() {
		if !got[uuid] {
			t.Errorf("event %s not delivered", uuid)
		}
	}
	if stats.Shrunk == 0 || stats.PageSize >= 10 {
		t.Errorf("stats %+v: want the page size halved", stats)
	}
}

// TestListEventsStopsWhenPagingIsIgnored: a server that answers every page with the first one
// is caught, as the sequential search catches it.
func TestListEventsStopsWhenPagingIsIgnored(t *testing.T) {
	sim := simmisp.New(simmisp.Options{})
	sim.Generate(10, 1, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		raw, _ := readBody(r)
		_ = json.Unmarshal(raw, &body)
		delete(body, "page")
		b, _ := json.Marshal(body)
		r2 := r.Clone(r.Context())
		r2.Body = bodyOf(b)
		r2.ContentLength = int64(len(b))
		sim.Handler().ServeHTTP(w, r2)
	}))
	defer srv.Close()
	c := newClient(t, misp.ClientConfig{URL: srv.URL})
	_, _, err := listAll(t, c, map[string]any{"metadata": true}, 10, 4)
	if err == nil {
		t.Fatal("no error for a server ignoring paging")
	}
}

func readBody(r *http.Request) ([]byte, error) {
	raw, err := io.ReadAll(r.Body)
	r.Body = bodyOf(raw)
	return raw, err
}

func bodyOf(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }
