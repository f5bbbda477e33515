package daemon_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/sirupsen/logrus"

	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/internal/version"
	"github.com/mispsentinel/listener/reconcile"
	"github.com/mispsentinel/listener/sim/lab"
	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
	"github.com/mispsentinel/listener/stix"
	"github.com/mispsentinel/listener/store"
)

// TestMetricsExposition runs the daemon against the simulators with a throttling storm and
// injected server errors, a webhook, ZeroMQ and a revocation, and compares the exposition of
// a fresh registry with what the simulators recorded.
func TestMetricsExposition(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	l, err := lab.Start(lab.Options{
		Dir: t.TempDir(), ZeroMQ: true, Webhook: true, Linger: 100 * time.Millisecond,
		Sinks:    []lab.SinkSpec{{Name: "primary", ExtraYAML: "batch_size: 5"}},
		Sentinel: simsentinel.Options{Seed: 3, Faults: simsentinel.Faults{ServerErrorRate: 0.15}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.MISP.Generate(20, 5, 11) // found by the start-up reconcile
	cfg, err := l.Config()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Metrics.Listen = "127.0.0.1:0"
	// One queued object Sentinel rejects (valid_until before valid_from): a dead letter.
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
	reg := prometheus.NewRegistry()
	log := quietLogger(t)
	log.SetLevel(logrus.ErrorLevel) // the injected 5xx are logged as warnings
	// The first uploads are throttled however long the start-up takes (a storm timed from
	// here could end before the daemon uploads anything under load or -race).
	l.Sentinel.ThrottleUploads(2, time.Second)
	d, stop := runDaemon(t, cfg, daemon.Options{Registry: reg, Logger: log})
	defer stop()
	waitForInitialReconcile(t, d)
	wctx, wcancel := context.WithTimeout(context.Background(), time.Minute)
	defer wcancel()
	if err := l.Publisher.WaitForSubscription(wctx, "misp_json"); err != nil {
		t.Fatal(err)
	}

	zmq := l.MISP.Generate(3, 5, 12)
	for _, u := range zmq {
		if err := l.MISP.PublishZMQ(l.Publisher, u); err != nil {
			t.Fatal(err)
		}
	}
	hooks := l.MISP.Generate(2, 5, 13)
	for _, u := range hooks {
		if err := l.MISP.Publish(u); err != nil {
			t.Fatal(err)
		}
		code, err := l.MISP.PostWebhook(wctx, "http://"+d.Addr("webhook")+cfg.Webhook.Path, http.Header{"Authorization": {l.WebhookToken}}, u)
		if err != nil || code != http.StatusAccepted {
			t.Fatalf("webhook: %d %v", code, err)
		}
	}
	waitConverged(t, l, cfg, time.Minute)
	// Revoke: delete one event announced over ZeroMQ.
	if err := l.MISP.DeleteZMQ(l.Publisher, zmq[0]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "revocations uploaded", func() (bool, string) {
		n := revokedCount(l, cfg.Sinks[0].SourceSystem)
		st, err := d.Store().Stats("primary")
		if err != nil {
			return false, err.Error()
		}
		return n > 0 && st.OutboxDepth == 0, fmt.Sprintf("%d revoked, outbox %d", n, st.OutboxDepth)
	})
	waitConverged(t, l, cfg, time.Minute)

	stats := l.Sentinel.Stats()
	if stats.Throttled == 0 || stats.ServerErrors == 0 {
		t.Fatalf("the run saw %d 429s and %d 5xx; the test needs both", stats.Throttled, stats.ServerErrors)
	}
	full, err := d.Store().Watermark(reconcile.WatermarkFull)
	if err != nil {
		t.Fatal(err)
	}
	incremental, err := d.Store().Watermark(reconcile.WatermarkIncremental)
	if err != nil {
		t.Fatal(err)
	}
	// Every object the simulator accepted is an upsert or a revocation the pusher counted;
	// every rejected one is a dead letter.
	revoked := revokedCount(l, cfg.Sinks[0].SourceSystem)
	dead, err := d.Store().DeadLetters("primary", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) == 0 || len(dead) != stats.ObjectsRejected {
		t.Errorf("%d dead letters, the simulator rejected %d objects; want the one bad object", len(dead), stats.ObjectsRejected)
	}
	want := fmt.Sprintf(`
# HELP listener_dead_letters Objects Sentinel rejected that wait in the dead-letter list, per sink.
# TYPE listener_dead_letters gauge
listener_dead_letters{sink="primary"} %d
# HELP listener_event_notices_applied_total Real-time event notices applied to the store, by source (zeromq, webhook).
# TYPE listener_event_notices_applied_total counter
listener_event_notices_applied_total{source="webhook"} 2
listener_event_notices_applied_total{source="zeromq"} 4
# HELP listener_indicators_rejected_total Objects the sink rejected and the pusher dead-lettered, per sink.
# TYPE listener_indicators_rejected_total counter
listener_indicators_rejected_total{sink="primary"} %d
# HELP listener_indicators_revoked_total Revocations the sink accepted, per sink.
# TYPE listener_indicators_revoked_total counter
listener_indicators_revoked_total{sink="primary"} %d
# HELP listener_indicators_uploaded_total Upserts the sink accepted, per sink (revocations are counted apart).
# TYPE listener_indicators_uploaded_total counter
listener_indicators_uploaded_total{sink="primary"} %d
# HELP listener_outbox_depth Objects queued for upload, per sink.
# TYPE listener_outbox_depth gauge
listener_outbox_depth{sink="primary"} 0
# HELP listener_reconcile_last_success_timestamp_seconds Unix time at which the last successful reconcile of each kind started.
# TYPE listener_reconcile_last_success_timestamp_seconds gauge
listener_reconcile_last_success_timestamp_seconds{kind="full"} %d
listener_reconcile_last_success_timestamp_seconds{kind="incremental"} %d
# HELP listener_upload_retries_total Upload attempts the sink did not settle and that were retried, per sink and reason (throttled = HTTP 429, server_error = HTTP 5xx, network, other).
# TYPE listener_upload_retries_total counter
listener_upload_retries_total{reason="server_error",sink="primary"} %d
listener_upload_retries_total{reason="throttled",sink="primary"} %d
`, len(dead), len(dead), revoked, stats.ObjectsAccepted-revoked, full.Unix(), incremental.Unix(), stats.ServerErrors, stats.Throttled)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"listener_dead_letters", "listener_event_notices_applied_total", "listener_indicators_rejected_total", "listener_indicators_revoked_total",
		"listener_indicators_uploaded_total", "listener_outbox_depth", "listener_reconcile_last_success_timestamp_seconds",
		"listener_upload_retries_total"); err != nil {
		t.Error(err)
	}

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range families {
		byName[f.GetName()] = f
	}
	// The upload latency histogram has one observation per delivered batch: each ended with
	// one request the simulator served.
	h := byName["listener_upload_duration_seconds"]
	if h == nil || len(h.Metric) != 1 || h.Metric[0].GetHistogram().GetSampleCount() != uint64(stats.Served) {
		t.Errorf("listener_upload_duration_seconds = %v, want one series with %d observations", h, stats.Served)
	}
	// Skipped attributes carry a reason from stix's fixed set.
	skipped := byName["listener_attributes_skipped_total"]
	if skipped == nil {
		t.Fatal("no listener_attributes_skipped_total")
	}
	for _, m := range skipped.Metric {
		if reason := labelValue(m, "reason"); !slices.Contains(stix.SkipReasons, stix.SkipReason(reason)) {
			t.Errorf("listener_attributes_skipped_total has reason %q outside stix.SkipReasons", reason)
		}
	}
	checkMetricNamesAndLabels(t, reg, []string{"primary"})

	// The ops endpoint serves the same registry.
	resp, err := http.Get("http://" + d.Addr("metrics") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `listener_outbox_depth{sink="primary"} 0`) {
		t.Errorf("GET /metrics: %s\n%.500s", resp.Status, body)
	}
}

func revokedCount(l *lab.Lab, sourceSystem string) int {
	n := 0
	for _, r := range l.Sentinel.Indicators(simsentinel.DefaultWorkspaceID, sourceSystem) {
		if r.Revoked {
			n++
		}
	}
	return n
}

func labelValue(m *dto.Metric, name string) string {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}

// checkMetricNamesAndLabels lints the registry, checks that every metric of the listener's own
// packages shares one prefix, and that every label takes values from a bounded set.
func checkMetricNamesAndLabels(t *testing.T, reg *prometheus.Registry, sinks []string) {
	t.Helper()
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric lint: %s: %s", p.Metric, p.Text)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	bounded := map[string][]string{
		"sink":   sinks,
		"source": {"zeromq", "webhook"},
		"kind":   {"full", "incremental", "event", "published", "deleted", "unknown", "missing", "stale", "live_revoked", "foreign"},
		"result": {"ok", "failed"},
		"reason": nil, // checked per family below
		"code":   nil,
		// listener_build_info: one series, labelled with this binary's build.
		"version":   {version.String()},
		"revision":  {version.Revision()},
		"goversion": {version.GoVersion()},
	}
	for _, f := range families {
		name := f.GetName()
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") || strings.HasPrefix(name, "promhttp_") {
			continue
		}
		if !strings.HasPrefix(name, "listener_") {
			t.Errorf("metric %s lacks the listener_ prefix", name)
		}
		for _, m := range f.Metric {
			for _, lp := range m.GetLabel() {
				allowed, known := bounded[lp.GetName()]
				if !known {
					t.Errorf("metric %s has label %s of unknown cardinality", name, lp.GetName())
					continue
				}
				if allowed != nil && !slices.Contains(allowed, lp.GetValue()) {
					t.Errorf("metric %s label %s=%q outside %v", name, lp.GetName(), lp.GetValue(), allowed)
				}
			}
		}
	}
}
