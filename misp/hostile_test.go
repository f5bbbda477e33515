package misp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mispsentinel/listener/misp"
	simmisp "github.com/mispsentinel/listener/sim/misp"
)

// TestRedirectNeverCarriesTheKeyElsewhere is issue 19 row 8: on an https → http redirect to the
// same host Go re-sends the Authorization header, so the MISP key went out in clear. A redirect
// that downgrades the scheme or changes the host is refused, without retrying, and the key never
// reaches the target; a redirect within the same origin is still followed.
func TestRedirectNeverCarriesTheKeyElsewhere(t *testing.T) {
	var keySeen atomic.Int32
	plain := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			keySeen.Add(1)
		}
		rw.Header().Set("Content-Type", "application/json")
		_, _ = rw.Write([]byte(`{"response":[]}`))
	}))
	defer plain.Close()
	var redirects atomic.Int32
	var tlsSrv *httptest.Server
	tlsSrv = httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/to-http/events/restSearch":
			redirects.Add(1)
			// Same host (127.0.0.1), scheme downgraded.
			http.Redirect(rw, r, plain.URL+"/events/restSearch", http.StatusTemporaryRedirect)
		case "/to-other-host/events/restSearch":
			redirects.Add(1)
			http.Redirect(rw, r, strings.Replace(tlsSrv.URL, "127.0.0.1", "localhost", 1)+"/events/restSearch", http.StatusTemporaryRedirect)
		case "/same-origin/events/restSearch":
			http.Redirect(rw, r, tlsSrv.URL+"/events/restSearch", http.StatusTemporaryRedirect)
		default:
			rw.Header().Set("Content-Type", "application/json")
			_, _ = rw.Write([]byte(`{"response":[]}`))
		}
	}))
	defer tlsSrv.Close()
	search := func(prefix string) error {
		c := newClient(t, misp.ClientConfig{URL: tlsSrv.URL + prefix, Key: simmisp.DefaultKey, HTTPClient: tlsSrv.Client(), MaxPageAttempts: 3})
		_, err := c.SearchEvents(context.Background(), nil, 10, func([]*misp.Event) error { return nil })
		return err
	}
	for _, prefix := range []string{"/to-http", "/to-other-host"} {
		err := search(prefix)
		if err == nil || !strings.Contains(err.Error(), "redirect") {
			t.Errorf("%s: error %v, want a refused redirect", prefix, err)
		}
	}
	if n := keySeen.Load(); n != 0 {
		t.Errorf("the MISP key reached the plain-HTTP target %d times", n)
	}
	if n := redirects.Load(); n != 2 {
		t.Errorf("%d redirecting requests, want 2 (a refused redirect is not retried)", n)
	}
	if err := search("/same-origin"); err != nil {
		t.Errorf("same-origin redirect: %v", err)
	}
}

// lyingPager serves n events in pages; ignorePage answers page 1 whatever is asked, and count
// is the X-Result-Count it claims.
func lyingPager(t *testing.T, n int, ignorePage bool, count int) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var req struct{ Page, Limit int }
		_ = json.NewDecoder(r.Body).Decode(&req)
		if ignorePage {
			req.Page = 1
		}
		var events []string
		for i := (req.Page - 1) * req.Limit; i < min(n, req.Page*req.Limit); i++ {
			events = append(events, fmt.Sprintf(`{"Event":{"id":"%d","uuid":"%08x-0000-4000-8000-000000000000","info":"e","Attribute":[]}}`, i+1, i))
		}
		rw.Header().Set("X-Result-Count", strconv.Itoa(count))
		rw.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(rw, `{"response":[%s]}`, strings.Join(events, ","))
	}))
}

// TestPagerDistrustsMISP is issue 19 row 4: a MISP ignoring "page" made the reconciler loop for
// ever, and an X-Result-Count too low silently truncated a run (100 of 250 events, no error).
func TestPagerDistrustsMISP(t *testing.T) {
	run := func(srv *httptest.Server) (int, error) {
		defer srv.Close()
		c := newClient(t, misp.ClientConfig{URL: srv.URL, Key: simmisp.DefaultKey, MaxPageAttempts: 1})
		got := 0
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := c.SearchEvents(ctx, nil, 50, func(p []*misp.Event) error { got += len(p); return nil })
		return got, err
	}
	got, err := run(lyingPager(t, 250, true, 250))
	if err == nil || !strings.Contains(err.Error(), "ignores paging") {
		t.Errorf("MISP ignoring page: %d events, error %v; want an error naming the fault", got, err)
	}
	got, err = run(lyingPager(t, 250, false, 100))
	if err != nil || got != 250 {
		t.Errorf("X-Result-Count 100 of 250: %d events, error %v; want all 250", got, err)
	}
}
