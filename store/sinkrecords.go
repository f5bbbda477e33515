package store

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// kindSinkRecord keys records a sink keeps for itself (x<scope><key>): the Defender sink's
// ranked budget (candidates, held slots, MDE ids). The store does not read their values.
const kindSinkRecord = 'x'

// sinkRecordsPerTxn bounds one transaction of PutSinkRecords (Badger limits a transaction's size).
const sinkRecordsPerTxn = 1000

func sinkRecordKey(scope, key string) []byte {
	return append(sinkPrefix(kindSinkRecord, scope), key...)
}

// PutSinkRecords stores puts and removes deletes under scope, durably, in transactions of
// at most 1,000 records (each record is written whole or not at all). An empty key is an error.
func (s *Store) PutSinkRecords(scope string, puts map[string][]byte, deletes []string) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	type op struct {
		key   string
		value []byte
		del   bool
	}
	ops := make([]op, 0, len(puts)+len(deletes))
	for k, v := range puts {
		ops = append(ops, op{key: k, value: v})
	}
	for _, k := range deletes {
		ops = append(ops, op{key: k, del: true})
	}
	for start := 0; start < len(ops); start += sinkRecordsPerTxn {
		part := ops[start:min(start+sinkRecordsPerTxn, len(ops))]
		err := s.update(func(txn *badger.Txn) error {
			for _, o := range part {
				if o.key == "" {
					return errors.New("empty record key")
				}
				k := sinkRecordKey(scope, o.key)
				var err error
				if o.del {
					err = txn.Delete(k)
				} else {
					err = txn.Set(k, o.value)
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("put sink records of %q: %w", scope, err)
		}
	}
	return nil
}

// SinkRecords calls fn with every record under scope, in key order. The value is only valid
// during the call.
func (s *Store) SinkRecords(scope string, fn func(key string, value []byte) error) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	prefix := sinkPrefix(kindSinkRecord, scope)
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			key := string(item.Key()[len(prefix):])
			if err := item.Value(func(v []byte) error { return fn(key, v) }); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read sink records of %q: %w", scope, err)
	}
	return nil
}
