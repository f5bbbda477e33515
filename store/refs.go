package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/mispsentinel/listener/stix"
)

// Reference counting of shared context objects (attack patterns, threat actors).
//
// A context object is Shared: many events desire it and none owns it. It stays live in a sink
// while at least one live relationship of that sink targets it. The store keeps, per sink and
// target, the number of live relationships that target it (r<sink><target base id>), and
// changes it in the same chunk (one Badger transaction) as the relationship state whose live
// status changes: a relationship going live adds one, its revocation takes one. The count is
// therefore exact across crashes (a chunk commits whole or not at all, and applying the event
// again finds the relationship's state already changed and does not count it twice), across
// re-publications (an unchanged relationship changes nothing), deletions and reconciles (both
// end in the same diff). When a revocation takes the count to zero, the target's revocation
// is queued in the same chunk, after the relationship's.
//
// Relationships between two context objects (a threat actor uses an attack pattern) are
// Shared too: every event holding both clusters yields the same one. Such a joint
// relationship stays live while at least one event of the sink desires it: each desiring
// event has an owner mark (o<sink><event>\x00<relationship base id>), and the relationship's
// own count (r<sink><relationship base id>) is the number of marks, changed in the same chunk
// as its mark. When the last mark goes, the relationship's revocation is queued in that chunk.
// A live joint relationship counts as a reference of its source as well as of its target,
// so neither end is revoked while it is live.
//
// Delivery order: a relationship version is handed out by Begin only when the versions of its
// source and target it names were accepted by the sink or come earlier in the same batch
// (refsDelivered), so no batch ever references an object the sink was not sent.

const (
	kindRefCount = 'r'
	kindJoint    = 'o'
)

// jointPrefix is the prefix of event's owner marks in sink.
func jointPrefix(sink, event string) []byte {
	return append(append(sinkPrefix(kindJoint, sink), event...), 0)
}

func jointKey(sink, event, id string) []byte { return append(jointPrefix(sink, event), id...) }

// isJoint reports whether o is a relationship shared by the events that desire it.
func isJoint(o *stix.Object) bool { return o.Shared && o.TargetRef != "" }

// readJoint returns the joint relationships event desired when last applied to sink (the
// base ids of its owner marks).
func readJoint(txn *badger.Txn, sink, event string) (map[string]bool, error) {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = jointPrefix(sink, event)
	opts.PrefetchValues = false
	it := txn.NewIterator(opts)
	defer it.Close()
	var marks map[string]bool
	for it.Rewind(); it.Valid(); it.Next() {
		if marks == nil {
			marks = map[string]bool{}
		}
		marks[string(it.Item().Key()[len(opts.Prefix):])] = true
	}
	return marks, nil
}

func refCountKey(sink, target string) []byte {
	return append(sinkPrefix(kindRefCount, sink), target...)
}

// readRefCount returns the number of live relationships of sink targeting target.
func readRefCount(txn *badger.Txn, sink, target string) (int64, error) {
	item, err := txn.Get(refCountKey(sink, target))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read references of %s: %w", target, err)
	}
	var n int64
	err = item.Value(func(v []byte) error {
		d := newDecoder(v)
		n = d.int()
		return d.err
	})
	if err != nil {
		return 0, fmt.Errorf("read references of %s: %w", target, err)
	}
	return n, nil
}

// addRef changes target's reference count by delta and returns the new count. The caller has
// reserved room for the write in the chunk of the relationship's own change.
func addRef(w *chunkWriter, target string, delta int64) (int64, error) {
	n, err := readRefCount(w.txn, w.sink, target)
	if err != nil {
		return 0, err
	}
	n += delta
	if n < 0 {
		return 0, fmt.Errorf("%w: reference count of %s below zero", errCorrupt, target)
	}
	if n == 0 {
		return 0, w.delete(refCountKey(w.sink, target))
	}
	e := newEncoder(12)
	e.int(n)
	return n, w.set(refCountKey(w.sink, target), e.finish())
}

// References returns how many live relationships of sink target the object with the
// generation-0 id id.
func (s *Store) References(sink, id string) (int64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	var n int64
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		n, err = readRefCount(txn, sink, id)
		return err
	})
	return n, err
}

// relationshipReserve is the room a relationship's change needs in one chunk: its own
// upsert or revocation (outbox item, state, body), its target's count and, for a revocation,
// the target's revocation; a joint relationship's, the same for its source, its owner mark
// and its own count.
const (
	relationshipReserveOps   = 12
	relationshipReserveBytes = 64 << 10
	jointReserveOps          = 2*relationshipReserveOps + 2
	jointReserveBytes        = 2 * relationshipReserveBytes
)

// markJoint records that event desires the joint relationship id (it did not before) and
// counts the mark. The caller has reserved room for both writes.
func markJoint(w *chunkWriter, event, id string) error {
	if err := w.set(jointKey(w.sink, event, id), nil); err != nil {
		return err
	}
	_, err := addRef(w, id, 1)
	return err
}

// writeJointRemovals drops event's owner mark of every joint relationship it desired before
// and no longer does, and revokes each one whose last mark that was (with its ends, when
// that was their last reference). It reports whether it queued anything.
func (s *Store) writeJointRemovals(w *chunkWriter, rt *sinkRuntime, event string, plan *applyPlan, now time.Time, stats *DiffStats) (queued bool, err error) {
	for _, id := range plan.jointGone {
		if err := w.reserve(jointReserveOps, jointReserveBytes); err != nil {
			return false, err
		}
		if err := w.delete(jointKey(w.sink, event, id)); err != nil {
			return false, err
		}
		n, err := addRef(w, id, -1)
		if err != nil || n > 0 {
			if err != nil {
				return false, err
			}
			continue
		}
		st, found, err := readState(w.txn, w.sink, id)
		if err != nil {
			return false, err
		}
		if !found || st.Revoked {
			continue
		}
		st.Revoked = true
		released, err := s.revokeRelationship(w, rt, id, &st, now, stats)
		if err != nil {
			return false, err
		}
		plan.meta.Live--
		queued = queued || released
	}
	return queued, nil
}

// stampRefs resolves a relationship's generation-0 refs to the generations the sink holds (or
// is about to hold): the state each ref has in the writer's transaction.
func stampRefs(w *chunkWriter, body []byte, id string, modified time.Time, revoke bool) ([]byte, []string, error) {
	var refs []string
	object, err := stix.StampRefs(body, id, modified, revoke, func(ref string) (string, error) {
		st, found, err := readState(w.txn, w.sink, ref)
		if err != nil {
			return "", err
		}
		stamped := ref
		if found {
			stamped = stix.GenerationID(ref, st.Gen)
		}
		refs = append(refs, ref, stamped)
		return stamped, nil
	})
	return object, refs, err
}

// refsDelivered reports whether every object a relationship item names (pairs of base and
// stamped id) was accepted by the sink in that generation, or is taken earlier in the batch
// being built. A ref whose generation has moved on (the named one was revoked since) does not
// hold the item back.
func refsDelivered(txn *badger.Txn, sink string, refs []string, taken map[string]bool) (bool, error) {
	for i := 0; i+1 < len(refs); i += 2 {
		base, stamped := refs[i], refs[i+1]
		if taken[stamped] {
			continue
		}
		st, found, err := readState(txn, sink, base)
		if err != nil {
			return false, err
		}
		if !found || stix.GenerationID(base, st.Gen) != stamped {
			continue
		}
		if st.SentModified.IsZero() {
			return false, nil
		}
	}
	return true, nil
}

// releaseTarget takes one reference from target after a relationship of event stopped being
// live, and queues the target's revocation when it was the last one and the target is a live
// shared object.
func (s *Store) releaseTarget(w *chunkWriter, rt *sinkRuntime, target string, now time.Time, stats *DiffStats) (queued bool, err error) {
	n, err := addRef(w, target, -1)
	if err != nil || n > 0 {
		return false, err
	}
	st, found, err := readState(w.txn, w.sink, target)
	if err != nil || !found || st.Revoked || !st.Shared {
		return false, err
	}
	st.Revoked = true
	w.meta.Live--
	stats.Revoked++
	withdrawn, err := withdrawUndelivered(w, rt, target, &st)
	if err != nil || withdrawn {
		return false, err
	}
	if err := s.enqueue(w, rt, target, &st, now); err != nil {
		return false, err
	}
	return true, nil
}

// checkRelationships rejects a desired set in which a relationship names an object that is
// not before it in the set: the store could not guarantee its target is live.
func checkRelationships(desired []stix.Object) error {
	var before map[string]bool
	for i, o := range desired {
		if o.Type != "relationship" && !stix.IsRelationship(o.ID) {
			if before != nil {
				before[o.ID] = true
			}
			continue
		}
		if before == nil {
			before = make(map[string]bool, len(desired))
			for _, p := range desired[:i] {
				before[p.ID] = true
			}
		}
		if o.SourceRef == "" || o.TargetRef == "" {
			return fmt.Errorf("relationship %s: source or target missing", o.ID)
		}
		if !before[o.SourceRef] || !before[o.TargetRef] {
			return fmt.Errorf("relationship %s: %s -> %s names an object not desired before it", o.ID, o.SourceRef, o.TargetRef)
		}
		before[o.ID] = true
	}
	return nil
}

// revokeRelationship queues the revocation of a relationship the event no longer yields,
// takes its reference from its target and revokes the target when that was the last one. It
// always queues (a relationship has no valid_until to expire by).
func (s *Store) revokeRelationship(w *chunkWriter, rt *sinkRuntime, id string, st *indicatorState, now time.Time, stats *DiffStats) (bool, error) {
	if st.Body == nil {
		if err := loadBody(w.txn, w.sink, id, st); err != nil {
			return false, err
		}
	}
	source, target, err := stix.RelationshipRefs(st.Body)
	if err != nil {
		return false, fmt.Errorf("revoke %s: %w", id, err)
	}
	stats.Revoked++
	withdrawn, err := withdrawUndelivered(w, rt, id, st)
	if err != nil {
		return false, err
	}
	if !withdrawn {
		if err := s.enqueue(w, rt, id, st, now); err != nil {
			return false, err
		}
	}
	if _, err := s.releaseTarget(w, rt, target, now, stats); err != nil {
		return false, err
	}
	if st.Shared { // a joint relationship references its source too
		if _, err := s.releaseTarget(w, rt, source, now, stats); err != nil {
			return false, err
		}
	}
	return !withdrawn, nil
}

// withdrawUndelivered ends an object being revoked (st.Revoked set) whose only version is
// still waiting in the outbox, never handed out: the sink never had it, so its upsert is
// dropped and no revocation is queued. It writes the state and reports whether it did.
//
// This keeps the delivery rule simple: a relationship revocation is queued only after its
// upsert was handed out, which Begin did only once the objects it names were delivered, so
// the revocation names delivered objects too (their generations cannot change while the
// relationship is live).
func withdrawUndelivered(w *chunkWriter, rt *sinkRuntime, base string, st *indicatorState) (bool, error) {
	if !st.SentModified.IsZero() || st.PendingSeq == 0 || rt.inflightIDs[stix.GenerationID(base, st.Gen)] {
		return false, nil
	}
	pending, found, err := readItem(w.txn, w.sink, st.PendingSeq)
	if err != nil || !found || pending.ID != stix.GenerationID(base, st.Gen) || pending.Revoke {
		return false, err
	}
	if err := w.delete(seqKey(kindOutbox, w.sink, st.PendingSeq)); err != nil {
		return false, err
	}
	w.meta.Depth--
	st.PendingSeq = 0
	return true, w.set(stateKey(w.sink, base), st.encode())
}
