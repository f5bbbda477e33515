package store

import "fmt"

// Compact rewrites the LSM tree into one level so that the space of deleted keys (drained
// outbox items above all) is given back to the file system, then rewrites value-log files the
// compaction found dead. Badger reclaims that space only when a compaction reaches the level
// holding the old values, which a small, steady store may never trigger on its own; the GC
// ticker calls the same compaction every CompactInterval.
func (s *Store) Compact() error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if err := s.db.Flatten(2); err != nil {
		return fmt.Errorf("compact store: %w", err)
	}
	for s.db.RunValueLogGC(0.5) == nil {
	}
	return nil
}
