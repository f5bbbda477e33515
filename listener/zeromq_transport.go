package listener

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/transport"
)

// zmq4 performs the ZMTP handshake inside Dial with no deadline, so a peer that accepts TCP but
// never answers would block Dial, and with it Run's shutdown, forever. The subscriber therefore
// dials through its own transport, which bounds the handshake with a deadline, drops the
// connection as soon as the socket's context ends, and checks every byte the peer sends
// against ZMTP and the frame-size cap before zmq4 parses it (zeromq_wire.go).
const guardedTCP = "mispsentinel-tcp"

var registerGuardedTCP = sync.OnceValue(func() error {
	return zmq4.RegisterTransport(guardedTCP, guardedTransport{tcp: transport.New("tcp")})
})

// guardedEndpoint rewrites "tcp://host:port" to the guarded transport.
func guardedEndpoint(endpoint string) (string, error) {
	rest, ok := strings.CutPrefix(endpoint, "tcp://")
	if !ok {
		return "", errors.New("only tcp:// endpoints are supported")
	}
	if err := registerGuardedTCP(); err != nil {
		return "", err
	}
	return guardedTCP + "://" + rest, nil
}

type guardedTransport struct{ tcp transport.Transport }

// dialGuard travels in the socket's context to the transport. It bounds the handshake and
// remembers the connection so the session can lift the deadline once the handshake is done.
type dialGuard struct {
	handshakeTimeout time.Duration
	maxFrameBytes    int64

	mu   sync.Mutex
	conn net.Conn
}

type dialGuardKey struct{}

// unguardedMaxFrameBytes caps frames on a connection dialled without the subscriber's guard
// (zmq4 dialling on its own, which the supervisor never lets it do). Every dial of the
// subscriber carries its configured MaxFrameBytes.
const unguardedMaxFrameBytes = 64 << 20

func (t guardedTransport) Dial(ctx context.Context, dialer transport.Dialer, addr string) (net.Conn, error) {
	raw, err := t.tcp.Dial(ctx, dialer, addr)
	if err != nil {
		return nil, err
	}
	maxFrame := int64(unguardedMaxFrameBytes)
	g, guarded := ctx.Value(dialGuardKey{}).(*dialGuard)
	if guarded && g.maxFrameBytes > 0 {
		maxFrame = g.maxFrameBytes
	}
	conn := newZMTPGuardConn(raw, maxFrame)
	if guarded {
		_ = conn.SetDeadline(time.Now().Add(g.handshakeTimeout))
		g.mu.Lock()
		g.conn = conn
		g.mu.Unlock()
	}
	// Unblock any read or write on this connection once the socket is closed.
	context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	return conn, nil
}

func (t guardedTransport) Listen(context.Context, string) (net.Listener, error) {
	return nil, errors.New("listen is not supported on " + guardedTCP)
}

func (t guardedTransport) Addr(ep string) (string, error) { return t.tcp.Addr(ep) }

// handshakeDone lifts the handshake deadline.
func (g *dialGuard) handshakeDone() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.conn != nil {
		_ = g.conn.SetDeadline(time.Time{})
	}
}
