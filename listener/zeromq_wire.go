package listener

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/go-zeromq/zmq4"
	"golang.org/x/text/cases"
	"golang.org/x/text/language"

	"github.com/mispsentinel/listener/internal/printable"
)

// zmq4 v0.17.0 trusts every length a peer declares: it allocates a frame's declared size before
// reading it (a declared 64 GiB frame is an out-of-memory crash, 2^50 bytes a makeslice panic)
// and slices command metadata by its declared lengths (an index panic). Both happen before
// PLAIN authentication, and after the handshake in zmq4's own reader goroutine, where no recover
// can reach. zmtpGuardConn sits below zmq4 on the subscriber's connection and checks the byte
// stream the peer sends against ZMTP 3.x (rfc.zeromq.org/spec/23) before zmq4 sees it: a
// greeting that is not ZMTP, a frame or message larger than the cap, a reserved flag bit, or a
// command zmq4 would misparse cuts the connection with a *ZMTPViolationError, which the
// subscriber counts and answers by reconnecting.

// Reasons a peer's ZMTP stream is refused, used in errors and as metric label values.
const (
	ReasonFrameTooLarge = "frame_too_large" // a frame or multipart message over the size cap
	ReasonZMTPProtocol  = "zmtp_protocol"   // a greeting, flag or command that is not ZMTP 3.x
)

// maxCommandBytes caps a ZMTP command frame. Commands (READY, WELCOME, PING, ERROR...) carry a
// name and a little metadata; libzmq's largest are well under a kilobyte.
const maxCommandBytes = 64 << 10

// frameOverhead is what each frame of a multipart message costs zmq4 besides its body (a slice
// header and an allocation), charged against the message cap so that a stream of empty frames
// flagged MORE cannot grow a message without bound either.
const frameOverhead = 64

// ZMTPViolationError says why the subscriber cut a ZeroMQ connection.
type ZMTPViolationError struct {
	Reason string // ReasonFrameTooLarge or ReasonZMTPProtocol
	Detail string
}

func (e *ZMTPViolationError) Error() string {
	return "zeromq peer violates ZMTP (" + e.Reason + "): " + e.Detail
}

func violation(reason, format string, args ...any) error {
	return &ZMTPViolationError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// zmtpGuardConn checks what the peer sends; writes pass through unchanged.
type zmtpGuardConn struct {
	net.Conn
	maxMessage uint64 // cap on one frame and on one multipart message, overhead included

	mu       sync.Mutex // zmq4 reads from one goroutine at a time; the mutex keeps it honest
	in       *bufio.Reader
	greeted  bool
	pending  []byte // checked bytes not yet handed to zmq4
	bodyLeft uint64 // bytes of a message frame body still to pass through
	msgSize  uint64 // bytes of the current multipart message so far
	err      error  // sticky: once the stream is out of step or refused, every Read fails

	// refused is set, before the connection is closed, when the peer broke the protocol, so
	// that a write failing on the closed connection reports why it was closed.
	refused atomic.Pointer[ZMTPViolationError]
}

func newZMTPGuardConn(c net.Conn, maxMessage int64) *zmtpGuardConn {
	return &zmtpGuardConn{Conn: c, maxMessage: uint64(max(maxMessage, 1)), in: bufio.NewReaderSize(c, 4096)}
}

// Read hands zmq4 the peer's bytes once the unit they belong to (the greeting, a frame header, a
// whole command frame) has been checked. Message frame bodies stream through unbuffered.
func (c *zmtpGuardConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(p) == 0 {
		return 0, nil
	}
	for len(c.pending) == 0 && c.bodyLeft == 0 {
		if c.err != nil {
			return 0, c.err
		}
		if err := c.nextUnit(); err != nil {
			c.err = err
			var v *ZMTPViolationError
			if errors.As(err, &v) {
				c.refused.Store(v)
				_ = c.Conn.Close()
			}
			return 0, err
		}
	}
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	n, err := c.in.Read(p[:min(uint64(len(p)), c.bodyLeft)])
	c.bodyLeft -= uint64(n)
	if err != nil {
		c.err = err
	}
	return n, err
}

// Write sends to the peer; after the connection was cut for a violation, it reports that.
func (c *zmtpGuardConn) Write(p []byte) (int, error) {
	if v := c.refused.Load(); v != nil {
		return 0, v
	}
	n, err := c.Conn.Write(p)
	if v := c.refused.Load(); err != nil && v != nil {
		return n, v
	}
	return n, err
}

// nextUnit reads and checks the next greeting or frame header (with the body of a command).
func (c *zmtpGuardConn) nextUnit() error {
	if !c.greeted {
		var g [64]byte
		if _, err := io.ReadFull(c.in, g[:]); err != nil {
			return err
		}
		if err := checkGreeting(g[:]); err != nil {
			return err
		}
		c.greeted = true
		c.pending = g[:]
		return nil
	}
	var hdr [9]byte
	if _, err := io.ReadFull(c.in, hdr[:2]); err != nil {
		return err
	}
	flags := hdr[0]
	if flags&^0x07 != 0 {
		return violation(ReasonZMTPProtocol, "reserved flag bits set in frame flags %#02x", flags)
	}
	more, long, command := flags&0x01 != 0, flags&0x02 != 0, flags&0x04 != 0
	size, hdrLen := uint64(hdr[1]), 2
	if long {
		if _, err := io.ReadFull(c.in, hdr[2:9]); err != nil {
			return err
		}
		size, hdrLen = binary.BigEndian.Uint64(hdr[1:9]), 9
	}
	if command {
		if more {
			return violation(ReasonZMTPProtocol, "command frame flagged MORE")
		}
		if c.msgSize > 0 {
			return violation(ReasonZMTPProtocol, "command frame inside a multipart message")
		}
		if size > min(c.maxMessage, maxCommandBytes) {
			return violation(ReasonFrameTooLarge, "command frame of %d bytes (cap %d)", size, min(c.maxMessage, maxCommandBytes))
		}
		unit := make([]byte, hdrLen+int(size))
		copy(unit, hdr[:hdrLen])
		if _, err := io.ReadFull(c.in, unit[hdrLen:]); err != nil {
			return err
		}
		if err := checkCommand(unit[hdrLen:]); err != nil {
			return err
		}
		c.pending = unit
		return nil
	}
	// A size near 2^64 would wrap the sum below, so compare against the cap first.
	if size > c.maxMessage || c.msgSize+size+frameOverhead > c.maxMessage {
		return violation(ReasonFrameTooLarge, "message frame of %d bytes after %d in this message (cap %d)", size, c.msgSize, c.maxMessage)
	}
	c.msgSize += size + frameOverhead
	if !more {
		c.msgSize = 0
	}
	c.pending = append([]byte(nil), hdr[:hdrLen]...)
	c.bodyLeft = size
	return nil
}

// checkGreeting checks the 64-byte ZMTP 3.x greeting: signature, version and a mechanism name
// of printable ASCII padded with zeros.
func checkGreeting(g []byte) error {
	if g[0] != 0xFF || g[9] != 0x7F {
		return violation(ReasonZMTPProtocol, "greeting signature % x is not ZMTP 3", g[:10])
	}
	if g[10] < 3 {
		return violation(ReasonZMTPProtocol, "ZMTP version %d.%d (3.0 or later needed)", g[10], g[11])
	}
	mech := g[12:32]
	end := false
	for _, b := range mech {
		switch {
		case b == 0:
			end = true
		case end || b < 0x20 || b > 0x7e:
			return violation(ReasonZMTPProtocol, "greeting mechanism %q is not a name", mech)
		}
	}
	return nil
}

// checkCommand checks a command body the way zmq4 slices it: a name of the declared length, and
// for READY and INITIATE a metadata list whose every declared length fits.
func checkCommand(body []byte) error {
	if len(body) == 0 {
		return violation(ReasonZMTPProtocol, "empty command frame")
	}
	nameLen := int(body[0])
	if nameLen == 0 || 1+nameLen > len(body) {
		return violation(ReasonZMTPProtocol, "command name of %d bytes in a %d-byte command", nameLen, len(body))
	}
	switch name := string(body[1 : 1+nameLen]); name {
	case "READY", "INITIATE":
		return checkMetadata(name, body[1+nameLen:])
	}
	return nil
}

// checkMetadata walks a ZMTP property list: name-size (1 byte), name, value-size (4 bytes), value.
// zmq4 keeps the last value of each name as cases.Title makes it and panics, in its handshake,
// on a Socket-Type it does not know (an empty or missing one included), so the peer's last
// Socket-Type must name a ZMTP socket type.
func checkMetadata(command string, p []byte) error {
	socketType, found := "", false
	for i := 0; i < len(p); {
		nameLen := int(p[i])
		i++
		if nameLen == 0 || len(p)-i < nameLen+4 {
			return violation(ReasonZMTPProtocol, "%s property name of %d bytes overruns the command", command, nameLen)
		}
		name := string(p[i : i+nameLen])
		i += nameLen
		valueLen := uint64(binary.BigEndian.Uint32(p[i : i+4]))
		i += 4
		if valueLen > uint64(len(p)-i) {
			return violation(ReasonZMTPProtocol, "%s property value of %d bytes overruns the command", command, valueLen)
		}
		if cases.Title(language.Und, cases.NoLower).String(name) == socketTypeProperty {
			socketType, found = string(p[i:i+int(valueLen)]), true
		}
		i += int(valueLen)
	}
	if !found {
		return violation(ReasonZMTPProtocol, "%s names no %s", command, socketTypeProperty)
	}
	if !slices.Contains(zmtpSocketTypes, zmq4.SocketType(socketType)) {
		return violation(ReasonZMTPProtocol, "%s names an unknown %s %q", command, socketTypeProperty, printable.Escape(socketType))
	}
	return nil
}

// socketTypeProperty is the ZMTP property naming the peer's socket type, as zmq4 looks it up
// after title-casing each property name (cases.Title, NoLower; a Caser is not safe to share
// between connections, so each check makes its own).
const socketTypeProperty = "Socket-Type"

// zmtpSocketTypes are the socket types zmq4 knows (ZMTP 3.x, RFC 23).
var zmtpSocketTypes = []zmq4.SocketType{zmq4.Pair, zmq4.Pub, zmq4.Sub, zmq4.Req, zmq4.Rep, zmq4.Dealer, zmq4.Router, zmq4.Pull, zmq4.Push, zmq4.XPub, zmq4.XSub}
