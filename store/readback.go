package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/mispsentinel/listener/stix"
)

// This file is what comparing a sink with what its API holds (listener verify) needs from the
// store: the state of every object, the body last sent, and queuing a current version again.

// indicatorsPage is how many states Indicators reads per read transaction.
const indicatorsPage = 2000

// Indicators calls fn for every object of sink in id order (Queued is set, QueuedAt and
// DeadLetter are not: the walk reads the states only). fn runs outside any transaction, so it
// may call Resend; objects changed meanwhile may be seen before or after the change. An error
// from fn stops the walk and is returned unwrapped.
func (s *Store) Indicators(sink string, fn func(Indicator) error) error {
	prefix := sinkPrefix(kindState, sink)
	start := prefix
	for {
		page, err := s.indicatorsPage(prefix, start)
		if err != nil {
			return fmt.Errorf("list indicators of sink %s: %w", sink, err)
		}
		for _, ind := range page {
			if err := fn(ind); err != nil {
				return err
			}
		}
		if len(page) < indicatorsPage {
			return nil
		}
		start = append(append(append([]byte(nil), prefix...), page[len(page)-1].Base...), 0)
	}
}

func (s *Store) indicatorsPage(prefix, start []byte) ([]Indicator, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var out []Indicator
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = prefix
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(start); it.Valid() && len(out) < indicatorsPage; it.Next() {
			base := string(it.Item().Key()[len(prefix):])
			raw, err := it.Item().ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("read state of %s: %w", base, err)
			}
			st, err := decodeState(raw)
			if err != nil {
				return fmt.Errorf("state of %s: %w", base, err)
			}
			out = append(out, Indicator{
				Base: base, ID: stix.GenerationID(base, st.Gen), Gen: st.Gen, Event: st.Event, Shared: st.Shared,
				Modified: st.Modified, ValidUntil: st.ValidUntil, Revoked: st.Revoked,
				AcceptedModified: st.SentModified, Accepted: !st.SentModified.IsZero() && st.SentModified.Equal(st.Modified),
				Queued: st.PendingSeq != 0, Rejected: st.Rejected,
			})
		}
		return nil
	})
	return out, err
}

// ErrUnknownIndicator is returned for an id the sink has no state for.
var ErrUnknownIndicator = errors.New("no such indicator")

// SentObject returns the object as the sink's API should hold it: the body of its last
// upsert stamped with its current id, the modified of its last queued version and, when
// ended, "revoked": true.
func (s *Store) SentObject(sink, base string) ([]byte, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var out []byte
	err := s.db.View(func(txn *badger.Txn) error {
		st, found, err := readState(txn, sink, base)
		if err != nil {
			return err
		}
		if !found {
			return ErrUnknownIndicator
		}
		if err := loadBody(txn, sink, base, &st); err != nil {
			return err
		}
		out, err = stix.Stamp(st.Body, stix.GenerationID(base, st.Gen), st.Modified, st.Revoked)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sent object %s of sink %s: %w", base, sink, err)
	}
	return out, nil
}

// Resend queues the current version of each of the given objects of sink again with a fresh
// modified: an upsert for a live object, a revocation for a revoked one. It repairs what the
// sink's API lost or holds differently (listener verify --repair); the pusher delivers it.
// An object without state, with a version still queued, or that ended by expiry (its
// valid_until has passed: nothing to revoke) is skipped. It returns how many were queued.
func (s *Store) Resend(sink string, bases []string, now time.Time) (int, error) {
	if err := s.space.checkIntake(); err != nil {
		return 0, fmt.Errorf("resend to sink %s: %w", sink, err)
	}
	rt, err := s.lockSink(sink)
	if err != nil {
		return 0, fmt.Errorf("resend to sink %s: %w", sink, err)
	}
	defer s.unlockSink(rt)
	var meta sinkMeta
	if err := s.db.View(func(txn *badger.Txn) error {
		var err error
		meta, err = readMeta(txn, sink)
		return err
	}); err != nil {
		return 0, fmt.Errorf("resend to sink %s: %w", sink, err)
	}
	w := s.newChunkWriter(sink, &meta)
	defer w.abort() // a no-op after finish
	queued := 0
	for _, base := range bases {
		if err := w.reserve(4, 8<<10); err != nil {
			return 0, fmt.Errorf("resend to sink %s: %w", sink, err)
		}
		st, found, err := readState(w.txn, sink, base)
		if err != nil {
			return 0, fmt.Errorf("resend %s to sink %s: %w", base, sink, err)
		}
		if !found || st.PendingSeq != 0 || (st.Revoked && !st.ValidUntil.IsZero() && !st.ValidUntil.After(now)) {
			continue
		}
		if err := s.enqueue(w, rt, base, &st, now); err != nil {
			return 0, fmt.Errorf("resend %s to sink %s: %w", base, sink, err)
		}
		queued++
	}
	if err := w.finish(); err != nil {
		return 0, fmt.Errorf("resend to sink %s: %w", sink, err)
	}
	if queued > 0 {
		rt.signal()
	}
	return queued, nil
}
