package store

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/mispsentinel/listener/stix"
)

// DiffStats counts what one Apply or RemoveEvent decided.
type DiffStats struct {
	// New objects had no state, or had been revoked and come back under a new generation id.
	New int
	// Changed objects have a new content hash.
	Changed int
	// Unchanged objects queued nothing.
	Unchanged int
	// Refreshed objects are unchanged but were re-queued with a later valid_until because the
	// one Sentinel holds falls inside the refresh window.
	Refreshed int
	// Revoked objects the event no longer yields; a revocation was queued for each.
	Revoked int
	// Expired objects the event no longer yields whose valid_until had already passed:
	// Sentinel no longer matches them, so nothing was queued (see Apply).
	Expired int
}

// Enqueued is the number of outbox items the call queued.
func (d DiffStats) Enqueued() int { return d.New + d.Changed + d.Refreshed + d.Revoked }

// Apply makes the sink's queued state for one MISP event equal to desired: it queues an
// upsert for every object that is new or whose Hash changed, a revocation (revoked: true, new
// modified) for every object the event yielded before and no longer does (Shared objects are
// not revoked by it: a context object goes when no live relationship names it, a joint
// relationship when no event desires it any more; see refs.go), a refresh upsert for an unchanged object whose valid_until in Sentinel is
// inside the refresh window and which now has a later one, or which now has an earlier one
// (see needsRefresh), and nothing for the rest.
//
// Expired, not revoked: an object the event no longer yields whose last queued valid_until is
// not after now is already expired in Sentinel (for example a decaying indicator whose
// valid_until was the moment its MISP decay score crossed the sink's min_score). A revocation
// would only upload it once more, so none is queued: the object is recorded as ended exactly as
// a revoked one is (not live, its id never reused), and counted in DiffStats.Expired. Every
// not-exported object is thus either revoked or expired in Sentinel.
//
// A revoked id is never reused: an object that comes back after its revocation gets the next
// generation id (stix.GenerationID). Every version queued for an id has a strictly later
// modified than the one before: max(now, previous + 1 ms), in milliseconds.
//
// Atomicity: the call holds the sink's lock, so no other call on the sink observes a partial
// result. It commits as one Badger transaction when it fits (about 1 MB of writes, a few
// hundred typical indicators). A larger diff commits in chunks; the first chunk records the
// event's id list as the union of the old and new lists, so that after a crash between chunks
// every object that may be live in Sentinel is still attributed to the event, and applying the
// same event again (as the reconciler does after any restart) completes the change without
// uploading what was already queued. Apply returns only after everything is committed.
func (s *Store) Apply(sink, eventUUID string, desired []stix.Object, now time.Time) (DiffStats, error) {
	return s.applyDesired("apply", sink, eventUUID, desired, now, true)
}

// ApplyAged is Apply for an event that has aged out of the search's time window (a
// publish_timestamp or other time bound in misp.event_filters) but still belongs in the sink:
// new, changed and removed objects are queued as Apply queues them, but an unchanged object is
// never refreshed. Its indicators live until the valid_until Sentinel holds, as misp2sentinel
// left them; a time window limits what is fetched, it never decides what is exported.
func (s *Store) ApplyAged(sink, eventUUID string, desired []stix.Object, now time.Time) (DiffStats, error) {
	return s.applyDesired("apply aged", sink, eventUUID, desired, now, false)
}

// applyDesired checks desired and the free space, then applies (what names the call in errors).
func (s *Store) applyDesired(what, sink, eventUUID string, desired []stix.Object, now time.Time, refresh bool) (DiffStats, error) {
	if eventUUID == "" {
		return DiffStats{}, fmt.Errorf("%s: empty event uuid", what)
	}
	objects, err := checkDesired(desired)
	if err == nil {
		err = s.space.checkIntake()
	}
	if err != nil {
		return DiffStats{}, fmt.Errorf("%s event %s to sink %s: %w", what, eventUUID, sink, err)
	}
	stats, err := s.apply(sink, eventUUID, objects, now, refresh)
	if err != nil {
		return stats, fmt.Errorf("%s event %s to sink %s: %w", what, eventUUID, sink, err)
	}
	return stats, nil
}

// RemoveEvent queues revocations for everything the event yielded (except Shared objects)
// and forgets the event. It is Apply with an empty desired set.
func (s *Store) RemoveEvent(sink, eventUUID string, now time.Time) (DiffStats, error) {
	if eventUUID == "" {
		return DiffStats{}, errors.New("remove event: empty event uuid")
	}
	if err := s.space.checkIntake(); err != nil {
		return DiffStats{}, fmt.Errorf("remove event %s from sink %s: %w", eventUUID, sink, err)
	}
	stats, err := s.apply(sink, eventUUID, nil, now, true)
	if err != nil {
		return stats, fmt.Errorf("remove event %s from sink %s: %w", eventUUID, sink, err)
	}
	return stats, nil
}

// checkDesired rejects malformed objects and drops exact duplicates.
func checkDesired(desired []stix.Object) ([]stix.Object, error) {
	seen := make(map[string]string, len(desired))
	out := make([]stix.Object, 0, len(desired))
	for i, o := range desired {
		switch {
		case o.ID == "":
			return nil, fmt.Errorf("object %d: empty id", i)
		case o.Hash == "":
			return nil, fmt.Errorf("object %s: empty hash", o.ID)
		case len(o.Body) == 0:
			return nil, fmt.Errorf("object %s: empty body", o.ID)
		}
		if h, dup := seen[o.ID]; dup {
			if h != o.Hash {
				return nil, fmt.Errorf("object %s: given twice with different content", o.ID)
			}
			continue
		}
		seen[o.ID] = o.Hash
		out = append(out, o)
	}
	if err := checkRelationships(out); err != nil {
		return nil, err
	}
	return out, nil
}

// nextModified is the modified for the next version of an id whose last version had last.
func nextModified(last, now time.Time) time.Time {
	m := now.UTC().Truncate(time.Millisecond)
	if !last.IsZero() && !m.After(last) {
		m = last.Add(time.Millisecond)
	}
	return m
}

// plannedObject is one object of the desired set with the state read before the change.
type plannedObject struct {
	obj   stix.Object
	state indicatorState
	found bool
}

// apply does Apply under the sink's lock in four steps: plan (read everything involved),
// objects (upserts), revocations, and the event record (id list and digest), all written
// through one chunked writer.
//
// refresh false never re-sends an unchanged object for a later valid_until (ApplyAged).
func (s *Store) apply(sink, event string, desired []stix.Object, now time.Time, refresh bool) (DiffStats, error) {
	rt, err := s.lockSink(sink)
	if err != nil {
		return DiffStats{}, err
	}
	defer s.unlockSink(rt)

	// Fast path: the event yields exactly what it yielded when last applied and nothing of it
	// is close enough to expiry to need a refresh, so every object is unchanged. This skips
	// reading one state per object, which dominates a full reconcile of an unchanged MISP.
	sum := desiredDigest(desired)
	stored, unchanged, err := s.unchangedEvent(sink, event, sum, desired, now, refresh)
	if err != nil {
		return DiffStats{}, err
	}
	if unchanged {
		return DiffStats{Unchanged: len(desired)}, nil
	}

	plan, err := s.plan(sink, event, desired)
	if err != nil {
		return DiffStats{}, err
	}

	var stats DiffStats
	w := s.newChunkWriter(sink, &plan.meta)
	w.beforeFirstSplit = func(w *chunkWriter) error {
		return w.set(eventKey(sink, event), encodeIDList(unionIDs(plan.oldIDs, plan.newIDs)))
	}
	fail := func(err error) (DiffStats, error) {
		w.abort()
		return DiffStats{}, err
	}
	// The digest goes first, in the first chunk: after a crash between chunks it no longer
	// vouches for states that are half-way between two versions.
	if stored != nil {
		if err := w.delete(digestKey(sink, event)); err != nil {
			return fail(err)
		}
	}
	baseOps := w.ops
	objectsQueued, err := s.writeObjects(w, rt, event, plan, now, refresh, &stats)
	if err != nil {
		return fail(err)
	}
	revocationsQueued, err := s.writeRevocations(w, rt, event, plan, now, &stats)
	if err != nil {
		return fail(err)
	}
	jointQueued, err := s.writeJointRemovals(w, rt, event, plan, now, &stats)
	if err != nil {
		return fail(err)
	}
	revocationsQueued = revocationsQueued || jointQueued
	digest := eventDigest{Sum: sum, MinValidUntil: minValidUntil(plan.planned)}
	if w.ops == baseOps && w.chunks == 0 && slices.Equal(plan.oldIDs, plan.newIDs) {
		// Nothing changed: the common reconcile case costs no write and no fsync, except
		// once to record the digest that lets the next pass take the fast path.
		if err := recordDigest(w, sink, event, len(desired), stored, digest); err != nil {
			return DiffStats{}, err
		}
		return stats, nil
	}
	if err := writeEventRecord(w, sink, event, plan.newIDs, len(desired), digest); err != nil {
		return fail(err)
	}
	if err := w.finish(); err != nil {
		return DiffStats{}, err
	}
	if objectsQueued || revocationsQueued {
		rt.signal()
	}
	return stats, nil
}

// applyPlan is what the read phase of apply found: the sink's meta, the event's previous and
// new id lists and the state of every object involved.
type applyPlan struct {
	meta   sinkMeta
	oldIDs []string
	// newIDs are the event's own (not shared) ids after the change.
	newIDs []string
	// planned holds one entry per desired object; removed the ids the event yielded before
	// and no longer yields that have a state.
	planned []plannedObject
	removed []plannedObject
	// joint are the joint relationships the event desired when last applied (its owner
	// marks); jointGone those of them it no longer desires.
	joint     map[string]bool
	jointGone []string
}

// plan reads, in one read-only transaction, everything apply is going to change.
func (s *Store) plan(sink, event string, desired []stix.Object) (*applyPlan, error) {
	p := &applyPlan{planned: make([]plannedObject, len(desired)), newIDs: make([]string, 0, len(desired))}
	inNew := make(map[string]bool, len(desired))
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		if p.meta, err = readMeta(txn, sink); err != nil {
			return err
		}
		if p.oldIDs, err = readIDList(txn, sink, event); err != nil {
			return err
		}
		if p.joint, err = readJoint(txn, sink, event); err != nil {
			return err
		}
		for i, o := range desired {
			st, found, err := readState(txn, sink, o.ID)
			if err != nil {
				return err
			}
			p.planned[i] = plannedObject{obj: o, state: st, found: found}
			inNew[o.ID] = true
			if !o.Shared {
				p.newIDs = append(p.newIDs, o.ID)
			}
		}
		for id := range p.joint {
			if !inNew[id] {
				p.jointGone = append(p.jointGone, id)
			}
		}
		slices.Sort(p.jointGone)
		for _, id := range p.oldIDs {
			if inNew[id] {
				continue
			}
			st, found, err := readState(txn, sink, id)
			if err != nil {
				return err
			}
			if found {
				p.removed = append(p.removed, plannedObject{obj: stix.Object{ID: id}, state: st, found: true})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// writeObjects queues an upsert for every new, changed or refreshed desired object and records
// the new owner of unchanged ones. It reports whether it queued anything.
func (s *Store) writeObjects(w *chunkWriter, rt *sinkRuntime, event string, plan *applyPlan, now time.Time, refresh bool, stats *DiffStats) (queued bool, err error) {
	sink := w.sink
	for i := range plan.planned {
		p := &plan.planned[i]
		o, st := p.obj, &p.state
		if isJoint(&o) && !plan.joint[o.ID] {
			// The event's owner mark and the relationship's count commit together.
			if err := w.reserve(2, len(o.ID)+len(event)+64); err != nil {
				return false, err
			}
			if err := markJoint(w, event, o.ID); err != nil {
				return false, err
			}
		}
		var live int64 // change of meta.Live, applied once the object's writes are in a chunk
		switch {
		case !p.found:
			*st = indicatorState{}
			stats.New++
			live = 1
		case st.Revoked:
			// Re-activation: a revoked id is never reused.
			st.Gen++
			st.Revoked, st.Rejected, st.SentModified = false, false, time.Time{}
			stats.New++
			live = 1
		case st.Hash != o.Hash:
			stats.Changed++
		case s.needsRefresh(st, o, now, refresh):
			stats.Refreshed++
		default:
			stats.Unchanged++
			if err := recordOwner(w, sink, event, o, st); err != nil {
				return false, err
			}
			continue
		}
		relationship := live == 1 && o.TargetRef != ""
		if relationship {
			// The relationship going live and its ends' counts commit together.
			ops, size := relationshipReserveOps, relationshipReserveBytes
			if isJoint(&o) {
				ops, size = jointReserveOps, jointReserveBytes
			}
			if err := w.reserve(ops, size); err != nil {
				return false, err
			}
		}
		if err := forgetOwnerDigest(w, sink, st, event); err != nil {
			return false, err
		}
		st.Hash, st.ValidUntil, st.Body, st.Shared = o.Hash, o.ValidUntil, o.Body, o.Shared
		if o.Shared {
			st.Event = ""
		} else {
			st.Event = event
		}
		if err := s.enqueue(w, rt, o.ID, st, now); err != nil {
			return false, err
		}
		if relationship {
			if _, err := addRef(w, o.TargetRef, 1); err != nil {
				return false, err
			}
			if isJoint(&o) {
				if _, err := addRef(w, o.SourceRef, 1); err != nil {
					return false, err
				}
			}
		}
		plan.meta.Live += live
		queued = true
	}
	return queued, nil
}

// recordOwner stores which event owns an unchanged object (none when it became shared) when
// that changed, without queuing anything.
func recordOwner(w *chunkWriter, sink, event string, o stix.Object, st *indicatorState) error {
	if st.Shared == o.Shared && (o.Shared || st.Event == event) {
		return nil
	}
	if err := forgetOwnerDigest(w, sink, st, event); err != nil {
		return err
	}
	st.Shared, st.Event = o.Shared, event
	if o.Shared {
		st.Event = ""
	}
	if err := w.reserve(1, len(o.ID)+len(st.Event)+128); err != nil {
		return err
	}
	return w.set(stateKey(sink, o.ID), st.encode())
}

// writeRevocations queues a revocation for every object the event no longer yields and still
// owns, or records it as ended without an upload when it has expired in Sentinel already. It
// reports whether it queued anything.
func (s *Store) writeRevocations(w *chunkWriter, rt *sinkRuntime, event string, plan *applyPlan, now time.Time, stats *DiffStats) (queued bool, err error) {
	for i := range plan.removed {
		st := &plan.removed[i].state
		if st.Revoked || st.Shared || st.Event != event {
			continue // already revoked, shared, or now owned by another event
		}
		st.Revoked = true
		id := plan.removed[i].obj.ID
		if stix.IsRelationship(id) {
			// The relationship's revocation, its target's count and, when that was the last
			// reference, the target's revocation commit together.
			if err := w.reserve(relationshipReserveOps, relationshipReserveBytes); err != nil {
				return false, err
			}
			released, err := s.revokeRelationship(w, rt, id, st, now, stats)
			if err != nil {
				return false, err
			}
			plan.meta.Live--
			queued = queued || released
			continue
		}
		if !st.ValidUntil.IsZero() && !st.ValidUntil.After(now) {
			// Expired in Sentinel already: end it without an upload.
			stats.Expired++
			if err := w.reserve(1, len(id)+len(st.Event)+128); err != nil {
				return false, err
			}
			if err := w.set(stateKey(w.sink, id), st.encode()); err != nil {
				return false, err
			}
			plan.meta.Live--
			continue
		}
		stats.Revoked++
		if err := s.enqueue(w, rt, id, st, now); err != nil {
			return false, err
		}
		plan.meta.Live--
		queued = true
	}
	return queued, nil
}

// recordDigest ends an apply that changed nothing: it writes the event's digest when it is
// missing or stale, and nothing otherwise.
func recordDigest(w *chunkWriter, sink, event string, desired int, stored *eventDigest, digest eventDigest) error {
	if (desired == 0 && stored == nil) || (stored != nil && *stored == digest) {
		w.abort()
		return nil
	}
	if desired > 0 {
		if err := w.set(digestKey(sink, event), digest.encode()); err != nil {
			w.abort()
			return err
		}
	}
	return w.finish()
}

// writeEventRecord writes the event's id list and digest, or deletes them when the event
// yields nothing.
func writeEventRecord(w *chunkWriter, sink, event string, newIDs []string, desired int, digest eventDigest) error {
	if err := w.reserve(2, len(newIDs)*48+64); err != nil {
		return err
	}
	var err error
	if len(newIDs) == 0 {
		err = w.delete(eventKey(sink, event))
	} else {
		err = w.set(eventKey(sink, event), encodeIDList(newIDs))
	}
	if err != nil {
		return err
	}
	if desired == 0 {
		return w.delete(digestKey(sink, event))
	}
	return w.set(digestKey(sink, event), digest.encode())
}

// desiredDigest identifies a desired set: every object's id, content hash and sharing, in
// order. valid_until is left out: it moves with the clock while nothing changes.
func desiredDigest(desired []stix.Object) [32]byte {
	h := sha256.New()
	var sep = []byte{0}
	for _, o := range desired {
		h.Write([]byte(o.ID))
		h.Write(sep)
		h.Write([]byte(o.Hash))
		if o.Shared {
			h.Write([]byte{1})
		} else {
			h.Write(sep)
		}
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// unchangedEvent reports whether Apply of desired may skip the diff: the event's stored digest
// matches, no object's valid_until is inside the refresh window, and every shared object
// (owned by no event, so another event may have changed it) still has the desired content.
// It returns the stored digest when there is one.
func (s *Store) unchangedEvent(sink, event string, sum [32]byte, desired []stix.Object, now time.Time, refresh bool) (*eventDigest, bool, error) {
	var stored *eventDigest
	unchanged := false
	err := s.db.View(func(txn *badger.Txn) error {
		d, found, err := readRecord(txn, digestKey(sink, event), "digest of event "+event, decodeDigest)
		if err != nil || !found {
			return err
		}
		stored = &d
		if d.Sum != sum || len(desired) == 0 {
			return nil
		}
		if refresh && !d.MinValidUntil.IsZero() && d.MinValidUntil.Sub(now) < s.refreshWindow {
			return nil
		}
		if earlier := minDesiredValidUntil(desired); !earlier.IsZero() && (d.MinValidUntil.IsZero() || d.MinValidUntil.Sub(earlier) > validUntilSlack) {
			return nil // some object now ends earlier than Sentinel was told
		}
		for _, o := range desired {
			if !o.Shared {
				continue
			}
			st, found, err := readState(txn, sink, o.ID)
			if err != nil {
				return err
			}
			if !found || st.Revoked || st.Hash != o.Hash || !st.Shared {
				return nil
			}
		}
		unchanged = true
		return nil
	})
	return stored, unchanged, err
}

// forgetOwnerDigest drops the digest of the event that owned st before event takes it over:
// that event's objects are no longer all its own, so its next Apply must diff in full.
func forgetOwnerDigest(w *chunkWriter, sink string, st *indicatorState, event string) error {
	if st.Shared || st.Event == "" || st.Event == event {
		return nil
	}
	if err := w.reserve(1, len(st.Event)+64); err != nil {
		return err
	}
	return w.delete(digestKey(sink, st.Event))
}

// minValidUntil is the earliest non-zero valid_until among the planned objects' states after
// the change.
func minValidUntil(planned []plannedObject) time.Time {
	var m time.Time
	for i := range planned {
		vu := planned[i].state.ValidUntil
		if !vu.IsZero() && (m.IsZero() || vu.Before(m)) {
			m = vu
		}
	}
	return m
}

// validUntilSlack is how much earlier than the valid_until Sentinel holds a desired one must be
// to be re-sent: a decay-bound valid_until recovered from a MISP score moves by seconds
// between searches, and must not cost an upload each time.
const validUntilSlack = time.Minute

// needsRefresh reports whether an unchanged object must be re-sent for its valid_until: the
// one Sentinel holds is inside the refresh window and the desired one is later (so that
// Sentinel does not expire it), or the desired one is earlier by more than validUntilSlack (a
// decaying model now ends it sooner, so that Sentinel stops matching it on time). Objects
// whose last version was rejected are not re-sent. Without refresh (an event aged out of the
// search window) only an earlier valid_until is sent.
func (s *Store) needsRefresh(st *indicatorState, o stix.Object, now time.Time, refresh bool) bool {
	if st.Rejected || o.ValidUntil.IsZero() {
		return false
	}
	if st.ValidUntil.IsZero() || st.ValidUntil.Sub(o.ValidUntil) > validUntilSlack {
		return o.ValidUntil.After(now)
	}
	return refresh && st.ValidUntil.Sub(now) < s.refreshWindow && o.ValidUntil.After(st.ValidUntil)
}

// minDesiredValidUntil is the earliest non-zero valid_until of the desired objects.
func minDesiredValidUntil(desired []stix.Object) time.Time {
	var m time.Time
	for _, o := range desired {
		if !o.ValidUntil.IsZero() && (m.IsZero() || o.ValidUntil.Before(m)) {
			m = o.ValidUntil
		}
	}
	return m
}

// enqueue stamps the state's current version (st.Gen, st.Body, st.Revoked) with a
// fresh modified, appends it to the outbox and writes the state, in one chunk. A pending,
// not-in-flight item for the same stamped id is replaced (the newer version moves to the
// tail); an item already handed out by Begin is left alone.
func (s *Store) enqueue(w *chunkWriter, rt *sinkRuntime, base string, st *indicatorState, now time.Time) error {
	revoke := st.Revoked
	if st.Body == nil {
		if err := loadBody(w.txn, w.sink, base, st); err != nil {
			return err
		}
	}
	id := stix.GenerationID(base, st.Gen)
	modified := nextModified(st.Modified, now)
	var (
		object []byte
		refs   []string
		err    error
	)
	if stix.IsRelationship(base) {
		object, refs, err = stampRefs(w, st.Body, id, modified, revoke)
	} else {
		object, err = stix.Stamp(st.Body, id, modified, revoke)
	}
	if err != nil {
		return err
	}
	item := outboxItem{
		ID: id, Base: base, Gen: st.Gen, Revoke: revoke,
		Modified: modified, EnqueuedAt: now.UTC(), Object: object, Refs: refs,
	}
	encoded := item.encode()
	if err := w.reserve(4, len(encoded)+len(st.Body)+len(base)*3+256); err != nil {
		return err
	}
	if st.PendingSeq != 0 && !rt.inflight[st.PendingSeq] {
		pending, found, err := readItem(w.txn, w.sink, st.PendingSeq)
		if err != nil {
			return err
		}
		if found && pending.ID == id {
			if err := w.delete(seqKey(kindOutbox, w.sink, st.PendingSeq)); err != nil {
				return err
			}
			w.meta.Depth--
		}
	}
	seq := w.meta.Tail
	w.meta.Tail++
	w.meta.Depth++
	w.meta.LastEnqueued = now.UTC()
	if err := w.set(seqKey(kindOutbox, w.sink, seq), encoded); err != nil {
		return err
	}
	st.Modified = modified
	st.PendingSeq = seq
	st.Rejected = false
	if !revoke {
		if err := w.set(bodyKey(w.sink, base), st.Body); err != nil {
			return err
		}
	}
	return w.set(stateKey(w.sink, base), st.encode())
}

// loadBody reads the body of the object's last upsert into st.Body.
func loadBody(txn *badger.Txn, sink, base string, st *indicatorState) error {
	item, err := txn.Get(bodyKey(sink, base))
	if err != nil {
		return fmt.Errorf("read body of %s: %w", base, err)
	}
	if st.Body, err = item.ValueCopy(nil); err != nil {
		return fmt.Errorf("read body of %s: %w", base, err)
	}
	return nil
}

func readItem(txn *badger.Txn, sink string, seq uint64) (outboxItem, bool, error) {
	return readRecord(txn, seqKey(kindOutbox, sink, seq), fmt.Sprintf("outbox item %d", seq), decodeItem)
}

func unionIDs(a, b []string) []string {
	seen := make(map[string]bool, len(a)+len(b))
	out := make([]string, 0, len(a)+len(b))
	for _, list := range [][]string{a, b} {
		for _, id := range list {
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	return out
}
