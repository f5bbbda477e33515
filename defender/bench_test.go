package defender

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/mispsentinel/listener/pusher"
	simdefender "github.com/mispsentinel/listener/sim/defender"
	"github.com/mispsentinel/listener/store"
)

// BenchmarkBudget100kInto15k measures the ranked budget against sim/defender: 100,000
// candidates for a 15,000 budget, MDE's documented rate limits with the minute shortened by
// timeScale. It reports the initial fill's own work (wall time) and its import-rate bound
// (import calls at 25 a minute), the held-set churn of one simulated hour in which 1 % of the candidates change, and
// the MDE calls per changed indicator. Run it once:
//
//	nice -n 10 go test ./defender -run '^$' -bench Budget100k -benchtime 1x
func BenchmarkBudget100kInto15k(b *testing.B) {
	const (
		candidates = 100_000
		budget     = 15_000
		timeScale  = 60.0
		batch      = MaxImportBatch
	)
	minute := time.Duration(float64(time.Minute) / timeScale)
	for range b.N {
		sim, err := simdefender.New(simdefender.Options{TimeScale: timeScale})
		if err != nil {
			b.Fatal(err)
		}
		cfg := testConfig(sim, "")
		client, err := New(cfg, NewLimiters(RateLimits{ImportPerMinute: 25, DeletePerMinute: 24, ListPerMinute: 24, Minute: minute}))
		if err != nil {
			b.Fatal(err)
		}
		st, err := store.Open(b.TempDir(), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		now := time.Now()
		tenant, err := NewTenant(client, st, "bench", TenantOptions{Budget: budget, Margin: 0.02, MaxDefer: time.Minute,
			Weights: ScoreWeights{Confidence: 0.4, Decay: 0.2, Recency: 0.2, ThreatLevel: 0.2, RecencyHalfLife: 30 * 24 * time.Hour},
			Now:     func() time.Time { return now }})
		if err != nil {
			b.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(7, 11))
		version := make([]int, candidates)
		object := func(i int) pusher.Object {
			env := Envelope{
				Indicator: Indicator{IndicatorValue: fmt.Sprintf("d%06d.example", i), IndicatorType: TypeDomainName, Action: ActionBlock,
					Title: "MISP: bench", Description: "bench", GenerateAlert: true, Severity: SeverityMedium,
					ExpirationTime: now.Add(90 * 24 * time.Hour).UTC().Format(time.RFC3339)},
				Rank: RankInputs{Confidence: rng.IntN(101), ThreatLevel: 1 + rng.IntN(4), Seen: now.Add(-time.Duration(rng.IntN(90*24)) * time.Hour), Type: TypeDomainName},
			}
			body, _ := json.Marshal(env)
			return pusher.Object{ID: fmt.Sprintf("indicator--%06d-v%d", i, version[i]), Body: body}
		}
		ctx := context.Background()

		// Initial fill: the backlog of 100,000 arrives in batches of 500.
		start := time.Now()
		for from := 0; from < candidates; from += batch {
			objs := make([]pusher.Object, 0, batch)
			for i := from; i < min(from+batch, candidates); i++ {
				objs = append(objs, object(i))
			}
			if _, err := tenant.Apply(ctx, "bench", objs, from+batch < candidates, nil); err != nil {
				b.Fatal(err)
			}
		}
		fill := time.Since(start)
		filled := sim.Stats()
		if n := len(sim.Indicators()); n != budget {
			b.Fatalf("MDE holds %d after the fill, want %d", n, budget)
		}

		// One hour of steady state: 1 % of the candidates change, in 100 small batches (a
		// MISP event of about ten attributes every 36 seconds): half get a new version with
		// new ranking facts, a quarter are revoked, a quarter are new.
		held := map[string]bool{}
		for _, k := range tenant.Held() {
			held[k] = true
		}
		changed, next := 0, candidates
		hourStart := time.Now()
		for range 100 {
			var objs []pusher.Object
			for range 10 {
				switch r := rng.IntN(4); {
				case r < 2:
					i := rng.IntN(candidates)
					objs = append(objs, object(i))
				case r == 2:
					i := rng.IntN(candidates)
					objs = append(objs, pusher.Object{ID: fmt.Sprintf("indicator--%06d-v%d", i, version[i]), Revoke: true})
					version[i]++
				default:
					version = append(version, 0)
					objs = append(objs, object(next))
					next++
				}
				changed++
			}
			now = now.Add(36 * time.Second)
			if _, err := tenant.Apply(ctx, "bench", objs, false, nil); err != nil {
				b.Fatal(err)
			}
		}
		hour := time.Since(hourStart)
		steady := sim.Stats()
		churn := 0
		after := map[string]bool{}
		for _, k := range tenant.Held() {
			after[k] = true
			if !held[k] {
				churn++
			}
		}
		calls := (steady.Imports - filled.Imports) + (steady.BatchDeletes - filled.BatchDeletes)
		// The fill is bounded by the larger of the listener's own work (ranking, persisting)
		// and the import rate: each import call costs 60/25 s of MDE's quota.
		b.ReportMetric(fill.Seconds(), "fill-wall-s")
		b.ReportMetric(float64(filled.Imports)*60/25, "fill-import-bound-s")
		b.ReportMetric(float64(filled.Imports), "fill-imports")
		b.ReportMetric(float64(filled.BatchDeletes), "fill-deletes")
		b.ReportMetric(float64(churn), "swapped-in/h")
		b.ReportMetric(float64(calls)/float64(changed), "calls/changed")
		b.ReportMetric(hour.Seconds(), "hour-wall-s")
		b.ReportMetric(float64(steady.CapRefusals), "cap-refusals")
		st.Close()
		client.Close()
		sim.Close()
	}
}
