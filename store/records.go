package store

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Key layout. Every key starts with one kind byte; per-sink keys continue with the sink name
// length-prefixed, so any sink name is safe and one sink's prefix never covers another's.
//
//	m<sink>            sinkMeta: head and tail cursors, counters
//	q<sink><seq:8 BE>  outboxItem: a stamped object waiting for upload (FIFO by seq)
//	s<sink><base id>   indicatorState: what was queued and sent for one generation-0 id
//	b<sink><base id>   the unstamped body of the object's last upsert (for its revocation)
//	e<sink><event>     event id list: the non-shared base ids the event yielded last
//	h<sink><event>     eventDigest: the digest of the event's last applied desired set and the
//	                   earliest valid_until of its objects (the unchanged-event fast path)
//	r<sink><base id>   reference count: live relationships naming a shared context object, or
//	                   the events desiring a joint relationship (refs.go)
//	o<sink><event>\x00<relationship base id>
//	                   owner mark: the event desires the joint relationship (refs.go)
//	d<sink><seq:8 BE>  deadLetter: an item Sentinel rejected, with its message
//	w<name>            watermark (sink-independent); also grace marks and event stamps (stamps.go)
//	p<event>           a notice received but not applied before shutdown (pending.go)
//	x<scope><key>      a record a sink keeps for itself (sinkrecords.go), opaque to the store
//	i                  the store's identity (a UUID written at creation; see integrity.go)
const (
	kindMeta      = 'm'
	kindOutbox    = 'q'
	kindState     = 's'
	kindBody      = 'b'
	kindEvent     = 'e'
	kindDead      = 'd'
	kindWatermark = 'w'
	kindDigest    = 'h'
	kindIdentity  = 'i'
	// kindSinkRecord = 'x' is declared in sinkrecords.go.
)

func sinkPrefix(kind byte, sink string) []byte {
	k := make([]byte, 0, 1+binary.MaxVarintLen64+len(sink)+48)
	k = append(k, kind)
	k = binary.AppendUvarint(k, uint64(len(sink)))
	return append(k, sink...)
}

func metaKey(sink string) []byte { return sinkPrefix(kindMeta, sink) }

func seqKey(kind byte, sink string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(sinkPrefix(kind, sink), seq)
}

func stateKey(sink, baseID string) []byte { return append(sinkPrefix(kindState, sink), baseID...) }

func bodyKey(sink, baseID string) []byte { return append(sinkPrefix(kindBody, sink), baseID...) }

func eventKey(sink, event string) []byte { return append(sinkPrefix(kindEvent, sink), event...) }

func digestKey(sink, event string) []byte { return append(sinkPrefix(kindDigest, sink), event...) }

func watermarkKey(name string) []byte { return append([]byte{kindWatermark}, name...) }

// sinkFromMetaKey recovers the sink name from a meta key.
func sinkFromMetaKey(k []byte) (string, error) {
	if len(k) < 2 || k[0] != kindMeta {
		return "", fmt.Errorf("%w: not a meta key", errCorrupt)
	}
	n, w := binary.Uvarint(k[1:])
	if w <= 0 || uint64(len(k)-1-w) != n {
		return "", fmt.Errorf("%w: bad meta key", errCorrupt)
	}
	return string(k[1+w:]), nil
}

// sinkMeta is the per-sink bookkeeping record. It is rewritten in every transaction that
// changes the sink's outbox, so its counters are always consistent with the keys.
type sinkMeta struct {
	// Head is the lowest seq that may still be in the outbox; Begin seeks to it.
	Head uint64
	// Tail is the next seq to allocate.
	Tail         uint64
	Depth        int64
	Dead         int64
	Live         int64
	LastAccepted time.Time
	LastEnqueued time.Time
}

func (m *sinkMeta) encode() []byte {
	e := newEncoder(64)
	e.uint(m.Head)
	e.uint(m.Tail)
	e.int(m.Depth)
	e.int(m.Dead)
	e.int(m.Live)
	e.time(m.LastAccepted)
	e.time(m.LastEnqueued)
	return e.finish()
}

func decodeMeta(b []byte) (sinkMeta, error) {
	d := newDecoder(b)
	m := sinkMeta{
		Head: d.uint(), Tail: d.uint(),
		Depth: d.int(), Dead: d.int(), Live: d.int(),
		LastAccepted: d.time(), LastEnqueued: d.time(),
	}
	if d.err != nil {
		return sinkMeta{}, fmt.Errorf("decode sink meta: %w", d.err)
	}
	return m, nil
}

// indicatorState is what the store knows about one object (by generation-0 id) in one sink:
// the version last queued, whether Sentinel accepted it, and the body needed to revoke it.
type indicatorState struct {
	Gen        uint32
	Hash       string
	Modified   time.Time // modified of the last version queued (upsert or revocation)
	ValidUntil time.Time // valid_until of the last version queued
	// Revoked: the object has ended in Sentinel, by a queued revocation or, when the event
	// stopped yielding it after its valid_until, by expiry (nothing queued; see Apply). A
	// later return gets the next generation id either way.
	Revoked      bool
	Shared       bool
	Event        string
	SentModified time.Time // modified of the last version of this generation Sentinel accepted; zero if none
	Rejected     bool      // the last queued version was dead-lettered
	PendingSeq   uint64    // outbox seq of the queued version not yet ended; 0 if none
	// Body is the unstamped STIX body of the last upsert, needed to revoke it. It is stored
	// under its own key (b...), not in the state record, so that a reconcile reads only the
	// small records; it is nil until loaded with loadBody or set by the diff.
	Body []byte
}

func (s *indicatorState) encode() []byte {
	e := newEncoder(len(s.Hash) + len(s.Event) + 48)
	e.uint(uint64(s.Gen))
	e.string(s.Hash)
	e.time(s.Modified)
	e.time(s.ValidUntil)
	e.bool(s.Revoked)
	e.bool(s.Shared)
	e.string(s.Event)
	e.time(s.SentModified)
	e.bool(s.Rejected)
	e.uint(s.PendingSeq)
	return e.finish()
}

func decodeState(b []byte) (indicatorState, error) {
	d := newDecoder(b)
	s := indicatorState{
		Gen: uint32(d.uint()), Hash: d.string(), Modified: d.time(), ValidUntil: d.time(),
		Revoked: d.bool(), Shared: d.bool(), Event: d.string(), SentModified: d.time(),
		Rejected: d.bool(), PendingSeq: d.uint(),
	}
	if d.err != nil {
		return indicatorState{}, fmt.Errorf("decode indicator state: %w", d.err)
	}
	return s, nil
}

// outboxItem is one queued upload.
type outboxItem struct {
	ID         string // stamped id (generation applied)
	Base       string // generation-0 id, the state key
	Gen        uint32
	Revoke     bool
	Modified   time.Time
	EnqueuedAt time.Time
	Object     []byte // stamped bytes to upload
	// Refs are, for a relationship, the base and stamped id of its source and target (base,
	// stamped, base, stamped): Begin hands it out only once both were delivered. Dead
	// letters do not keep them.
	Refs []string
}

func (it *outboxItem) encodeTo(e *encoder) {
	e.string(it.ID)
	e.string(it.Base)
	e.uint(uint64(it.Gen))
	e.bool(it.Revoke)
	e.time(it.Modified)
	e.time(it.EnqueuedAt)
	e.bytes(it.Object)
}

func (it *outboxItem) decodeFrom(d *decoder) {
	it.ID = d.string()
	it.Base = d.string()
	it.Gen = uint32(d.uint())
	it.Revoke = d.bool()
	it.Modified = d.time()
	it.EnqueuedAt = d.time()
	it.Object = d.bytes()
}

func (it *outboxItem) encode() []byte {
	e := newEncoder(len(it.Object) + len(it.ID) + len(it.Base) + 32)
	it.encodeTo(e)
	if len(it.Refs) > 0 {
		e.uint(uint64(len(it.Refs)))
		for _, r := range it.Refs {
			e.string(r)
		}
	}
	return e.finish()
}

func decodeItem(b []byte) (outboxItem, error) {
	d := newDecoder(b)
	var it outboxItem
	it.decodeFrom(d)
	if d.err == nil && len(d.buf) > 0 { // items written before refs existed end here
		n := d.uint()
		if d.err == nil && n > uint64(len(d.buf)) {
			d.err = fmt.Errorf("%w: ref count %d beyond record size", errCorrupt, n)
		}
		for range n {
			if d.err != nil {
				break
			}
			it.Refs = append(it.Refs, d.string())
		}
	}
	if d.err != nil {
		return outboxItem{}, fmt.Errorf("decode outbox item: %w", d.err)
	}
	return it, nil
}

type deadRecord struct {
	Item       outboxItem
	Message    string
	RejectedAt time.Time
}

func (r *deadRecord) encode() []byte {
	e := newEncoder(len(r.Item.Object) + len(r.Message) + 64)
	r.Item.encodeTo(e)
	e.string(r.Message)
	e.time(r.RejectedAt)
	return e.finish()
}

func decodeDead(b []byte) (deadRecord, error) {
	d := newDecoder(b)
	var r deadRecord
	r.Item.decodeFrom(d)
	r.Message = d.string()
	r.RejectedAt = d.time()
	if d.err != nil {
		return deadRecord{}, fmt.Errorf("decode dead letter: %w", d.err)
	}
	return r, nil
}

func encodeIDList(ids []string) []byte {
	size := 0
	for _, id := range ids {
		size += len(id) + 2
	}
	e := newEncoder(size + 8)
	e.uint(uint64(len(ids)))
	for _, id := range ids {
		e.string(id)
	}
	return e.finish()
}

func decodeIDList(b []byte) ([]string, error) {
	d := newDecoder(b)
	n := d.uint()
	if d.err == nil && n > uint64(len(b)) {
		d.err = fmt.Errorf("%w: id count %d beyond record size", errCorrupt, n)
	}
	if d.err != nil {
		return nil, fmt.Errorf("decode event id list: %w", d.err)
	}
	ids := make([]string, 0, n)
	for range n {
		ids = append(ids, d.string())
	}
	if d.err != nil {
		return nil, fmt.Errorf("decode event id list: %w", d.err)
	}
	return ids, nil
}

// eventDigest records that an event's objects were, after its last Apply, exactly the desired
// set with this digest, all live and owned by the event, and that none of them has a
// valid_until earlier than MinValidUntil (zero: none expires).
type eventDigest struct {
	Sum           [32]byte
	MinValidUntil time.Time
}

func (d *eventDigest) encode() []byte {
	e := newEncoder(48)
	e.bytes(d.Sum[:])
	e.time(d.MinValidUntil)
	return e.finish()
}

func decodeDigest(b []byte) (eventDigest, error) {
	d := newDecoder(b)
	var out eventDigest
	sum := d.bytes()
	out.MinValidUntil = d.time()
	if d.err == nil && len(sum) != len(out.Sum) {
		d.err = fmt.Errorf("%w: digest of %d bytes", errCorrupt, len(sum))
	}
	if d.err != nil {
		return eventDigest{}, fmt.Errorf("decode event digest: %w", d.err)
	}
	copy(out.Sum[:], sum)
	return out, nil
}
