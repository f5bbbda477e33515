package sentinel

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/mispsentinel/listener/pusher"
	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
)

// BenchmarkUploadQuota delivers a 20,000-indicator backlog through two sinks (two
// workspaces, one Entra identity, one pusher each with its default 4 batches in flight)
// against a simulator that answers every upload after 1 s and enforces Sentinel's quota of
// 100 requests per sliding minute per identity, in real time. It fails on any 429 or below
// 98 % quota use and reports:
//
//   - quota-%: the quota minute divided by the mean time between request i and request
//     i+100 at the simulator (the pacer's steady state: 100 % would be exactly 100 requests
//     in every minute, the 1 % headroom makes it 99 %);
//   - 429s: throttled requests (must be 0);
//   - s: wall time of the delivery.
//
// With one request in flight a sink could not exceed 60 requests a minute against a
// simulator taking 1 s per request.
//
// Run: go test ./sentinel -run '^$' -bench BenchmarkUploadQuota -benchtime 1x
func BenchmarkUploadQuota(b *testing.B) {
	const backlogSize = 20_000
	now := time.Now()
	objects := make([]json.RawMessage, backlogSize)
	for i := range objects {
		objects[i] = testIndicator(i, now, nil)
	}
	for b.Loop() {
		b.StopTimer()
		sim := startSim(b, simsentinel.Options{
			Workspaces: []simsentinel.Workspace{{ID: simsentinel.DefaultWorkspaceID}, {ID: secondWorkspace}},
			Faults:     simsentinel.Faults{Latency: time.Second},
		})
		clients := sinks(b, sim)
		bl := queueBacklog(b, objects, len(clients))
		b.StartTimer()

		start := time.Now()
		got := bl.deliver(context.Background(), b, clients, pusherConfig(), 0.01, nil)
		wall := time.Since(start)

		b.StopTimer()
		if got.err != nil || len(got.rejected) != 0 {
			b.Fatalf("deliver: %v, %d rejected", got.err, len(got.rejected))
		}
		st := sim.Stats()
		use := quotaUse(sim.Admitted(), simsentinel.DefaultQuotaPerMinute, sim.Minute())
		b.ReportMetric(100*use, "quota-%")
		b.ReportMetric(float64(st.Throttled), "429s")
		b.ReportMetric(wall.Seconds(), "s")
		if st.Throttled != 0 {
			b.Errorf("%d requests answered 429, want 0", st.Throttled)
		}
		if use < 0.98 {
			b.Errorf("quota use %.2f %%, want ≥ 98 %%", 100*use)
		}
		if st.ObjectsAccepted != backlogSize {
			b.Errorf("%d objects accepted, want %d", st.ObjectsAccepted, backlogSize)
		}
		b.StartTimer()
	}
}

// quotaUse is the quota window divided by the mean time between request i and request
// i+quota, over the admitted requests: 1 when every window of a minute holds a full quota.
func quotaUse(admitted []time.Time, quota int, window time.Duration) float64 {
	if len(admitted) <= quota {
		return 0
	}
	var sum time.Duration
	for i := quota; i < len(admitted); i++ {
		sum += admitted[i].Sub(admitted[i-quota])
	}
	mean := sum / time.Duration(len(admitted)-quota)
	return float64(window) / float64(mean)
}

// BenchmarkBurst85 measures, in one run, how long 85 ready batches of one sink take to be
// accepted by a simulator answering in 300 ms: through the pusher (sliding-window pacing,
// 4 batches in flight) and through the previous behaviour (a token bucket with a burst of
// one at 99 requests a minute, one batch in flight), each against a fresh simulator. It
// reports both times and their ratio.
//
// Run: go test ./sentinel -run '^$' -bench BenchmarkBurst85 -benchtime 1x
func BenchmarkBurst85(b *testing.B) {
	const batches = 85
	now := time.Now()
	objects := make([]json.RawMessage, batches*100)
	for i := range objects {
		objects[i] = testIndicator(i, now, nil)
	}
	fresh := func() *Client {
		sim := startSim(b, simsentinel.Options{Faults: simsentinel.Faults{Latency: 300 * time.Millisecond}})
		return sinks(b, sim)[0]
	}
	for b.Loop() {
		b.StopTimer()
		client := fresh()
		bl := queueBacklog(b, objects, 1)
		start := time.Now()
		got := bl.deliver(context.Background(), b, []*Client{client}, pusherConfig(), 0.01, nil)
		newTime := time.Since(start)
		if got.err != nil || len(got.rejected) != 0 {
			b.Fatalf("deliver: %v, %d rejected", got.err, len(got.rejected))
		}

		client = fresh()
		start = time.Now()
		if err := deliverTokenBucket(client, objects); err != nil {
			b.Fatal(err)
		}
		oldTime := time.Since(start)

		b.ReportMetric(newTime.Seconds(), "new-s")
		b.ReportMetric(oldTime.Seconds(), "old-s")
		b.ReportMetric(oldTime.Seconds()/newTime.Seconds(), "old/new")
		b.StartTimer()
	}
}

// deliverTokenBucket is the delivery before the sliding window: one batch at a time, each
// request waiting for a token of a bucket holding one, refilled at 99 a minute.
func deliverTokenBucket(c *Client, objects []json.RawMessage) error {
	bucket := rate.NewLimiter(rate.Every(time.Minute/99), 1)
	pace := func(ctx context.Context) error { return bucket.Wait(ctx) }
	for start := 0; start < len(objects); start += 100 {
		batch := make([]pusher.Object, 0, 100)
		for _, o := range objects[start:min(start+100, len(objects))] {
			batch = append(batch, pusher.Object{Body: o})
		}
		for {
			_, err := c.Send(context.Background(), batch, pace)
			if err == nil {
				break
			}
			if _, retry := err.(*pusher.RetryError); !retry {
				return err
			}
		}
	}
	return nil
}
