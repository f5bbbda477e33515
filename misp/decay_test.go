package misp

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"
)

func TestDecodeDecayScores(t *testing.T) {
	data := `{"Event":{"uuid":"5f3c1a2b-1111-4222-8333-444455556666","Attribute":[
		{"uuid":"a","type":"ip-dst","value":"1.2.3.4","to_ids":true,"decay_score":[
			{"score":63.2,"base_score":80,"decayed":false,"DecayingModel":{"id":"1","name":"NIDS Simple Decaying Model"}},
			{"score":"12","base_score":"80","decayed":true,"DecayingModel":{"id":2,"name":"Strict","extra":[1]}}]},
		{"uuid":"b","type":"comment","value":"x"},
		{"uuid":"c","type":"domain","value":"x.example","decay_score":null}],
		"Object":[{"uuid":"o","Attribute":[{"uuid":"d","type":"url","value":"http://x.example/","decay_score":[{"score":40,"base_score":40,"decayed":false,"DecayingModel":{"id":"3","name":"M3"}}]}]}]}}`
	ev, err := DecodeEvent([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	got := ev.Attributes[0].DecayScores
	want := []DecayScore{
		{Score: 63.2, BaseScore: 80, ModelID: "1", ModelName: "NIDS Simple Decaying Model"},
		{Score: 12, BaseScore: 80, Decayed: true, ModelID: "2", ModelName: "Strict"},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("decay scores = %+v, want %+v", got, want)
	}
	if ev.Attributes[1].DecayScores != nil || ev.Attributes[2].DecayScores != nil {
		t.Errorf("attributes without scores got %+v, %+v", ev.Attributes[1].DecayScores, ev.Attributes[2].DecayScores)
	}
	if d := ev.Objects[0].Attributes[0].DecayScores; len(d) != 1 || d[0].Score != 40 || d[0].ModelID != "3" {
		t.Errorf("object attribute scores = %+v", d)
	}
	_, err = DecodeEvent([]byte(`{"Event":{"uuid":"u","Attribute":[{"uuid":"a","decay_score":[{"score":"high"}]}]}}`))
	if err == nil || !strings.Contains(err.Error(), "Attribute[0].decay_score[0].score") {
		t.Errorf("bad score: err = %v, want an error naming the field", err)
	}
}

func TestDecodeDecayingModel(t *testing.T) {
	// The shape of decayingModel/view: parameters decoded by afterFind, numbers as MISP
	// stores them (strings when saved from the form).
	data := `{"DecayingModel":{"id":"7","uuid":"u-7","name":"NIDS Simple Decaying Model","enabled":true,
		"formula":"Polynomial","parameters":{"lifetime":"3","decay_speed":0.3,"threshold":30,
		"default_base_score":"80","base_score_config":{"admiralty-scale":"0.5","estimative-language":0.5}},
		"attribute_types":["ip-dst","domain"],"isEditable":false}}`
	m, err := DecodeDecayingModel([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != "7" || m.Name != "NIDS Simple Decaying Model" || !m.Enabled || m.LifetimeDays != 3 ||
		m.DecaySpeed != 0.3 || m.Threshold != 30 || m.DefaultBaseScore != 80 ||
		m.BaseScoreConfig["admiralty-scale"] != 0.5 || len(m.AttributeTypes) != 2 {
		t.Errorf("model = %+v", m)
	}
	// parameters as the stored JSON text
	m, err = DecodeDecayingModel([]byte(`{"DecayingModel":{"id":8,"parameters":"{\"lifetime\":10,\"decay_speed\":2,\"threshold\":5}"}}`))
	if err != nil || m.ID != "8" || m.LifetimeDays != 10 || m.DecaySpeed != 2 || !m.Decays() {
		t.Errorf("text parameters: %+v, %v", m, err)
	}
	if _, err := DecodeDecayingModel([]byte(`{"DecayingModel":{"parameters":{}}}`)); err == nil {
		t.Error("a model without id decoded")
	}
	if _, err := DecodeDecayingModel([]byte(`{"DecayingModel":{"id":"1","parameters":{"lifetime":"long"}}}`)); err == nil {
		t.Error("a non-numeric lifetime decoded")
	}
}

func TestPolynomialScore(t *testing.T) {
	m := DecayingModel{LifetimeDays: 10, DecaySpeed: 2, Threshold: 20}
	day := 24 * time.Hour
	// 80 × (1 − (2.5/10)^(1/2)) = 80 × 0.5 = 40
	if s := m.Score(80, 60*time.Hour); math.Abs(s-40) > 1e-9 {
		t.Errorf("score after 2.5 days = %v, want 40", s)
	}
	if s := m.Score(80, 11*day); s != 0 {
		t.Errorf("score past the lifetime = %v, want 0", s)
	}
	if s := m.Score(80, -time.Second); s != 0 {
		t.Errorf("score for a future reference = %v, want 0 (MISP's quirk)", s)
	}
	e, ok := m.ElapsedAt(80, 40)
	if !ok || (e-60*time.Hour).Abs() > time.Millisecond {
		t.Errorf("ElapsedAt(80, 40) = %v, %v; want 60h", e, ok)
	}
	if _, ok := m.ElapsedAt(80, 90); ok {
		t.Error("a score above the base has an elapsed time")
	}
	sightings := DecayingModel{Formula: "Sightings", LifetimeDays: 10, DecaySpeed: 2}
	if sightings.Decays() {
		t.Error("the sightings model counts as decaying with time")
	}
}

type countingFetcher struct {
	calls  map[string]int
	models map[string]*DecayingModel
	fail   bool
}

func (f *countingFetcher) DecayingModel(_ context.Context, id string) (*DecayingModel, error) {
	f.calls[id]++
	if f.fail || f.models[id] == nil {
		return nil, ErrDecayingModelNotFound
	}
	return f.models[id], nil
}

func TestModelCache(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	f := &countingFetcher{calls: map[string]int{}, models: map[string]*DecayingModel{"1": {ID: "1", LifetimeDays: 3, DecaySpeed: 0.3}}}
	c := NewModelCache(f, time.Hour, func() time.Time { return now })
	var errs []string
	c.OnError = func(id string, err error) { errs = append(errs, id) }
	got := c.Models(context.Background(), []string{"1", "2"})
	if len(got) != 1 || got["1"].LifetimeDays != 3 {
		t.Errorf("models = %+v", got)
	}
	c.Models(context.Background(), []string{"1", "2"})
	if f.calls["1"] != 1 || f.calls["2"] != 1 || len(errs) != 1 {
		t.Errorf("within max age: calls %v, errors %v; want one read each, one error", f.calls, errs)
	}
	now = now.Add(2 * time.Hour)
	f.fail = true
	got = c.Models(context.Background(), []string{"1"})
	if f.calls["1"] != 2 || got["1"].LifetimeDays != 3 {
		t.Errorf("after max age with MISP failing: calls %v, models %+v; want a re-read and the old model kept", f.calls, got)
	}
	ev := &Event{Attributes: []Attribute{{DecayScores: []DecayScore{{ModelID: "2"}, {ModelID: "1"}}}},
		Objects: []Object{{Attributes: []Attribute{{DecayScores: []DecayScore{{ModelID: "1"}, {ModelID: "5"}}}}}}}
	if ids := ScoredModelIDs(ev); strings.Join(ids, ",") != "2,1,5" {
		t.Errorf("ScoredModelIDs = %v", ids)
	}
}
