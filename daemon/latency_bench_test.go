package daemon_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/sim/lab"
	simmisp "github.com/mispsentinel/listener/sim/misp"
	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
)

// BenchmarkPublishToAccepted measures, per event, the time from MISP's publish over ZeroMQ
// (taken just before PublishZMQ) to the moment the Sentinel simulator had first stored every
// indicator of that event, through the whole daemon with its default configuration: the
// default event filters (enforceWarninglist, so every notice is re-fetched through
// restSearch), the default 1 s linger and batches of 100.
//
// Each iteration publishes rate × 10 s events of 5 attributes (≈ 4.5 indicators each) at an
// even pace. At 200 events/s that is ≈ 900 indicators/s, more than Sentinel's quota for one
// identity (100 requests × 100 objects per minute ≈ 167 objects/s), so that rate runs with the
// simulator's quota minute and the daemon's limiter scaled down 60× to measure the listener's
// own latency; 10 events/s runs with the real quota. The cases named misp=realistic answer
// restSearch as a real MISP does (simmisp.RealisticSearchLatency: 150 ms + 2 ms per event +
// 0.05 ms per attribute); the others with a MISP that answers at once.
//
//	go test ./daemon -run '^$' -bench BenchmarkPublishToAccepted -benchtime 1x
func BenchmarkPublishToAccepted(b *testing.B) {
	for _, tc := range []struct {
		rate      int
		timeScale float64
		misp      simmisp.SearchLatency
	}{
		{10, 1, simmisp.SearchLatency{}},
		{200, 60, simmisp.SearchLatency{}},
		{10, 1, simmisp.RealisticSearchLatency()},
		{200, 60, simmisp.RealisticSearchLatency()},
	} {
		name := fmt.Sprintf("rate=%d/s", tc.rate)
		if tc.misp != (simmisp.SearchLatency{}) {
			name += "/misp=realistic"
		}
		b.Run(name, func(b *testing.B) {
			benchmarkLatency(b, tc.rate, 10*time.Second, tc.timeScale, tc.misp)
		})
	}
}

func benchmarkLatency(b *testing.B, rate int, span time.Duration, timeScale float64, mispLatency simmisp.SearchLatency) {
	l, err := lab.Start(lab.Options{
		Dir: b.TempDir(), ZeroMQ: true,
		MISP:     simmisp.Options{SearchLatency: mispLatency},
		Sentinel: simsentinel.Options{TimeScale: timeScale},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	perIteration := rate * int(span/time.Second)
	uuids := generateUnpublished(b, l, perIteration*b.N, 5, 7)

	d, cfg := startDaemonWith(b, l, daemon.Options{LimiterMinute: time.Duration(float64(time.Minute) / timeScale)})
	waitForInitialReconcile(b, d)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := l.Publisher.WaitForSubscription(ctx, "misp_json"); err != nil {
		b.Fatal(err)
	}

	published := make(map[string]time.Time, len(uuids))
	interval := time.Second / time.Duration(rate)
	b.ResetTimer()
	for it := range b.N {
		batch := uuids[it*perIteration : (it+1)*perIteration]
		start := time.Now()
		for i, u := range batch {
			time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
			published[u] = time.Now()
			if err := l.MISP.PublishZMQ(l.Publisher, u); err != nil {
				b.Fatal(err)
			}
		}
		// Wait cheaply for the daemon to settle: lab.WaitConverged re-converts all of MISP on
		// every poll and would take the CPU the daemon is being measured on.
		want := float64(len(published))
		waitFor(b, 5*time.Minute, "every notice applied and uploaded", func() (bool, string) {
			applied := metricValue(b, d, `listener_event_notices_applied_total{source="zeromq"}`)
			st, err := d.Store().Stats(cfg.Sinks[0].Name)
			if err != nil {
				return false, err.Error()
			}
			return applied >= want && st.OutboxDepth == 0, fmt.Sprintf("%v of %v notices applied, %d queued", applied, want, st.OutboxDepth)
		})
	}
	b.StopTimer()
	// Then check that what was measured is complete and exact.
	if _, err := l.WaitConverged(ctx, cfg, 1); err != nil {
		b.Fatalf("Sentinel never matched MISP: %v", err)
	}

	// An event is accepted when the last of its indicators was first stored.
	accepted := map[string]time.Time{}
	for _, r := range sentinelIndicators(b, l, cfg) {
		if _, ok := published[r.Event]; ok && r.FirstIngested.After(accepted[r.Event]) {
			accepted[r.Event] = r.FirstIngested
		}
	}
	latencies := make([]time.Duration, 0, len(accepted))
	for u, at := range accepted {
		latencies = append(latencies, at.Sub(published[u]))
	}
	if len(latencies) == 0 {
		b.Fatal("no published event yielded an indicator")
	}
	slices.Sort(latencies)
	pct := func(p float64) time.Duration { return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))] }
	b.ReportMetric(float64(pct(0.50).Milliseconds()), "p50-ms")
	b.ReportMetric(float64(pct(0.99).Milliseconds()), "p99-ms")
	b.ReportMetric(float64(latencies[len(latencies)-1].Milliseconds()), "max-ms")
	b.ReportMetric(float64(len(latencies)), "events")
	b.ReportMetric(0, "ns/op")
	zmq := metricValue(b, d, `listener_event_notices_applied_total{source="zeromq"}`)
	b.Logf("rate %d/s: %d events with indicators, %v ZeroMQ notices applied, p50 %s p99 %s max %s",
		rate, len(latencies), zmq, pct(0.50), pct(0.99), latencies[len(latencies)-1])
}
