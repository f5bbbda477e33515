package misp_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/misp"
	simmisp "github.com/mispsentinel/listener/sim/misp"
)

// polynomial is MISP's Polynomial.php formula, written out here independently of the code
// under test.
func polynomial(base, lifetimeDays, speed float64, elapsed time.Duration) float64 {
	s := base * (1 - math.Pow(elapsed.Seconds()/(lifetimeDays*86400), 1/speed))
	return math.Max(s, 0)
}

func TestDecayScores(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := &fixedClock{t: t0}
	sim := simmisp.New(simmisp.Options{Now: clock.now})
	sim.Start()
	defer sim.Close()
	nids := sim.AddDecayingModel(misp.DecayingModel{
		Name: "NIDS", Enabled: true, LifetimeDays: 10, DecaySpeed: 2, Threshold: 30,
		DefaultBaseScore: 80, AttributeTypes: []string{"ip-dst", "domain"},
		BaseScoreConfig: map[string]float64{"admiralty-scale:source-reliability": 1, "estimative-language:likelihood-probability": 1},
	})
	sim.AddDecayingModel(misp.DecayingModel{Name: "disabled", LifetimeDays: 1, DecaySpeed: 1, AttributeTypes: []string{"ip-dst"}})
	tp := sim.AddDecayingModel(misp.DecayingModel{Name: "TP ratio", Formula: "Sightings", Enabled: true, DefaultBaseScore: 60, AttributeTypes: []string{"ip-dst"}})
	sim.SetTaxonomyValue(`admiralty-scale:source-reliability="b"`, 75)
	sim.SetTaxonomyValue(`estimative-language:likelihood-probability="almost-certain"`, 95)

	ev := &misp.Event{UUID: evA, Info: "decay", Published: true, Timestamp: t0,
		Tags: []misp.Tag{{Name: `admiralty-scale:source-reliability="b"`}},
		Attributes: []misp.Attribute{
			{UUID: "11111111-0000-4000-8000-000000000001", Type: "ip-dst", Value: "203.0.113.1", ToIDS: true, Timestamp: t0},
			{UUID: "11111111-0000-4000-8000-000000000002", Type: "url", Value: "http://x.example/", ToIDS: true, Timestamp: t0},
			{UUID: "11111111-0000-4000-8000-000000000003", Type: "domain", Value: "x.example", ToIDS: true, Timestamp: t0,
				Tags: []misp.Tag{{Name: `estimative-language:likelihood-probability="almost-certain"`}}},
		}}
	if err := sim.PutEvent(ev); err != nil {
		t.Fatal(err)
	}
	mcfg := daemon.MISPClientConfig(config.Default().MISP) // the client has no defaults of its own
	mcfg.URL, mcfg.Key = sim.URL(), simmisp.DefaultKey
	c, err := misp.NewClient(mcfg)
	if err != nil {
		t.Fatal(err)
	}
	fetch := func() *misp.Event {
		t.Helper()
		got, found, err := c.SearchEvent(context.Background(), evA, map[string]any{"includeDecayScore": true})
		if err != nil || !found {
			t.Fatalf("search: %v, found %v", err, found)
		}
		return got
	}
	clock.t = t0.Add(60 * time.Hour)
	got := fetch()
	ip := got.Attributes[0].DecayScores
	if len(ip) != 2 || ip[0].ModelID != nids || ip[1].ModelID != tp {
		t.Fatalf("ip-dst scores = %+v, want the NIDS and TP models (not the disabled one)", ip)
	}
	// Event tag only: base = 75. After 2.5 days of 10 at speed 2: 75 × 0.5.
	if want := polynomial(75, 10, 2, 60*time.Hour); math.Abs(ip[0].Score-want) > 1e-9 || ip[0].BaseScore != 75 || ip[0].Decayed {
		t.Errorf("NIDS score = %+v, want %v from base 75", ip[0], want)
	}
	if ip[1].Score != 60 || ip[1].BaseScore != 60 {
		t.Errorf("TP model without sightings = %+v, want its base score 60", ip[1])
	}
	if got.Attributes[1].DecayScores != nil {
		t.Errorf("url (no model) got scores %+v", got.Attributes[1].DecayScores)
	}
	// Both taxonomies weigh 1: base = (75 + 95) / 2.
	if d := got.Attributes[2].DecayScores; len(d) != 1 || d[0].BaseScore != 85 {
		t.Errorf("domain scores = %+v, want base 85", d)
	}

	// Past the threshold: 75 × (1 − (e/10d)^½) < 30 once e > 3.6 days.
	clock.t = t0.Add(4 * 24 * time.Hour)
	if d := fetch().Attributes[0].DecayScores[0]; !d.Decayed || d.Score >= 30 {
		t.Errorf("after 4 days: %+v, want decayed", d)
	}
	// A true-positive sighting restarts the clock; a false positive halves the TP ratio.
	if err := sim.AddSighting(evA, ev.Attributes[0].UUID, simmisp.SightingTruePositive, clock.t.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := sim.AddSighting(evA, ev.Attributes[0].UUID, simmisp.SightingFalsePositive, clock.t); err != nil {
		t.Fatal(err)
	}
	d := fetch().Attributes[0].DecayScores
	if want := polynomial(75, 10, 2, time.Hour); math.Abs(d[0].Score-want) > 1e-9 || d[0].Decayed {
		t.Errorf("after a sighting: %+v, want %v", d[0], want)
	}
	if d[1].Score != 30 {
		t.Errorf("TP ratio after one TP and one FP = %v, want 30", d[1].Score)
	}

	// Without includeDecayScore there are no scores.
	plain, _, err := c.SearchEvent(context.Background(), evA, nil)
	if err != nil || plain.Attributes[0].DecayScores != nil {
		t.Errorf("scores without includeDecayScore: %+v, %v", plain.Attributes[0].DecayScores, err)
	}

	m, err := c.DecayingModel(context.Background(), nids)
	if err != nil || m.Name != "NIDS" || m.LifetimeDays != 10 || m.DecaySpeed != 2 || m.Threshold != 30 || !m.Enabled {
		t.Errorf("decayingModel/view = %+v, %v", m, err)
	}
	if _, err := c.DecayingModel(context.Background(), "99"); err == nil {
		t.Error("an unknown model was found")
	}
}
