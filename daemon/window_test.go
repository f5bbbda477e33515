package daemon_test

import (
	"maps"
	"testing"
	"time"

	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/sim/lab"
	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
)

// TestTimeWindowNeverRevokes is misp2sentinel's default filter after a migration: with
// "publish_timestamp: 14d" in misp.event_filters, the events published 11 months ago stay
// exported (their indicators live until their valid_until, as misp2sentinel left them), and
// nothing is re-uploaded for them; deleting one of them in MISP still revokes its indicators.
func TestTimeWindowNeverRevokes(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	l, err := lab.Start(lab.Options{
		Dir:              t.TempDir(),
		EventFiltersYAML: `{published: true}`,
		ExtraYAML:        "reconcile:\n  gone_grace: 0s\n",
		Sentinel:         simsentinel.Options{TimeScale: 200},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	uuids := l.MISP.Generate(10, 8, 5)
	now := time.Now().UTC().Truncate(time.Second)
	for i, uuid := range uuids {
		ev, ok := l.MISP.GetEvent(uuid)
		if !ok {
			t.Fatalf("event %s vanished", uuid)
		}
		published := now.Add(-24 * time.Hour) // inside the window
		if i < 5 {
			published = now.Add(-330 * 24 * time.Hour) // 11 months ago
		}
		ev.Published, ev.PublishTimestamp, ev.Timestamp = true, published, published
		if err := l.MISP.PutEvent(ev); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := l.Config()
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: now}

	// The listener has exported every published event (it ran before the window was set).
	rep, err := syncOnce(t, l, cfg, clk.Now, daemon.SyncOptions{})
	checkNotFailed(t, "first sync", rep, err)
	before := liveIDs(sentinelSnapshot(l, cfg))
	opts := daemon.ConversionOptions(cfg, cfg.Sinks[0])
	agedIDs := map[string]bool{}
	for _, uuid := range uuids[:5] {
		ev, _ := l.MISP.GetEvent(uuid)
		maps.Copy(agedIDs, indicatorIDs(ev, opts, clk.Now()))
	}
	if len(agedIDs) == 0 {
		t.Fatal("the old events export nothing: the test would prove nothing")
	}
	for id := range agedIDs {
		if !before[id] {
			t.Fatalf("indicator %s of an old event is not live after the first sync", id)
		}
	}

	// misp2sentinel's default window: nothing is revoked, nothing re-uploaded.
	cfg.MISP.EventFilters["publish_timestamp"] = "14d"
	stats := l.Sentinel.Stats()
	clk.Set(clk.Now().Add(time.Minute))
	rep, err = syncOnce(t, l, cfg, clk.Now, daemon.SyncOptions{})
	checkNotFailed(t, "sync with the 14d window", rep, err)
	if after := liveIDs(sentinelSnapshot(l, cfg)); !maps.Equal(after, before) {
		t.Errorf("the window changed what Sentinel holds: %d live before, %d after", len(before), len(after))
	}
	if got := l.Sentinel.Stats(); got.ObjectsAccepted != stats.ObjectsAccepted {
		t.Errorf("the window re-uploaded %d objects", got.ObjectsAccepted-stats.ObjectsAccepted)
	}
	if rep.Reconcile.AgedEvents != 5 {
		t.Errorf("aged events = %d, want 5", rep.Reconcile.AgedEvents)
	}

	// Deleting an old event in MISP still revokes its indicators, and only those.
	gone, _ := l.MISP.GetEvent(uuids[0])
	goneIDs := indicatorIDs(gone, opts, clk.Now())
	l.MISP.Delete(uuids[0])
	clk.Set(clk.Now().Add(time.Minute))
	rep, err = syncOnce(t, l, cfg, clk.Now, daemon.SyncOptions{})
	checkNotFailed(t, "sync after deleting an old event", rep, err)
	after := liveIDs(sentinelSnapshot(l, cfg))
	for id := range before {
		if after[id] == goneIDs[id] {
			t.Errorf("indicator %s: live %v after deleting its event (deleted event's: %v)", id, after[id], goneIDs[id])
		}
	}
}
