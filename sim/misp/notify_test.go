package misp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/mispsentinel/listener/misp"
	simmisp "github.com/mispsentinel/listener/sim/misp"
)

// subscribe starts a publisher and a zmq4 SUB on it subscribed to prefix, and waits until the
// publisher sees the subscription for topic.
func subscribe(t *testing.T, prefix, topic string) (*simmisp.Publisher, zmq4.Socket) {
	t.Helper()
	pub, err := simmisp.NewPublisher(simmisp.PublisherConfig{HeartbeatInterval: -1})
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	sub := zmq4.NewSub(ctx, zmq4.WithDialerMaxRetries(0))
	t.Cleanup(func() { _ = sub.Close() })
	if err := sub.Dial(pub.Addr()); err != nil {
		t.Fatalf("Dial: %v", err)
	}
	if err := sub.SetOption(zmq4.OptionSubscribe, prefix); err != nil {
		t.Fatal(err)
	}
	if err := pub.WaitForSubscription(ctx, topic); err != nil {
		t.Fatal(err)
	}
	return pub, sub
}

func TestPublishZMQSendsPrePublishState(t *testing.T) {
	clock := &fixedClock{t: time.Unix(5000, 0)}
	sim := newFixtureSim(t, clock)
	pub, sub := subscribe(t, "misp_json ", "misp_json")

	// Event C has never been published: the payload must say so (fetched before publishing).
	if err := sim.PublishZMQ(pub, evC); err != nil {
		t.Fatalf("PublishZMQ: %v", err)
	}
	msg, err := sub.Recv()
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	if len(msg.Frames) != 1 {
		t.Fatalf("%d frames, want MISP's single frame", len(msg.Frames))
	}
	payload, ok := bytes.CutPrefix(msg.Frames[0], []byte("misp_json "))
	if !ok {
		t.Fatalf("frame %.40q does not start with the topic and a space", msg.Frames[0])
	}
	ev, err := misp.DecodeEvent(payload)
	if err != nil {
		t.Fatalf("payload: %v", err)
	}
	if ev.UUID != evC || ev.Published || ev.PublishTimestamp.Unix() > 0 {
		t.Errorf("payload event %s published %v at %v, want the unpublished state", ev.UUID, ev.Published, ev.PublishTimestamp)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(payload, &top); err != nil || len(top) != 1 || top["Event"] == nil {
		t.Errorf("payload top-level keys %v, want only Event", top)
	}
	body, _ := sim.Get(evC)
	stored, _ := misp.DecodeEvent(body)
	if !stored.Published || stored.PublishTimestamp.Unix() != 5000 {
		t.Errorf("after publish: published %v at %v, want true at 5000", stored.Published, stored.PublishTimestamp.Unix())
	}

	// Soft-deleted attributes are not in the payload.
	if err := sim.PublishZMQ(pub, evA); err != nil {
		t.Fatal(err)
	}
	msg, err = sub.Recv()
	if err != nil {
		t.Fatal(err)
	}
	ev, err = misp.DecodeEvent(msg.Frames[0][len("misp_json "):])
	if err != nil || len(ev.Attributes) != 2 {
		t.Errorf("event A payload: %v, %d attributes, want the 2 active ones", err, len(ev.Attributes))
	}
}

func TestDeleteZMQ(t *testing.T) {
	sim := newFixtureSim(t, &fixedClock{t: time.Unix(5000, 0)})
	pub, sub := subscribe(t, "misp_json_event ", "misp_json_event")
	if err := sim.DeleteZMQ(pub, evB); err != nil {
		t.Fatalf("DeleteZMQ: %v", err)
	}
	msg, err := sub.Recv()
	if err != nil {
		t.Fatal(err)
	}
	payload, ok := bytes.CutPrefix(msg.Frames[0], []byte("misp_json_event "))
	if !ok {
		t.Fatalf("frame %.40q", msg.Frames[0])
	}
	var got struct {
		Event struct {
			ID   string `json:"id"`
			UUID string `json:"uuid"`
		}
		Action string `json:"action"`
	}
	if err := json.Unmarshal(payload, &got); err != nil || got.Action != "delete" || got.Event.UUID != evB || got.Event.ID != "2" {
		t.Errorf("payload %s (%v)", payload, err)
	}
	if _, ok := sim.Get(evB); ok {
		t.Error("event still stored after DeleteZMQ")
	}
	if err := sim.DeleteZMQ(pub, evB); err == nil {
		t.Error("deleting a missing event succeeded")
	}
}
