package daemon_test

import (
	"context"
	"testing"
	"time"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/sim/lab"
	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
)

// checkTraceReadsSentinel traces one indicator Sentinel holds through a daemon built from cfg
// (a sink with a read_back block, nothing injected through Options.ReadBack) and checks that
// the trace shows Sentinel's copy of it: trace reads the workspace through the sink's own
// read-back client.
func checkTraceReadsSentinel(t *testing.T, l *lab.Lab, cfg *config.Config, now func() time.Time) {
	t.Helper()
	var id string
	for held, rec := range l.Sentinel.Indicators(simsentinel.DefaultWorkspaceID, "MISP") {
		if rec.Type == "indicator" && !rec.Revoked {
			id = held
			break
		}
	}
	if id == "" {
		t.Fatal("Sentinel holds no live indicator to trace")
	}
	d, err := daemon.New(cfg, daemon.Options{Logger: quietLogger(t), Now: now, LimiterMinute: l.Sentinel.Minute()})
	if err != nil {
		t.Fatalf("new daemon: %v", err)
	}
	defer d.Close()
	tr, err := d.Trace(context.Background(), id, "")
	if err != nil {
		t.Fatalf("trace %s: %v", id, err)
	}
	var seen []daemon.TraceIndicator
	seen = append(seen, tr.Stored...)
	for _, a := range tr.Attributes {
		for _, s := range a.Sinks {
			seen = append(seen, s.Indicators...)
		}
	}
	for _, ti := range seen {
		if ti.Sentinel != nil && ti.Sentinel.ID == id {
			return
		}
	}
	t.Errorf("trace of %s shows no Sentinel copy of it: %+v", id, seen)
}
