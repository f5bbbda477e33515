package daemon

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mispsentinel/listener/config"
)

// probeGet returns a probe's status code and decoded JSON.
func probeGet(t *testing.T, srv *httptest.Server, path string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("%s answered %q: %v", path, body, err)
	}
	return resp.StatusCode, m
}

// With re-fetching on (event filters) and a real-time source, /readyz names MISP while it
// does not answer, and /healthz stays ok: MISP being down is no reason for a restart.
func TestReadyzNamesMISPHealthzIgnoresIt(t *testing.T) {
	d := newOfflineDaemonWith(t, "webhook: {enabled: true, listen: \"127.0.0.1:0\", auth_token: a-webhook-token-of-some-length}\n")
	d.cfg.MISP.EventFilters = map[string]any{"tags": []any{"tlp:white"}}
	if !d.needsMISP() {
		t.Fatal("event filters with a webhook: intake should need MISP")
	}
	d.mu.Lock()
	d.ready = true
	d.mu.Unlock()
	srv := httptest.NewServer(d.opsHandler())
	defer srv.Close()

	// MISP (127.0.0.1:9) refuses connections: the prober records the failure.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.runMISPProber(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(time.Minute)
	for {
		d.probes.mu.Lock()
		failed := d.probes.mispErr != nil
		d.probes.mu.Unlock()
		if failed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the MISP prober never recorded the refused connection")
		}
		time.Sleep(10 * time.Millisecond)
	}
	code, m := probeGet(t, srv, "/readyz")
	reasons, _ := m["reasons"].(map[string]any)
	if misp, _ := reasons["misp"].(string); code != 503 || !strings.Contains(misp, "no answer from MISP") || !strings.Contains(misp, "re-fetching is on") {
		t.Errorf("/readyz with MISP down = %d %v, want 503 naming MISP", code, m)
	}
	if code, m := probeGet(t, srv, "/healthz"); code != 200 || m["status"] != "ok" {
		t.Errorf("/healthz with MISP down = %d %v, want 200: MISP down is no reason to restart", code, m)
	}

	// MISP answered recently: ready.
	d.probes.mu.Lock()
	d.probes.mispAnswered, d.probes.mispErr = time.Now(), nil
	d.probes.mu.Unlock()
	if code, m := probeGet(t, srv, "/readyz"); code != 200 || m["status"] != "ready" {
		t.Errorf("/readyz with MISP answering = %d %v", code, m)
	}
	// An answer older than the bound is not recent.
	d.probes.mu.Lock()
	d.probes.mispAnswered = time.Now().Add(-config.ReadyMISPMaxAge - time.Second)
	d.probes.mu.Unlock()
	if code, m := probeGet(t, srv, "/readyz"); code != 503 || !strings.Contains(m["reasons"].(map[string]any)["misp"].(string), "no answer from MISP for") {
		t.Errorf("/readyz with MISP's last answer too old = %d %v", code, m)
	}
}

// Without re-fetching (realtime_fetch: never), MISP is no condition of readiness.
func TestReadyzWithoutRefetchIgnoresMISP(t *testing.T) {
	d := newOfflineDaemonWith(t, "webhook: {enabled: true, listen: \"127.0.0.1:0\", auth_token: a-webhook-token-of-some-length}\n")
	d.cfg.MISP.RealtimeFetch = config.RealtimeFetchNever
	if d.needsMISP() {
		t.Fatal("realtime_fetch never: intake should not need MISP")
	}
	d.mu.Lock()
	d.ready = true
	d.mu.Unlock()
	srv := httptest.NewServer(d.opsHandler())
	defer srv.Close()
	if code, m := probeGet(t, srv, "/readyz"); code != 200 {
		t.Errorf("/readyz = %d %v", code, m)
	}
}

// /healthz fails, naming the part, when a store read has not returned within the bound (a
// wedged Badger) or a sink's delivery loop stopped going round.
func TestHealthzFailsOnlyWhenWedged(t *testing.T) {
	d := newOfflineDaemon(t)
	d.mu.Lock()
	d.ready = true
	d.mu.Unlock()
	srv := httptest.NewServer(d.opsHandler())
	defer srv.Close()
	if code, m := probeGet(t, srv, "/healthz"); code != 200 || m["status"] != "ok" {
		t.Fatalf("/healthz = %d %v", code, m)
	}
	d.probes.mu.Lock()
	d.probes.storeReadSince = time.Now().Add(-config.LivenessBound - time.Minute)
	d.probes.mu.Unlock()
	code, m := probeGet(t, srv, "/healthz")
	reasons, _ := m["reasons"].(map[string]any)
	if store, _ := reasons["store"].(string); code != 503 || m["status"] != "wedged" || !strings.Contains(store, "store read has not returned") {
		t.Errorf("/healthz with a stuck store read = %d %v, want 503 naming the store", code, m)
	}
}
