package misp_test

import (
	"bytes"
	"testing"

	"github.com/mispsentinel/listener/misp"
	simmisp "github.com/mispsentinel/listener/sim/misp"
)

// BenchmarkDecodeEvents decodes one restSearch page of 100 generated events of 100 attributes
// each, without HTTP: the decoder's own cost per attribute.
func BenchmarkDecodeEvents(b *testing.B) {
	events := simmisp.GenerateEvents(100, 100, 1)
	page := append([]byte(`{"response":[`), bytes.Join(events, []byte(","))...)
	page = append(page, "]}"...)
	b.SetBytes(int64(len(page)))
	attrs := 0
	for b.Loop() {
		evs, err := misp.DecodeEvents(page)
		if err != nil {
			b.Fatal(err)
		}
		for _, ev := range evs {
			attrs += ev.AttributeCount()
		}
	}
	b.ReportMetric(float64(attrs)/b.Elapsed().Seconds(), "attributes/s")
}

// BenchmarkDecodeEventsWithDecayScores decodes the same page with one decay_score entry per
// attribute, as an events search with includeDecayScore returns it.
func BenchmarkDecodeEventsWithDecayScores(b *testing.B) {
	events := simmisp.GenerateEvents(100, 100, 1)
	score := []byte(`,"decay_score":[{"score":63.21457,"base_score":80,"decayed":false,"DecayingModel":{"id":"1","name":"NIDS Simple Decaying Model"}}]}`)
	page := append([]byte(`{"response":[`), bytes.Join(events, []byte(","))...)
	page = bytes.ReplaceAll(page, []byte(`,"Galaxy":[],"ShadowAttribute":[]}`), append([]byte(`,"Galaxy":[],"ShadowAttribute":[]`), score...))
	page = append(page, "]}"...)
	b.SetBytes(int64(len(page)))
	attrs, scored := 0, 0
	for b.Loop() {
		evs, err := misp.DecodeEvents(page)
		if err != nil {
			b.Fatal(err)
		}
		for _, ev := range evs {
			attrs += ev.AttributeCount()
			for i := range ev.Attributes {
				scored += len(ev.Attributes[i].DecayScores)
			}
		}
	}
	if scored != attrs {
		b.Fatalf("%d of %d attributes decoded with a score", scored, attrs)
	}
	b.ReportMetric(float64(attrs)/b.Elapsed().Seconds(), "attributes/s")
}
