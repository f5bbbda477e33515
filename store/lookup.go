package store

import (
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/mispsentinel/listener/stix"
)

// Indicator is what the store holds about one object of one sink (`listener trace`).
type Indicator struct {
	// Base is the generation-0 id; ID the id of the current generation (stix.GenerationID),
	// the one the version last queued carried.
	Base string
	ID   string
	Gen  uint32
	// Event is the MISP event that yielded the object ("" for a shared one).
	Event  string
	Shared bool
	// Modified and ValidUntil are those of the version last queued (upsert or revocation).
	Modified   time.Time
	ValidUntil time.Time
	// Revoked: the object has ended in the sink (a revocation queued or sent, or expiry).
	Revoked bool
	// AcceptedModified is the modified of the last version the sink accepted; zero if none.
	// Accepted says that version is the one last queued.
	AcceptedModified time.Time
	Accepted         bool
	// Queued: a version waits in the outbox (or is in flight), queued at QueuedAt.
	Queued   bool
	QueuedAt time.Time
	// Rejected: the version last queued was dead-lettered; DeadLetter is that dead letter when
	// it is still listed.
	Rejected   bool
	DeadLetter *DeadLetter
}

// Indicator returns what the store holds about the object id in sink: id is a generation-0
// id, or the id of a later generation (found by walking the sink's states). found is false
// when the sink never had it.
func (s *Store) Indicator(sink, id string) (ind Indicator, found bool, err error) {
	if err := s.enter(); err != nil {
		return Indicator{}, false, err
	}
	defer s.leave()
	err = s.db.View(func(txn *badger.Txn) error {
		st, ok, err := readState(txn, sink, id)
		if err != nil {
			return err
		}
		base := id
		if !ok {
			if base, st, ok, err = findGeneration(txn, sink, id); err != nil || !ok {
				return err
			}
		}
		found = true
		ind = Indicator{
			Base: base, ID: stix.GenerationID(base, st.Gen), Gen: st.Gen, Event: st.Event, Shared: st.Shared,
			Modified: st.Modified, ValidUntil: st.ValidUntil, Revoked: st.Revoked,
			AcceptedModified: st.SentModified, Rejected: st.Rejected,
		}
		ind.Accepted = !st.SentModified.IsZero() && st.SentModified.Equal(st.Modified)
		if st.PendingSeq != 0 {
			item, ok, err := readItem(txn, sink, st.PendingSeq)
			if err != nil {
				return err
			}
			if ok {
				ind.Queued, ind.QueuedAt = true, item.EnqueuedAt
			}
		}
		if st.Rejected {
			ind.DeadLetter, err = findDeadLetter(txn, sink, base, st.Modified)
		}
		return err
	})
	if err != nil {
		return Indicator{}, false, fmt.Errorf("look up %s in sink %s: %w", id, sink, err)
	}
	return ind, found, nil
}

// EventIndicators returns the generation-0 ids of the non-shared objects the event's last
// applied version yielded in sink (none when the store has no record of it).
func (s *Store) EventIndicators(sink, event string) ([]string, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var ids []string
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		ids, err = readIDList(txn, sink, event)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("look up event %s in sink %s: %w", event, sink, err)
	}
	return ids, nil
}

// findGeneration finds the state whose current generation has the id (a trace of an id the
// sink knows under a later generation).
func findGeneration(txn *badger.Txn, sink, id string) (string, indicatorState, bool, error) {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = sinkPrefix(kindState, sink)
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		base := string(item.Key()[len(opts.Prefix):])
		var st indicatorState
		err := item.Value(func(v []byte) error {
			var derr error
			st, derr = decodeState(v)
			return derr
		})
		if err != nil {
			return "", indicatorState{}, false, err
		}
		if st.Gen > 0 && stix.GenerationID(base, st.Gen) == id {
			return base, st, true, nil
		}
	}
	return "", indicatorState{}, false, nil
}

// findDeadLetter returns the dead letter of the base id's version modified, nil when it was
// not found (requeued or dropped meanwhile).
func findDeadLetter(txn *badger.Txn, sink, base string, modified time.Time) (*DeadLetter, error) {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = sinkPrefix(kindDead, sink)
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		var r deadRecord
		err := it.Item().Value(func(v []byte) error {
			var derr error
			r, derr = decodeDead(v)
			return derr
		})
		if err != nil {
			return nil, err
		}
		if r.Item.Base != base || !r.Item.Modified.Equal(modified) {
			continue
		}
		seq, err := seqFromKey(it.Item().Key(), len(opts.Prefix))
		if err != nil {
			return nil, err
		}
		return &DeadLetter{Seq: seq, ID: r.Item.ID, Revoke: r.Item.Revoke, Object: r.Item.Object,
			Message: r.Message, EnqueuedAt: r.Item.EnqueuedAt, RejectedAt: r.RejectedAt}, nil
	}
	return nil, nil
}
