package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/google/uuid"
)

// A damaged store must never open as an empty or partial one: an empty store forgets every
// revocation owed. Badger alone does not prevent that: it takes a truncated MANIFEST for the
// end of its history and deletes the tables it no longer references (nothing logged), panics
// in its own goroutines on a truncated table, and reads a table with a flipped bit without
// complaint unless asked to verify. So, before Badger opens the directory, every table the
// MANIFEST references is read and its checksums verified (a panic there is in our goroutine
// and becomes an error), and tables the MANIFEST does not reference are kept by hard links
// in a quarantine directory instead of being lost. After Badger opened it, the store's
// identity key must match the marker file written beside it when the store was created.

// markerFile is the store's identity marker, beside Badger's files.
const markerFile = "LISTENER-STORE.json"

// identityKey holds the store's identity in Badger; it is written once, at creation.
var identityKey = []byte{kindIdentity}

// storeMarker is the content of markerFile.
type storeMarker struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	// Live is the number of live indicators over all sinks when the store was last opened or
	// closed; it only makes the refusal message concrete.
	Live    int64     `json:"live_indicators"`
	Updated time.Time `json:"updated"`
}

// damaged wraps ErrDamaged with what was found and what the operator can do.
func damaged(dir, what string) error {
	return fmt.Errorf("%w: %s. The store in %s is refused so that no revocation it owes is forgotten. "+
		"Either restore the directory from a backup (stop the listener, replace %s with the copy, start it), "+
		"or rebuild it from MISP: move it aside (mv %s %s.damaged) and run `listener sync -c <config>`, which "+
		"re-uploads everything MISP still has; indicators MISP deleted meanwhile are no longer known to the "+
		"new store and expire at their valid_until instead of being revoked",
		ErrDamaged, what, dir, dir, dir, dir)
}

// checkTables verifies, before Badger opens dir, every table the MANIFEST references, and
// hard-links the tables it does not reference into a quarantine directory (Badger deletes
// them at open). It returns that directory ("" when none was needed). A missing MANIFEST
// means a new (or wiped) store; the identity check after the open tells which.
func checkTables(dir string, bopts badger.Options) (quarantine string, err error) {
	f, err := os.Open(filepath.Join(dir, badger.ManifestFilename))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("open MANIFEST: %w", err)
	}
	manifest, _, err := badger.ReplayManifestFile(f, bopts.ExternalMagicVersion, bopts)
	f.Close()
	if err != nil {
		return "", damaged(dir, fmt.Sprintf("its MANIFEST cannot be read (%v)", err))
	}
	ssts, err := filepath.Glob(filepath.Join(dir, "*"+tableExt))
	if err != nil {
		return "", err
	}
	onDisk := make(map[uint64]string, len(ssts))
	for _, p := range ssts {
		if id, ok := table.ParseFileID(filepath.Base(p)); ok {
			onDisk[id] = p
		}
	}
	ids := make([]uint64, 0, len(manifest.Tables))
	for id := range manifest.Tables {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		p, ok := onDisk[id]
		if !ok {
			return "", damaged(dir, fmt.Sprintf("table %s listed in its MANIFEST is missing", table.IDToFilename(id)))
		}
		if err := verifyTable(p, id, manifest.Tables[id].Compression, bopts); err != nil {
			return "", damaged(dir, fmt.Sprintf("table %s is damaged (%v)", filepath.Base(p), err))
		}
		delete(onDisk, id)
	}
	if len(onDisk) == 0 {
		return "", nil
	}
	// Badger will delete these. A crash between writing a table and recording it leaves such
	// tables legitimately (their data is still in the tables or logs they were made from); a
	// damaged MANIFEST leaves the store's data in them. Keep them until the identity check
	// has told the two apart.
	quarantine = filepath.Join(dir, "quarantine-"+time.Now().UTC().Format("20060102T150405Z"))
	if err := os.MkdirAll(quarantine, 0o700); err != nil {
		return "", fmt.Errorf("create quarantine directory: %w", err)
	}
	for _, p := range onDisk {
		if err := os.Link(p, filepath.Join(quarantine, filepath.Base(p))); err != nil {
			return "", fmt.Errorf("keep unreferenced table %s: %w", filepath.Base(p), err)
		}
	}
	return quarantine, nil
}

const tableExt = ".sst"

// verifyTable reads one table into memory (never mapped: Badger's table type deletes a mapped
// file when its last reference goes) and verifies its index and every block's checksum. A
// panic in Badger's table code (a truncated table) is an error here.
func verifyTable(path string, id uint64, compression options.CompressionType, bopts badger.Options) (err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("unreadable: %v", oneLine(fmt.Sprint(r)))
		}
	}()
	t, err := table.OpenInMemoryTable(data, id, &table.Options{
		ReadOnly: true, ChkMode: options.OnTableRead, BlockSize: bopts.BlockSize, Compression: compression,
	})
	if err != nil {
		return err
	}
	return t.VerifyChecksum()
}

// oneLine folds a panic message onto one line of at most 300 bytes.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// checkIdentity compares the store's identity key with the marker file beside it, after Badger
// opened dir. A new store (neither) and a store written before markers existed (a key-less but
// non-empty database) get both. readOnly checks without writing.
func checkIdentity(db *badger.DB, dir string, readOnly bool, quarantine string) error {
	var id string
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(identityKey)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		id = string(v)
		return err
	})
	if err != nil {
		return damaged(dir, fmt.Sprintf("its identity cannot be read (%v)", err))
	}
	marker, err := readMarker(dir)
	if err != nil {
		return err
	}
	lost := ""
	if quarantine != "" {
		lost = fmt.Sprintf("; the tables Badger dropped are kept in %s", quarantine)
	}
	switch {
	case marker != nil && id == "":
		return damaged(dir, fmt.Sprintf("it was created on %s and held %d live indicators (%s), but its database has lost its identity: "+
			"Badger opened it as a new, empty or partial store%s", marker.Created.Format(time.RFC3339), marker.Live, markerFile, lost))
	case marker != nil && id != marker.ID:
		return damaged(dir, fmt.Sprintf("its database is store %s but %s names store %s%s", id, markerFile, marker.ID, lost))
	case readOnly:
		return nil
	case id == "":
		id = uuid.NewString()
		if err := db.Update(func(txn *badger.Txn) error { return txn.Set(identityKey, []byte(id)) }); err != nil {
			return fmt.Errorf("write store identity: %w", err)
		}
	}
	if quarantine != "" {
		// The identity held: the unreferenced tables were a crash's leftovers.
		if err := os.RemoveAll(quarantine); err != nil {
			return fmt.Errorf("remove quarantine directory: %w", err)
		}
	}
	if marker == nil {
		now := time.Now().UTC()
		return writeMarker(dir, storeMarker{ID: id, Created: now, Updated: now})
	}
	return nil
}

func readMarker(dir string) (*storeMarker, error) {
	data, err := os.ReadFile(filepath.Join(dir, markerFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", markerFile, err)
	}
	var m storeMarker
	if err := json.Unmarshal(data, &m); err != nil || m.ID == "" {
		return nil, damaged(dir, fmt.Sprintf("its marker %s is unreadable", markerFile))
	}
	return &m, nil
}

// writeMarker replaces the marker file atomically.
func writeMarker(dir string, m storeMarker) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, markerFile+".tmp")
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", markerFile, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, markerFile)); err != nil {
		return fmt.Errorf("write %s: %w", markerFile, err)
	}
	return nil
}

// adoptIdentity makes the marker name the identity the database now holds (after Load put a
// snapshot's identity into it).
func (s *Store) adoptIdentity() error {
	var id []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(identityKey)
		if err != nil {
			return err
		}
		id, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read store identity: %w", err)
	}
	m, err := readMarker(s.dir)
	if err != nil || m == nil || m.ID == string(id) {
		return err
	}
	m.ID, m.Updated = string(id), time.Now().UTC()
	return writeMarker(s.dir, *m)
}

// updateMarker records the current number of live indicators in the marker file. The caller
// holds the store open.
func (s *Store) updateMarker() error {
	m, err := readMarker(s.dir)
	if err != nil || m == nil {
		return err
	}
	var live int64
	err = s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte{kindMeta}
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			err := it.Item().Value(func(v []byte) error {
				meta, err := decodeMeta(v)
				live += meta.Live
				return err
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("count live indicators: %w", err)
	}
	m.Live, m.Updated = live, time.Now().UTC()
	return writeMarker(s.dir, *m)
}
