package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Records are encoded with a small hand-written binary format: a version byte followed by
// uvarints and length-prefixed byte strings. It is several times faster and smaller than JSON
// for the million-indicator state, and carries STIX bodies without base64.

const recordVersion = 1

var errCorrupt = errors.New("corrupt record")

type encoder struct{ buf []byte }

func newEncoder(size int) *encoder {
	e := &encoder{buf: make([]byte, 0, size+16)}
	e.buf = append(e.buf, recordVersion)
	return e
}

func (e *encoder) uint(v uint64)    { e.buf = binary.AppendUvarint(e.buf, v) }
func (e *encoder) int(v int64)      { e.buf = binary.AppendVarint(e.buf, v) }
func (e *encoder) bytes(b []byte)   { e.uint(uint64(len(b))); e.buf = append(e.buf, b...) }
func (e *encoder) string(s string)  { e.uint(uint64(len(s))); e.buf = append(e.buf, s...) }
func (e *encoder) time(t time.Time) { e.int(timeToMillis(t)) }
func (e *encoder) bool(b bool)      { e.buf = append(e.buf, boolByte(b)) }
func (e *encoder) finish() []byte   { return e.buf }
func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

type decoder struct {
	buf []byte
	err error
}

func newDecoder(b []byte) *decoder {
	d := &decoder{buf: b}
	if len(b) == 0 || b[0] != recordVersion {
		d.err = fmt.Errorf("%w: unknown record version", errCorrupt)
		return d
	}
	d.buf = b[1:]
	return d
}

func (d *decoder) uint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.err = fmt.Errorf("%w: bad uvarint", errCorrupt)
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) int() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.buf)
	if n <= 0 {
		d.err = fmt.Errorf("%w: bad varint", errCorrupt)
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

// bytes returns a copy, so decoded records never alias Badger's value buffers.
func (d *decoder) bytes() []byte {
	n := d.uint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.buf)) {
		d.err = fmt.Errorf("%w: length %d beyond record end", errCorrupt, n)
		return nil
	}
	out := make([]byte, n)
	copy(out, d.buf[:n])
	d.buf = d.buf[n:]
	return out
}

func (d *decoder) string() string { return string(d.bytes()) }

func (d *decoder) time() time.Time { return millisToTime(d.int()) }

func (d *decoder) bool() bool {
	if d.err != nil {
		return false
	}
	if len(d.buf) == 0 {
		d.err = fmt.Errorf("%w: truncated", errCorrupt)
		return false
	}
	b := d.buf[0]
	d.buf = d.buf[1:]
	return b != 0
}

// timeToMillis maps the zero time to 0 so that "no time" survives a round trip.
func timeToMillis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func millisToTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
