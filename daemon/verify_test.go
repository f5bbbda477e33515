package daemon_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/sim/lab"
	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
	"github.com/mispsentinel/listener/verify"
)

// verifyOnce runs one `listener verify` in-process with a fresh daemon, as the command does.
func verifyOnce(t *testing.T, l *lab.Lab, cfg *config.Config, now func() time.Time, repair bool) daemon.VerifyResult {
	t.Helper()
	d, err := daemon.New(cfg, daemon.Options{Logger: quietLogger(t), Now: now, LimiterMinute: l.Sentinel.Minute()})
	if err != nil {
		t.Fatalf("new daemon: %v", err)
	}
	defer d.Close()
	results, err := d.Verify(context.Background(), daemon.VerifyOptions{Repair: repair, Deliver: repair})
	if err != nil || len(results) != 1 {
		t.Fatalf("verify: %v %v", results, err)
	}
	r := results[0]
	if r.Err != nil {
		t.Fatalf("verify %s: %v", r.Sink, r.Err)
	}
	t.Logf("verify: %s", r.Report.Summary())
	return r
}

// exampleIDs returns the ids of the report's examples of kind, sorted.
func exampleIDs(rep *verify.Report, kind string) []string {
	var ids []string
	for _, ex := range rep.Examples[kind] {
		ids = append(ids, ex.ID)
	}
	slices.Sort(ids)
	return ids
}

// TestVerifyAcceptance is issue 15's read-back acceptance line, with each read-back API:
// after a run verify reports no difference; after 5 % of the objects are deleted and 1 %
// altered behind the listener's back it reports exactly those; verify --repair brings it back
// to no difference; and with a configured lag, objects just uploaded (not yet visible) are
// not reported.
func TestVerifyAcceptance(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	for _, api := range []string{config.ReadBackIndicators, config.ReadBackSTIXObjects} {
		t.Run(api, func(t *testing.T) { testVerifyAcceptance(t, api) })
	}
}

func testVerifyAcceptance(t *testing.T, api string) {
	// One clock for the daemon and the simulator, so that the lag can be tested by moving it.
	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
	sim := simsentinel.Options{TimeScale: 200, Now: clk.Now}
	l, err := lab.Start(lab.Options{Dir: t.TempDir(), Sentinel: sim, ExtraYAML: "verify:\n  examples: 1000\n"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sub, rg, name := l.Sentinel.Location(simsentinel.DefaultWorkspaceID)
	l.MISP.Generate(40, 50, 15)
	cfg, err := l.Config()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Sinks[0].ReadBack = config.ReadBack{SubscriptionID: sub, ResourceGroup: rg, WorkspaceName: name, API: api,
		Lag: 0, PageSize: 100, RequestsPerMinute: 1000}
	if api == config.ReadBackSTIXObjects {
		cfg.Sinks[0].ReadBack.APIVersion = "2025-07-01-preview"
	} else {
		cfg.Sinks[0].ReadBack.APIVersion = "2025-09-01"
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}

	// 1. After a run, no difference.
	rep, err := syncOnce(t, l, cfg, clk.Now, daemon.SyncOptions{})
	checkNotFailed(t, "sync", rep, err)
	r := verifyOnce(t, l, cfg, clk.Now, false)
	if r.Report.Differences() != 0 || r.Report.Judged == 0 || r.Report.Held != r.Report.Judged {
		t.Fatalf("after the run: %s", r.Report.Summary())
	}
	checkTraceReadsSentinel(t, l, cfg, clk.Now)

	// 2. Delete 5 % and alter 1 % of the live indicators behind the listener's back.
	var live []string
	for id, rec := range l.Sentinel.Indicators(simsentinel.DefaultWorkspaceID, "MISP") {
		if rec.Type == "indicator" && !rec.Revoked {
			live = append(live, id)
		}
	}
	slices.Sort(live)
	if len(live) < 1000 {
		t.Fatalf("only %d live indicators; the percentages need at least 1000", len(live))
	}
	nDelete, nAlter := len(live)*5/100, len(live)/100
	deleted, altered := live[:nDelete], live[nDelete:nDelete+nAlter]
	for _, id := range deleted {
		if !l.Sentinel.DeleteObject(simsentinel.DefaultWorkspaceID, "MISP", id) {
			t.Fatalf("%s not deleted", id)
		}
	}
	for i, id := range altered {
		// As an ingestion rule or a portal edit would: another lifetime or another pattern.
		ok, err := l.Sentinel.AlterObject(simsentinel.DefaultWorkspaceID, "MISP", id, func(o map[string]any) {
			if i%2 == 0 {
				o["valid_until"] = time.Now().Add(400 * 24 * time.Hour).UTC().Format(time.RFC3339)
			} else {
				o["pattern"] = fmt.Sprintf("[ipv4-addr:value = '203.0.113.%d']", i%250)
			}
		})
		if !ok || err != nil {
			t.Fatalf("alter %s: %v %v", id, ok, err)
		}
	}
	r = verifyOnce(t, l, cfg, clk.Now, false)
	rpt := r.Report
	if rpt.Counts[verify.KindMissing] != nDelete || rpt.Counts[verify.KindStale] != nAlter || rpt.Differences() != nDelete+nAlter {
		t.Fatalf("after deleting %d and altering %d: %s", nDelete, nAlter, rpt.Summary())
	}
	if got := exampleIDs(rpt, verify.KindMissing); !slices.Equal(got, deleted) {
		t.Errorf("missing %v, want the deleted %v", got, deleted)
	}
	if got := exampleIDs(rpt, verify.KindStale); !slices.Equal(got, altered) {
		t.Errorf("stale %v, want the altered %v", got, altered)
	}

	// 3. verify --repair re-queues and uploads exactly those; then no difference.
	r = verifyOnce(t, l, cfg, clk.Now, true)
	if r.Report.Requeued != nDelete+nAlter || r.Delivered == nil || r.Delivered.Err != nil || r.Delivered.Accepted != nDelete+nAlter {
		t.Fatalf("repair: requeued %d, delivered %+v", r.Report.Requeued, r.Delivered)
	}
	if r = verifyOnce(t, l, cfg, clk.Now, false); r.Report.Differences() != 0 {
		t.Fatalf("after the repair: %s", r.Report.Summary())
	}

	// 4. With Microsoft's lag of 30 minutes, two hours later: new uploads are not visible
	// yet. Without a configured lag exactly they are reported missing; with a lag of 30
	// minutes they are not judged, and everything older still is.
	clk.Set(clk.Now().Add(2 * time.Hour))
	l.Sentinel.SetVisibilityLag(30 * time.Minute)
	before := r.Report.Judged
	l.MISP.Generate(2, 50, 16)
	rep, err = syncOnce(t, l, cfg, clk.Now, daemon.SyncOptions{})
	checkNotFailed(t, "second sync", rep, err)
	fresh := rep.Reconcile.Sinks["primary"].New
	if fresh == 0 {
		t.Fatal("the second sync uploaded nothing")
	}
	clk.Set(clk.Now().Add(time.Minute))
	r = verifyOnce(t, l, cfg, clk.Now, false)
	if r.Report.Counts[verify.KindMissing] != fresh || r.Report.Differences() != fresh {
		t.Fatalf("without a lag, the %d invisible uploads are not exactly the differences: %s", fresh, r.Report.Summary())
	}
	cfg.Sinks[0].ReadBack.Lag = 30 * time.Minute
	r = verifyOnce(t, l, cfg, clk.Now, false)
	if r.Report.Differences() != 0 || r.Report.NotJudged != fresh || r.Report.Judged != before {
		t.Fatalf("with a 30m lag: %s; want %d not judged and %d judged", r.Report.Summary(), fresh, before)
	}
}

// TestScheduledVerifyRepairsAndExposesDrift runs the daemon with verify.interval: an object
// deleted behind its back is reported in listener_drift_objects{kind="missing"} and uploaded
// again, after which the gauge returns to 0.
func TestScheduledVerifyRepairsAndExposesDrift(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	l, err := lab.Start(lab.Options{Dir: t.TempDir(), Linger: 100 * time.Millisecond, Sentinel: simsentinel.Options{TimeScale: 100}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.MISP.Generate(5, 10, 21)
	cfg, err := l.Config()
	if err != nil {
		t.Fatal(err)
	}
	sub, rg, name := l.Sentinel.Location(simsentinel.DefaultWorkspaceID)
	cfg.Sinks[0].ReadBack = config.ReadBack{SubscriptionID: sub, ResourceGroup: rg, WorkspaceName: name, API: config.ReadBackIndicators,
		APIVersion: "2025-09-01", PageSize: 100, RequestsPerMinute: 1000}
	rep, err := syncOnce(t, l, cfg, time.Now, daemon.SyncOptions{})
	checkNotFailed(t, "sync", rep, err)
	var victim string
	for id, r := range l.Sentinel.Indicators(simsentinel.DefaultWorkspaceID, "MISP") {
		if r.Type == "indicator" && !r.Revoked {
			victim = id
			break
		}
	}
	l.Sentinel.DeleteObject(simsentinel.DefaultWorkspaceID, "MISP", victim)

	// Validation asks for at least a minute; the test runs the schedule faster.
	cfg.Verify = config.Verify{Interval: 200 * time.Millisecond, Repair: true, Examples: 5}
	d, stop := runDaemon(t, cfg, daemon.Options{LimiterMinute: l.Sentinel.Minute()})
	defer stop()
	drift := func() float64 {
		return metricValue(t, d, `listener_drift_objects{kind="missing",sink="primary"}`)
	}
	// Only the comparison re-uploads the deleted object: the store holds it as unchanged, so
	// the start-up reconcile does not.
	waitFor(t, 60*time.Second, "drift repaired", func() (bool, string) {
		_, back := l.Sentinel.Indicators(simsentinel.DefaultWorkspaceID, "MISP")[victim]
		runs := metricValue(t, d, `listener_verify_runs_total{result="ok",sink="primary"}`)
		return back && runs >= 2 && drift() == 0, fmt.Sprintf("back %v, runs %v, missing %v", back, runs, drift())
	})
}
