package daemon_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/sim/lab"
	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
)

// Helpers shared by the crash, revocation, filter-parity and latency tests. The lab and
// daemon helpers of e2e_test.go (startDaemon, waitFor, waitConverged, metricValue) are reused.

// latencyTag is added to pre-generated events so that they are unpublished (MISP unpublishes
// an event on every edit) until the test publishes them itself.
const latencyTag = "benchmark:held-back"

// generateUnpublished adds n generated events and unpublishes them, so that neither the
// daemon's start-up reconcile nor a catch-up uploads them before the test publishes them.
func generateUnpublished(t testing.TB, l *lab.Lab, n, attrs int, seed uint64) []string {
	t.Helper()
	uuids := l.MISP.Generate(n, attrs, seed)
	for _, u := range uuids {
		if err := l.MISP.AddEventTag(u, latencyTag); err != nil {
			t.Fatal(err)
		}
	}
	return uuids
}

// startDaemonWith runs the lab's daemon in-process with opts until the test ends.
func startDaemonWith(t testing.TB, l *lab.Lab, opts daemon.Options) (*daemon.Daemon, *config.Config) {
	t.Helper()
	cfg, err := l.Config()
	if err != nil {
		t.Fatalf("lab config: %v", err)
	}
	d, _ := runDaemon(t, cfg, opts)
	return d, cfg
}

// runDaemon runs a daemon for cfg in-process until stop is called or the test ends, and
// returns once every component started. stop cancels it, checks that it stopped cleanly and
// closes it; it may be called more than once.
func runDaemon(t testing.TB, cfg *config.Config, opts daemon.Options) (d *daemon.Daemon, stop func()) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger(t)
	}
	d, err := daemon.New(cfg, opts)
	if err != nil {
		t.Fatalf("new daemon: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("daemon run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("daemon did not stop within 30 s of cancellation")
			}
			d.Close()
		})
	}
	t.Cleanup(stop)
	<-d.Started()
	return d, stop
}

// sentinelRecord is one indicator the Sentinel simulator holds, with the MISP event it names.
type sentinelRecord struct {
	simsentinel.Record
	Event string // external_references[].external_id
	Value string // the pattern, which carries the attribute's value
}

// sentinelIndicators returns every indicator the simulator holds for the lab's first sink.
func sentinelIndicators(t testing.TB, l *lab.Lab, cfg *config.Config) map[string]sentinelRecord {
	t.Helper()
	out := map[string]sentinelRecord{}
	for id, r := range l.Sentinel.Indicators(l.Opts.Sinks[0].WorkspaceID, cfg.Sinks[0].SourceSystem) {
		if r.Type != "indicator" {
			continue
		}
		var body struct {
			Pattern    string `json:"pattern"`
			References []struct {
				SourceName string `json:"source_name"`
				ExternalID string `json:"external_id"`
			} `json:"external_references"`
		}
		if err := json.Unmarshal(r.Object, &body); err != nil {
			t.Fatalf("indicator %s: %v", id, err)
		}
		rec := sentinelRecord{Record: r, Value: body.Pattern}
		for _, ref := range body.References {
			if ref.SourceName == "MISP" {
				rec.Event = ref.ExternalID
			}
		}
		out[id] = rec
	}
	return out
}

// revokedCount counts the revoked indicators, live ones by event.
func countIndicators(recs map[string]sentinelRecord) (revoked int, liveByEvent map[string]int) {
	liveByEvent = map[string]int{}
	for _, r := range recs {
		if r.Revoked {
			revoked++
		} else {
			liveByEvent[r.Event]++
		}
	}
	return revoked, liveByEvent
}
