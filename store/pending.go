package store

import (
	"errors"
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"
)

// kindPending keys the notices that were received but not applied before a shutdown
// (p<event uuid> → "published" or "deleted"): the next start applies them before anything else.
const kindPending = 'p'

func pendingKey(eventUUID string) []byte { return append([]byte{kindPending}, eventUUID...) }

// PendingNotice is a real-time notice the daemon received and could not apply before it
// stopped: which event, and what happened to it ("published" or "deleted"; the store does not
// interpret Kind).
type PendingNotice struct {
	EventUUID string
	Kind      string
}

// AddPendingNotices records notices durably, in one transaction. Notices about the same event
// keep only the last one, in slice order and over earlier calls: the latest thing that happened
// to an event is what the next start must apply.
func (s *Store) AddPendingNotices(notices []PendingNotice) error {
	if len(notices) == 0 {
		return nil
	}
	for _, n := range notices {
		if n.EventUUID == "" || n.Kind == "" {
			return fmt.Errorf("add pending notices: empty event uuid or kind in %+v", n)
		}
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	err := s.update(func(txn *badger.Txn) error {
		for _, n := range notices {
			if err := txn.Set(pendingKey(n.EventUUID), []byte(n.Kind)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("add %d pending notices: %w", len(notices), err)
	}
	return nil
}

// PendingNotices returns the recorded pending notices, one per event, in event uuid order.
func (s *Store) PendingNotices() ([]PendingNotice, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var out []PendingNotice
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte{kindPending}
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			out = append(out, PendingNotice{EventUUID: string(item.Key()[1:]), Kind: string(v)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read pending notices: %w", err)
	}
	slices.SortFunc(out, func(a, b PendingNotice) int {
		if a.EventUUID < b.EventUUID {
			return -1
		}
		if a.EventUUID > b.EventUUID {
			return 1
		}
		return 0
	})
	return out, nil
}

// DeletePendingNotice forgets the pending notice of eventUUID once it was applied; an event
// without one is not an error.
func (s *Store) DeletePendingNotice(eventUUID string) error {
	if eventUUID == "" {
		return errors.New("delete pending notice: empty event uuid")
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if err := s.update(func(txn *badger.Txn) error { return txn.Delete(pendingKey(eventUUID)) }); err != nil {
		return fmt.Errorf("delete pending notice of event %s: %w", eventUUID, err)
	}
	return nil
}
