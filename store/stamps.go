package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// EventStamp is what the reconciler recorded when it last applied an event's full content: the
// event's MISP version (the later of its timestamp and publish_timestamp) and a key of what
// shaped the conversion then (filters, sinks, their options, the binary's version). A cheap
// catch-up fetches an event again only when either differs.
type EventStamp struct {
	Version time.Time
	Key     [8]byte
}

// stampPrefix puts the event stamps in the watermark keyspace.
const stampPrefix = "reconcile/stamp/"

func (st EventStamp) encode() []byte {
	b := make([]byte, 0, 16)
	b = binary.BigEndian.AppendUint64(b, uint64(st.Version.Unix()))
	return append(b, st.Key[:]...)
}

func decodeStamp(b []byte) (EventStamp, error) {
	if len(b) != 16 {
		return EventStamp{}, fmt.Errorf("%w: event stamp of %d bytes, want 16", errCorrupt, len(b))
	}
	var st EventStamp
	st.Version = time.Unix(int64(binary.BigEndian.Uint64(b[:8])), 0).UTC()
	copy(st.Key[:], b[8:])
	return st, nil
}

// EventStamps returns the stamps recorded for the given events (those without one are absent
// from the map), read in one transaction.
func (s *Store) EventStamps(eventUUIDs []string) (map[string]EventStamp, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	out := make(map[string]EventStamp, len(eventUUIDs))
	err := s.db.View(func(txn *badger.Txn) error {
		for _, ev := range eventUUIDs {
			item, err := txn.Get(watermarkKey(stampPrefix + ev))
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			err = item.Value(func(v []byte) error {
				st, err := decodeStamp(v)
				if err == nil {
					out[ev] = st
				}
				return err
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read event stamps: %w", err)
	}
	return out, nil
}

// SetEventStamps records stamps and deletes the stamps of the events in forget, in one write.
func (s *Store) SetEventStamps(stamps map[string]EventStamp, forget []string) error {
	if len(stamps) == 0 && len(forget) == 0 {
		return nil
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	err := s.update(func(txn *badger.Txn) error {
		for ev, st := range stamps {
			if ev == "" {
				return errors.New("empty event uuid")
			}
			if err := txn.Set(watermarkKey(stampPrefix+ev), st.encode()); err != nil {
				return err
			}
		}
		for _, ev := range forget {
			if ev == "" {
				continue
			}
			if err := txn.Delete(watermarkKey(stampPrefix + ev)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write event stamps: %w", err)
	}
	return nil
}
