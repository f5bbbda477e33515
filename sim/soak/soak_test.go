package soak

import (
	"context"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mispsentinel/listener/sim/lab"
)

var soakDuration = flag.Duration("soak.duration", time.Minute, "how long TestSoak disturbs the daemon")

// TestMain lets the test binary act as the listener daemon the soak starts and SIGKILLs.
func TestMain(m *testing.M) {
	if lab.IsChild() {
		os.Exit(lab.RunChild(os.Args[1:], os.Stderr))
	}
	os.Exit(m.Run())
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestSoakOneMinute runs the soak for one minute (-soak.duration to change it): MISP edits,
// deletions and to_ids flips published continuously, Sentinel 5xx, latency and 429 storms,
// ZeroMQ publisher restarts and daemon SIGKILLs. Sentinel must end equal to MISP (after one
// full sync when the restarted daemon's catch-up alone leaves a difference; the counts show it).
func TestSoakOneMinute(t *testing.T) {
	if testing.Short() {
		t.Skip("soak: skipped with -short")
	}
	res, err := Run(context.Background(), Options{
		Duration: *soakDuration,
		Command:  lab.TestBinaryCommand,
		Dir:      t.TempDir(),
		Progress: testWriter{t},
		// Denser disturbances than the command's defaults, so that one minute sees each
		// kind several times.
		FaultEvery: 4 * time.Second, PublisherRestartEvery: 10 * time.Second, KillEvery: 8 * time.Second,
		// The restarted daemon's start-up full reconcile converges within seconds here.
		CatchUpWait: 45 * time.Second,
	})
	if res != nil {
		var b strings.Builder
		res.Print(&b)
		t.Log("\n" + b.String())
	}
	if err != nil {
		t.Fatal(err)
	}
	c := res.Counts
	if c.DaemonKills == 0 || c.PublisherRestarts == 0 || c.ThrottleStorms+c.FaultWindows == 0 {
		t.Errorf("the soak did not disturb enough: %d kills, %d publisher restarts, %d storms, %d fault windows",
			c.DaemonKills, c.PublisherRestarts, c.ThrottleStorms, c.FaultWindows)
	}
	if c.AttributeDeletes+c.ToIDSFlips+c.EventsDeleted == 0 || c.Revoked == 0 {
		t.Errorf("nothing was revoked: %d attribute deletions, %d to_ids flips, %d event deletions, %d revoked indicators",
			c.AttributeDeletes, c.ToIDSFlips, c.EventsDeleted, c.Revoked)
	}
	if c.Missing != 0 || c.Extra != 0 || c.Live != c.Expected {
		t.Errorf("final state: expected %d, live %d, missing %d, extra %d", c.Expected, c.Live, c.Missing, c.Extra)
	}
	if c.FullSyncNeeded {
		t.Errorf("the restarted daemon alone left %d missing and %d extra; an extra full sync was needed", c.MissingAfterCatchUp, c.ExtraAfterCatchUp)
	}
}
