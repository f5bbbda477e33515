package misp

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/security/plain"
)

func newTestPublisher(t *testing.T, cfg PublisherConfig) *Publisher {
	t.Helper()
	p, err := NewPublisher(cfg)
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// dialSub connects a plain zmq4 SUB, independent of package listener, subscribed to prefix.
func dialSub(t *testing.T, ctx context.Context, endpoint, prefix string, opts ...zmq4.Option) (zmq4.Socket, error) {
	t.Helper()
	opts = append(opts, zmq4.WithDialerMaxRetries(0))
	sub := zmq4.NewSub(ctx, opts...)
	if err := sub.Dial(endpoint); err != nil {
		_ = sub.Close()
		return nil, err
	}
	if err := sub.SetOption(zmq4.OptionSubscribe, prefix); err != nil {
		_ = sub.Close()
		return nil, err
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub, nil
}

func recvFrame(t *testing.T, sub zmq4.Socket) zmq4.Msg {
	t.Helper()
	msg, err := sub.Recv()
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	return msg
}

func waitSubscribed(t *testing.T, p *Publisher, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitForSubscription(ctx, topic); err != nil {
		t.Fatal(err)
	}
}

func TestPublisherSendsSingleFrameTopicSpaceJSON(t *testing.T) {
	p := newTestPublisher(t, PublisherConfig{HeartbeatInterval: -1})
	sub, err := dialSub(t, t.Context(), p.Addr(), ZMQTopicPublish+" ")
	if err != nil {
		t.Fatal(err)
	}
	waitSubscribed(t, p, ZMQTopicPublish)

	// Another topic sharing the prefix must not reach a "misp_json " subscriber.
	if err := p.Publish(ZMQTopicEvent, []byte(`{"Event":{},"action":"add"}`)); err != nil {
		t.Fatal(err)
	}
	payload := []byte(`{"Event":{"uuid":"5f1c7f7e-2b7a-4d8e-9a51-0c3f4b6e9d21","info":"caf\u00e9 / test"}}`)
	if err := p.Publish(ZMQTopicPublish, payload); err != nil {
		t.Fatal(err)
	}
	msg := recvFrame(t, sub)
	if len(msg.Frames) != 1 {
		t.Fatalf("got %d frames, want 1", len(msg.Frames))
	}
	want := append([]byte("misp_json "), payload...)
	if !bytes.Equal(msg.Frames[0], want) {
		t.Fatalf("frame = %q, want %q", msg.Frames[0], want)
	}
}

func TestPublisherRejectsBadInput(t *testing.T) {
	for _, ep := range []string{"tcp://0.0.0.0:0", "tcp://192.0.2.1:5000", "ipc:///tmp/x", "tcp://nohost"} {
		if _, err := NewPublisher(PublisherConfig{Endpoint: ep}); err == nil {
			t.Errorf("NewPublisher(%q) succeeded, want an error", ep)
		}
	}
	if _, err := NewPublisher(PublisherConfig{Password: "x"}); err == nil {
		t.Error("password without username accepted")
	}
	p := newTestPublisher(t, PublisherConfig{HeartbeatInterval: -1})
	for _, topic := range []string{"", "misp json", " misp_json"} {
		if err := p.Publish(topic, []byte("{}")); err == nil {
			t.Errorf("Publish(%q) succeeded, want an error", topic)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ZMQTopicPublish, []byte("{}")); err == nil {
		t.Error("Publish after Close succeeded")
	}
	if err := p.Restart(); err == nil {
		t.Error("Restart after Close succeeded")
	}
}

func TestPublisherHeartbeatWhenIdle(t *testing.T) {
	p := newTestPublisher(t, PublisherConfig{HeartbeatInterval: 20 * time.Millisecond})
	sub, err := dialSub(t, t.Context(), p.Addr(), ZMQTopicHeartbeat)
	if err != nil {
		t.Fatal(err)
	}
	waitSubscribed(t, p, ZMQTopicHeartbeat)
	msg := recvFrame(t, sub)
	// MISP's Python publisher uses json.dumps: a space after ':' and ','.
	re := regexp.MustCompile(`^misp_json_self \{"status": "[^"]+", "uptime": \d+\}$`)
	if len(msg.Frames) != 1 || !re.Match(msg.Frames[0]) {
		t.Fatalf("heartbeat = %q, want it to match %s", msg.Frames, re)
	}
}

func TestPublisherPlainAuthentication(t *testing.T) {
	p := newTestPublisher(t, PublisherConfig{Username: "misp", Password: "s3cret", HeartbeatInterval: -1})
	tests := []struct {
		name    string
		opts    []zmq4.Option
		wantErr bool
	}{
		{"right credentials", []zmq4.Option{zmq4.WithSecurity(plain.Security("misp", "s3cret"))}, false},
		{"wrong password", []zmq4.Option{zmq4.WithSecurity(plain.Security("misp", "guess"))}, true},
		{"wrong username", []zmq4.Option{zmq4.WithSecurity(plain.Security("root", "s3cret"))}, true},
		{"no credentials", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub, err := dialSub(t, t.Context(), p.Addr(), ZMQTopicPublish+" ", tt.opts...)
			if tt.wantErr {
				if err == nil {
					t.Fatal("Dial succeeded, want an authentication failure")
				}
				return
			}
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			waitSubscribed(t, p, ZMQTopicPublish)
			if err := p.Publish(ZMQTopicPublish, []byte(`{"Event":{}}`)); err != nil {
				t.Fatal(err)
			}
			if msg := recvFrame(t, sub); string(msg.Frames[0]) != `misp_json {"Event":{}}` {
				t.Fatalf("frame = %q", msg.Frames[0])
			}
		})
	}
}

func TestPublisherRestartKeepsPortAndDropsSubscribers(t *testing.T) {
	p := newTestPublisher(t, PublisherConfig{Username: "misp", Password: "pw", HeartbeatInterval: -1})
	addr := p.Addr()
	sub, err := dialSub(t, t.Context(), addr, "", zmq4.WithSecurity(plain.Security("misp", "pw")))
	if err != nil {
		t.Fatal(err)
	}
	waitSubscribed(t, p, ZMQTopicPublish)
	if err := p.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if got := p.Addr(); got != addr {
		t.Fatalf("Addr after Restart = %s, want %s", got, addr)
	}
	// The old connection is dropped: its Recv reports an error.
	if _, err := sub.Recv(); err == nil {
		t.Fatal("Recv on a subscriber of the old socket succeeded, want an error")
	}
	sub2, err := dialSub(t, t.Context(), addr, "", zmq4.WithSecurity(plain.Security("misp", "pw")))
	if err != nil {
		t.Fatalf("Dial after Restart: %v", err)
	}
	waitSubscribed(t, p, ZMQTopicPublish)
	if err := p.Publish(ZMQTopicPublish, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if msg := recvFrame(t, sub2); string(msg.Frames[0]) != "misp_json {}" {
		t.Fatalf("frame = %q", msg.Frames[0])
	}
}

func TestPublisherWaitForSubscriptionHonoursContext(t *testing.T) {
	p := newTestPublisher(t, PublisherConfig{HeartbeatInterval: -1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.WaitForSubscription(ctx, ZMQTopicPublish); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestParsePlainHello(t *testing.T) {
	tests := []struct {
		name       string
		body       []byte
		user, pass string
		wantErr    bool
	}{
		{"valid", []byte("\x04misp\x02pw"), "misp", "pw", false},
		{"empty credentials", []byte("\x00\x00"), "", "", false},
		{"empty body", nil, "", "", true},
		{"username longer than body", []byte("\x09misp"), "", "", true},
		{"missing password", []byte("\x04misp"), "", "", true},
		{"password longer than body", []byte("\x04misp\x05pw"), "", "", true},
		{"trailing bytes", []byte("\x04misp\x02pwX"), "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user, pass, err := parsePlainHello(tt.body)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && (string(user) != tt.user || string(pass) != tt.pass) {
				t.Fatalf("got %q/%q, want %q/%q", user, pass, tt.user, tt.pass)
			}
		})
	}
}
