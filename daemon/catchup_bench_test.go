package daemon_test

import (
	"context"
	"testing"
	"time"

	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/sim/lab"
	simmisp "github.com/mispsentinel/listener/sim/misp"
	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
)

// BenchmarkCatchUpAfterRestart is issue 13's catch-up row: after a full sweep applied every
// event (no upload), the daemon is restarted over the same store and its catch-up (the
// start-up listing run) meets an unchanged MISP answering with the realistic latency (150 ms +
// 2 ms per event + 0.05 ms per attribute). Reported: the MISP bytes of the full sweep and of the
// catch-up, their ratio (target ≤ 1 %), and the catch-up's wall time (target ≤ 10 s).
//
//	go test ./daemon -run '^$' -bench CatchUpAfterRestart -benchtime 1x -timeout 60m -args -reconcile.attributes 1000000
func BenchmarkCatchUpAfterRestart(b *testing.B) {
	l, err := lab.Start(lab.Options{Dir: b.TempDir(), Sentinel: simsentinel.Options{QuotaPerMinute: -1, TimeScale: 1000}})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	l.MISP.Generate(max(1, *benchAttributes/100), 100, 1)
	cfg, err := l.Config()
	if err != nil {
		b.Fatal(err)
	}
	d, err := daemon.New(cfg, daemon.Options{Logger: quietLogger(b)})
	if err != nil {
		b.Fatal(err)
	}
	before := l.MISP.BytesServed()
	rep, err := d.Sync(context.Background(), daemon.SyncOptions{SkipUpload: true})
	if rep.Failed(err) {
		d.Close()
		b.Fatalf("full sweep: %v: %s", err, rep.Summary())
	}
	sweep := l.MISP.BytesServed() - before
	if err := d.Close(); err != nil {
		b.Fatal(err)
	}
	l.MISP.SetSearchLatency(simmisp.RealisticSearchLatency())

	var bytes int64
	var wall time.Duration
	for b.Loop() {
		d, err := daemon.New(cfg, daemon.Options{Logger: quietLogger(b)})
		if err != nil {
			b.Fatal(err)
		}
		before := l.MISP.BytesServed()
		start := time.Now()
		rep, err := d.Reconciler().Incremental(context.Background(), time.Time{})
		wall += time.Since(start)
		bytes += l.MISP.BytesServed() - before
		d.Close()
		if err != nil || rep.Kind != "incremental" || rep.Fetched != 0 || len(rep.Errors) != 0 {
			b.Fatalf("catch-up: %v: %+v", err, rep)
		}
	}
	n := float64(b.N)
	b.ReportMetric(float64(sweep), "sweep-bytes")
	b.ReportMetric(float64(bytes)/n, "catchup-bytes")
	b.ReportMetric(100*float64(bytes)/n/float64(sweep), "catchup-%-of-sweep")
	b.ReportMetric(wall.Seconds()/n, "catchup-s")
	b.ReportMetric(float64(l.MISP.AttributeCount()), "attributes")
}
