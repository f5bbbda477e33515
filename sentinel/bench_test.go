package sentinel

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
)

// BenchmarkUploadQuota delivers a 20,000-indicator backlog through two sinks (two
// workspaces, one Entra identity, one pusher each) against a simulator enforcing
// Sentinel's quota of 100 requests per sliding minute per identity, with the minute scaled
// down 6x. It fails on any 429 or below 98 % quota utilisation and reports:
//
//   - quota-%: requests per quota minute between the first and last upload, as a percentage
//     of the 100-request quota;
//   - objects/quota-min: accepted objects per quota minute (the ceiling is 10,000);
//   - 429s: throttled requests (must be 0).
//
// Run: go test ./sentinel -run '^$' -bench BenchmarkUploadQuota -benchtime 1x
func BenchmarkUploadQuota(b *testing.B) {
	const (
		backlog   = 20_000
		timeScale = 6
	)
	now := time.Now()
	objects := make([]json.RawMessage, backlog)
	for i := range objects {
		objects[i] = testIndicator(i, now, nil)
	}
	for b.Loop() {
		b.StopTimer()
		sim := startSim(b, simsentinel.Options{
			TimeScale:  timeScale,
			Workspaces: []simsentinel.Workspace{{ID: simsentinel.DefaultWorkspaceID}, {ID: secondWorkspace}},
		})
		clients := sinks(b, sim)
		bl := queueBacklog(b, objects, len(clients))
		b.StartTimer()

		got := bl.deliver(context.Background(), b, clients, pusherConfig(), 0.01, nil)

		b.StopTimer()
		if got.err != nil || len(got.rejected) != 0 {
			b.Fatalf("deliver: %v, %d rejected", got.err, len(got.rejected))
		}
		st := sim.Stats()
		quotaMinutes := st.LastServed.Sub(st.FirstServed).Minutes() * timeScale
		utilisation := float64(st.Served-1) / quotaMinutes / simsentinel.DefaultQuotaPerMinute
		b.ReportMetric(100*utilisation, "quota-%")
		b.ReportMetric(float64(st.ObjectsAccepted)/quotaMinutes, "objects/quota-min")
		b.ReportMetric(float64(st.Throttled), "429s")
		if st.Throttled != 0 {
			b.Errorf("%d requests answered 429, want 0", st.Throttled)
		}
		if utilisation < 0.98 {
			b.Errorf("quota utilisation %.2f %%, want ≥ 98 %%", 100*utilisation)
		}
		if st.ObjectsAccepted != backlog {
			b.Errorf("%d objects accepted, want %d", st.ObjectsAccepted, backlog)
		}
		b.StartTimer()
	}
}
