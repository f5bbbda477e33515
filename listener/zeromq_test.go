package listener

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mispsentinel/listener/internal/sharedref"
	simmisp "github.com/mispsentinel/listener/sim/misp"

	"github.com/mispsentinel/listener/pipeline"
)

func newPublisher(t *testing.T, cfg simmisp.PublisherConfig) *simmisp.Publisher {
	t.Helper()
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = -1 // tests send heartbeats themselves unless they ask otherwise
	}
	p, err := simmisp.NewPublisher(cfg)
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// runZeroMQ starts a subscriber and stops it, checking that Run returns nil, when the test ends.
func runZeroMQ(t *testing.T, cfg ZeroMQConfig, rec *recorder) (*ZeroMQ, *Metrics) {
	t.Helper()
	if cfg.ReconnectMin == 0 {
		cfg.ReconnectMin, cfg.ReconnectMax = 5*time.Millisecond, 50*time.Millisecond
	}
	m := NewMetrics(nil)
	z := NewZeroMQ(completeZeroMQ(cfg), rec, rec.onGap, testLogger(t), m)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- z.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v after cancel, want nil", err)
		}
	})
	return z, m
}

// waitSubscribed waits until the subscriber's subscriptions reached the publisher: PUB drops
// what nobody is subscribed to yet.
func waitSubscribed(t *testing.T, p *simmisp.Publisher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, topic := range []string{topicPublish, topicEvent, topicHeartbeat} {
		if err := p.WaitForSubscription(ctx, topic); err != nil {
			t.Fatal(err)
		}
	}
}

func eventJSON(id string) []byte {
	return fmt.Appendf(nil, `{"Event":{"id":"1","uuid":%q,"info":"test","published":false,"publish_timestamp":"0","timestamp":"1795300000","Attribute":[{"id":"1","type":"ip-dst","category":"Network activity","to_ids":true,"uuid":%q,"value":"203.0.113.9"}]}}`, id, uuid.NewString())
}

func mustPublish(t *testing.T, p *simmisp.Publisher, topic string, payload []byte) {
	t.Helper()
	if err := p.Publish(topic, payload); err != nil {
		t.Fatal(err)
	}
}

func TestZeroMQDeliversPublishAndDelete(t *testing.T) {
	p := newPublisher(t, simmisp.PublisherConfig{})
	rec := &recorder{}
	_, m := runZeroMQ(t, ZeroMQConfig{Endpoint: p.Addr()}, rec)
	waitSubscribed(t, p)

	published, deleted := uuid.NewString(), uuid.NewString()
	mustPublish(t, p, simmisp.ZMQTopicPublish, eventJSON(published))
	mustPublish(t, p, simmisp.ZMQTopicHeartbeat, []byte(`{"status": "I'm still alive.", "uptime": 20}`))
	mustPublish(t, p, simmisp.ZMQTopicEvent, []byte(`{"Event":{"uuid":"`+published+`"},"Orgc":{},"EventTag":[],"action":"edit"}`))
	mustPublish(t, p, simmisp.ZMQTopicEvent, []byte(`{"Event":{"id":"7","uuid":"`+deleted+`"},"action":"delete"}`))

	waitFor(t, "both notices", func() bool {
		return rec.hasNotice(pipeline.Deleted, deleted) && rec.hasNotice(pipeline.Published, published)
	})
	notices, gaps := rec.snapshot()
	if len(notices) != 2 {
		t.Fatalf("got %d notices, want 2: %+v", len(notices), notices)
	}
	// Notices about different events may be handled in either order.
	if notices[0].Kind == pipeline.Deleted {
		notices[0], notices[1] = notices[1], notices[0]
	}
	pub := notices[0]
	if pub.Kind != pipeline.Published || pub.EventUUID != published || pub.Source != SourceZeroMQ || pub.Event == nil || pub.Event.UUID != published {
		t.Fatalf("first notice = %+v, want the published event %s", pub, published)
	}
	if notices[1].Event != nil {
		t.Fatalf("delete notice carries an event: %+v", notices[1])
	}
	if len(gaps) != 1 || gaps[0].reason != pipeline.GapReasonStart {
		t.Fatalf("gaps = %+v, want one start gap", gaps)
	}
	for name, got := range map[string]float64{
		"published": testutil.ToFloat64(m.NoticesReceived.WithLabelValues(SourceZeroMQ, "published")),
		"deleted":   testutil.ToFloat64(m.NoticesReceived.WithLabelValues(SourceZeroMQ, "deleted")),
		"heartbeat": testutil.ToFloat64(m.Heartbeats),
		"ignored":   testutil.ToFloat64(m.Ignored.WithLabelValues(SourceZeroMQ, ignoredEventAction)),
		"connected": testutil.ToFloat64(m.Connected),
	} {
		if got != 1 {
			t.Errorf("%s = %v, want 1", name, got)
		}
	}
}

func TestZeroMQSkipsMalformedFrames(t *testing.T) {
	p := newPublisher(t, simmisp.PublisherConfig{})
	rec := &recorder{}
	_, m := runZeroMQ(t, ZeroMQConfig{Endpoint: p.Addr()}, rec)
	waitSubscribed(t, p)

	if err := p.PublishFrames([]byte(`misp_json {"Event":{}}`), []byte("second frame")); err != nil {
		t.Fatal(err)
	}
	if err := p.PublishFrames([]byte(`misp_json_self{"status":"nospace"}`)); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, p, simmisp.ZMQTopicPublish, []byte(`{"Event":{"uuid":`))
	mustPublish(t, p, simmisp.ZMQTopicPublish, []byte(`{"Event":{"uuid":"not-a-uuid-at-all-but-36-chars-long!"}}`))
	mustPublish(t, p, simmisp.ZMQTopicEvent, []byte(`{"action":"delete"}`))
	good := uuid.NewString()
	mustPublish(t, p, simmisp.ZMQTopicPublish, eventJSON(good))

	waitFor(t, "the valid event after the malformed ones", func() bool { return rec.hasNotice(pipeline.Published, good) })
	if notices, _ := rec.snapshot(); len(notices) != 1 {
		t.Fatalf("got %d notices, want only the valid one: %+v", len(notices), notices)
	}
	for reason, want := range map[string]float64{
		ReasonMultipart: 1, ReasonNoSeparator: 1, ReasonInvalidJSON: 2, ReasonInvalidUUID: 1,
	} {
		if got := testutil.ToFloat64(m.Malformed.WithLabelValues(SourceZeroMQ, reason)); got != want {
			t.Errorf("malformed{%s} = %v, want %v", reason, got, want)
		}
	}
	if got := testutil.ToFloat64(m.Reconnects.WithLabelValues(pipeline.GapReasonReceiveError)); got != 0 {
		t.Errorf("malformed frames caused %v reconnects", got)
	}
}

// The acceptance line: the publisher restarts mid-stream with PLAIN on and the stream
// resumes. zmq4's own reconnect never recovers with PLAIN; the supervisor must.
func TestZeroMQResumesAfterPublisherRestartWithPLAIN(t *testing.T) {
	p := newPublisher(t, simmisp.PublisherConfig{Username: "misp", Password: "zmq-secret"})
	rec := &recorder{}
	_, m := runZeroMQ(t, ZeroMQConfig{Endpoint: p.Addr(), Username: "misp", Password: "zmq-secret"}, rec)

	for round := range 3 {
		waitSubscribed(t, p)
		var last string
		for range 20 {
			last = uuid.NewString()
			mustPublish(t, p, simmisp.ZMQTopicPublish, eventJSON(last))
		}
		waitFor(t, fmt.Sprintf("round %d's events", round), func() bool {
			notices, _ := rec.snapshot()
			return rec.hasNotice(pipeline.Published, last) && len(notices) == 20*(round+1)
		})
		// Workers may hand notices over out of order across events: the gap starts at the
		// latest receipt.
		notices, _ := rec.snapshot()
		var lastReceived time.Time
		for _, n := range notices {
			if n.ReceivedAt.After(lastReceived) {
				lastReceived = n.ReceivedAt
			}
		}

		if err := p.Restart(); err != nil {
			t.Fatalf("Restart: %v", err)
		}
		waitFor(t, "the reconnect gap", func() bool { return rec.gapCount(pipeline.GapReasonReceiveError) == round+1 })
		_, gaps := rec.snapshot()
		if g := gaps[len(gaps)-1]; !g.since.Equal(lastReceived) {
			t.Errorf("round %d: gap since %v, want the last message's receipt %v", round, g.since, lastReceived)
		}
	}
	waitSubscribed(t, p)
	final := uuid.NewString()
	mustPublish(t, p, simmisp.ZMQTopicPublish, eventJSON(final))
	waitFor(t, "the event after the last restart", func() bool { return rec.hasNotice(pipeline.Published, final) })

	if notices, _ := rec.snapshot(); len(notices) != 61 {
		t.Errorf("got %d notices, want 61", len(notices))
	}
	if got := testutil.ToFloat64(m.Reconnects.WithLabelValues(pipeline.GapReasonReceiveError)); got != 3 {
		t.Errorf("reconnects = %v, want 3", got)
	}
}

func TestZeroMQWatchdogReconnectsWhenSilent(t *testing.T) {
	p := newPublisher(t, simmisp.PublisherConfig{}) // no heartbeats: the line looks dead
	rec := &recorder{}
	_, m := runZeroMQ(t, ZeroMQConfig{Endpoint: p.Addr(), HeartbeatTimeout: 50 * time.Millisecond}, rec)

	waitFor(t, "a watchdog reconnect", func() bool { return rec.gapCount(pipeline.GapReasonHeartbeatTimeout) >= 2 })
	if got := testutil.ToFloat64(m.Reconnects.WithLabelValues(pipeline.GapReasonHeartbeatTimeout)); got < 2 {
		t.Errorf("reconnects{heartbeat_timeout} = %v, want >= 2", got)
	}
	_, gaps := rec.snapshot()
	if gaps[0].reason != pipeline.GapReasonStart {
		t.Errorf("first gap = %+v, want start", gaps[0])
	}
	for i := 1; i < len(gaps); i++ {
		if gaps[i].since.Before(gaps[i-1].since) {
			t.Errorf("gap %d since %v is before gap %d since %v", i, gaps[i].since, i-1, gaps[i-1].since)
		}
	}
}

func TestZeroMQHeartbeatsKeepConnection(t *testing.T) {
	// Heartbeats every 5 ms against a 10 s watchdog: the supervisor must not reconnect.
	p := newPublisher(t, simmisp.PublisherConfig{HeartbeatInterval: 5 * time.Millisecond})
	rec := &recorder{}
	_, m := runZeroMQ(t, ZeroMQConfig{Endpoint: p.Addr(), HeartbeatTimeout: 10 * time.Second}, rec)
	waitFor(t, "heartbeats", func() bool { return testutil.ToFloat64(m.Heartbeats) >= 20 })
	if got := rec.gapCount(pipeline.GapReasonHeartbeatTimeout) + rec.gapCount(pipeline.GapReasonReceiveError); got != 0 {
		t.Errorf("%d reconnect gaps while heartbeats flowed", got)
	}
}

func TestZeroMQHandlerErrorReportsGapAndContinues(t *testing.T) {
	p := newPublisher(t, simmisp.PublisherConfig{})
	failing := uuid.NewString()
	rec := &recorder{fail: func(n pipeline.Notice) error {
		if n.EventUUID == failing {
			return errors.New("store unavailable")
		}
		return nil
	}}
	_, m := runZeroMQ(t, ZeroMQConfig{Endpoint: p.Addr()}, rec)
	waitSubscribed(t, p)
	mustPublish(t, p, simmisp.ZMQTopicPublish, eventJSON(failing))
	next := uuid.NewString()
	mustPublish(t, p, simmisp.ZMQTopicPublish, eventJSON(next))
	waitFor(t, "the event after the failed one and the failure's gap", func() bool {
		return rec.hasNotice(pipeline.Published, next) && rec.gapCount(pipeline.GapReasonHandlerError) == 1
	})

	_, gaps := rec.snapshot()
	if len(gaps) != 2 || gaps[1].reason != pipeline.GapReasonHandlerError {
		t.Fatalf("gaps = %+v, want start then handler_error", gaps)
	}
	if gaps[1].since.Before(gaps[0].since) {
		t.Errorf("handler-error gap since %v precedes the connection's start gap %v", gaps[1].since, gaps[0].since)
	}
	if got := testutil.ToFloat64(m.HandlerErrors.WithLabelValues(SourceZeroMQ)); got != 1 {
		t.Errorf("handler errors = %v, want 1", got)
	}
}

func TestZeroMQWrongCredentialsNeverConnect(t *testing.T) {
	p := newPublisher(t, simmisp.PublisherConfig{Username: "misp", Password: "right"})
	rec := &recorder{}
	_, m := runZeroMQ(t, ZeroMQConfig{Endpoint: p.Addr(), Username: "misp", Password: "wrong"}, rec)
	waitFor(t, "repeated dial failures", func() bool { return testutil.ToFloat64(m.DialFailures) >= 3 })
	if _, gaps := rec.snapshot(); len(gaps) != 0 {
		t.Fatalf("gaps = %+v, want none: the subscriber never connected", gaps)
	}
}

func TestZeroMQHandshakeTimeout(t *testing.T) {
	// A peer that accepts TCP and never speaks ZMTP must not block the subscriber.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	defer func() {
		_ = ln.Close()
		for c := range accepted {
			_ = c.Close()
		}
	}()
	rec := &recorder{}
	_, m := runZeroMQ(t, ZeroMQConfig{Endpoint: "tcp://" + ln.Addr().String(), DialTimeout: 20 * time.Millisecond}, rec)
	waitFor(t, "handshake timeouts", func() bool { return testutil.ToFloat64(m.DialFailures) >= 2 })
}

func TestZeroMQRunStopsWhileDialling(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "tcp://" + ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	rec := &recorder{}
	_, m := runZeroMQ(t, ZeroMQConfig{Endpoint: endpoint}, rec)
	waitFor(t, "dial failures", func() bool { return testutil.ToFloat64(m.DialFailures) >= 2 })
	// The cleanup cancels Run and checks it returns nil.
}

func TestZeroMQConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  ZeroMQConfig
		h    pipeline.Handler
	}{
		{"no endpoint", ZeroMQConfig{}, &recorder{}},
		{"ipc endpoint", ZeroMQConfig{Endpoint: "ipc:///tmp/misp"}, &recorder{}},
		{"password without username", ZeroMQConfig{Endpoint: "tcp://127.0.0.1:1", Password: "x"}, &recorder{}},
		{"username too long", ZeroMQConfig{Endpoint: "tcp://127.0.0.1:1", Username: string(make([]byte, 256))}, &recorder{}},
		{"max below min", ZeroMQConfig{Endpoint: "tcp://127.0.0.1:1", ReconnectMin: time.Second, ReconnectMax: time.Millisecond}, &recorder{}},
		{"negative timeout", ZeroMQConfig{Endpoint: "tcp://127.0.0.1:1", HeartbeatTimeout: -time.Second}, &recorder{}},
		{"nil handler", ZeroMQConfig{Endpoint: "tcp://127.0.0.1:1"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z := NewZeroMQ(completeZeroMQ(tt.cfg), tt.h, nil, testLogger(t), nil)
			if err := z.Run(context.Background()); err == nil {
				t.Fatal("Run succeeded, want a configuration error")
			}
		})
	}
}

// A real event from the reference corpus, compacted as MISP's PHP side does, through the wire.
func TestZeroMQCorpusEvent(t *testing.T) {
	path := filepath.Join(sharedref.Dir(t), "corpus", "events", "pymisp", "57c4445b-c548-4654-af0b-4be3950d210f.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		t.Fatal(err)
	}
	p := newPublisher(t, simmisp.PublisherConfig{})
	rec := &recorder{}
	runZeroMQ(t, ZeroMQConfig{Endpoint: p.Addr()}, rec)
	waitSubscribed(t, p)
	mustPublish(t, p, simmisp.ZMQTopicPublish, compact.Bytes())
	const id = "57c4445b-c548-4654-af0b-4be3950d210f"
	waitFor(t, "the corpus event", func() bool { return rec.hasNotice(pipeline.Published, id) })
	notices, _ := rec.snapshot()
	if got := notices[0].Event.AttributeCount(); got != 9 {
		t.Errorf("attribute count = %d, want 9", got)
	}
}

// A publisher that accepts the connection and never answers is reported as a timeout, not as
// wrong PLAIN credentials.
func TestZeroMQHungPublisherIsATimeoutNotCredentials(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, silent, until the test ends
		}
	}()
	cfg := completeZeroMQ(ZeroMQConfig{Endpoint: "tcp://" + ln.Addr().String(), Username: "misp", Password: "secret", DialTimeout: 50 * time.Millisecond})
	z := NewZeroMQ(cfg, &recorder{}, nil, testLogger(t), NewMetrics(nil))
	sock, err := z.dial(context.Background(), z.log.WithField("test", t.Name()))
	if err == nil {
		sock.Close()
		t.Fatal("dial to a silent publisher succeeded")
	}
	msg := err.Error()
	if strings.Contains(msg, "PLAIN username and password") || !strings.Contains(msg, "dial timeout") {
		t.Errorf("error %q: want the dial timeout named, not the credentials", msg)
	}
}
