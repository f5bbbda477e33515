package stix

import (
	"fmt"
	"testing"
	"time"

	"github.com/mispsentinel/listener/misp"
	simmisp "github.com/mispsentinel/listener/sim/misp"
)

// BenchmarkConvert measures the whole conversion path of one 10,000-attribute event: MISP
// JSON bytes → decode → Convert → STIX bundle JSON bytes.
func BenchmarkConvert(b *testing.B) {
	const n = 10_000
	input := simmisp.ConversionBenchmarkEvent(n)
	opts := testOptions()
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	b.SetBytes(int64(len(input)))
	b.ReportAllocs()
	var out []byte
	for b.Loop() {
		ev, err := misp.DecodeEvent(input)
		if err != nil {
			b.Fatal(err)
		}
		res := Convert(ev, opts, now)
		out = Bundle(res.Objects)
	}
	if len(out) == 0 {
		b.Fatal("empty bundle")
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "attributes/s")
}

func TestBenchEventConvertsEveryAttribute(t *testing.T) {
	ev, err := misp.DecodeEvent(simmisp.ConversionBenchmarkEvent(700))
	if err != nil {
		t.Fatal(err)
	}
	res := Convert(ev, testOptions(), time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
	for _, d := range res.Decisions {
		if len(d.Exported) != 1 {
			t.Fatalf("attribute %s %q not exported: %s %s", d.Type, d.Value, d.Reason, d.Detail)
		}
	}
}

// BenchmarkConvertWithContext is BenchmarkConvert on the event with event-level and
// attribute-level ATT&CK galaxies (simmisp.ConversionBenchmarkEventWithGalaxies), exporting
// context (Context all): with one event-level technique every indicator gets one indicates
// relationship and every fifth one more; with three event-level clusters, three and four.
func BenchmarkConvertWithContext(b *testing.B) {
	for _, clusters := range []int{1, 3} {
		b.Run(fmt.Sprintf("event_clusters=%d", clusters), func(b *testing.B) {
			const n = 10_000
			input := simmisp.ConversionBenchmarkEventWithGalaxies(n, clusters)
			opts := testOptions()
			opts.Context = ContextAll
			now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
			b.SetBytes(int64(len(input)))
			b.ReportAllocs()
			var out []byte
			objects := 0
			for b.Loop() {
				ev, err := misp.DecodeEvent(input)
				if err != nil {
					b.Fatal(err)
				}
				res := Convert(ev, opts, now)
				objects = len(res.Objects)
				out = Bundle(res.Objects)
			}
			if objects < (clusters+1)*n || len(out) == 0 {
				b.Fatalf("%d objects: the galaxies yielded too few relationships", objects)
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "attributes/s")
			b.ReportMetric(float64(objects), "objects/event")
		})
	}
}
