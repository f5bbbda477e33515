package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/pusher"
	"github.com/mispsentinel/listener/sim/lab"
	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
)

// logRecorder keeps every log entry of a test's daemon (and forwards warnings and errors to
// the test log).
type logRecorder struct {
	t  testing.TB
	mu sync.Mutex
	// entries are the formatted lines (text formatter, every field) and the raw entries.
	lines   []string
	entries []logEntry
}

// logEntry is one recorded entry.
type logEntry struct {
	Level   logrus.Level
	Message string
	Data    logrus.Fields
}

func (r *logRecorder) Levels() []logrus.Level { return logrus.AllLevels }

func (r *logRecorder) Fire(e *logrus.Entry) error {
	line, err := (&logrus.TextFormatter{DisableColors: true}).Format(e)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, string(line))
	data := make(logrus.Fields, len(e.Data))
	for k, v := range e.Data {
		data[k] = v
	}
	r.entries = append(r.entries, logEntry{Level: e.Level, Message: e.Message, Data: data})
	return nil
}

// Lines returns a copy of the formatted log lines.
func (r *logRecorder) Lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

// Entries returns a copy of the entries.
func (r *logRecorder) Entries() []logEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]logEntry(nil), r.entries...)
}

// recordingLogger returns a logger at the given level that records everything it logs.
func recordingLogger(t testing.TB, level logrus.Level) (*logrus.Logger, *logRecorder) {
	rec := &logRecorder{t: t}
	log := logrus.New()
	log.SetOutput(io.Discard)
	log.SetLevel(level)
	log.AddHook(rec)
	return log, rec
}

// Identities and workspaces of the three-sink run.
const (
	sharedClientID = "0f5e3a2b-7c41-4d9e-a8b6-1c2d3e4f5a60"
	otherClientID  = "6a7b8c9d-0e1f-4a2b-9c3d-4e5f6a7b8c9d"
	greenWorkspace = "1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d"
	netWorkspace   = "2c3d4e5f-6071-4b8c-9d0e-1f2a3b4c5d6e"
	// registeredWorkspace is what the lab registers for the third sink; the test then points
	// the sink at unknownWorkspace, which the simulator answers 404.
	registeredWorkspace = "3d4e5f60-7182-4c9d-8e1f-2a3b4c5d6e7f"
	unknownWorkspace    = "4e5f6071-8293-4dae-9f20-3b4c5d6e7f80"
)

// TestThreeSinksSharedIdentity runs one daemon with three sinks: two with different filters
// sharing one Entra identity (and its quota), and one whose workspace id Sentinel does not
// know. Each working sink must end with exactly its filtered indicators, the shared identity
// must never be answered 429 although it sends several quota-minutes of requests, and the
// broken sink must stop alone with a clear message that `status` shows.
func TestThreeSinksSharedIdentity(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	const quota = 30 // requests per (scaled) minute per identity, in the simulator and the config
	rate := fmt.Sprintf("batch_size: 4\nrequests_per_minute: %d\n", quota)
	l, err := lab.Start(lab.Options{
		Dir: t.TempDir(),
		Sinks: []lab.SinkSpec{
			{Name: "green", WorkspaceID: greenWorkspace, ClientID: sharedClientID,
				ExtraYAML: rate + "filters:\n  max_tlp: tlp:green\n"},
			{Name: "net-killchain", WorkspaceID: netWorkspace, ClientID: sharedClientID,
				ExtraYAML: rate + "filters:\n  include_tags: [kill-chain, misp-galaxy]\n  attribute_types: [ip-dst, ip-src, domain, url, domain|ip]\n"},
			{Name: "wrong-workspace", WorkspaceID: registeredWorkspace, ClientID: otherClientID},
		},
		Linger: 100 * time.Millisecond,
		// One quota minute lasts two seconds.
		Sentinel: simsentinel.Options{QuotaPerMinute: quota, TimeScale: 30},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.MISP.Generate(150, 6, 7)

	cfg, err := l.Config()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Sinks[2].WorkspaceID = unknownWorkspace
	cfg.Metrics.Listen = "127.0.0.1:0"
	log, rec := recordingLogger(t, logrus.DebugLevel)
	// The pacer's default headroom (1 %, 0.6 s of a real minute) would be 20 ms of the
	// scaled minute, less than the spread of a burst of concurrent first requests (each
	// opening a TLS connection) on a loaded machine; 30 % (600 ms) keeps the absolute slack
	// a real minute has.
	d, stop := runDaemon(t, cfg, daemon.Options{Logger: log, LimiterMinute: l.Sentinel.Minute(), LimiterHeadroom: 0.3})
	defer stop()

	// The two working sinks converge to their own expectation.
	var states []lab.SinkState
	waitFor(t, 90*time.Second, "the two working sinks match MISP", func() (bool, string) {
		var err error
		if states, err = l.Compare(context.Background(), cfg, time.Now()); err != nil {
			return false, err.Error()
		}
		ok := states[0].Equal() && states[1].Equal() && states[0].Actual > 0 && states[1].Actual > 0
		return ok, fmt.Sprintf("%v; %v", states[0], states[1])
	})
	green, net, all := states[0].Expected, states[1].Expected, states[2].Expected
	t.Logf("expected live indicators: green %d, net-killchain %d, unfiltered %d", green, net, all)
	if green >= all || net >= all || green == net {
		t.Errorf("the filters did not narrow anything: green %d, net-killchain %d, unfiltered %d", green, net, all)
	}

	// The shared identity sent several quota-minutes of requests and was never throttled.
	stats := l.Sentinel.Stats()
	t.Logf("simulator: %d upload requests, %d answered 429, %d answered 404, first to last served %s",
		stats.UploadRequests, stats.Throttled, stats.NotFound, stats.LastServed.Sub(stats.FirstServed))
	if stats.UploadRequests < 2*quota {
		t.Errorf("only %d upload requests: the run did not exercise the quota (want at least %d)", stats.UploadRequests, 2*quota)
	}
	if stats.Throttled != 0 {
		t.Errorf("the simulator answered %d requests with 429: the shared identity exceeded %d requests per sliding minute", stats.Throttled, quota)
	}
	for _, sink := range []string{"green", "net-killchain"} {
		if got := metricValue(t, d, `listener_upload_retries_total{reason="throttled",sink="`+sink+`"}`); got != 0 {
			t.Errorf("sink %s retried %v throttled uploads", sink, got)
		}
	}

	// The broken sink failed alone, with a message naming the cause.
	var stopped *logEntry
	for _, e := range rec.Entries() {
		if e.Level <= logrus.ErrorLevel && e.Data["sink"] != "wrong-workspace" {
			t.Errorf("sink %v logged an error: %s %v", e.Data["sink"], e.Message, e.Data["error"])
		}
		if e.Data["sink"] == "wrong-workspace" && strings.HasPrefix(e.Message, "sink failing") {
			stopped = &e
		}
	}
	if stopped == nil {
		t.Fatalf("no \"sink failing\" log entry for sink wrong-workspace; log:\n%s", strings.Join(rec.Lines(), ""))
	}
	stopErr, _ := stopped.Data[logrus.ErrorKey].(error)
	if !errors.Is(stopErr, pusher.ErrSinkStopped) {
		t.Errorf("stop error %v does not wrap pusher.ErrSinkStopped", stopErr)
	}
	for _, want := range []string{"wrong-workspace", "HTTP 404", "workspace"} {
		if stopErr == nil || !strings.Contains(stopErr.Error(), want) {
			t.Errorf("stop error %q does not say %q", stopErr, want)
		}
	}
	// A failing sink is retried after each step of pusher.failing_backoff (1 min first), so
	// a run that lasts longer than that on a loaded machine counts one fatal error per retry.
	if got := metricValue(t, d, `listener_sink_fatal_errors_total{sink="wrong-workspace"}`); got < 1 {
		t.Errorf("listener_sink_fatal_errors_total{sink=wrong-workspace} = %v, want at least 1", got)
	}
	if got := metricValue(t, d, `listener_sink_up{sink="wrong-workspace"}`); got != 0 {
		t.Errorf("listener_sink_up{sink=wrong-workspace} = %v, want 0 while its workspace is unknown", got)
	}

	// No secret in any log line, at debug level.
	secrets := []string{l.MISP.Key()}
	for _, s := range l.Opts.Sinks {
		secrets = append(secrets, s.Secret)
	}
	for _, line := range rec.Lines() {
		for _, secret := range secrets {
			if strings.Contains(line, secret) {
				t.Errorf("a log line shows a secret: %s", line)
			}
		}
	}

	// Status, in-process and over the ops endpoint, shows it.
	st, err := d.Status()
	if err != nil {
		t.Fatal(err)
	}
	checkStatus(t, "Status()", st)
	resp, err := http.Get("http://" + d.Addr("metrics") + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var served daemon.Status
	if err := json.NewDecoder(resp.Body).Decode(&served); err != nil {
		t.Fatal(err)
	}
	checkStatus(t, "GET /status", &served)
}

func checkStatus(t *testing.T, via string, st *daemon.Status) {
	t.Helper()
	if len(st.Sinks) != 3 {
		t.Fatalf("%s: %d sinks, want 3", via, len(st.Sinks))
	}
	for _, s := range st.Sinks[:2] {
		if s.Problem() != "" || s.OutboxDepth != 0 || s.LastUploadAt.IsZero() {
			t.Errorf("%s: working sink %s: problem %q, outbox %d, last upload %v", via, s.Name, s.Problem(), s.OutboxDepth, s.LastUploadAt)
		}
	}
	bad := st.Sinks[2]
	if !strings.Contains(bad.Stopped, "HTTP 404") || bad.OutboxDepth == 0 {
		t.Errorf("%s: sink %s: stopped %q, outbox %d; want the 404 and its objects still queued", via, bad.Name, bad.Stopped, bad.OutboxDepth)
	}
	if st.LastFullReconcile.IsZero() {
		t.Errorf("%s: no last full reconcile", via)
	}
}
