package misp_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mispsentinel/listener/misp"
	simmisp "github.com/mispsentinel/listener/sim/misp"
)

// hostileMISP answers every request with what the fuzzer chose: a status, an X-Result-Count,
// a body (for page 1, and for every page when repeat is set, as a MISP ignoring "page" would),
// and optionally a connection cut after cut bytes.
type hostileMISP struct {
	mu     sync.Mutex
	status int
	count  string
	body   []byte
	repeat bool
	cut    int
	hits   int
}

func (h *hostileMISP) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	status, count, body, repeat, cut := h.status, h.count, h.body, h.repeat, h.cut
	h.hits++
	h.mu.Unlock()
	if !repeat && r.URL.Path == "/events/restSearch" && !strings.Contains(readAll(r), `"page":1,`) {
		body = []byte(`{"response":[]}`)
	}
	rw.Header().Set("Content-Type", "application/json")
	if count != "" {
		rw.Header().Set("X-Result-Count", count)
	}
	rw.WriteHeader(status)
	if cut > 0 && cut < len(body) {
		_, _ = rw.Write(body[:cut])
		panic(http.ErrAbortHandler) // the connection is cut mid-body
	}
	_, _ = rw.Write(body)
}

func readAll(r *http.Request) string {
	var b strings.Builder
	buf := make([]byte, 512)
	for {
		n, err := r.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// FuzzRestSearchPager runs the restSearch pager (StreamEvents, SearchEvents and SearchEvent)
// against a hostile server whose body, status, X-Result-Count and paging the fuzzer mutates.
// The pager must never panic, must stay within MaxResponseBytes and must end on its own (the
// context deadline is a finding, not an outcome), and what it delivers must be decoded events.
//
//	go test ./misp -run '^$' -fuzz FuzzRestSearchPager -fuzztime 10m -parallel 1
func FuzzRestSearchPager(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "restsearch", "*.json"))
	for _, p := range seeds {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, uint8(0), "3", false, uint16(0))
		f.Add(data, uint8(0), "1", true, uint16(0))
	}
	three := `{"response":[{"Event":{"uuid":"0a","Attribute":[]}},{"Event":{"uuid":"0b","Attribute":[{"first_seen":"not-a-date"}]}},{"Event":{"uuid":"0c"}}]}`
	f.Add([]byte(three), uint8(0), "900", true, uint16(0))
	f.Add([]byte(three), uint8(0), "", false, uint16(40))
	f.Add([]byte(`{"response":[null,1,"x",{},{"uuid":""},[]]}`), uint8(0), "-1", true, uint16(0))
	f.Add([]byte(`{"response":{"Event":[]}}`), uint8(1), "x", false, uint16(0))
	f.Add([]byte(`{"name":"Invalid event","message":"Invalid event"}`), uint8(3), "", false, uint16(0))
	f.Add([]byte(`[{"uuid":"a"},{"uuid":"a"},{"uuid":"a"}]`), uint8(0), "3", true, uint16(0))

	h := &hostileMISP{}
	srv := httptest.NewServer(h)
	f.Cleanup(srv.Close)
	const maxBody = 64 << 10
	c, err := misp.NewClient(complete(misp.ClientConfig{
		URL: srv.URL, Key: simmisp.DefaultKey, MaxPageAttempts: 2,
		RetryInterval: time.Millisecond, MaxResponseBytes: maxBody, Timeout: 5 * time.Second,
	}))
	if err != nil {
		f.Fatal(err)
	}
	statuses := []int{200, 500, 403, 404, 429, 302, 204, 401}
	f.Fuzz(func(t *testing.T, body []byte, status uint8, count string, repeat bool, cut uint16) {
		if len(body) > 4*maxBody {
			return
		}
		h.mu.Lock()
		h.status, h.count, h.body, h.repeat, h.cut, h.hits = statuses[int(status)%len(statuses)], count, body, repeat, int(cut), 0
		h.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		check := func(what string, err error) {
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%s did not end on its own: %v", what, err)
			}
		}
		_, err := c.StreamEvents(ctx, map[string]any{"published": true}, 3, misp.Visitor{
			Event: func(ev *misp.Event) error {
				if ev == nil || ev.UUID == "" {
					t.Fatalf("delivered %#v", ev)
				}
				ev.AllAttributes(func(*misp.Object, *misp.Attribute) bool { return true })
				return nil
			},
			Undecodable: func(u misp.UndecodableEvent) {
				if u.Err == nil {
					t.Fatal("undecodable event without an error")
				}
			},
		})
		check("StreamEvents", err)
		_, err = c.SearchEvents(ctx, nil, 2, func(page []*misp.Event) error {
			if len(page) == 0 {
				t.Fatal("empty page delivered")
			}
			return nil
		})
		check("SearchEvents", err)
		ev, found, err := c.SearchEvent(ctx, "0b", nil)
		if found && (ev == nil || err != nil) {
			t.Fatalf("SearchEvent found %v with %v", ev, err)
		}
		check("SearchEvent", err)
		h.mu.Lock()
		hits := h.hits
		h.mu.Unlock()
		if hits > 200 {
			t.Fatalf("%d requests for one hostile answer", hits)
		}
	})
}
