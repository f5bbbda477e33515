package daemon

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/mispsentinel/listener/internal/configtest"
	"github.com/mispsentinel/listener/internal/version"
)

// newOfflineDaemon assembles a daemon from a minimal configuration; nothing is contacted
// until Run.
func newOfflineDaemon(t *testing.T) *Daemon {
	t.Helper()
	return newOfflineDaemonWith(t, "")
}

// newOfflineDaemonWith is newOfflineDaemon with extra top-level YAML.
func newOfflineDaemonWith(t *testing.T, extra string) *Daemon {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	d, err := New(configtest.Offline(t, extra), Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestOpsEndpoints checks /healthz, /readyz (before and after start-up), /status and
// /metrics, and that other methods are refused.
func TestOpsEndpoints(t *testing.T) {
	d := newOfflineDaemon(t)
	srv := httptest.NewServer(d.opsHandler())
	defer srv.Close()

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/healthz"); code != 200 || body != `{"status":"ok"}` {
		t.Errorf("/healthz = %d %s", code, body)
	}
	if code, body := get("/readyz"); code != 503 || body != `{"status":"not ready","reasons":{"daemon":"starting"}}`+"\n" {
		t.Errorf("/readyz before start = %d %s, want 503 starting", code, body)
	}
	d.mu.Lock()
	d.ready = true
	d.mu.Unlock()
	if code, body := get("/readyz"); code != 200 || body != `{"status":"ready"}` {
		t.Errorf("/readyz after start = %d %s", code, body)
	}

	code, body := get("/status")
	var st Status
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		t.Fatalf("/status = %d %s (%v)", code, body, err)
	}
	if len(st.Sinks) != 1 || st.Sinks[0].Name != "main" || st.Sinks[0].State != "up" || st.Sinks[0].Stopped != "" {
		t.Errorf("/status = %+v", st)
	}

	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, `listener_outbox_depth{sink="main"} 0`) {
		t.Errorf("/metrics = %d %.300s", code, body)
	}
	info := version.Get()
	buildInfo := fmt.Sprintf(`listener_build_info{goversion=%q,revision=%q,version=%q} 1`, info.GoVersion, info.Revision, info.Version)
	if _, body := get("/metrics"); !strings.Contains(body, buildInfo) {
		t.Errorf("/metrics lacks %s", buildInfo)
	}
	resp, err := http.Post(srv.URL+"/healthz", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz = %d, want 405", resp.StatusCode)
	}
	if code, _ := get("/nope"); code != 404 {
		t.Errorf("/nope = %d, want 404", code)
	}
}
