package listener

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The hostile-peer suite for ZeroMQ: a raw ZMTP peer on loopback that answers the subscriber's
// connection with a hostile stream, then behaves on the next connection. Before the guard below
// zmq4 existed, each attack crashed the whole test binary (makeslice: len out of range, out of
// memory, slice bounds out of range), in zmq4's goroutines where no recover reaches.

// zmtpGreeting is a ZMTP 3.0 greeting for mechanism.
func zmtpGreeting(mechanism string, asServer bool) []byte {
	g := make([]byte, 64)
	g[0], g[9], g[10], g[11] = 0xFF, 0x7F, 3, 0
	copy(g[12:32], mechanism)
	if asServer {
		g[32] = 1
	}
	return g
}

// zmtpFrame encodes one frame; flags carry MORE (1) and COMMAND (4), LONG is set as needed.
func zmtpFrame(flags byte, body []byte) []byte {
	return append(zmtpFrameHeader(flags, uint64(len(body))), body...)
}

// zmtpFrameHeader encodes a frame header declaring size bytes, whatever follows.
func zmtpFrameHeader(flags byte, size uint64) []byte {
	if size > 255 {
		return binary.BigEndian.AppendUint64([]byte{flags | 0x02}, size)
	}
	return []byte{flags, byte(size)}
}

func zmtpCommand(name string, body []byte) []byte {
	return zmtpFrame(0x04, append(append([]byte{byte(len(name))}, name...), body...))
}

// zmtpProperty encodes one metadata property.
func zmtpProperty(name, value string) []byte {
	p := append([]byte{byte(len(name))}, name...)
	p = binary.BigEndian.AppendUint32(p, uint32(len(value)))
	return append(p, value...)
}

// zmtpHandshake is what an honest PUB sends after its greeting: WELCOME with PLAIN, then READY.
func zmtpHandshake(mechanism string) []byte {
	var b []byte
	if mechanism == "PLAIN" {
		b = append(b, zmtpCommand("WELCOME", nil)...)
	}
	return append(b, zmtpCommand("READY", zmtpProperty("Socket-Type", "PUB"))...)
}

// readyWith is the handshake of a peer whose READY carries the metadata given.
func readyWith(mechanism string, metadata []byte) []byte {
	var b []byte
	if mechanism == "PLAIN" {
		b = zmtpCommand("WELCOME", nil)
	}
	return append(b, zmtpCommand("READY", metadata)...)
}

// hostilePeer accepts ZeroMQ connections on loopback. Connection i gets attacks[i] after the
// greeting; later connections get an honest handshake followed by heartbeats.
type hostilePeer struct {
	ln        net.Listener
	mechanism string
	attacks   [][]byte

	mu    sync.Mutex
	conns int
	wg    sync.WaitGroup
}

func startHostilePeer(t *testing.T, mechanism string, attacks ...[]byte) *hostilePeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &hostilePeer{ln: ln, mechanism: mechanism, attacks: attacks}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() { _ = ln.Close(); p.wg.Wait() })
	return p
}

func (p *hostilePeer) endpoint() string { return "tcp://" + p.ln.Addr().String() }

func (p *hostilePeer) connections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns
}

func (p *hostilePeer) accept() {
	defer p.wg.Done()
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		i := p.conns
		p.conns++
		p.mu.Unlock()
		conns.Add(1)
		go func() {
			defer conns.Done()
			p.serve(conn, i)
		}()
	}
}

func (p *hostilePeer) serve(conn net.Conn, i int) {
	defer conn.Close()
	closed := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, conn); close(closed) }()
	_ = conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Write(zmtpGreeting(p.mechanism, p.mechanism == "PLAIN")); err != nil {
		return
	}
	if i < len(p.attacks) {
		// The attack, then silence: the subscriber has to cut the connection itself.
		_, _ = conn.Write(p.attacks[i])
		select {
		case <-closed:
		case <-time.After(30 * time.Second):
		}
		return
	}
	if _, err := conn.Write(zmtpHandshake(p.mechanism)); err != nil {
		return
	}
	heartbeat := zmtpFrame(0, []byte(`misp_json_self {"status": "I'm still alive.", "uptime": 20}`))
	for {
		if _, err := conn.Write(heartbeat); err != nil {
			return
		}
		select {
		case <-closed:
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestZeroMQSurvivesHostilePeer is issue 19 row 1: one frame header from anything answering on
// the ZeroMQ endpoint killed the daemon, before PLAIN authentication and after. The subscriber
// must cut each hostile connection, count it, and go on to receive from the next, honest one.
func TestZeroMQSurvivesHostilePeer(t *testing.T) {
	const frameCap = 1 << 20
	handshake := func(mechanism string, after ...[]byte) []byte {
		return bytes.Join(append([][]byte{zmtpHandshake(mechanism)}, after...), nil)
	}
	var endlessMultipart []byte
	for range frameCap/frameOverhead + 1 {
		endlessMultipart = append(endlessMultipart, 0x01, 0x00) // an empty frame flagged MORE
	}
	attacks := []struct {
		name   string
		attack func(mechanism string) []byte
		reason string
	}{
		{"command frame declaring 64 GiB", func(string) []byte { return zmtpFrameHeader(0x04, 64<<30) }, ReasonFrameTooLarge},
		{"command frame declaring 2^50 bytes", func(string) []byte { return zmtpFrameHeader(0x04, 1<<50) }, ReasonFrameTooLarge},
		{"command frame declaring 2^64-1 bytes", func(string) []byte { return zmtpFrameHeader(0x04, ^uint64(0)) }, ReasonFrameTooLarge},
		{"READY metadata overrunning the command", func(m string) []byte {
			welcome := []byte(nil)
			if m == "PLAIN" {
				welcome = zmtpCommand("WELCOME", nil)
			}
			return append(welcome, zmtpCommand("READY", []byte{2, 'a', 'b'})...)
		}, ReasonZMTPProtocol},
		// zmq4 panics in its handshake on a Socket-Type it does not know (found by FuzzZMTPPeer).
		{"READY without a Socket-Type", func(m string) []byte {
			return readyWith(m, zmtpProperty("Identity", ""))
		}, ReasonZMTPProtocol},
		{"READY with an unknown Socket-Type", func(m string) []byte {
			return readyWith(m, zmtpProperty("socket-Type", "PUB\x00"))
		}, ReasonZMTPProtocol},
		{"command name longer than the command", func(string) []byte { return zmtpFrame(0x04, []byte{200, 'R'}) }, ReasonZMTPProtocol},
		{"message frame declaring 2^50 bytes after the handshake", func(m string) []byte {
			return handshake(m, zmtpFrameHeader(0, 1<<50))
		}, ReasonFrameTooLarge},
		{"message frame declaring 64 GiB after the handshake", func(m string) []byte {
			return handshake(m, zmtpFrameHeader(0, 64<<30))
		}, ReasonFrameTooLarge},
		{"endless multipart message after the handshake", func(m string) []byte {
			return handshake(m, endlessMultipart)
		}, ReasonFrameTooLarge},
		{"reserved flag bits", func(m string) []byte { return handshake(m, []byte{0xF0, 0}) }, ReasonZMTPProtocol},
	}
	for _, mechanism := range []string{"NULL", "PLAIN"} {
		for _, a := range attacks {
			t.Run(mechanism+"/"+strings.ReplaceAll(a.name, " ", "_"), func(t *testing.T) {
				peer := startHostilePeer(t, mechanism, a.attack(mechanism))
				cfg := ZeroMQConfig{Endpoint: peer.endpoint(), MaxFrameBytes: frameCap, HeartbeatTimeout: 10 * time.Second}
				if mechanism == "PLAIN" {
					cfg.Username, cfg.Password = "misp", "zmq-secret"
				}
				rec := &recorder{}
				_, m := runZeroMQ(t, cfg, rec)
				waitFor(t, "a heartbeat over the honest connection", func() bool { return testutil.ToFloat64(m.Heartbeats) > 0 })
				if got := testutil.ToFloat64(m.Malformed.WithLabelValues(SourceZeroMQ, a.reason)); got != 1 {
					t.Errorf("malformed{zeromq,%s} = %v, want 1", a.reason, got)
				}
				if peer.connections() < 2 {
					t.Errorf("%d connections, want the hostile one and a new one", peer.connections())
				}
			})
		}
	}
}

// TestZeroMQRefusesNonZMTPGreeting: a peer that is not ZeroMQ at all (an HTTP server, say) is
// refused at its greeting and counted.
func TestZeroMQRefusesNonZMTPGreeting(t *testing.T) {
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
			go func() {
				defer c.Close()
				_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" + strings.Repeat(" ", 64)))
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	rec := &recorder{}
	_, m := runZeroMQ(t, ZeroMQConfig{Endpoint: "tcp://" + ln.Addr().String()}, rec)
	waitFor(t, "the greeting refused", func() bool {
		return testutil.ToFloat64(m.Malformed.WithLabelValues(SourceZeroMQ, ReasonZMTPProtocol)) > 0
	})
}
