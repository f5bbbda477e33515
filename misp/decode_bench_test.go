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
