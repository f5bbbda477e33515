package daemon_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/sim/lab"
	simmisp "github.com/mispsentinel/listener/sim/misp"
	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
	"github.com/mispsentinel/listener/store"
)

// BenchmarkPublishBurst measures publish → accepted for a burst of 1,000 events of 9
// attributes (≈ 8 to_ids indicators each) published at 200 events/s, through the whole daemon
// with its default configuration (event filters on, so every notice is re-fetched through
// restSearch), against a MISP answering restSearch as a real one does
// (simmisp.RealisticSearchLatency: 150 ms + 2 ms per event + 0.05 ms per attribute) and a
// Sentinel answering every upload after 300 ms, with the real quota (100 requests per minute
// per identity; the burst's ≈ 80 batches fit in one minute).
//
// Sources: zeromq (misp_json), webhook (each event's event-publish POST sent by its own
// goroutine, as MISP's workers post concurrently; the answer's status is counted) and both
// (every event notified on both). refetch=coalesced is the default configuration;
// refetch=previous is the behaviour before the coalesced re-fetch, kept here only as a
// harness switch for the ratio: one event per restSearch, two at a time, one batch of a sink
// in flight.
//
// Reported: p50/p99/max latency (the Sentinel simulator's first-ingest time of the last of an
// event's indicators minus the time taken just before its publish), the restSearch calls MISP
// received during the burst, the 429s, and the webhook answers that were not 2xx.
//
//	go test ./daemon -run '^$' -bench BenchmarkPublishBurst -benchtime 1x
func BenchmarkPublishBurst(b *testing.B) {
	for _, source := range []string{"zeromq", "webhook", "both"} {
		for _, mode := range []string{"coalesced", "previous"} {
			b.Run(fmt.Sprintf("source=%s/refetch=%s", source, mode), func(b *testing.B) {
				benchmarkBurst(b, burstCase{source: source, previous: mode == "previous",
					events: 1000, attrs: 9, rate: 200})
			})
		}
	}
}

// BenchmarkPublishSteady is BenchmarkPublishBurst's configuration at 10 events/s for 5 minutes
// over ZeroMQ (target p99 ≤ 1.2 s).
//
//	go test ./daemon -run '^$' -bench BenchmarkPublishSteady -benchtime 1x
func BenchmarkPublishSteady(b *testing.B) {
	benchmarkBurst(b, burstCase{source: "zeromq", events: 3000, attrs: 9, rate: 10})
}

type burstCase struct {
	source   string // zeromq, webhook or both
	previous bool
	events   int
	attrs    int
	rate     int
}

func benchmarkBurst(b *testing.B, bc burstCase) {
	l, err := lab.Start(lab.Options{
		Dir: b.TempDir(), ZeroMQ: bc.source != "webhook", Webhook: bc.source != "zeromq",
		MISP:     simmisp.Options{SearchLatency: simmisp.RealisticSearchLatency()},
		Sentinel: simsentinel.Options{Faults: simsentinel.Faults{Latency: 300 * time.Millisecond}},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	uuids := generateUnpublished(b, l, bc.events*b.N, bc.attrs, 11)
	cfg, err := l.Config()
	if err != nil {
		b.Fatal(err)
	}
	if bc.previous {
		cfg.MISP.RefetchBatch = 1
		cfg.MISP.RefetchConcurrency = 2
		cfg.Pusher.InFlight = 1
	}
	d, _ := runDaemon(b, cfg, daemon.Options{})
	waitForInitialReconcile(b, d)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	if l.Publisher != nil {
		if err := l.Publisher.WaitForSubscription(ctx, "misp_json"); err != nil {
			b.Fatal(err)
		}
	}
	hookURL := ""
	if bc.source != "zeromq" {
		addr := d.Addr("webhook")
		hookURL = "http://" + addr + cfg.Webhook.Path
	}
	countSearches := func() int {
		n := 0
		for _, r := range l.MISP.Requests() {
			if strings.HasSuffix(r.Path, "/events/restSearch") {
				n++
			}
		}
		return n
	}
	searchesBefore := countSearches()

	published := make(map[string]time.Time, len(uuids))
	var posts sync.WaitGroup
	var not2xx, postErrs atomic.Int64
	client := &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	interval := time.Second / time.Duration(bc.rate)
	b.ResetTimer()
	for it := range b.N {
		batch := uuids[it*bc.events : (it+1)*bc.events]
		start := time.Now()
		for i, u := range batch {
			time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
			var body []byte
			if hookURL != "" {
				// MISP fetches the event for the webhook before it saves the publication.
				if body, err = l.MISP.WebhookBody(u); err != nil {
					b.Fatal(err)
				}
			}
			published[u] = time.Now()
			if l.Publisher != nil {
				if err := l.MISP.PublishZMQ(l.Publisher, u); err != nil {
					b.Fatal(err)
				}
			} else if err := l.MISP.Publish(u); err != nil {
				b.Fatal(err)
			}
			if hookURL != "" {
				posts.Add(1)
				go func() {
					defer posts.Done()
					req, _ := http.NewRequest(http.MethodPost, hookURL, bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Authorization", l.WebhookToken)
					resp, err := client.Do(req)
					if err != nil {
						postErrs.Add(1)
						return
					}
					resp.Body.Close()
					if resp.StatusCode < 200 || resp.StatusCode > 299 {
						not2xx.Add(1)
					}
				}()
			}
		}
		publishedAt := time.Since(start)
		posts.Wait()
		postsAt := time.Since(start)
		want := float64(len(published))
		var appliedAt time.Duration
		waitFor(b, 15*time.Minute, "every notice applied and uploaded", func() (bool, string) {
			applied := metricValue(b, d, `listener_event_notices_applied_total{source="zeromq"}`)
			if bc.source == "webhook" {
				applied = metricValue(b, d, `listener_event_notices_applied_total{source="webhook"}`)
			}
			if applied >= want && appliedAt == 0 {
				appliedAt = time.Since(start)
			}
			st, err := d.Store().Stats(cfg.Sinks[0].Name)
			if err != nil {
				return false, err.Error()
			}
			return applied >= want && st.OutboxDepth == 0, fmt.Sprintf("%v of %v notices applied, %d queued", applied, want, st.OutboxDepth)
		})
		b.Logf("iteration %d: published in %s, webhook posts answered by %s, every notice applied by %s, outbox empty by %s",
			it, publishedAt.Round(time.Millisecond), postsAt.Round(time.Millisecond), appliedAt.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	}
	b.StopTimer()
	searches := countSearches() - searchesBefore
	if _, err := l.WaitConverged(ctx, cfg, 1); err != nil {
		b.Fatalf("Sentinel never matched MISP: %v", err)
	}
	accepted := map[string]time.Time{}
	indicators := 0
	for _, r := range sentinelIndicators(b, l, cfg) {
		if _, ok := published[r.Event]; ok {
			indicators++
			if r.FirstIngested.After(accepted[r.Event]) {
				accepted[r.Event] = r.FirstIngested
			}
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
	st := l.Sentinel.Stats()
	b.ReportMetric(float64(pct(0.50).Milliseconds()), "p50-ms")
	b.ReportMetric(float64(pct(0.99).Milliseconds()), "p99-ms")
	b.ReportMetric(float64(latencies[len(latencies)-1].Milliseconds()), "max-ms")
	b.ReportMetric(float64(searches), "restSearch")
	b.ReportMetric(float64(st.Throttled), "429s")
	b.ReportMetric(float64(not2xx.Load()+postErrs.Load()), "post-not-2xx")
	b.ReportMetric(0, "ns/op")
	b.Logf("%s, %d events/s: %d events with indicators (%d indicators), p50 %s p99 %s max %s; %d restSearch calls; Sentinel %d upload requests, %d × 429; webhook answers not 2xx %d, failed posts %d",
		bc.source, bc.rate, len(latencies), indicators, pct(0.50), pct(0.99), latencies[len(latencies)-1], searches,
		st.UploadRequests, st.Throttled, not2xx.Load(), postErrs.Load())
}

// BenchmarkShutdownMidBurst stops the daemon (as SIGTERM does: Run's context ends) 2.5 s into
// BenchmarkPublishBurst's ZeroMQ burst, with the default drain (config.ZeroMQDrainTimeout),
// then starts it again on the same store and waits until Sentinel equals MISP. Reported:
// notices the first daemon received, applied and recorded as pending, and the difference
// (received − applied − pending: notices only a full sweep would recover; target 0), and the
// pending notices the second start applied first.
//
//	go test ./daemon -run '^$' -bench BenchmarkShutdownMidBurst -benchtime 1x
func BenchmarkShutdownMidBurst(b *testing.B) {
	l, err := lab.Start(lab.Options{
		Dir: b.TempDir(), ZeroMQ: true,
		MISP:     simmisp.Options{SearchLatency: simmisp.RealisticSearchLatency()},
		Sentinel: simsentinel.Options{Faults: simsentinel.Faults{Latency: 300 * time.Millisecond}},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	uuids := generateUnpublished(b, l, 1000, 9, 13)
	cfg, err := l.Config()
	if err != nil {
		b.Fatal(err)
	}
	d, stop := runDaemon(b, cfg, daemon.Options{})
	waitForInitialReconcile(b, d)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	if err := l.Publisher.WaitForSubscription(ctx, "misp_json"); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	stopped := make(chan time.Duration, 1)
	go func() {
		time.Sleep(2500 * time.Millisecond)
		t0 := time.Now()
		stop()
		stopped <- time.Since(t0)
	}()
	for i, u := range uuids {
		time.Sleep(time.Until(start.Add(time.Duration(i) * 5 * time.Millisecond)))
		if err := l.MISP.PublishZMQ(l.Publisher, u); err != nil {
			b.Fatal(err)
		}
	}
	stopTook := <-stopped
	// The store is closed: gather what can be (its gauges fail, the counters do not).
	received := stoppedCounter(d, "listener_source_notices_received_total", "kind", "published")
	applied := stoppedCounter(d, "listener_event_notices_applied_total", "source", "zeromq")
	pending := stoppedCounter(d, "listener_zeromq_pending_at_shutdown_total", "", "")
	recorded, err := pendingCount(cfg)
	if err != nil {
		b.Fatal(err)
	}

	d2, _ := runDaemon(b, cfg, daemon.Options{})
	if _, err := l.WaitConverged(ctx, cfg, 1); err != nil {
		b.Fatalf("Sentinel never matched MISP after the restart: %v", err)
	}
	b.StopTimer()
	_ = d2
	lost := received - applied - pending
	b.ReportMetric(received, "received")
	b.ReportMetric(applied, "applied")
	b.ReportMetric(pending, "pending")
	b.ReportMetric(lost, "needing-sweep")
	b.ReportMetric(0, "ns/op")
	b.Logf("stopped 2.5 s into the burst (stop took %s): %v notices received, %v applied within the drain, %v recorded pending (%d in the store at exit), %v needing a full sweep; after the restart Sentinel equals MISP",
		stopTook.Round(time.Millisecond), received, applied, pending, recorded, lost)
}

// pendingCount returns the pending notices in cfg's store (the daemon must be stopped).
func pendingCount(cfg *config.Config) (int, error) {
	st, err := store.Open(cfg.Store.Dir, store.Options{})
	if err != nil {
		return 0, err
	}
	defer st.Close()
	p, err := st.PendingNotices()
	return len(p), err
}

// stoppedCounter sums the counter name of a stopped daemon over the series whose label
// has value (every series when label is empty).
func stoppedCounter(d *daemon.Daemon, name, label, value string) float64 {
	mfs, _ := d.Registry().Gather() // partial on error: the closed store's gauges fail
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					match = true
				}
			}
			if match {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
