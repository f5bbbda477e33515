package store

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/sirupsen/logrus"
)

// Options configures Open. The zero value is usable for tools that only read or copy the
// store: no refresh window and no background GC. The daemon passes its configured values
// (config.Default and config/defaults.go hold them); the store has no defaults of its own.
type Options struct {
	// Logger receives Badger's warnings and errors (its info lines at debug level, its debug
	// lines dropped) and the store's own warnings. Nil discards them.
	Logger logrus.FieldLogger
	// RefreshWindow: an unchanged indicator is re-uploaded with its new valid_until when the
	// valid_until Sentinel holds is less than this far from now (0: only once it passed).
	RefreshWindow time.Duration
	// GCInterval is the period of the value-log GC ticker; zero or negative disables it.
	GCInterval time.Duration
	// CompactInterval is the least time between two compactions that give the space of
	// deleted keys (drained outbox items) back to the file system; zero or negative disables
	// them. Compactions run from the GC ticker, so never more often than GCInterval.
	CompactInterval time.Duration
	// InMemory keeps everything in memory (tests, dry runs); dir is ignored.
	InMemory bool
	// ReadOnly opens an existing store without writing to it (for copying it with Backup).
	// It fails while another process has the store open for writing.
	ReadOnly bool
	// MinFreeBytes is the free space the store keeps on its file system (see ErrDiskFull).
	// Zero keeps only the room the write-ahead logs need; negative disables the check.
	MinFreeBytes int64

	// freeSpace replaces the file system query (tests).
	freeSpace func(dir string) (uint64, error)
}

// blockCacheSize is the size of Badger's cache of decompressed table blocks. Tables are
// ZSTD-compressed (the STIX bodies make up most of the store and shrink about fourfold), and
// Badger requires a block cache with compression; a small one is enough because the
// reconciler's hot reads are the small digest and state records.
const blockCacheSize = 8 << 20

// ErrClosed is returned by every method after Close.
var ErrClosed = errors.New("store is closed")

// Store is the durable state of every sink. It is safe for concurrent use. Operations on one
// sink are serialised by a per-sink lock and operations on different sinks run in parallel;
// since every key belongs to one sink (or is a watermark, written blindly and retried on
// badger.ErrConflict), the store's own transactions never conflict.
type Store struct {
	dir           string // "" in memory
	db            *badger.DB
	readOnly      bool
	space         *space // nil: no free-space check (in memory, read-only)
	log           logrus.FieldLogger
	refreshWindow time.Duration

	// closeMu is held shared by every operation and exclusively by Close.
	closeMu sync.RWMutex
	closed  bool

	mu    sync.Mutex // guards sinks
	sinks map[string]*sinkRuntime

	stopGC chan struct{}
	gcDone sync.WaitGroup
	// written counts committed write transactions; the GC loop compares it between ticks to
	// skip a compaction when nothing was written. (Badger's MaxVersion reads the memtable's
	// version without its lock, a data race with concurrent writes.)
	written atomic.Uint64
}

// sinkRuntime is the in-memory part of a sink: its lock, readiness signal and in-flight
// batches.
type sinkRuntime struct {
	mu       sync.Mutex
	ready    chan struct{}
	inflight map[uint64]bool // seqs handed out by Begin and not yet ended
	// inflightIDs are the ids of the items in flight: Begin never hands out a second version
	// of one of them, so versions of an id reach the sink one at a time, in order.
	inflightIDs map[string]bool
	// held are the relationships Begin held back (Batch.Held) and has not handed out since.
	held map[string]bool
}

// Close stops the GC ticker and closes Badger. Batches in flight are not ended: their items
// stay in the outbox and are handed out again after the next Open.
func (s *Store) Close() error {
	s.closeMu.Lock() // waits for operations in progress
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.stopGC)
	s.gcDone.Wait()
	if s.dir != "" && !s.readOnly {
		if err := s.updateMarker(); err != nil {
			s.log.WithError(err).Warn("store: could not update the identity marker")
		}
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close badger: %w", err)
	}
	return nil
}

// Backup writes a consistent snapshot of the whole store to w, in Badger's backup format.
func (s *Store) Backup(w io.Writer) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if _, err := s.db.Backup(w, 0); err != nil {
		return fmt.Errorf("back up store: %w", err)
	}
	return nil
}

// Load adds a snapshot written by Backup to the store. It is meant for an empty store (a dry
// run's scratch copy); loading into a store in use would mix two states.
func (s *Store) Load(r io.Reader) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if err := s.db.Load(r, 256); err != nil {
		return fmt.Errorf("load store snapshot: %w", err)
	}
	if s.dir != "" {
		return s.adoptIdentity()
	}
	return nil
}

// gcLoop runs Badger's value-log GC on every tick until it has nothing to rewrite, and a
// compaction (as Compact) when compactEvery has passed since the last one and something was
// written since. ErrNoRewrite is the normal answer while values stay inline in the LSM tree.
func (s *Store) gcLoop(every, compactEvery time.Duration) {
	defer s.gcDone.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	lastCompact, compactedWrites := time.Now(), s.written.Load()
	for {
		select {
		case <-s.stopGC:
			return
		case <-t.C:
		}
		if n := s.written.Load(); compactEvery > 0 && time.Since(lastCompact) >= compactEvery && n != compactedWrites {
			if err := s.db.Flatten(2); err != nil {
				s.log.WithError(err).Warn("badger compaction failed")
			}
			lastCompact, compactedWrites = time.Now(), n
		}
		for {
			err := s.db.RunValueLogGC(0.5)
			if err == nil {
				continue
			}
			if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
				s.log.WithError(err).Warn("badger value-log GC failed")
			}
			break
		}
	}
}

// enter marks an operation in progress; the caller must call s.leave when done.
func (s *Store) enter() error {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	return nil
}

func (s *Store) leave() { s.closeMu.RUnlock() }

// lockSink enters the store and locks the sink's runtime (creating it). The caller must call
// unlockSink.
func (s *Store) lockSink(sink string) (*sinkRuntime, error) {
	if sink == "" {
		return nil, errors.New("empty sink name")
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	if err := s.space.checkAny(); err != nil {
		s.leave()
		return nil, err
	}
	s.mu.Lock()
	rt := s.runtime(sink)
	s.mu.Unlock()
	rt.mu.Lock()
	return rt, nil
}

func (s *Store) unlockSink(rt *sinkRuntime) {
	rt.mu.Unlock()
	s.leave()
}

// runtime returns the sink's runtime; s.mu must be held.
func (s *Store) runtime(sink string) *sinkRuntime {
	rt, ok := s.sinks[sink]
	if !ok {
		rt = &sinkRuntime{ready: make(chan struct{}, 1), inflight: make(map[uint64]bool), inflightIDs: make(map[string]bool), held: make(map[string]bool)}
		s.sinks[sink] = rt
	}
	return rt
}

// Ready returns a channel that receives a value (non-blocking, coalesced) whenever something
// is enqueued for sink, so a pusher can wait for work instead of polling. A pusher should
// drain the outbox with Begin until it is empty before waiting on the channel again.
func (s *Store) Ready(sink string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runtime(sink).ready
}

func (rt *sinkRuntime) signal() {
	select {
	case rt.ready <- struct{}{}:
	default:
	}
}

// update runs fn in a read-write transaction, retrying on badger.ErrConflict. It refuses
// when the disk is full (see ErrDiskFull).
func (s *Store) update(fn func(txn *badger.Txn) error) error {
	if err := s.space.checkIntake(); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		err := s.db.Update(fn)
		if errors.Is(err, badger.ErrConflict) && attempt < 100 {
			continue
		}
		if err == nil {
			s.written.Add(1)
		}
		return err
	}
}

// readRecord reads and decodes the value under key; found is false when there is none. what
// names the record in errors.
func readRecord[T any](txn *badger.Txn, key []byte, what string, decode func([]byte) (T, error)) (rec T, found bool, err error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return rec, false, nil
	}
	if err == nil {
		err = item.Value(func(v []byte) error {
			var derr error
			rec, derr = decode(v)
			return derr
		})
	}
	if err != nil {
		var zero T
		return zero, false, fmt.Errorf("read %s: %w", what, err)
	}
	return rec, true, nil
}

func readMeta(txn *badger.Txn, sink string) (sinkMeta, error) {
	m, found, err := readRecord(txn, metaKey(sink), "meta of sink "+sink, decodeMeta)
	if !found && err == nil {
		return sinkMeta{Head: 1, Tail: 1}, nil
	}
	return m, err
}

func readState(txn *badger.Txn, sink, base string) (indicatorState, bool, error) {
	return readRecord(txn, stateKey(sink, base), "state of "+base, decodeState)
}

func readIDList(txn *badger.Txn, sink, event string) ([]string, error) {
	ids, _, err := readRecord(txn, eventKey(sink, event), "id list of event "+event, decodeIDList)
	return ids, err
}

// badgerLogger passes Badger's warnings and errors to logrus, its info lines (tables opened,
// compactions, files deleted) at debug level, and drops its debug lines
// (badger.WithLoggingLevel only applies to Badger's own default logger).
type badgerLogger struct{ l logrus.FieldLogger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.l.Errorf(trimNewline(f), a...) }
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warningf(trimNewline(f), a...) }
func (b badgerLogger) Infof(f string, a ...any)    { b.l.Debugf(trimNewline(f), a...) }
func (badgerLogger) Debugf(string, ...any)         {}

func trimNewline(f string) string {
	if n := len(f); n > 0 && f[n-1] == '\n' {
		return f[:n-1]
	}
	return f
}
