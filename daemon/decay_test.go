package daemon_test

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/misp"
	"github.com/mispsentinel/listener/sim/lab"
	simmisp "github.com/mispsentinel/listener/sim/misp"
	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
	"github.com/mispsentinel/listener/stix"
)

// decayCrossing is when a polynomial score decaying from ref falls to floor, solved here from
// MISP's formula independently of the code under test: base × (1 − (e/L)^(1/s)) = floor gives
// e = L × (1 − floor/base)^s.
func decayCrossing(ref time.Time, base, floor, lifetimeDays, speed float64) time.Time {
	return ref.Add(time.Duration(lifetimeDays * math.Pow(1-floor/base, speed) * 24 * float64(time.Hour)))
}

// TestDecayAcceptance is issue 17's acceptance scenario: an event scored by two decaying
// models feeds two sinks with different decay blocks; moving the clock past an indicator's
// crossing time makes the next full reconcile upload nothing for it (Sentinel expired it
// through valid_until); a true-positive sighting re-activates it under a new generation.
func TestDecayAcceptance(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	t0 := time.Now().UTC().Truncate(time.Second)
	clk := &clock{t: t0}
	const otherWS = "3d4e5f60-7182-4c9d-8e0f-1a2b3c4d5e6f"
	l, err := lab.Start(lab.Options{
		Dir: t.TempDir(),
		Sinks: []lab.SinkSpec{
			{Name: "strict", ExtraYAML: "decay:\n  model: NIDS\n  min_score: 50\n  confidence: from_score\n"},
			{Name: "loose", WorkspaceID: otherWS, ExtraYAML: "decay:\n  model: any\n"},
		},
		MISP:     simmisp.Options{Now: clk.Now},
		Sentinel: simsentinel.Options{TimeScale: 200},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const lifetime, speed, threshold, base = 10.0, 2.0, 20.0, 80.0
	l.MISP.AddDecayingModel(misp.DecayingModel{ID: "1", Name: "NIDS", Enabled: true, LifetimeDays: lifetime,
		DecaySpeed: speed, Threshold: threshold, DefaultBaseScore: base, AttributeTypes: []string{"ip-dst", "domain"}})
	l.MISP.AddDecayingModel(misp.DecayingModel{ID: "2", Name: "TP ratio", Formula: "Sightings", Enabled: true,
		DefaultBaseScore: 60, AttributeTypes: []string{"ip-dst"}})

	day := 24 * time.Hour
	ts := map[string]time.Time{"a": t0.Add(-day), "b": t0.Add(-3 * day), "c": t0.Add(-6 * day), "d": t0.Add(-day)}
	attrUUID := map[string]string{
		"a": "a0000000-0000-4000-8000-00000000000a", "b": "b0000000-0000-4000-8000-00000000000b",
		"c": "c0000000-0000-4000-8000-00000000000c", "d": "d0000000-0000-4000-8000-00000000000d",
	}
	const eventUUID = "e0000000-0000-4000-8000-0000000000e1"
	ev := &misp.Event{UUID: eventUUID, Info: "decay acceptance", Published: true, Timestamp: t0.Add(-time.Hour),
		PublishTimestamp: t0.Add(-time.Hour), Orgc: misp.Org{Name: "CIRCL"},
		Attributes: []misp.Attribute{
			// NIDS 80 × (1 − √0.1) = 54.7; TP ratio 60 (no sightings)
			{UUID: attrUUID["a"], Type: "ip-dst", Category: "Network activity", Value: "198.51.100.10", ToIDS: true, Timestamp: ts["a"]},
			// NIDS 80 × (1 − √0.3) = 36.2
			{UUID: attrUUID["b"], Type: "domain", Category: "Network activity", Value: "b.example", ToIDS: true, Timestamp: ts["b"]},
			// NIDS 80 × (1 − √0.6) = 18.0: below the threshold, decayed
			{UUID: attrUUID["c"], Type: "domain", Category: "Network activity", Value: "c.example", ToIDS: true, Timestamp: ts["c"]},
			// no model scores urls
			{UUID: attrUUID["d"], Type: "url", Category: "Network activity", Value: "http://d.example/x", ToIDS: true, Timestamp: ts["d"]},
		}}
	if err := l.MISP.PutEvent(ev); err != nil {
		t.Fatal(err)
	}
	cfg, err := l.Config()
	if err != nil {
		t.Fatal(err)
	}
	score := func(ref time.Time) float64 { // NIDS at the clock's time
		return base * (1 - math.Pow(clk.Now().Sub(ref).Hours()/24/lifetime, 1/speed))
	}

	type want struct {
		confidence int
		validUntil time.Time
	}
	check := func(step, sink, workspace string, wants map[string]want) {
		t.Helper()
		live := map[string]map[string]any{}
		for id, r := range l.Sentinel.Indicators(workspace, "MISP") {
			if r.Revoked || r.Type != "indicator" {
				continue
			}
			var body map[string]any
			if err := json.Unmarshal(r.Object, &body); err != nil {
				t.Fatal(err)
			}
			if vu, ok := body["valid_until"].(string); ok {
				if until, _ := time.Parse(time.RFC3339Nano, vu); !until.After(clk.Now()) {
					continue // expired in Sentinel
				}
			}
			live[id] = body
		}
		for key, w := range wants {
			id := "indicator--" + attrUUID[key]
			if key == "a'" {
				id = stix.GenerationID("indicator--"+attrUUID["a"], 1)
			}
			body, ok := live[id]
			if !ok {
				t.Errorf("%s: sink %s: %s (%s) is not live in Sentinel", step, sink, key, id)
				continue
			}
			delete(live, id)
			if c, _ := body["confidence"].(float64); int(c) != w.confidence {
				t.Errorf("%s: sink %s: %s confidence %v, want %d", step, sink, key, body["confidence"], w.confidence)
			}
			vu, _ := time.Parse(time.RFC3339Nano, body["valid_until"].(string))
			if vu.Sub(w.validUntil).Abs() > time.Millisecond {
				t.Errorf("%s: sink %s: %s valid_until %s, want %s", step, sink, key, vu.Format(time.RFC3339Nano), w.validUntil.Format(time.RFC3339Nano))
			}
		}
		for id := range live {
			t.Errorf("%s: sink %s: unexpected live indicator %s", step, sink, id)
		}
	}

	// 1. The first sync: per sink exactly the expected attributes.
	rep, err := syncOnce(t, l, cfg, clk.Now, daemon.SyncOptions{})
	checkNotFailed(t, "first sync", rep, err)
	aCross := decayCrossing(ts["a"], base, 50, lifetime, speed) // t0 + 0.40625 days
	check("first sync", "strict", simsentinel.DefaultWorkspaceID, map[string]want{
		"a": {int(math.Round(score(ts["a"]))), aCross},
		"d": {50, t0.Add(365 * day)},
	})
	check("first sync", "loose", otherWS, map[string]want{
		"a": {50, t0.Add(180 * day)}, // the TP-ratio model keeps it; its score does not fall with time
		"b": {50, decayCrossing(ts["b"], base, threshold, lifetime, speed)},
		"d": {50, t0.Add(365 * day)},
	})

	// 2. Past a's crossing for the strict sink: the full reconcile uploads nothing to it and
	// refreshes nothing (a expired in Sentinel through valid_until).
	clk.Set(aCross.Add(time.Minute))
	before := l.Sentinel.Stats().ObjectsAccepted
	rep, err = syncOnce(t, l, cfg, clk.Now, daemon.SyncOptions{})
	checkNotFailed(t, "sync after the crossing", rep, err)
	strict, loose := rep.Reconcile.Sinks["strict"], rep.Reconcile.Sinks["loose"]
	if strict.Expired != 1 || strict.Enqueued() != 0 || loose.Enqueued() != 0 {
		t.Errorf("after the crossing: strict %+v, loose %+v; want a expired, nothing queued", strict, loose)
	}
	if n := l.Sentinel.Stats().ObjectsAccepted - before; n != 0 {
		t.Errorf("after the crossing: %d objects uploaded, want 0", n)
	}
	check("after the crossing", "strict", simsentinel.DefaultWorkspaceID, map[string]want{"d": {50, t0.Add(365 * day)}})

	// 3. A true-positive sighting lifts a's score back to its base: the next full reconcile
	// re-activates it in the strict sink under a new generation id.
	sighted := clk.Now().Add(-time.Minute)
	if err := l.MISP.AddSighting(eventUUID, attrUUID["a"], simmisp.SightingTruePositive, sighted); err != nil {
		t.Fatal(err)
	}
	rep, err = syncOnce(t, l, cfg, clk.Now, daemon.SyncOptions{})
	checkNotFailed(t, "sync after the sighting", rep, err)
	if s := rep.Reconcile.Sinks["strict"]; s.New != 1 || s.Enqueued() != 1 {
		t.Errorf("after the sighting: strict %+v, want one re-activation", s)
	}
	check("after the sighting", "strict", simsentinel.DefaultWorkspaceID, map[string]want{
		"a'": {int(math.Round(score(sighted))), decayCrossing(sighted, base, 50, lifetime, speed)},
		"d":  {50, t0.Add(365 * day)},
	})

	// Every events search asked for the scores; the models were read from MISP.
	searches, views := 0, 0
	for _, r := range l.MISP.Requests() {
		switch {
		case r.Path == "/events/restSearch":
			searches++
			if !strings.Contains(string(r.Body), `"includeDecayScore":true`) {
				t.Errorf("restSearch without includeDecayScore: %s", r.Body)
			}
		case strings.HasPrefix(r.Path, "/decayingModel/view/"):
			views++
		}
	}
	if searches == 0 || views == 0 {
		t.Errorf("%d searches and %d decayingModel/view requests, want both", searches, views)
	}
}
