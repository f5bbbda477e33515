package store_test

import (
	"fmt"
	"time"

	"github.com/mispsentinel/listener/stix"
	"github.com/mispsentinel/listener/store"
)

// A pusher's view of the outbox: Begin hands out the head of a sink's queue, nothing leaves
// it until End commits what the sink said about each item. AcceptAll, KeepAll and Reject
// build the outcome.
func ExampleStore_Begin() {
	st, err := store.Open("", store.Options{InMemory: true})
	if err != nil {
		panic(err)
	}
	defer st.Close()
	now := time.Date(2026, 5, 2, 8, 0, 0, 0, time.UTC)

	// The diff queues what an event yields for the sink "ws".
	var desired []stix.Object
	for i := range 3 {
		id := fmt.Sprintf("indicator--0000000%d-0000-4000-8000-000000000000", i)
		body := fmt.Sprintf(`{"type":"indicator","spec_version":"2.1","id":%q,"pattern":"[ipv4-addr:value = '10.0.0.%d']","pattern_type":"stix"}`, id, i)
		desired = append(desired, stix.Object{ID: id, Type: "indicator", EventUUID: "event-1", Hash: id, Body: []byte(body)})
	}
	if _, err := st.Apply("ws", "event-1", desired, now); err != nil {
		panic(err)
	}

	// A failed upload hands the batch back untouched...
	b, _ := st.Begin("ws", 100)
	if err := st.End(b, b.KeepAll(), now); err != nil {
		panic(err)
	}
	// ...and the next Begin hands out the same items, in order.
	b, _ = st.Begin("ws", 100)
	fmt.Println("in flight:", len(b.Items))

	// The sink accepted everything but item 1, which goes to the dead letters.
	if err := st.End(b, b.AcceptAll().Reject(1, "Error for Property=pattern: bad"), now); err != nil {
		panic(err)
	}
	stats, _ := st.Stats("ws")
	dead, _ := st.DeadLetters("ws", 0)
	fmt.Println("queued:", stats.OutboxDepth, "dead letters:", len(dead), "-", dead[0].Message)
	// Output:
	// in flight: 3
	// queued: 0 dead letters: 1 - Error for Property=pattern: bad
}
