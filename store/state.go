package store

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// SinkStats is a snapshot of one sink for status output and metrics.
type SinkStats struct {
	// OutboxDepth is the number of items waiting for upload (including a batch in flight).
	OutboxDepth int64
	// DeadLetters is the number of items Sentinel rejected and nobody re-queued.
	DeadLetters int64
	// Live is the number of objects queued or sent and not revoked.
	Live int64
	// OldestEnqueuedAt is when the item at the head of the outbox was queued; zero when empty.
	OldestEnqueuedAt time.Time
	LastEnqueued     time.Time
	LastAccepted     time.Time
}

// Stats returns a consistent snapshot of sink's counters.
func (s *Store) Stats(sink string) (SinkStats, error) {
	if err := s.enter(); err != nil {
		return SinkStats{}, err
	}
	defer s.leave()
	var st SinkStats
	err := s.db.View(func(txn *badger.Txn) error {
		meta, err := readMeta(txn, sink)
		if err != nil {
			return err
		}
		st = SinkStats{
			OutboxDepth: meta.Depth, DeadLetters: meta.Dead, Live: meta.Live,
			LastEnqueued: meta.LastEnqueued, LastAccepted: meta.LastAccepted,
		}
		if meta.Depth == 0 {
			return nil
		}
		opts := badger.DefaultIteratorOptions
		opts.Prefix = sinkPrefix(kindOutbox, sink)
		opts.PrefetchSize = 1
		it := txn.NewIterator(opts)
		defer it.Close()
		it.Seek(seqKey(kindOutbox, sink, meta.Head))
		if !it.Valid() {
			return nil
		}
		return it.Item().Value(func(v []byte) error {
			oi, err := decodeItem(v)
			st.OldestEnqueuedAt = oi.EnqueuedAt
			return err
		})
	})
	if err != nil {
		return SinkStats{}, fmt.Errorf("stats of sink %s: %w", sink, err)
	}
	return st, nil
}

// Sinks lists every sink that ever had something queued, sorted by name.
func (s *Store) Sinks() ([]string, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var sinks []string
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte{kindMeta}
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			name, err := sinkFromMetaKey(it.Item().Key())
			if err != nil {
				return err
			}
			sinks = append(sinks, name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list sinks: %w", err)
	}
	slices.Sort(sinks)
	return sinks, nil
}

// eventsPage is how many event uuids Events reads per read transaction.
const eventsPage = 1000

// Events calls fn for every event of sink whose last applied version yielded at least one
// non-shared object (all of them live), in uuid order. fn runs outside any transaction, so it may call Apply or RemoveEvent; events
// added or removed meanwhile may or may not be visited. An error from fn stops the walk and is
// returned unwrapped.
func (s *Store) Events(sink string, fn func(eventUUID string) error) error {
	prefix := sinkPrefix(kindEvent, sink)
	start := prefix
	for {
		page, err := s.eventsPage(prefix, start)
		if err != nil {
			return fmt.Errorf("list events of sink %s: %w", sink, err)
		}
		for _, ev := range page {
			if err := fn(ev); err != nil {
				return err
			}
		}
		if len(page) < eventsPage {
			return nil
		}
		start = append(append(append([]byte(nil), prefix...), page[len(page)-1]...), 0)
	}
}

func (s *Store) eventsPage(prefix, start []byte) ([]string, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var page []string
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = prefix
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(start); it.Valid() && len(page) < eventsPage; it.Next() {
			page = append(page, string(it.Item().Key()[len(prefix):]))
		}
		return nil
	})
	return page, err
}

// Watermark returns the time stored under name, or the zero time if none was stored.
func (s *Store) Watermark(name string) (time.Time, error) {
	if err := s.enter(); err != nil {
		return time.Time{}, err
	}
	defer s.leave()
	var t time.Time
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(watermarkKey(name))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if err := t.UnmarshalBinary(v); err != nil {
				return fmt.Errorf("%w: %w", errCorrupt, err)
			}
			return nil
		})
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("read watermark %q: %w", name, err)
	}
	return t, nil
}

// SetWatermark stores t under name, durably.
func (s *Store) SetWatermark(name string, t time.Time) error {
	if name == "" {
		return errors.New("set watermark: empty name")
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	v, err := t.MarshalBinary()
	if err != nil {
		return fmt.Errorf("set watermark %q: %w", name, err)
	}
	if err := s.update(func(txn *badger.Txn) error { return txn.Set(watermarkKey(name), v) }); err != nil {
		return fmt.Errorf("set watermark %q: %w", name, err)
	}
	return nil
}

// DeleteWatermark removes the time stored under name; a name never stored is not an error.
func (s *Store) DeleteWatermark(name string) error {
	if name == "" {
		return errors.New("delete watermark: empty name")
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if err := s.update(func(txn *badger.Txn) error { return txn.Delete(watermarkKey(name)) }); err != nil {
		return fmt.Errorf("delete watermark %q: %w", name, err)
	}
	return nil
}

// graceMarkPrefix puts the grace marks in the watermark keyspace, under the prefix the
// reconciler used before the store offered them, so that marks written by earlier versions
// keep counting.
const graceMarkPrefix = "reconcile/outside/"

// GraceMark returns when the reconciler first found event eventUUID outside the event
// filters while it still existed in MISP, or the zero time if it has no such mark. The mark
// is kept across restarts so that the grace period also works across one-shot syncs.
func (s *Store) GraceMark(eventUUID string) (time.Time, error) {
	if eventUUID == "" {
		return time.Time{}, errors.New("read grace mark: empty event uuid")
	}
	return s.Watermark(graceMarkPrefix + eventUUID)
}

// SetGraceMark records t as the time event eventUUID was first found outside the filters.
func (s *Store) SetGraceMark(eventUUID string, t time.Time) error {
	if eventUUID == "" {
		return errors.New("set grace mark: empty event uuid")
	}
	return s.SetWatermark(graceMarkPrefix+eventUUID, t)
}

// DeleteGraceMark forgets the grace mark of event eventUUID; an event without one is not an
// error.
func (s *Store) DeleteGraceMark(eventUUID string) error {
	if eventUUID == "" {
		return errors.New("delete grace mark: empty event uuid")
	}
	return s.DeleteWatermark(graceMarkPrefix + eventUUID)
}
