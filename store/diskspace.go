package store

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/dustin/go-humanize"
)

// ErrDiskFull is returned when the file system of the store has less free space than the
// store keeps in reserve. Badger writes through memory-mapped files: a write into a mapped page
// the file system cannot back faults the process (SIGBUS) instead of failing, in the write-ahead
// log, in a table being flushed or compacted, and again in replay after a restart. So the store
// refuses to write before the file system is full: intake (Apply, RemoveEvent, watermarks)
// below MinFreeBytes, everything (the outbox's bookkeeping too) and Open below a quarter of it.
// Callers answer it as "retry later" (the webhook: 503).
var ErrDiskFull = errors.New("disk full")

// space checks the free space of the store's file system.
type space struct {
	dir     string
	reserve uint64 // intake stops below this
	free    func(dir string) (uint64, error)
}

func newSpace(dir string, opts Options) *space {
	if opts.InMemory || opts.ReadOnly || opts.MinFreeBytes < 0 {
		return nil
	}
	s := &space{dir: dir, reserve: uint64(opts.MinFreeBytes), free: opts.freeSpace}
	if s.free == nil {
		s.free = freeBytes
	}
	return s
}

// check returns ErrDiskFull when fewer than reserve bytes are free besides the room the
// memtables' write-ahead logs will need when Badger flushes them into tables (as much as the
// logs hold). A nil space never refuses.
func (sp *space) check(reserve uint64, what string) error {
	if sp == nil {
		return nil
	}
	free, err := sp.free(sp.dir)
	if err != nil {
		return fmt.Errorf("read free space of %s: %w", sp.dir, err)
	}
	need := reserve + walBytes(sp.dir)
	if free >= need {
		return nil
	}
	return fmt.Errorf("%w: %s free on the file system of %s, and the store needs %s (its reserve and room to flush its write-ahead log) so that Badger never writes into a full disk; %s is refused until space is freed",
		ErrDiskFull, humanize.IBytes(free), sp.dir, humanize.IBytes(need), what)
}

// walBytes is the disk space the memtables' write-ahead logs (*.mem, sparse files) occupy.
func walBytes(dir string) uint64 {
	mems, _ := filepath.Glob(filepath.Join(dir, "*.mem"))
	var total uint64
	for _, p := range mems {
		total += diskUsage(p)
	}
	return total
}

func (sp *space) checkIntake() error {
	if sp == nil {
		return nil
	}
	return sp.check(sp.reserve, "new data")
}

func (sp *space) checkAny() error {
	if sp == nil {
		return nil
	}
	return sp.check(sp.reserve/4, "every write")
}

// FreeBytes returns the free space of the store's file system (0 for an in-memory or
// read-only store).
func (s *Store) FreeBytes() (uint64, error) {
	if s.space == nil {
		return 0, nil
	}
	return s.space.free(s.space.dir)
}

// Writable returns nil when the store accepts new data, else an ErrDiskFull saying why: the
// webhook and readiness consult it to refuse intake (503) before anything is received.
func (s *Store) Writable() error { return s.space.checkIntake() }
