package store

import (
	"fmt"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
)

// Transaction size limits. With the tuned 16 MB memtable Badger refuses transactions above
// about 2.4 MB or 26,214 entries (ErrTxnTooBig); a chunk stays well below both. Values of
// 1 MB and more go to the value log and count only as a pointer.
const (
	chunkMaxBytes = 1 << 20
	chunkMaxOps   = 4000
)

// chunkWriter writes one logical change as one Badger transaction when it fits, and as a
// sequence of transactions ("chunks") when it does not. The sink's meta record is written
// into every chunk, so cursors and counters always match the keys that were committed.
// Callers group the writes that must commit together with reserve.
//
// Reads through txn see the writer's own earlier writes; the per-sink lock guarantees that
// no other writer touches the sink's keys meanwhile.
type chunkWriter struct {
	db   *badger.DB
	txn  *badger.Txn
	sink string
	meta *sinkMeta
	// written is the store's count of committed writes, raised by each commit.
	written *atomic.Uint64
	ops     int
	bytes   int
	chunks  int
	// beforeFirstSplit runs once, inside the first chunk, when the change turns out to need
	// more than one transaction.
	beforeFirstSplit func(w *chunkWriter) error
}

func (s *Store) newChunkWriter(sink string, meta *sinkMeta) *chunkWriter {
	return &chunkWriter{db: s.db, txn: s.db.NewTransaction(true), sink: sink, meta: meta, written: &s.written}
}

// reserve commits the current chunk first if ops more entries totalling size bytes would not
// fit into it.
func (w *chunkWriter) reserve(ops, size int) error {
	if w.ops == 0 || (w.ops+ops <= chunkMaxOps && w.bytes+size <= chunkMaxBytes) {
		return nil
	}
	if w.chunks == 0 && w.beforeFirstSplit != nil {
		if err := w.beforeFirstSplit(w); err != nil {
			return err
		}
	}
	if err := w.commit(); err != nil {
		return err
	}
	w.txn = w.db.NewTransaction(true)
	w.ops, w.bytes = 0, 0
	return nil
}

func (w *chunkWriter) set(key, value []byte) error {
	w.ops++
	w.bytes += len(key) + entrySize(value)
	if err := w.txn.Set(key, value); err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	return nil
}

func (w *chunkWriter) delete(key []byte) error {
	w.ops++
	w.bytes += len(key) + 16
	if err := w.txn.Delete(key); err != nil {
		return fmt.Errorf("delete key: %w", err)
	}
	return nil
}

func (w *chunkWriter) commit() error {
	if err := w.txn.Set(metaKey(w.sink), w.meta.encode()); err != nil {
		w.txn.Discard()
		return fmt.Errorf("write meta of sink %s: %w", w.sink, err)
	}
	w.chunks++
	if err := w.txn.Commit(); err != nil {
		return fmt.Errorf("commit chunk %d: %w", w.chunks, err)
	}
	w.written.Add(1)
	if afterChunkCommit != nil {
		return afterChunkCommit(w.chunks)
	}
	return nil
}

// afterChunkCommit lets tests stop a multi-chunk change after a given chunk, as a crash
// would. It is nil outside tests.
var afterChunkCommit func(chunk int) error

// finish commits the last chunk.
func (w *chunkWriter) finish() error { return w.commit() }

// abort discards the uncommitted chunk. Earlier chunks stay committed.
func (w *chunkWriter) abort() { w.txn.Discard() }

// entrySize is what a value costs in a transaction: large values live in the value log.
func entrySize(v []byte) int {
	if len(v) >= 1<<20 {
		return 32
	}
	return len(v) + 32
}
