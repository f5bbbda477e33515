package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/ristretto/v2/z"
	"github.com/sirupsen/logrus"
)

// Open opens (creating if needed) the store in dir with Badger options tuned for a small
// daemon (see spec go-ecosystem §1.2) and synchronous writes, so that a committed call
// survives power loss. The directory is locked: a second Open of the same dir fails.
//
// The state is private: dir is made 0700 and every file in it 0600 whatever existed before,
// and the process umask gains 077 so that the files Badger creates later are 0600 too.
func Open(dir string, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	if opts.RefreshWindow < 0 {
		return nil, fmt.Errorf("open store: refresh window %s is negative", opts.RefreshWindow)
	}
	bopts := badger.DefaultOptions(dir).
		WithMemTableSize(16 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(4).
		WithBlockCacheSize(blockCacheSize).
		WithCompression(options.ZSTD).
		WithZSTDCompressionLevel(1).
		WithNumCompactors(2).
		WithValueLogFileSize(64 << 20).
		WithSyncWrites(true).
		WithChecksumVerificationMode(options.OnBlockRead).
		WithVerifyValueChecksum(true).
		WithLogger(badgerLogger{log.WithField("component", "badger")})
	if opts.InMemory {
		bopts = bopts.WithDir("").WithValueDir("").WithInMemory(true)
	}
	if opts.ReadOnly {
		bopts = bopts.WithReadOnly(true)
	}
	if !opts.InMemory && !opts.ReadOnly {
		if err := makePrivate(dir); err != nil {
			return nil, err
		}
	}
	space := newSpace(dir, opts)
	if err := space.checkAny(); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	var quarantine string
	if !opts.InMemory {
		unlock, locked, err := lockDir(dir, opts.ReadOnly)
		if err != nil {
			return nil, err
		}
		if locked { // else Badger reports who holds the store
			quarantine, err = checkTables(dir, bopts)
			unlock()
			if err != nil {
				return nil, err
			}
			if quarantine != "" {
				log.WithField("quarantine", quarantine).Warn("store: table files the MANIFEST does not reference are kept aside until the store's identity is checked")
			}
		}
	}
	db, err := openBadger(bopts, log)
	if err != nil {
		return nil, fmt.Errorf("open badger at %q: %w", dir, err)
	}
	if !opts.InMemory {
		if err := checkIdentity(db, dir, opts.ReadOnly, quarantine); err != nil {
			db.Close()
			return nil, err
		}
	}
	s := &Store{
		db:            db,
		readOnly:      opts.ReadOnly,
		space:         space,
		log:           log,
		refreshWindow: opts.RefreshWindow,
		sinks:         make(map[string]*sinkRuntime),
		stopGC:        make(chan struct{}),
	}
	if !opts.InMemory {
		s.dir = dir
	}
	if opts.GCInterval > 0 && !opts.InMemory && !opts.ReadOnly {
		s.gcDone.Add(1)
		go s.gcLoop(opts.GCInterval, opts.CompactInterval)
	}
	return s, nil
}

// makePrivate creates dir 0700, or tightens an existing one (a package, an image or an older
// version may have created it 0755 and Badger writes its files 0644) to 0700 with every file
// in it 0600, and adds 077 to the process umask so that later files are created 0600.
func makePrivate(dir string) error {
	restrictUmask()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mode := fs.FileMode(0o600)
		if d.IsDir() {
			mode = 0o700
		} else if !d.Type().IsRegular() {
			return nil
		}
		return os.Chmod(p, mode)
	})
	if err != nil {
		return fmt.Errorf("make state directory %s private: %w", dir, err)
	}
	return nil
}

// openBadger opens Badger, once more when the first attempt failed on a file a crash left
// empty: a SIGKILL right after Badger created a memtable or value-log file and before it
// sized it leaves a zero-length file, which the next open initialises but then reports as an
// error ("Create a new file", ristretto's z.NewFile, which Badger wraps as text); the open
// after it succeeds.
func openBadger(bopts badger.Options, log logrus.FieldLogger) (*badger.DB, error) {
	db, err := openRecovering(bopts)
	if err != nil && strings.Contains(err.Error(), z.NewFile.Error()) {
		log.WithError(err).Warn("store: a memtable or value-log file left empty by a crash was initialised; opening again")
		db, err = openRecovering(bopts)
	}
	return db, err
}

// openRecovering turns a panic of badger.Open in this goroutine into ErrDamaged. (Panics in
// the goroutines Badger starts cannot be recovered; checkTables reads what they would.)
func openRecovering(bopts badger.Options) (db *badger.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, damaged(bopts.Dir, fmt.Sprintf("Badger failed opening it (%v)", oneLine(fmt.Sprint(r))))
		}
	}()
	return badger.Open(bopts)
}

// ErrDamaged is returned by Open when the store's files are damaged.
var ErrDamaged = errors.New("store is damaged")
