package stix

import (
	"math"
	"testing"
	"time"

	"github.com/mispsentinel/listener/misp"
)

// mispScore is MISP's Polynomial.php formula, written out independently of the code under test.
func mispScore(base, lifetimeDays, speed float64, elapsed time.Duration) float64 {
	return math.Max(0, base*(1-math.Pow(elapsed.Hours()/24/lifetimeDays, 1/speed)))
}

// crossing is the instant a score decaying from ref falls to floor: solving
// base × (1 − (e/L)^(1/s)) = floor for e gives e = L × (1 − floor/base)^s.
func crossing(ref time.Time, base, floor, lifetimeDays, speed float64) time.Time {
	days := lifetimeDays * math.Pow(1-floor/base, speed)
	return ref.Add(time.Duration(days * 24 * float64(time.Hour)))
}

func TestDecayPerSink(t *testing.T) {
	nids := misp.DecayingModel{ID: "1", Name: "NIDS", LifetimeDays: 100, DecaySpeed: 2, Threshold: 20}
	entry := func(m misp.DecayingModel, base float64, ref time.Time) misp.DecayScore {
		s := mispScore(base, m.LifetimeDays, m.DecaySpeed, testNow.Sub(ref))
		return misp.DecayScore{Score: s, BaseScore: base, Decayed: m.Threshold > s, ModelID: m.ID, ModelName: m.Name}
	}
	strict := misp.DecayScore{Score: 70, BaseScore: 70, ModelID: "2", ModelName: "Strict"} // parameters unknown

	fresh := attr("domain", "fresh.example") // 52 days old: NIDS scores 90 → 25.0
	fresh.DecayScores = []misp.DecayScore{entry(nids, 90, testTS)}
	stale := attr("ip-dst", "198.51.100.9") // NIDS scores 60 → 16.7, decayed
	stale.DecayScores = []misp.DecayScore{entry(nids, 60, testTS)}
	unscored := attr("url", "http://unscored.example/") // no model covers url
	twoModels := attr("domain", "two.example")
	twoModels.DecayScores = []misp.DecayScore{entry(nids, 40, testTS), strict}
	sighted := attr("domain", "sighted.example") // a true-positive sighting 3 days ago
	sightedAt := testNow.Add(-72 * time.Hour)
	sighted.DecayScores = []misp.DecayScore{entry(nids, 80, sightedAt)}
	ev := event(fresh, stale, unscored, twoModels, sighted)

	if fresh.DecayScores[0].Score < 24.9 || fresh.DecayScores[0].Score > 25.1 || !stale.DecayScores[0].Decayed {
		t.Fatalf("test data: fresh %+v stale %+v", fresh.DecayScores[0], stale.DecayScores[0])
	}

	type want struct {
		confidence int
		validUntil time.Time
	}
	lifetime := func(days int) time.Time { return testNow.Add(time.Duration(days) * 24 * time.Hour) }
	cases := []struct {
		name  string
		decay Decay
		want  map[string]want // by value; every other attribute is skipped as decayed
	}{
		{
			name:  "model 1, min 20, confidence from score",
			decay: Decay{Enabled: true, Model: "1", MinScore: 20, ConfidenceFromScore: true, Models: map[string]misp.DecayingModel{"1": nids}},
			want: map[string]want{
				"fresh.example":            {25, crossing(testTS, 90, 20, 100, 2)},
				"http://unscored.example/": {50, lifetime(365)},
				"sighted.example":          {int(math.Round(sighted.DecayScores[0].Score)), crossing(sightedAt, 80, 20, 100, 2)},
			},
		},
		{
			name:  "model by name, min 30 above the threshold, parameters configured, confidence kept",
			decay: Decay{Enabled: true, Model: "NIDS", MinScore: 30, Parameters: &nids},
			want: map[string]want{
				"http://unscored.example/": {50, lifetime(365)},
				"sighted.example":          {50, crossing(sightedAt, 80, 30, 100, 2)},
			},
		},
		{
			name:  "any model, min 50",
			decay: Decay{Enabled: true, Model: DecayAnyModel, MinScore: 50, ConfidenceFromScore: true, Models: map[string]misp.DecayingModel{"1": nids}},
			want: map[string]want{
				"http://unscored.example/": {50, lifetime(365)},
				"two.example":              {70, lifetime(180)}, // model 2's parameters are unknown: the lifetime
				"sighted.example":          {int(math.Round(sighted.DecayScores[0].Score)), crossing(sightedAt, 80, 50, 100, 2)},
			},
		},
		{
			name:  "parameters unknown: filter only",
			decay: Decay{Enabled: true, Model: "1", MinScore: 20},
			want: map[string]want{
				"fresh.example":            {50, lifetime(180)},
				"http://unscored.example/": {50, lifetime(365)},
				"sighted.example":          {50, lifetime(180)},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions()
			opts.Decay = tc.decay
			if err := opts.Validate(); err != nil {
				t.Fatal(err)
			}
			res := Convert(ev, opts, testNow)
			got := map[string]indicatorJSON{}
			for _, ind := range indicators(t, res) {
				got[patternValue(ind.Pattern)] = ind
			}
			for _, d := range res.Decisions {
				w, wanted := tc.want[d.Value]
				if !wanted {
					if d.Reason != SkipDecayed {
						t.Errorf("%s: reason %q (%s), want %q", d.Value, d.Reason, d.Detail, SkipDecayed)
					}
					continue
				}
				ind, ok := got[d.Value]
				if !ok {
					t.Errorf("%s: not exported (%s: %s)", d.Value, d.Reason, d.Detail)
					continue
				}
				if ind.Confidence == nil || *ind.Confidence != w.confidence {
					t.Errorf("%s: confidence %v, want %d", d.Value, ind.Confidence, w.confidence)
				}
				vu, err := time.Parse(time.RFC3339Nano, ind.ValidUntil)
				if err != nil || vu.Sub(w.validUntil).Abs() > time.Millisecond {
					t.Errorf("%s: valid_until %s, want %s", d.Value, ind.ValidUntil, FormatTime(w.validUntil))
				}
			}
		})
	}
}

// patternValue pulls the quoted value out of a single-comparison pattern.
func patternValue(p string) string {
	start := -1
	for i := 0; i < len(p); i++ {
		if p[i] == '\'' {
			if start < 0 {
				start = i + 1
			} else {
				return p[start:i]
			}
		}
	}
	return p
}

func TestDecayedDetailAndCrossingPassed(t *testing.T) {
	nids := misp.DecayingModel{ID: "1", Name: "NIDS", LifetimeDays: 100, DecaySpeed: 2, Threshold: 20}
	a := attr("domain", "x.example")
	a.DecayScores = []misp.DecayScore{{Score: 12.5, BaseScore: 90, Decayed: true, ModelID: "1", ModelName: "NIDS"}}
	opts := testOptions()
	opts.Decay = Decay{Enabled: true, Model: "1", MinScore: 10, Models: map[string]misp.DecayingModel{"1": nids}}
	d := Convert(event(a), opts, testNow).Decisions[0]
	if d.Reason != SkipDecayed || d.Detail != `decaying model "NIDS" (id 1) marks it decayed (score 12.5)` {
		t.Errorf("decision %+v", d)
	}
	// A score a hair above the floor whose crossing, recovered to the minute, is already past.
	a.DecayScores = []misp.DecayScore{{Score: 20.0000001, BaseScore: 90, ModelID: "1", ModelName: "NIDS"}}
	a.Timestamp = time.Time{}
	d = Convert(event(a), opts, testNow).Decisions[0]
	if len(d.Exported) == 1 {
		// exported: its valid_until must still be in the future
		res := Convert(event(a), opts, testNow)
		if !res.Objects[1].ValidUntil.After(testNow) {
			t.Errorf("exported with valid_until %s not after now", res.Objects[1].ValidUntil)
		}
	} else if d.Reason != SkipDecayed {
		t.Errorf("decision %+v, want exported or decayed", d)
	}
	if err := (&Options{Decay: Decay{Enabled: true}}).Validate(); err == nil {
		t.Error("decay without a model validated")
	}
	if err := (&Options{Decay: Decay{Enabled: true, Model: "any", MinScore: 101}}).Validate(); err == nil {
		t.Error("min_score 101 validated")
	}
}
