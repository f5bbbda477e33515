package pipeline

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/mispsentinel/listener/internal/stixtest"
	"github.com/mispsentinel/listener/misp"
	"github.com/mispsentinel/listener/stix"
)

type fakeModels struct {
	models map[string]misp.DecayingModel
	asked  [][]string
}

func (f *fakeModels) Models(_ context.Context, ids []string) map[string]misp.DecayingModel {
	f.asked = append(f.asked, ids)
	out := map[string]misp.DecayingModel{}
	for _, id := range ids {
		if m, ok := f.models[id]; ok {
			out[id] = m
		}
	}
	return out
}

// TestDecayOnTheRealtimePath: a notice is re-fetched with includeDecayScore, the re-fetched
// event's scores decide, and the models it names are read once per event for the sinks whose
// decay parameters are not configured.
func TestDecayOnTheRealtimePath(t *testing.T) {
	payload := testEvent([]string{"203.0.113.5", "203.0.113.6"}, nil) // ZeroMQ: no scores
	fetched := testEvent([]string{"203.0.113.5", "203.0.113.6"}, nil)
	ts := fetched.Attributes[0].Timestamp // an hour ago
	nids := misp.DecayingModel{ID: "1", Name: "NIDS", LifetimeDays: 1, DecaySpeed: 1, Threshold: 10}
	// linear over a day: an hour after the timestamp 96 scores 92
	fetched.Attributes[0].DecayScores = []misp.DecayScore{{Score: 92, BaseScore: 96, ModelID: "1", ModelName: "NIDS"}}
	fetched.Attributes[1].DecayScores = []misp.DecayScore{{Score: 8, BaseScore: 96, Decayed: true, ModelID: "1", ModelName: "NIDS"}}
	f := &fakeFetcher{events: map[string]*misp.Event{eventUUID: fetched}}
	models := &fakeModels{models: map[string]misp.DecayingModel{"1": nids}}
	decayed := stixtest.Options()
	decayed.Decay = stix.Decay{Enabled: true, Model: "NIDS", MinScore: 50}
	configured := decayed
	configured.Decay.Parameters = &misp.DecayingModel{LifetimeDays: 1, DecaySpeed: 1, Threshold: 60}
	st := openStore(t)
	filters := map[string]any{"published": true, "includeDecayScore": true}
	p, err := New(Config{RefetchBatch: 50, RefetchConcurrency: 4,
		Sinks:        []Sink{{Name: "fetched", Options: decayed}, {Name: "configured", Options: configured}},
		EventFilters: filters, Refetch: true, Fetcher: f, Store: st, DecayModels: models,
		Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	n := Notice{Source: "zeromq", Kind: Published, EventUUID: eventUUID, Event: payload}
	if err := p.HandleNotice(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	if len(f.calls) != 1 || f.calls[0]["includeDecayScore"] != true {
		t.Errorf("re-fetches %v, want one with includeDecayScore", f.calls)
	}
	if len(models.asked) != 1 || len(models.asked[0]) != 1 || models.asked[0][0] != "1" {
		t.Errorf("models asked %v, want model 1 once", models.asked)
	}
	// (96 − 50) / 96 of a day after the timestamp with MISP's model; (96 − 60) / 96 with the
	// configured threshold of 60 above min_score.
	want := map[string]time.Time{
		"fetched":    ts.Add(time.Duration(float64(24*time.Hour) * 46 / 96)),
		"configured": ts.Add(time.Duration(float64(24*time.Hour) * 36 / 96)),
	}
	for sink, until := range want {
		b, err := st.Begin(sink, 10)
		if err != nil {
			t.Fatal(err)
		}
		var indicators []map[string]any
		for _, it := range b.Items {
			var o map[string]any
			if err := json.Unmarshal(it.Object, &o); err != nil {
				t.Fatal(err)
			}
			if o["type"] == "indicator" {
				indicators = append(indicators, o)
			}
		}
		if len(indicators) != 1 {
			t.Fatalf("sink %s queued %d indicators, want the one not decayed", sink, len(indicators))
		}
		if got := indicators[0]["valid_until"]; got != stix.FormatTime(until) {
			t.Errorf("sink %s: valid_until %v, want %s", sink, got, stix.FormatTime(until))
		}
	}
}
