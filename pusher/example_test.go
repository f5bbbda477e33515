package pusher_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mispsentinel/listener/pusher"
	"github.com/mispsentinel/listener/stix"
	"github.com/mispsentinel/listener/store"
)

// toySink is the smallest pusher.Sink: it refuses objects whose pattern mentions 666, asks
// to be called again once (as a throttled API would), and accepts the rest.
type toySink struct{ calls atomic.Int32 }

func (s *toySink) Limits() pusher.Limits {
	return pusher.Limits{
		MaxBatch: 2, // the API takes two objects per call
		Upserts:  []pusher.Quota{{Key: "toy:tenant/app", Requests: 100, Per: time.Minute}},
	}
}

func (s *toySink) Send(ctx context.Context, batch []pusher.Object, pace pusher.Pace) ([]pusher.Rejection, error) {
	if err := pace(ctx); err != nil { // once per request the sink makes
		return nil, err
	}
	if s.calls.Add(1) == 1 {
		return nil, &pusher.RetryError{Reason: pusher.RetryThrottled, Status: 429, After: time.Millisecond, Err: fmt.Errorf("slow down")}
	}
	var rejected []pusher.Rejection
	for i, o := range batch {
		if strings.Contains(string(o.Body), "666") {
			rejected = append(rejected, pusher.Rejection{Index: i, Message: "value not allowed"})
		}
	}
	return rejected, nil
}

// The pusher drives any Sink: it takes batches of the sink's size from the outbox, paces
// them by the sink's quota, retries what the sink says to retry and commits the rest.
func ExampleSink() {
	st, err := store.Open("", store.Options{InMemory: true})
	if err != nil {
		panic(err)
	}
	defer st.Close()
	var desired []stix.Object
	for _, v := range []string{"10.0.0.1", "10.0.0.2", "10.6.6.6"} {
		id := "indicator--" + strings.Repeat(v[len(v)-1:], 8) + "-0000-4000-8000-000000000000"
		body := fmt.Sprintf(`{"type":"indicator","id":%q,"pattern":"[ipv4-addr:value = '%s']"}`, id, v)
		desired = append(desired, stix.Object{ID: id, Type: "indicator", EventUUID: "e", Hash: v, Body: []byte(body)})
	}
	if _, err := st.Apply("toy", "e", desired, time.Now()); err != nil {
		panic(err)
	}

	pacers, _ := pusher.NewPacers(0.01) // one per process: sinks with one quota key share it
	p, err := pusher.New(pusher.Config{
		Sink: "toy", Linger: time.Second, ShutdownGrace: time.Second,
		RetryInitial: time.Millisecond, RetryMax: time.Second, MaxRetryAfter: time.Minute, InFlight: 4,
		FailingInitial: time.Minute, FailingMax: 15 * time.Minute,
	}, st, &toySink{}, pacers, nil, nil)
	if err != nil {
		panic(err)
	}
	stats, err := p.Drain(context.Background())
	fmt.Printf("accepted %d, dead-lettered %d, err %v\n", stats.Accepted, stats.Rejected, err)
	// Output: accepted 2, dead-lettered 1, err <nil>
}
