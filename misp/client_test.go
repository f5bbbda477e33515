package misp_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/internal/version"
	"github.com/mispsentinel/listener/misp"
	simmisp "github.com/mispsentinel/listener/sim/misp"
)

// newSim starts a simulator holding n generated events of 3 attributes each.
func newSim(t *testing.T, opts simmisp.Options, n int) *simmisp.MISP {
	t.Helper()
	sim := simmisp.New(opts)
	sim.Generate(n, 3, 7)
	sim.Start()
	t.Cleanup(sim.Close)
	return sim
}

func newClient(t *testing.T, cfg misp.ClientConfig) *misp.Client {
	t.Helper()
	if cfg.Key == "" {
		cfg.Key = simmisp.DefaultKey
	}
	if cfg.RetryInterval == 0 {
		cfg.RetryInterval = time.Millisecond
	}
	c, err := misp.NewClient(complete(cfg))
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}

// complete returns cfg with every zero field set as the daemon sets it for an empty
// configuration: the client keeps no defaults of its own.
func complete(cfg misp.ClientConfig) misp.ClientConfig {
	d := config.Default().MISP
	if cfg.Timeout == 0 {
		cfg.Timeout = d.Timeout
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = d.UserAgent
	}
	if cfg.MaxPageAttempts == 0 {
		cfg.MaxPageAttempts = config.MISPMaxPageAttempts
	}
	if cfg.RetryInterval == 0 {
		cfg.RetryInterval = config.MISPRetryInterval
	}
	if cfg.MaxResponseBytes == 0 {
		cfg.MaxResponseBytes = config.MISPMaxResponseBytes
	}
	return cfg
}

// searchRequests returns the decoded bodies of the restSearch requests the simulator saw.
func searchRequests(t *testing.T, sim *simmisp.MISP) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range sim.Requests() {
		if r.Path != "/events/restSearch" {
			continue
		}
		var body map[string]any
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatalf("request body %q: %v", r.Body, err)
		}
		out = append(out, body)
	}
	return out
}

// collect runs SearchEvents and returns the uuids delivered, page by page.
func collect(t *testing.T, c *misp.Client, filters map[string]any, pageSize int) ([][]string, misp.SearchStats, error) {
	t.Helper()
	var pages [][]string
	stats, err := c.SearchEvents(context.Background(), filters, pageSize, func(page []*misp.Event) error {
		var uuids []string
		for _, ev := range page {
			uuids = append(uuids, ev.UUID)
		}
		pages = append(pages, uuids)
		return nil
	})
	return pages, stats, err
}

// withoutResultCount hides X-Result-Count, as a proxy in front of MISP might.
func withoutResultCount(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(stripHeader{w}, r)
	})
}

type stripHeader struct{ http.ResponseWriter }

func (s stripHeader) WriteHeader(code int) {
	s.Header().Del("X-Result-Count")
	s.ResponseWriter.WriteHeader(code)
}

func (s stripHeader) Write(b []byte) (int, error) {
	s.Header().Del("X-Result-Count")
	return s.ResponseWriter.Write(b)
}

func TestSearchEventsPaging(t *testing.T) {
	tests := []struct {
		name         string
		events       int
		pageSize     int
		hideCount    bool
		wantPages    []int
		wantRequests int
		wantTotal    int
	}{
		{name: "short last page", events: 25, pageSize: 10, wantPages: []int{10, 10, 5}, wantRequests: 3, wantTotal: 25},
		{name: "exact multiple reads an empty page: X-Result-Count never ends a search (issue 19 row 4)", events: 20, pageSize: 10, wantPages: []int{10, 10}, wantRequests: 3, wantTotal: 20},
		{name: "exact multiple without X-Result-Count reads an empty page", events: 20, pageSize: 10, hideCount: true, wantPages: []int{10, 10}, wantRequests: 3, wantTotal: -1},
		{name: "empty MISP", events: 0, pageSize: 10, wantPages: nil, wantRequests: 1, wantTotal: 0},
		{name: "one page", events: 3, pageSize: 100, wantPages: []int{3}, wantRequests: 1, wantTotal: 3},
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

			pages, stats, err := collect(t, c, nil, tt.pageSize)
			if err != nil {
				t.Fatalf("SearchEvents: %v", err)
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
			want := sim.Events()
			if !slices.Equal(got, want) {
				t.Errorf("events out of id order or missing:\n got %v\nwant %v", got, want)
			}
			reqs := searchRequests(t, sim)
			if len(reqs) != tt.wantRequests {
				t.Errorf("requests = %d, want %d", len(reqs), tt.wantRequests)
			}
			for i, r := range reqs {
				if r["page"] != float64(i+1) || r["limit"] != float64(tt.pageSize) {
					t.Errorf("request %d: page %v limit %v", i, r["page"], r["limit"])
				}
				if r["order"] != "Event.id asc" || r["returnFormat"] != "json" {
					t.Errorf("request %d: order %v returnFormat %v", i, r["order"], r["returnFormat"])
				}
			}
			if stats.Total != tt.wantTotal || stats.Events != len(got) || stats.Pages != len(pages) {
				t.Errorf("stats = %+v, want total %d, %d events, %d pages", stats, tt.wantTotal, len(got), len(pages))
			}
		})
	}
}

func TestSearchEventsPassesFiltersVerbatim(t *testing.T) {
	sim := newSim(t, simmisp.Options{}, 3)
	c := newClient(t, misp.ClientConfig{URL: sim.URL()})
	filters := map[string]any{
		"published":          1,
		"tags":               map[string]any{"OR": []any{`workflow:state="complete"`}, "NOT": []any{"tlp:red"}},
		"enforceWarninglist": true,
		"includeEventTags":   true,
		"publish_timestamp":  "14d",
		"order":              "Event.timestamp asc",
	}
	if _, _, err := collect(t, c, filters, 50); err != nil {
		t.Fatalf("SearchEvents: %v", err)
	}
	reqs := searchRequests(t, sim)
	if len(reqs) != 1 {
		t.Fatalf("requests = %d, want 1", len(reqs))
	}
	want := map[string]any{
		"published":          float64(1),
		"tags":               map[string]any{"OR": []any{`workflow:state="complete"`}, "NOT": []any{"tlp:red"}},
		"enforceWarninglist": true,
		"includeEventTags":   true,
		"publish_timestamp":  "14d",
		"order":              "Event.timestamp asc", // the user's order is kept
		"returnFormat":       "json",
		"page":               float64(1),
		"limit":              float64(50),
	}
	gotJSON, _ := json.Marshal(reqs[0])
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Errorf("request body\n got %s\nwant %s", gotJSON, wantJSON)
	}
	if filters["page"] != nil || filters["returnFormat"] != nil {
		t.Errorf("SearchEvents modified the caller's filters: %v", filters)
	}

	for _, key := range []string{"page", "limit"} {
		if _, err := c.SearchEvents(context.Background(), map[string]any{key: 5}, 10, func([]*misp.Event) error { return nil }); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("filter %q: err = %v, want a refusal naming it", key, err)
		}
	}
	if _, err := c.SearchEvents(context.Background(), map[string]any{"returnFormat": "stix2"}, 10, func([]*misp.Event) error { return nil }); err == nil {
		t.Error("returnFormat stix2 accepted")
	}
}

func TestSearchEventsRetriesFailingPage(t *testing.T) {
	tests := []struct {
		name string
		kind simmisp.FaultKind
	}{
		{"server error", simmisp.FaultServerError},
		{"broken JSON", simmisp.FaultBrokenJSON},
		{"timeout", simmisp.FaultHang},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim := newSim(t, simmisp.Options{}, 12)
			sim.InjectFault(simmisp.Fault{Page: 2, Kind: tt.kind, Times: 2})
			c := newClient(t, misp.ClientConfig{URL: sim.URL(), MaxPageAttempts: 3, Timeout: 300 * time.Millisecond})

			var got []string
			stats, err := c.SearchEvents(context.Background(), map[string]any{"eventid": idRange(1, 12)}, 5, func(page []*misp.Event) error {
				for _, ev := range page {
					got = append(got, ev.UUID)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("SearchEvents: %v", err)
			}
			if !slices.Equal(got, sim.Events()) {
				t.Errorf("got %d events, want all %d in order", len(got), len(sim.Events()))
			}
			if stats.Retries != 2 {
				t.Errorf("retries = %d, want 2", stats.Retries)
			}
			var pages []float64
			for _, r := range searchRequests(t, sim) {
				pages = append(pages, r["page"].(float64))
			}
			if !slices.Equal(pages, []float64{1, 2, 2, 2, 3}) {
				t.Errorf("pages requested = %v, want [1 2 2 2 3]", pages)
			}
		})
	}
}

func idRange(from, to int) []any {
	var ids []any
	for i := from; i <= to; i++ {
		ids = append(ids, i)
	}
	return ids
}

func TestSearchEventsGivesUpKeepingEarlierPages(t *testing.T) {
	sim := newSim(t, simmisp.Options{}, 12)
	sim.InjectFault(simmisp.Fault{Page: 2, Kind: simmisp.FaultServerError})
	c := newClient(t, misp.ClientConfig{URL: sim.URL(), MaxPageAttempts: 3})

	var delivered int
	stats, err := c.SearchEvents(context.Background(), map[string]any{"eventid": idRange(1, 12)}, 5, func(page []*misp.Event) error {
		delivered += len(page)
		return nil
	})
	if err == nil {
		t.Fatal("SearchEvents succeeded with page 2 always failing")
	}
	if !strings.Contains(err.Error(), "page 2") {
		t.Errorf("error %q does not name page 2", err)
	}
	var se *misp.StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusInternalServerError {
		t.Errorf("error %v is not a StatusError 500", err)
	}
	if delivered != 5 || stats.Events != 5 || stats.Pages != 1 {
		t.Errorf("delivered %d events, stats %+v; want page 1 (5 events) kept", delivered, stats)
	}
	if n := len(searchRequests(t, sim)); n != 1+3 {
		t.Errorf("requests = %d, want 1 + 3 attempts", n)
	}
	if strings.Contains(err.Error(), simmisp.DefaultKey) {
		t.Error("error text contains the API key")
	}
}

func TestSearchEventsCallbackErrorStops(t *testing.T) {
	sim := newSim(t, simmisp.Options{}, 12)
	c := newClient(t, misp.ClientConfig{URL: sim.URL()})
	stop := errors.New("store full")
	_, err := c.SearchEvents(context.Background(), map[string]any{"published": true}, 5, func([]*misp.Event) error { return stop })
	if !errors.Is(err, stop) {
		t.Fatalf("err = %v, want the callback's error", err)
	}
	if n := len(searchRequests(t, sim)); n != 1 {
		t.Errorf("requests = %d after the callback failed, want 1", n)
	}
}

func TestBadKey(t *testing.T) {
	sim := newSim(t, simmisp.Options{}, 3)
	c := newClient(t, misp.ClientConfig{URL: sim.URL(), Key: strings.Repeat("x", 40)})

	_, err := c.Version(context.Background())
	var ae *misp.AuthError
	if !errors.Is(err, misp.ErrAuth) || !errors.As(err, &ae) {
		t.Fatalf("Version with a bad key: err = %v, want an AuthError", err)
	}
	if ae.StatusCode != http.StatusForbidden || !strings.HasPrefix(ae.Message, "Authentication failed.") {
		t.Errorf("AuthError = %+v", ae)
	}
	_, err = c.SearchEvents(context.Background(), map[string]any{"published": true}, 10, func([]*misp.Event) error { return nil })
	if !errors.Is(err, misp.ErrAuth) {
		t.Errorf("SearchEvents with a bad key: err = %v, want ErrAuth", err)
	}
	if n := len(searchRequests(t, sim)); n != 1 {
		t.Errorf("a rejected key was retried: %d requests", n)
	}

	good := newClient(t, misp.ClientConfig{URL: sim.URL()})
	v, err := good.Version(context.Background())
	if err != nil || v != simmisp.DefaultVersion {
		t.Errorf("Version = %q, %v; want %q", v, err, simmisp.DefaultVersion)
	}
	for _, r := range sim.Requests() {
		if r.Header.Get("Accept") != "application/json" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: Accept %q Content-Type %q", r.Method, r.Path, r.Header.Get("Accept"), r.Header.Get("Content-Type"))
		}
		if a := r.Header.Get("Authorization"); strings.HasPrefix(a, "Bearer") || len(a) != 40 {
			t.Errorf("Authorization header %q is not the raw key", a)
		}
		if ua := r.Header.Get("User-Agent"); ua != version.UserAgent(config.DefaultUserAgent) {
			t.Errorf("User-Agent %q, want %q", ua, version.UserAgent(config.DefaultUserAgent))
		}
	}
}

func TestTLS(t *testing.T) {
	sim := newSim(t, simmisp.Options{TLS: true}, 1)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, sim.CertificatePEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     misp.ClientConfig
		wantErr string
	}{
		{name: "verification on by default", cfg: misp.ClientConfig{}, wantErr: "certificate"},
		{name: "CA file", cfg: misp.ClientConfig{CAFile: caFile}},
		{name: "verification off", cfg: misp.ClientConfig{InsecureSkipVerify: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.URL = sim.URL()
			tt.cfg.MaxPageAttempts = 1
			c := newClient(t, tt.cfg)
			_, err := c.Version(context.Background())
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Version: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Version: err = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewClientRejectsBadConfig(t *testing.T) {
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  misp.ClientConfig
	}{
		{"no url", misp.ClientConfig{Key: simmisp.DefaultKey}},
		{"relative url", misp.ClientConfig{URL: "misp.example.org", Key: simmisp.DefaultKey}},
		{"ftp url", misp.ClientConfig{URL: "ftp://misp.example.org", Key: simmisp.DefaultKey}},
		{"short key", misp.ClientConfig{URL: "https://misp.example.org", Key: "abc"}},
		{"bearer key", misp.ClientConfig{URL: "https://misp.example.org", Key: "Bearer " + simmisp.DefaultKey}},
		{"missing CA file", misp.ClientConfig{URL: "https://misp.example.org", Key: simmisp.DefaultKey, CAFile: "/nonexistent/ca.pem"}},
		{"CA file without PEM", misp.ClientConfig{URL: "https://misp.example.org", Key: simmisp.DefaultKey, CAFile: notPEM}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := misp.NewClient(complete(tt.cfg))
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), simmisp.DefaultKey) {
				t.Errorf("error %q contains the key", err)
			}
		})
	}
}

func TestViewEvent(t *testing.T) {
	sim := newSim(t, simmisp.Options{}, 2)
	c := newClient(t, misp.ClientConfig{URL: sim.URL()})
	uuid := sim.Events()[1]

	ev, err := c.ViewEvent(context.Background(), uuid)
	if err != nil {
		t.Fatalf("ViewEvent: %v", err)
	}
	if ev.UUID != uuid || len(ev.Attributes) != 3 {
		t.Errorf("event %s with %d attributes, want %s with 3", ev.UUID, len(ev.Attributes), uuid)
	}

	sim.Delete(uuid)
	_, err = c.ViewEvent(context.Background(), uuid)
	if !errors.Is(err, misp.ErrEventNotFound) {
		t.Errorf("deleted event: err = %v, want ErrEventNotFound", err)
	}
	before := len(sim.Requests())
	for _, bad := range []string{"", "../servers/getVersion", "a b", strings.Repeat("a", 65)} {
		if _, err := c.ViewEvent(context.Background(), bad); err == nil || errors.Is(err, misp.ErrEventNotFound) {
			t.Errorf("ViewEvent(%q): err = %v, want a validation error", bad, err)
		}
	}
	if len(sim.Requests()) != before {
		t.Error("invalid uuids reached MISP")
	}
}

func TestViewEventForbiddenInvalidEvent(t *testing.T) {
	// Some MISP versions answer 403 "Invalid event" for events the user may not see.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"name":"Invalid event","message":"Invalid event","url":"\/events\/view\/1"}`))
	}))
	defer srv.Close()
	c := newClient(t, misp.ClientConfig{URL: srv.URL})
	if _, err := c.ViewEvent(context.Background(), "1"); !errors.Is(err, misp.ErrEventNotFound) || errors.Is(err, misp.ErrAuth) {
		t.Errorf("err = %v, want ErrEventNotFound and not ErrAuth", err)
	}
}

func TestSearchEventAppliesServerSideFilters(t *testing.T) {
	sim := simmisp.New(simmisp.Options{Warninglist: []string{"8.8.8.8"}})
	const ev = `{"Event":{"uuid":"11111111-1111-4111-8111-111111111111","info":"x","published":true,
	  "timestamp":"1700000000","Tag":[{"name":"tlp:green"}],
	  "Attribute":[
	    {"uuid":"21111111-1111-4111-8111-111111111111","type":"ip-dst","value":"8.8.8.8","to_ids":true,"timestamp":"1700000000"},
	    {"uuid":"31111111-1111-4111-8111-111111111111","type":"ip-dst","value":"203.0.113.9","to_ids":true,"timestamp":"1700000000"}]}}`
	if err := sim.Put([]byte(ev)); err != nil {
		t.Fatal(err)
	}
	sim.Start()
	defer sim.Close()
	c := newClient(t, misp.ClientConfig{URL: sim.URL()})
	uuid := "11111111-1111-4111-8111-111111111111"

	got, ok, err := c.SearchEvent(context.Background(), uuid, map[string]any{"enforceWarninglist": true, "tags": []any{"tlp:green"}})
	if err != nil || !ok {
		t.Fatalf("SearchEvent = %v, %v", ok, err)
	}
	if len(got.Attributes) != 1 || got.Attributes[0].Value != "203.0.113.9" {
		t.Errorf("attributes %+v, want only the one off the warninglist", got.Attributes)
	}
	_, ok, err = c.SearchEvent(context.Background(), uuid, map[string]any{"tags": map[string]any{"NOT": []any{"tlp:green"}}})
	if err != nil || ok {
		t.Errorf("excluded event: ok %v err %v, want false, nil", ok, err)
	}
	_, ok, err = c.SearchEvent(context.Background(), "99999999-1111-4111-8111-111111111111", nil)
	if err != nil || ok {
		t.Errorf("unknown event: ok %v err %v, want false, nil", ok, err)
	}
}

func TestSearchHonoursContext(t *testing.T) {
	sim := newSim(t, simmisp.Options{}, 3)
	sim.InjectFault(simmisp.Fault{Kind: simmisp.FaultHang})
	c := newClient(t, misp.ClientConfig{URL: sim.URL()})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for len(sim.Requests()) == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	_, err := c.SearchEvents(ctx, map[string]any{"published": true}, 10, func([]*misp.Event) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

// FuzzDecodeRESTResponse feeds arbitrary restSearch bodies to the decoder the client uses:
// it must return events or an error, never panic.
func FuzzDecodeRESTResponse(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "restsearch", "*.json"))
	for _, p := range seeds {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"response":[]}`))
	f.Add([]byte(`{"response":[{"Event":{"uuid":"a","timestamp":1,"Attribute":[{"to_ids":"1"}]}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		events, err := misp.DecodeEvents(data)
		if err != nil {
			return
		}
		for _, ev := range events {
			if ev == nil {
				t.Fatal("nil event without error")
			}
			ev.AllAttributes(func(*misp.Object, *misp.Attribute) bool { return true })
		}
	})
}

// TestSearchEventsSkipsAnEventAloneOverTheLimit: when one event alone is larger than
// MaxResponseBytes, the search learns its uuid from the page's metadata, reports it as
// undecodable and goes on with the others.
func TestSearchEventsSkipsAnEventAloneOverTheLimit(t *testing.T) {
	sim := newSim(t, simmisp.Options{}, 5)
	big := sim.Events()[2]
	for range 100 {
		if _, err := sim.AddAttribute(big, "domain", "Network activity", "big.example.org", true); err != nil {
			t.Fatal(err)
		}
	}
	c := newClient(t, misp.ClientConfig{URL: sim.URL(), MaxResponseBytes: 16 << 10})
	var skipped []misp.UndecodableEvent
	got := map[string]bool{}
	stats, err := c.StreamEvents(context.Background(), nil, 10, misp.Visitor{
		Event:       func(ev *misp.Event) error { got[ev.UUID] = true; return nil },
		Undecodable: func(u misp.UndecodableEvent) { skipped = append(skipped, u) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[big] || len(skipped) != 1 || skipped[0].UUID != big || !strings.Contains(skipped[0].Error(), "larger than 16384 bytes") {
		t.Errorf("%d events, skipped %v; want 4 and the big one named with the limit", len(got), skipped)
	}
	if stats.PageSize != 1 {
		t.Errorf("page size %d, want 1", stats.PageSize)
	}
}

// BenchmarkSearchEvents pages through 100,000 generated attributes (1,000 events) served by
// the simulator over loopback HTTP, decoding every page.
func BenchmarkSearchEvents(b *testing.B) {
	sim := simmisp.New(simmisp.Options{})
	sim.Generate(1000, 100, 1)
	sim.Start()
	defer sim.Close()
	c, err := misp.NewClient(complete(misp.ClientConfig{URL: sim.URL(), Key: simmisp.DefaultKey}))
	if err != nil {
		b.Fatal(err)
	}
	attrs := 0
	for b.Loop() {
		_, err := c.SearchEvents(context.Background(), map[string]any{"published": true}, 100, func(page []*misp.Event) error {
			for _, ev := range page {
				attrs += ev.AttributeCount()
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(attrs)/b.Elapsed().Seconds(), "attributes/s")
}
