package misp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-zeromq/zmq4"
)

// ZeroMQ topics of MISP's publisher (spec/misp-interfaces.md §1.4) that the listener consumes.
const (
	// ZMQTopicPublish carries the full event when it is published.
	ZMQTopicPublish = "misp_json"
	// ZMQTopicEvent carries event add, edit and delete notifications.
	ZMQTopicEvent = "misp_json_event"
	// ZMQTopicHeartbeat is the publisher's own "still alive" message, sent when idle.
	ZMQTopicHeartbeat = "misp_json_self"
)

// DefaultHeartbeatInterval is how long MISP's publisher stays idle before it sends a heartbeat
// (its Redis BLPOP timeout).
const DefaultHeartbeatInterval = 10 * time.Second

// PublisherConfig configures a simulated MISP ZeroMQ publisher.
type PublisherConfig struct {
	// Endpoint is where the PUB socket binds. Default "tcp://127.0.0.1:0" (a free loopback port,
	// kept across Restart). Only loopback addresses are accepted.
	Endpoint string
	// Username and Password enable ZeroMQ PLAIN authentication when Username is set, as MISP does
	// when Plugin.ZeroMQ_username is set. Unlike zmq4's own PLAIN server, which accepts any
	// credentials, the simulator rejects a wrong username or password.
	Username string
	Password string
	// HeartbeatInterval is the idle time after which a misp_json_self heartbeat is sent.
	// Default DefaultHeartbeatInterval; a negative value disables heartbeats.
	HeartbeatInterval time.Duration
	// Logger receives zmq4's connection diagnostics. Default: discarded.
	Logger *log.Logger
}

// Publisher is a ZeroMQ PUB socket that sends MISP's exact single-frame "topic SPACE json"
// messages, sends heartbeats when idle and can be restarted on the same port to exercise
// subscribers' reconnect logic. Like MISP's publisher it drops messages nobody is subscribed to.
// Its methods are safe for concurrent use.
type Publisher struct {
	cfg PublisherConfig

	mu        sync.Mutex
	sock      zmq4.Socket // nil while stopped
	endpoint  string      // resolved tcp://host:port, fixed after the first bind
	startedAt time.Time   // of the current socket, for the heartbeat's uptime
	lastSend  time.Time
	closed    bool

	stopHeartbeat chan struct{}
	heartbeatDone chan struct{}
}

// NewPublisher binds the PUB socket and starts the heartbeat loop.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if cfg.Endpoint == "" {
		cfg.Endpoint = "tcp://127.0.0.1:0"
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = log.New(io.Discard, "", 0)
	}
	if cfg.Username == "" && cfg.Password != "" {
		return nil, errors.New("zeromq publisher: password set without username")
	}
	if err := checkLoopbackEndpoint(cfg.Endpoint); err != nil {
		return nil, fmt.Errorf("zeromq publisher: %w", err)
	}
	p := &Publisher{cfg: cfg, endpoint: cfg.Endpoint}
	if err := p.start(); err != nil {
		return nil, err
	}
	if cfg.HeartbeatInterval > 0 {
		p.stopHeartbeat = make(chan struct{})
		p.heartbeatDone = make(chan struct{})
		go p.heartbeatLoop()
	}
	return p, nil
}

// Addr returns the endpoint subscribers dial, e.g. "tcp://127.0.0.1:50123".
func (p *Publisher) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.endpoint
}

// Publish sends one frame: topic, one space, payload (MISP's MispZmq._pub_message). The payload is
// sent as is, so tests can send malformed JSON on purpose. While the publisher is stopped by
// Restart the message is dropped, as MISP's PUB socket drops messages nobody receives.
func (p *Publisher) Publish(topic string, payload []byte) error {
	if topic == "" || strings.ContainsRune(topic, ' ') {
		return fmt.Errorf("zeromq publisher: invalid topic %q", topic)
	}
	frame := make([]byte, 0, len(topic)+1+len(payload))
	frame = append(frame, topic...)
	frame = append(frame, ' ')
	frame = append(frame, payload...)
	return p.PublishFrames(frame)
}

// PublishFrames sends raw frames as one message (a multipart message when more than one), for
// tests that need frames MISP never sends.
func (p *Publisher) PublishFrames(frames ...[]byte) error {
	if len(frames) == 0 {
		return errors.New("zeromq publisher: no frames")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("zeromq publisher: closed")
	}
	p.lastSend = time.Now()
	if p.sock == nil {
		return nil
	}
	msg := zmq4.NewMsgFrom(frames...)
	send := p.sock.Send
	if len(frames) > 1 {
		send = p.sock.SendMulti
	}
	if err := send(msg); err != nil {
		return fmt.Errorf("zeromq publisher: send: %w", err)
	}
	return nil
}

// WaitForSubscription blocks until at least one connected subscriber would receive a message on
// topic (its subscription is a prefix of "topic "), or ctx ends. PUB/SUB drops messages sent before the subscription reaches the
// publisher, so tests call this before publishing what they expect to receive.
func (p *Publisher) WaitForSubscription(ctx context.Context, topic string) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if p.subscribed(topic) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("zeromq publisher: wait for a subscription to %q: %w", topic, ctx.Err())
		case <-tick.C:
		}
	}
}

func (p *Publisher) subscribed(topic string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sock == nil {
		return false
	}
	topics, ok := p.sock.(zmq4.Topics)
	if !ok {
		return false
	}
	// A message on topic starts with "topic ", and subscriptions are byte prefixes of messages.
	frameStart := topic + " "
	return slices.ContainsFunc(topics.Topics(), func(prefix string) bool {
		return strings.HasPrefix(frameStart, prefix)
	})
}

// Restart closes the socket, dropping every subscriber connection, and binds again on the same
// port, as MISP's publisher does on a "reload" command or a process restart.
func (p *Publisher) Restart() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return errors.New("zeromq publisher: closed")
	}
	err := p.stopLocked()
	p.mu.Unlock()
	if err != nil {
		return err
	}
	return p.start()
}

// Close stops the heartbeat loop and closes the socket. It is safe to call more than once.
func (p *Publisher) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	err := p.stopLocked()
	p.mu.Unlock()
	if p.stopHeartbeat != nil {
		close(p.stopHeartbeat)
		<-p.heartbeatDone
	}
	return err
}

func (p *Publisher) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("zeromq publisher: closed")
	}
	opts := []zmq4.Option{zmq4.WithLogger(p.cfg.Logger)}
	if p.cfg.Username != "" {
		opts = append(opts, zmq4.WithSecurity(newPlainServer(p.cfg.Username, p.cfg.Password)))
	}
	sock := zmq4.NewPub(context.Background(), opts...)
	var err error
	// The port of a closed listener can stay busy for a moment; retry briefly before giving up.
	for range 50 {
		if err = sock.Listen(p.endpoint); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		_ = sock.Close()
		return fmt.Errorf("zeromq publisher: listen on %s: %w", p.endpoint, err)
	}
	if tcp, ok := sock.Addr().(*net.TCPAddr); ok {
		p.endpoint = "tcp://" + tcp.String()
	}
	p.sock = sock
	p.startedAt = time.Now()
	p.lastSend = p.startedAt
	return nil
}

func (p *Publisher) stopLocked() error {
	if p.sock == nil {
		return nil
	}
	err := p.sock.Close()
	p.sock = nil
	if err != nil {
		return fmt.Errorf("zeromq publisher: close socket: %w", err)
	}
	return nil
}

// heartbeatLoop sends misp_json_self after HeartbeatInterval without any other message, with the
// body MISP's Python publisher builds (json.dumps spacing, uptime in whole seconds).
func (p *Publisher) heartbeatLoop() {
	defer close(p.heartbeatDone)
	interval := p.cfg.HeartbeatInterval
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for {
		select {
		case <-p.stopHeartbeat:
			return
		case <-timer.C:
		}
		p.mu.Lock()
		idle := time.Since(p.lastSend)
		uptime := int(time.Since(p.startedAt).Seconds())
		p.mu.Unlock()
		if idle >= interval {
			body := fmt.Sprintf(`{"status": "I'm still alive.", "uptime": %d}`, uptime)
			// A send error means the socket is being closed; the next tick tries again.
			_ = p.Publish(ZMQTopicHeartbeat, []byte(body))
			idle = 0
		}
		timer.Reset(interval - idle)
	}
}

func checkLoopbackEndpoint(endpoint string) error {
	hostport, ok := strings.CutPrefix(endpoint, "tcp://")
	if !ok {
		return fmt.Errorf("endpoint %q: only tcp:// is supported", endpoint)
	}
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("endpoint %q: %w", endpoint, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("endpoint %q: the simulator binds loopback addresses only", endpoint)
	}
	return nil
}

// plainServer is the server side of ZeroMQ PLAIN (rfc.zeromq.org/spec:24) that actually checks
// the credentials. zmq4's security/plain accepts every client on the server side (its
// validateHello is a stub), so the simulator uses this to reproduce MISP's pyzmq
// ThreadAuthenticator, which rejects wrong credentials.
type plainServer struct {
	userSum, passSum [sha256.Size]byte
}

func newPlainServer(user, pass string) *plainServer {
	return &plainServer{userSum: sha256.Sum256([]byte(user)), passSum: sha256.Sum256([]byte(pass))}
}

func (*plainServer) Type() zmq4.SecurityType { return zmq4.PlainSecurity }

func (s *plainServer) Handshake(conn *zmq4.Conn, server bool) error {
	if !server {
		return errors.New("simulated plain security: server side only")
	}
	err := s.handshake(conn)
	if err != nil {
		// zmq4's accept loop does not close a connection whose handshake failed.
		_ = conn.Close()
	}
	return err
}

func (s *plainServer) handshake(conn *zmq4.Conn) error {
	hello, err := conn.RecvCmd()
	if err != nil {
		return fmt.Errorf("receive HELLO: %w", err)
	}
	if hello.Name != zmq4.CmdHello {
		return fmt.Errorf("expected HELLO, got %q", hello.Name)
	}
	user, pass, err := parsePlainHello(hello.Body)
	if err != nil {
		_ = conn.SendCmd(zmq4.CmdError, zmtpErrorReason("malformed HELLO"))
		return err
	}
	if !s.valid(user, pass) {
		_ = conn.SendCmd(zmq4.CmdError, zmtpErrorReason("invalid username or password"))
		return errors.New("plain authentication failed")
	}
	if err := conn.SendCmd(zmq4.CmdWelcome, nil); err != nil {
		return fmt.Errorf("send WELCOME: %w", err)
	}
	initiate, err := conn.RecvCmd()
	if err != nil {
		return fmt.Errorf("receive INITIATE: %w", err)
	}
	if initiate.Name != zmq4.CmdInitiate {
		return fmt.Errorf("expected INITIATE, got %q", initiate.Name)
	}
	if err := conn.Peer.Meta.UnmarshalZMTP(initiate.Body); err != nil {
		return fmt.Errorf("decode peer metadata: %w", err)
	}
	meta, err := conn.Meta.MarshalZMTP()
	if err != nil {
		return fmt.Errorf("encode metadata: %w", err)
	}
	if err := conn.SendCmd(zmq4.CmdReady, meta); err != nil {
		return fmt.Errorf("send READY: %w", err)
	}
	return nil
}

func (s *plainServer) valid(user, pass []byte) bool {
	u := sha256.Sum256(user)
	p := sha256.Sum256(pass)
	// Both comparisons always run, so timing does not tell which one failed.
	return subtle.ConstantTimeCompare(u[:], s.userSum[:])&subtle.ConstantTimeCompare(p[:], s.passSum[:]) == 1
}

func (*plainServer) Encrypt(w io.Writer, data []byte) (int, error) { return w.Write(data) }
func (*plainServer) Decrypt(w io.Writer, data []byte) (int, error) { return w.Write(data) }

// parsePlainHello splits a PLAIN HELLO body: username length, username, password length, password.
func parsePlainHello(body []byte) (user, pass []byte, err error) {
	r := bytes.NewReader(body)
	user, err = readShortBytes(r)
	if err != nil {
		return nil, nil, fmt.Errorf("malformed HELLO username: %w", err)
	}
	pass, err = readShortBytes(r)
	if err != nil {
		return nil, nil, fmt.Errorf("malformed HELLO password: %w", err)
	}
	if r.Len() != 0 {
		return nil, nil, errors.New("malformed HELLO: trailing bytes")
	}
	return user, pass, nil
}

func readShortBytes(r *bytes.Reader) ([]byte, error) {
	n, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

// zmtpErrorReason encodes the body of a ZMTP ERROR command: a one-byte length and the reason.
func zmtpErrorReason(reason string) []byte {
	return append([]byte{byte(len(reason))}, reason...)
}
