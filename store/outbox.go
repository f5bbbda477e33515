package store

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/mispsentinel/listener/stix"
)

// MaxBatch is the largest batch Begin hands out; larger requests are capped.
const MaxBatch = 1000

// Batch is a run of outbox items handed out by Begin, in FIFO order. Nothing leaves the
// outbox until End commits the batch's outcome.
type Batch struct {
	Sink  string
	Items []Item
	// Held is the number of relationships Begin left queued because an object they name has
	// not reached the sink (not yet sent, or dead-lettered) and that it had not held since
	// they were last handed out: each hold is counted once, however many batches pass it.
	Held int

	items []outboxItem
}

// Item is one queued upload.
type Item struct {
	Seq uint64
	// ID is the stamped STIX id (generation applied).
	ID string
	// Revoke is true for a revocation.
	Revoke bool
	// Object is the stamped STIX JSON to upload.
	Object     []byte
	EnqueuedAt time.Time
}

// Outcome is Sentinel's verdict on a batch, as indices into Batch.Items. Indices in none of
// the lists are treated as Retry.
type Outcome struct {
	Accepted []int
	Rejected []Rejection
	Retry    []int
}

// Rejection is one item Sentinel refused, with its message.
type Rejection struct {
	Index   int
	Message string
}

// DeadLetter is an item Sentinel rejected.
type DeadLetter struct {
	Seq        uint64
	ID         string
	Revoke     bool
	Object     []byte
	Message    string
	EnqueuedAt time.Time
	RejectedAt time.Time
}

// Begin hands out up to max (capped at MaxBatch) items from the head of sink's outbox, in
// FIFO order, skipping items already in flight. Several batches of a sink may be in flight
// at once, but never two versions of one id: an item whose id is in flight (in an earlier
// batch or earlier in this one) is left queued, with every later item of that id, until
// the earlier version is ended, so versions of an id reach the sink one at a time and in
// order. The batch is empty when nothing can be handed out.
func (s *Store) Begin(sink string, max int) (*Batch, error) {
	if max <= 0 {
		return nil, fmt.Errorf("begin batch for sink %s: max %d is not positive", sink, max)
	}
	max = min(max, MaxBatch)
	rt, err := s.lockSink(sink)
	if err != nil {
		return nil, fmt.Errorf("begin batch for sink %s: %w", sink, err)
	}
	defer s.unlockSink(rt)
	b := &Batch{Sink: sink}
	blocked := make(map[string]bool) // ids seen in this scan (taken or held back)
	taken := make(map[string]bool)   // ids handed out in this batch
	err = s.db.View(func(txn *badger.Txn) error {
		meta, err := readMeta(txn, sink)
		if err != nil {
			return err
		}
		opts := badger.DefaultIteratorOptions
		opts.Prefix = sinkPrefix(kindOutbox, sink)
		opts.PrefetchSize = min(max, 100)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(seqKey(kindOutbox, sink, meta.Head)); it.Valid() && len(b.items) < max; it.Next() {
			seq, err := seqFromKey(it.Item().Key(), len(opts.Prefix))
			if err != nil {
				return err
			}
			if rt.inflight[seq] {
				continue
			}
			var oi outboxItem
			err = it.Item().Value(func(v []byte) error {
				var derr error
				oi, derr = decodeItem(v)
				return derr
			})
			if err != nil {
				return fmt.Errorf("read outbox: %w", err)
			}
			if rt.inflightIDs[oi.ID] || blocked[oi.ID] {
				blocked[oi.ID] = true
				continue
			}
			if len(oi.Refs) > 0 {
				// A relationship waits until the objects it names reached the sink.
				ok, err := refsDelivered(txn, sink, oi.Refs, taken)
				if err != nil {
					return err
				}
				if !ok {
					blocked[oi.ID] = true
					if !rt.held[oi.ID] {
						rt.held[oi.ID] = true
						b.Held++
					}
					continue
				}
			}
			blocked[oi.ID] = true
			taken[oi.ID] = true
			b.items = append(b.items, oi)
			b.Items = append(b.Items, Item{Seq: seq, ID: oi.ID, Revoke: oi.Revoke, Object: oi.Object, EnqueuedAt: oi.EnqueuedAt})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("begin batch for sink %s: %w", sink, err)
	}
	for _, it := range b.Items {
		rt.inflight[it.Seq] = true
		rt.inflightIDs[it.ID] = true
		delete(rt.held, it.ID)
	}
	return b, nil
}

func seqFromKey(k []byte, prefixLen int) (uint64, error) {
	if len(k) != prefixLen+8 {
		return 0, fmt.Errorf("%w: outbox key of length %d", errCorrupt, len(k))
	}
	var seq uint64
	for _, c := range k[prefixLen:] {
		seq = seq<<8 | uint64(c)
	}
	return seq, nil
}

// End commits a batch's outcome: accepted items leave the outbox and their state records
// the version as sent; rejected items move to the dead letters with Sentinel's message and
// now, and their content is not queued again until it changes (or Requeue is called); retry
// items stay at the head of the outbox in their order, except one that a later item for the
// same id in the batch supersedes, which is dropped. End always releases the batch, also
// when it returns an error; items whose outcome was not committed are handed out again.
func (s *Store) End(b *Batch, o Outcome, now time.Time) error {
	if b == nil {
		return errors.New("end batch: nil batch")
	}
	if len(b.Items) == 0 {
		return nil
	}
	rt, err := s.lockSink(b.Sink)
	if err != nil {
		return fmt.Errorf("end batch for sink %s: %w", b.Sink, err)
	}
	defer s.unlockSink(rt)
	for _, it := range b.Items {
		if !rt.inflight[it.Seq] {
			return fmt.Errorf("end batch for sink %s: item %d is not in flight", b.Sink, it.Seq)
		}
	}
	defer func() { // the batch is released whatever happens
		for _, it := range b.Items {
			delete(rt.inflight, it.Seq)
			delete(rt.inflightIDs, it.ID)
		}
	}()
	verdict, err := checkOutcome(o, len(b.Items))
	if err != nil {
		return fmt.Errorf("end batch for sink %s: %w", b.Sink, err)
	}
	if err := s.end(b, verdict, o, now); err != nil {
		return fmt.Errorf("end batch for sink %s: %w", b.Sink, err)
	}
	return nil
}

type verdictKind uint8

const (
	verdictRetry verdictKind = iota
	verdictAccepted
	verdictRejected
)

func checkOutcome(o Outcome, n int) ([]verdictKind, error) {
	verdict := make([]verdictKind, n)
	seen := make([]bool, n)
	mark := func(i int, v verdictKind) error {
		if i < 0 || i >= n {
			return fmt.Errorf("outcome index %d out of range [0,%d)", i, n)
		}
		if seen[i] {
			return fmt.Errorf("outcome index %d given twice", i)
		}
		seen[i] = true
		verdict[i] = v
		return nil
	}
	for _, i := range o.Accepted {
		if err := mark(i, verdictAccepted); err != nil {
			return nil, err
		}
	}
	for _, r := range o.Rejected {
		if err := mark(r.Index, verdictRejected); err != nil {
			return nil, err
		}
	}
	for _, i := range o.Retry {
		if err := mark(i, verdictRetry); err != nil {
			return nil, err
		}
	}
	return verdict, nil
}

func (s *Store) end(b *Batch, verdict []verdictKind, o Outcome, now time.Time) error {
	messages := make(map[int]string, len(o.Rejected))
	for _, r := range o.Rejected {
		messages[r.Index] = r.Message
	}
	var meta sinkMeta
	if err := s.db.View(func(txn *badger.Txn) error {
		var err error
		meta, err = readMeta(txn, b.Sink)
		return err
	}); err != nil {
		return err
	}
	// A retried item that a later item for the same id in this batch supersedes must not be
	// uploaded after it: drop it, as coalescing would have.
	decided := make(map[string]uint64)
	for i, v := range verdict {
		if v != verdictRetry {
			decided[b.Items[i].ID] = max(decided[b.Items[i].ID], b.Items[i].Seq)
		}
	}
	w := s.newChunkWriter(b.Sink, &meta)
	defer w.abort() // discards the uncommitted chunk on an early return; a no-op after finish
	for i, v := range verdict {
		seq := b.Items[i].Seq
		switch {
		case v == verdictRetry && decided[b.Items[i].ID] > seq:
			if err := w.reserve(1, 64); err != nil {
				return err
			}
			if err := w.delete(seqKey(kindOutbox, b.Sink, seq)); err != nil {
				return err
			}
			meta.Depth--
		case v == verdictRetry:
		default:
			if err := settleItem(w, b.Sink, seq, &b.items[i], v, messages[i], now); err != nil {
				return err
			}
		}
	}
	// Other batches may be in flight and items of ids in flight are held back, so the new
	// head is the first item still queued, not the end of this batch.
	head, err := firstQueued(w.txn, b.Sink, meta.Head, meta.Tail)
	if err != nil {
		return err
	}
	meta.Head = head
	return w.finish()
}

// firstQueued returns the seq of the first outbox item at or after from, as txn sees it (its
// own deletions included), or tail when none is left.
func firstQueued(txn *badger.Txn, sink string, from, tail uint64) (uint64, error) {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = sinkPrefix(kindOutbox, sink)
	opts.PrefetchValues = false
	it := txn.NewIterator(opts)
	defer it.Close()
	it.Seek(seqKey(kindOutbox, sink, from))
	if !it.Valid() {
		return max(from, tail), nil
	}
	return seqFromKey(it.Item().Key(), len(opts.Prefix))
}

// settleItem takes one accepted or rejected item out of the outbox: its state records the
// version as sent (or as rejected) and a rejected item becomes a dead letter.
func settleItem(w *chunkWriter, sink string, seq uint64, oi *outboxItem, v verdictKind, message string, now time.Time) error {
	var dead []byte
	if v == verdictRejected {
		dead = (&deadRecord{Item: *oi, Message: message, RejectedAt: now.UTC()}).encode()
	}
	if err := w.reserve(4, len(dead)+len(oi.Object)+256); err != nil {
		return err
	}
	st, found, err := readState(w.txn, sink, oi.Base)
	if err != nil {
		return err
	}
	if found {
		if st.PendingSeq == seq {
			st.PendingSeq = 0
		}
		current := st.Gen == oi.Gen && st.Modified.Equal(oi.Modified)
		switch {
		case current && v == verdictAccepted:
			st.SentModified = oi.Modified
			st.Rejected = false
		case current && v == verdictRejected:
			st.Rejected = true
		case v == verdictAccepted && st.Gen == oi.Gen && oi.Modified.After(st.SentModified):
			// An earlier version of the generation: the sink has the object now.
			st.SentModified = oi.Modified
		}
		if err := w.set(stateKey(sink, oi.Base), st.encode()); err != nil {
			return err
		}
	}
	if err := w.delete(seqKey(kindOutbox, sink, seq)); err != nil {
		return err
	}
	w.meta.Depth--
	if v == verdictAccepted {
		w.meta.LastAccepted = now.UTC()
		return nil
	}
	if err := w.set(seqKey(kindDead, sink, seq), dead); err != nil {
		return err
	}
	w.meta.Dead++
	return nil
}

// DeadLetters lists up to limit (all when limit <= 0) of sink's dead letters, oldest first.
func (s *Store) DeadLetters(sink string, limit int) ([]DeadLetter, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var out []DeadLetter
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = sinkPrefix(kindDead, sink)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid() && (limit <= 0 || len(out) < limit); it.Next() {
			seq, err := seqFromKey(it.Item().Key(), len(opts.Prefix))
			if err != nil {
				return err
			}
			var r deadRecord
			err = it.Item().Value(func(v []byte) error {
				var derr error
				r, derr = decodeDead(v)
				return derr
			})
			if err != nil {
				return err
			}
			out = append(out, DeadLetter{
				Seq: seq, ID: r.Item.ID, Revoke: r.Item.Revoke, Object: r.Item.Object,
				Message: r.Message, EnqueuedAt: r.Item.EnqueuedAt, RejectedAt: r.RejectedAt,
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list dead letters of sink %s: %w", sink, err)
	}
	return out, nil
}

// Requeue moves dead letters (the given seqs, or all when seqs is nil) back to the tail of
// the outbox with a fresh modified. A dead letter whose object has since been superseded (a
// newer version was queued) is dropped instead, since sending it would roll Sentinel back.
// It returns the number of items queued again; unknown seqs are ignored.
func (s *Store) Requeue(sink string, seqs []uint64, now time.Time) (int, error) {
	rt, err := s.lockSink(sink)
	if err != nil {
		return 0, fmt.Errorf("requeue dead letters of sink %s: %w", sink, err)
	}
	defer s.unlockSink(rt)
	n, err := s.requeue(rt, sink, seqs, now)
	if n > 0 {
		rt.signal()
	}
	if err != nil {
		return n, fmt.Errorf("requeue dead letters of sink %s: %w", sink, err)
	}
	return n, nil
}

func (s *Store) requeue(rt *sinkRuntime, sink string, seqs []uint64, now time.Time) (int, error) {
	var (
		meta    sinkMeta
		targets []uint64
	)
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		if meta, err = readMeta(txn, sink); err != nil {
			return err
		}
		if seqs != nil {
			targets = slices.Clone(seqs)
			return nil
		}
		opts := badger.DefaultIteratorOptions
		opts.Prefix = sinkPrefix(kindDead, sink)
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			seq, err := seqFromKey(it.Item().Key(), len(opts.Prefix))
			if err != nil {
				return err
			}
			targets = append(targets, seq)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	w := s.newChunkWriter(sink, &meta)
	defer w.abort() // discards the uncommitted chunk on an early return; a no-op after finish
	requeued := 0
	for _, seq := range targets {
		if err := w.reserve(4, 8<<10); err != nil {
			return 0, err
		}
		rec, found, err := readDead(w.txn, sink, seq)
		if err != nil {
			return 0, err
		}
		if !found {
			continue
		}
		if err := w.delete(seqKey(kindDead, sink, seq)); err != nil {
			return 0, err
		}
		meta.Dead--
		st, found, err := readState(w.txn, sink, rec.Item.Base)
		if err != nil {
			return 0, err
		}
		switch {
		case !found:
			continue
		case rec.Item.Gen == st.Gen && st.Modified.Equal(rec.Item.Modified) && st.Revoked == rec.Item.Revoke:
			// Still the latest version of the object.
			err = s.enqueue(w, rt, rec.Item.Base, &st, now)
		case rec.Item.Gen < st.Gen && rec.Item.Revoke:
			// The revocation of an earlier generation is that id's last version for good.
			err = s.requeueOldRevocation(w, rec.Item, now)
		default:
			continue // superseded
		}
		if err != nil {
			return 0, err
		}
		requeued++
	}
	if err := w.finish(); err != nil {
		return 0, err
	}
	return requeued, nil
}

// requeueOldRevocation queues a revocation of an earlier generation again. Nothing else is
// ever queued for that id, so its own modified is the one to exceed.
func (s *Store) requeueOldRevocation(w *chunkWriter, it outboxItem, now time.Time) error {
	it.Modified = nextModified(it.Modified, now)
	it.EnqueuedAt = now.UTC()
	object, err := stix.Stamp(it.Object, it.ID, it.Modified, true)
	if err != nil {
		return err
	}
	it.Object = object
	seq := w.meta.Tail
	w.meta.Tail++
	w.meta.Depth++
	w.meta.LastEnqueued = now.UTC()
	return w.set(seqKey(kindOutbox, w.sink, seq), it.encode())
}

func readDead(txn *badger.Txn, sink string, seq uint64) (deadRecord, bool, error) {
	return readRecord(txn, seqKey(kindDead, sink, seq), fmt.Sprintf("dead letter %d", seq), decodeDead)
}

// AcceptAll is the outcome of a batch the sink accepted whole.
func (b *Batch) AcceptAll() Outcome {
	o := Outcome{Accepted: make([]int, len(b.Items))}
	for i := range o.Accepted {
		o.Accepted[i] = i
	}
	return o
}

// KeepAll is the outcome that hands a batch back untouched: every item stays queued, in
// order, to be handed out again.
func (b *Batch) KeepAll() Outcome {
	o := Outcome{Retry: make([]int, len(b.Items))}
	for i := range o.Retry {
		o.Retry[i] = i
	}
	return o
}

// Reject returns o with item index moved to the rejected items, with message. An index that
// o names nowhere (outside the batch) or already rejected leaves o unchanged.
func (o Outcome) Reject(index int, message string) Outcome {
	for _, r := range o.Rejected {
		if r.Index == index {
			return o
		}
	}
	drop := func(list []int) ([]int, bool) {
		for k, i := range list {
			if i == index {
				return append(slices.Clone(list[:k]), list[k+1:]...), true
			}
		}
		return list, false
	}
	var found bool
	if o.Accepted, found = drop(o.Accepted); !found {
		if o.Retry, found = drop(o.Retry); !found {
			return o
		}
	}
	o.Rejected = append(slices.Clone(o.Rejected), Rejection{Index: index, Message: message})
	slices.SortFunc(o.Rejected, func(a, b Rejection) int { return a.Index - b.Index })
	return o
}
