package daemon_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/reconcile"
	"github.com/mispsentinel/listener/sim/lab"
)

// quietLogger keeps test output readable; warnings and errors still show.
func quietLogger(t testing.TB) *logrus.Logger {
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	log.SetOutput(testWriter{t})
	return log
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startDaemon runs the lab's daemon in-process until the test ends.
func startDaemon(t testing.TB, l *lab.Lab) (*daemon.Daemon, *config.Config) {
	t.Helper()
	return startDaemonWith(t, l, daemon.Options{})
}

// waitFor polls cond until it holds or the deadline passes. The deadline bounds a liveness
// wait; it is not a speed assertion.
func waitFor(t testing.TB, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not reached within %s: %s", what, within, last)
}

func waitForInitialReconcile(t testing.TB, d *daemon.Daemon) {
	waitFor(t, 60*time.Second, "start-up reconcile", func() (bool, string) {
		ts, err := d.Store().Watermark(reconcile.WatermarkFull)
		if err != nil {
			return false, err.Error()
		}
		return !ts.IsZero(), "no full reconcile yet"
	})
}

// TestEndToEndRealtime publishes 1,000 events over ZeroMQ (PLAIN on, the publisher restarted
// half-way) and 100 through the workflow webhook, and checks that Sentinel ends with exactly the
// indicators MISP's events yield.
func TestEndToEndRealtime(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	l, err := lab.Start(lab.Options{Dir: t.TempDir(), ZeroMQ: true, PLAIN: true, Webhook: true, Linger: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d, cfg := startDaemon(t, l)
	waitForInitialReconcile(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := l.Publisher.WaitForSubscription(ctx, "misp_json"); err != nil {
		t.Fatal(err)
	}

	uuids := l.MISP.Generate(1100, 5, 42)
	var appliedAtRestart float64
	for i, uuid := range uuids[:1000] {
		if i == 500 {
			if err := l.Publisher.Restart(); err != nil {
				t.Fatalf("restart publisher: %v", err)
			}
			if err := l.Publisher.WaitForSubscription(ctx, "misp_json"); err != nil {
				t.Fatalf("subscriber did not come back after the publisher restarted: %v", err)
			}
			// Messages still queued towards the old connection are lost with it (MISP's PUB
			// socket keeps nothing for a subscriber that is gone); the catch-up covers them.
			// What must hold is that the stream resumes on the new connection.
			appliedAtRestart = metricValue(t, d, `listener_event_notices_applied_total{source="zeromq"}`)
		}
		if err := l.MISP.PublishZMQ(l.Publisher, uuid); err != nil {
			t.Fatal(err)
		}
	}
	hookURL := "http://" + d.Addr("webhook") + "/v1/misp/webhook"
	for _, uuid := range uuids[1000:] {
		if err := l.MISP.Publish(uuid); err != nil {
			t.Fatal(err)
		}
		if _, err := l.MISP.PostWebhook(ctx, hookURL, http.Header{"Authorization": {l.WebhookToken}}, uuid); err != nil {
			t.Fatal(err)
		}
	}
	waitConverged(t, l, cfg, 90*time.Second)

	applied := metricValue(t, d, `listener_event_notices_applied_total{source="zeromq"}`)
	t.Logf("ZeroMQ notices applied: %v before the publisher restart, %v in all, of 1000 published", appliedAtRestart, applied)
	if after := applied - appliedAtRestart; after < 450 {
		t.Errorf("only %v ZeroMQ notices applied after the restart, of 500 published then: the stream did not resume", after)
	}
	if got := metricValue(t, d, `listener_event_notices_applied_total{source="webhook"}`); got != 100 {
		t.Errorf("webhook notices applied = %v, want 100", got)
	}
}

// metricValue reads one sample from the daemon's registry in text exposition.
func metricValue(t testing.TB, d *daemon.Daemon, series string) float64 {
	t.Helper()
	text := gatherText(t, d)
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, series+" ") {
			var v float64
			fmt.Sscanf(strings.TrimPrefix(line, series+" "), "%g", &v)
			return v
		}
	}
	return 0
}

func gatherText(t testing.TB, d *daemon.Daemon) string {
	t.Helper()
	rec := &strings.Builder{}
	if err := daemon.WriteMetrics(rec, d.Registry()); err != nil {
		t.Fatal(err)
	}
	return rec.String()
}

// waitConverged fails the test unless Sentinel holds exactly what MISP says within the time
// (a liveness bound, not a speed assertion).
func waitConverged(t testing.TB, l *lab.Lab, cfg *config.Config, within time.Duration) []lab.SinkState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	states, err := l.WaitConverged(ctx, cfg, 1)
	if err != nil {
		for _, s := range states {
			t.Log(s)
		}
		t.Fatalf("Sentinel simulator never matched MISP: %v", err)
	}
	return states
}
