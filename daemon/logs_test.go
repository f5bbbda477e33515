package daemon_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/sim/lab"
	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
	"github.com/mispsentinel/listener/stix"
	"github.com/mispsentinel/listener/store"
)

// logBuffer is a goroutine-safe log sink.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines parses every JSON line written so far.
func (b *logBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	text := b.buf.String()
	b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, sc.Text())
		}
		out = append(out, m)
	}
	return out
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// findLine returns the first line with msg whose fields match (a field "" must only be
// present and not empty), or nil.
func findLine(lines []map[string]any, msg string, match map[string]string) map[string]any {
next:
	for _, l := range lines {
		if l["msg"] != msg {
			continue
		}
		for k, v := range match {
			got, ok := l[k]
			if !ok {
				continue next
			}
			s, _ := got.(string)
			if v == "" && (s == "" && got == nil) || v != "" && s != v {
				continue next
			}
		}
		return l
	}
	return nil
}

// TestLogsAnswerQuestions runs a small scenario (a start-up reconcile, events over ZeroMQ and
// the webhook, a throttling storm, a record Sentinel rejects, a sink that fails and heals)
// with the log at debug, and checks that the log answers "what happened to event X in sink
// Y": one line per event applied with its per-sink counts, per reconcile run, per 429, per
// dead letter and per sink state change, at debug one per upload request and per attribute
// decision, the bound addresses at start; and that no secret appears in any line.
func TestLogsAnswerQuestions(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	l, err := lab.Start(lab.Options{
		Dir: t.TempDir(), ZeroMQ: true, PLAIN: true, Webhook: true, Linger: 100 * time.Millisecond,
		Sinks: []lab.SinkSpec{{Name: "primary", ExtraYAML: "batch_size: 5"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, u := range l.MISP.Generate(4, 4, 21) { // found by the start-up reconcile
		if err := l.MISP.Publish(u); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := l.Config()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Metrics.Listen = "127.0.0.1:0"
	cfg.Webhook.Listen = "127.0.0.1:0"
	cfg.Pusher.FailingBackoff = config.Backoff{Initial: 100 * time.Millisecond, Max: 400 * time.Millisecond}
	st, err := store.Open(cfg.Store.Dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bad := lab.RejectedIndicator()
	if _, err := st.Apply("primary", bad.EventUUID, []stix.Object{bad}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	var out logBuffer
	log := logrus.New()
	log.SetOutput(&out)
	log.SetLevel(logrus.DebugLevel)
	log.SetFormatter(&logrus.JSONFormatter{TimestampFormat: "2006-01-02T15:04:05.000Z07:00"})
	l.Sentinel.ThrottleUploads(1, time.Second) // the first upload is throttled, however late it comes
	d, stop := runDaemon(t, cfg, daemon.Options{Registry: prometheus.NewRegistry(), Logger: log})
	defer stop()
	waitForInitialReconcile(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.Publisher.WaitForSubscription(ctx, "misp_json"); err != nil {
		t.Fatal(err)
	}
	zmq := l.MISP.Generate(2, 4, 22)
	for _, u := range zmq {
		if err := l.MISP.PublishZMQ(l.Publisher, u); err != nil {
			t.Fatal(err)
		}
	}
	hook := l.MISP.Generate(1, 4, 23)[0]
	if err := l.MISP.Publish(hook); err != nil {
		t.Fatal(err)
	}
	if code, err := l.MISP.PostWebhook(ctx, "http://"+d.Addr("webhook")+cfg.Webhook.Path, http.Header{"Authorization": {l.WebhookToken}}, hook); err != nil || code != http.StatusAccepted {
		t.Fatalf("webhook: %d %v", code, err)
	}
	waitConverged(t, l, cfg, time.Minute)

	// The role is removed: the sink fails; granted again: it recovers.
	l.Sentinel.SetContributor(simsentinel.DefaultWorkspaceID, simsentinel.DefaultClientID, false)
	if err := l.MISP.PublishZMQ(l.Publisher, l.MISP.Generate(1, 4, 24)[0]); err != nil {
		t.Fatal(err)
	}
	waitSinkState(t, d, "failing")
	l.Sentinel.SetContributor(simsentinel.DefaultWorkspaceID, simsentinel.DefaultClientID, true)
	waitSinkState(t, d, "up")
	waitConverged(t, l, cfg, time.Minute)
	stop()

	lines := out.lines(t)
	stamp := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$`)
	for _, l := range lines {
		if s, _ := l["time"].(string); !stamp.MatchString(s) {
			t.Fatalf("line without an RFC 3339 millisecond timestamp: %v", l)
		}
	}
	want := []struct {
		what  string
		msg   string
		match map[string]string
	}{
		{"bound addresses", "listener started", map[string]string{"webhook_addr": "", "metrics_addr": "", "store_dir": cfg.Store.Dir}},
		{"event over ZeroMQ", "event applied", map[string]string{"source": "zeromq", "event_uuid": zmq[0], "event_id": "", "sink_primary": "", "duration": ""}},
		{"event over the webhook", "event applied", map[string]string{"source": "webhook", "event_uuid": hook, "event_id": "", "sink_primary": "", "duration": ""}},
		{"event found by the start-up reconcile", "event applied", map[string]string{"source": "reconcile", "event_uuid": "", "sink_primary": ""}},
		{"reconcile run", "reconcile finished", map[string]string{"trigger": ""}},
		{"429", "upload throttled; waiting as the API asked", map[string]string{"sink": "primary", "identity": "", "wait": ""}},
		{"dead letter", "the sink rejected an object; dead-lettered", map[string]string{"sink": "primary", "id": bad.ID, "message": ""}},
		{"sink failing", "sink failing: fix its configuration (a rotated secret is read again before each retry); its objects stay queued", map[string]string{"sink": "primary", "error": ""}},
		{"sink recovered", "sink recovered", map[string]string{"sink": "primary", "failing_since": ""}},
		{"upload request", "upload request", map[string]string{"sink": "primary"}},
		{"attribute decision", "attribute exported", map[string]string{"sink": "primary", "event_uuid": "", "attribute_uuid": "", "indicators": ""}},
	}
	for _, w := range want {
		if findLine(lines, w.msg, w.match) == nil {
			t.Errorf("no %s line (%q with %v)", w.what, w.msg, w.match)
		}
	}
	started := findLine(lines, "listener started", nil)
	for _, k := range []string{"webhook_addr", "metrics_addr"} {
		if a, _ := started[k].(string); strings.HasSuffix(a, ":0") || a == "" {
			t.Errorf("start line %s = %q, want the port actually bound", k, a)
		}
	}
	req := findLine(lines, "upload request", map[string]string{"sink": "primary"})
	for _, k := range []string{"objects", "accepted", "rejected", "status", "duration", "attempt"} {
		if _, ok := req[k]; !ok {
			t.Errorf("upload request line has no %s: %v", k, req)
		}
	}
	if ev := findLine(lines, "event applied", map[string]string{"source": "zeromq", "event_uuid": zmq[0]}); ev != nil {
		if s, _ := ev["sink_primary"].(string); !regexp.MustCompile(`^new=\d+ changed=\d+ revoked=\d+ unchanged=\d+`).MatchString(s) {
			t.Errorf("event line's per-sink counts %q", s)
		}
	}

	text := out.String()
	for name, secret := range map[string]string{
		"client secret": simsentinel.DefaultClientSecret, "MISP key": l.MISP.Key(),
		"webhook token": l.WebhookToken, "ZeroMQ password": cfg.ZeroMQ.Password.Value(),
	} {
		if secret == "" {
			t.Fatalf("the scenario has no %s to look for", name)
		}
		if strings.Contains(text, secret) {
			t.Errorf("the log holds the %s", name)
		}
	}
	t.Logf("%d log lines", len(lines))
	if t.Failed() {
		t.Log(text)
	}
}
