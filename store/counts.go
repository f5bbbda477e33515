package store

import (
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// StateCounts splits a sink's objects by where they stand in Sentinel.
type StateCounts struct {
	// Queued objects are live in the store but Sentinel has accepted no version of them yet
	// (never uploaded, or every upload dead-lettered): they are not live in Sentinel.
	Queued int64
	// Accepted objects are live and Sentinel accepted a version of them (a newer version
	// may be queued).
	Accepted int64
	// Revoked objects have ended: revoked in Sentinel, or expired there.
	Revoked int64
}

// StateCounts counts sink's objects by standing. It reads every state record of the sink
// (small records, not the bodies): meant for `listener status`, not for a hot path.
func (s *Store) StateCounts(sink string) (StateCounts, error) {
	if err := s.enter(); err != nil {
		return StateCounts{}, err
	}
	defer s.leave()
	var c StateCounts
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = sinkPrefix(kindState, sink)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			err := it.Item().Value(func(v []byte) error {
				st, err := decodeState(v)
				if err != nil {
					return err
				}
				switch {
				case st.Revoked:
					c.Revoked++
				case st.SentModified.IsZero():
					c.Queued++
				default:
					c.Accepted++
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return StateCounts{}, fmt.Errorf("count objects of sink %s: %w", sink, err)
	}
	return c, nil
}
