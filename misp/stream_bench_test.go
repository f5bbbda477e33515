package misp_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/mispsentinel/listener/misp"
	simmisp "github.com/mispsentinel/listener/sim/misp"
)

// BenchmarkStreamEventsPeakHeap is issue 13's streamed pages: one restSearch page of 1,000
// events of 100 attributes (≈ 43 MB) is generated on the fly by the server, and the client's
// heap is sampled while it decodes. Reported: the page's size and the peak heap in use. Read
// whole (io.ReadAll, as before), the peak could not be below the page; streamed, it is bounded
// by a few events and the garbage between two collections.
//
//	go test ./misp -run '^$' -bench StreamEventsPeakHeap -benchtime 3x
func BenchmarkStreamEventsPeakHeap(b *testing.B) {
	sim := simmisp.New(simmisp.Options{})
	uuid := sim.Generate(1, 100, 1)[0]
	one, _ := sim.Get(uuid)
	const events = 1000
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_, _ = rw.Write([]byte(`{"response":[`))
		for i := range events {
			if i > 0 {
				_, _ = rw.Write([]byte(","))
			}
			_, _ = rw.Write(one)
		}
		_, _ = rw.Write([]byte(`]}`))
	}))
	defer srv.Close()
	c, err := misp.NewClient(complete(misp.ClientConfig{URL: srv.URL, Key: simmisp.DefaultKey}))
	if err != nil {
		b.Fatal(err)
	}
	var peak uint64
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	for b.Loop() {
		n := 0
		_, err := c.StreamEvents(context.Background(), nil, events+1, misp.Visitor{ // one page: it is short
			Event: func(ev *misp.Event) error {
				if n++; n%25 == 0 {
					runtime.ReadMemStats(&ms)
					peak = max(peak, ms.HeapInuse-min(base, ms.HeapInuse))
				}
				return nil
			},
		})
		if err != nil || n != events {
			b.Fatal(n, err)
		}
	}
	b.ReportMetric(float64(len(one)*events)/1e6, "page-MB")
	b.ReportMetric(float64(peak)/1e6, "peak-heap-MB")
}
