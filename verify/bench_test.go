package verify

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mispsentinel/listener/stix"
	"github.com/mispsentinel/listener/store"
)

// BenchmarkCompare measures one comparison of a sink of 10,000 settled indicators with a
// workspace holding the same (the STIX-object view, so every content is compared), without the
// network: the cost the store and the comparison add to a read-back.
func BenchmarkCompare(b *testing.B) {
	const n = 10000
	st, err := store.Open("", store.Options{InMemory: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	for start := 0; start < n; start += 100 {
		var objs []stix.Object
		for i := start; i < start+100; i++ {
			objs = append(objs, object(i, 50))
		}
		if _, err := st.Apply("ws", fmt.Sprint("ev", start), objs, t0); err != nil {
			b.Fatal(err)
		}
	}
	t := &testing.T{}
	settleB(b, st)
	rd := make(fakeReader, 0, n)
	for i := 0; i < n; i++ {
		rd = append(rd, held(t, st, i, "MISP", nil))
	}
	b.ResetTimer()
	for range b.N {
		rep, err := Compare(context.Background(), st, rd, Options{Sink: "ws", SourceSystem: "MISP", Examples: 5, Now: t0.Add(time.Hour)})
		if err != nil || rep.Differences() != 0 || rep.Judged != n {
			b.Fatalf("%v %v", rep, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/object")
}

func settleB(b *testing.B, st *store.Store) {
	for {
		batch, err := st.Begin("ws", 100)
		if err != nil {
			b.Fatal(err)
		}
		if batch == nil || len(batch.Items) == 0 {
			return
		}
		if err := st.End(batch, batch.AcceptAll(), t0); err != nil {
			b.Fatal(err)
		}
	}
}
