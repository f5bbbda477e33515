package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// damagedStore builds a store of a few events in a fresh directory, closed, so that its data
// is in table files, and returns the directory and its table files.
func damagedStore(t *testing.T) (dir string, tables []string) {
	t.Helper()
	dir = t.TempDir()
	fillTestStore(t, dir, 5)
	tables, _ = filepath.Glob(filepath.Join(dir, "*.sst"))
	if len(tables) == 0 {
		t.Fatal("no table files after close")
	}
	return dir, tables
}

// expectDamaged opens dir and wants ErrDamaged with instructions, never a panic or an empty store.
func expectDamaged(t *testing.T, dir string) {
	t.Helper()
	s, err := Open(dir, Options{GCInterval: -1})
	if err == nil {
		st, serr := s.Stats("ws")
		s.Close()
		t.Fatalf("a damaged store opened (live %d, %v)", st.Live, serr)
	}
	if !errors.Is(err, ErrDamaged) {
		t.Fatalf("open: %v; want ErrDamaged", err)
	}
	for _, want := range []string{"backup", "listener sync"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not tell the operator about %q", err, want)
		}
	}
}

// TestTruncatedManifestIsRefused: Badger treats a truncated MANIFEST as the end of its
// history and deletes the tables it no longer references; the store came back empty (7,920
// live indicators → 0), forgetting every revocation owed. The store refuses to open instead.
func TestTruncatedManifestIsRefused(t *testing.T) {
	dir, tables := damagedStore(t)
	if err := os.Truncate(filepath.Join(dir, "MANIFEST"), 8); err != nil {
		t.Fatal(err)
	}
	expectDamaged(t, dir)
	// Badger deleted the tables it no longer referenced; the store kept them aside.
	for _, p := range tables {
		kept, _ := filepath.Glob(filepath.Join(dir, "quarantine-*", filepath.Base(p)))
		if len(kept) != 1 {
			t.Errorf("table %s was not kept in a quarantine directory", filepath.Base(p))
		}
	}
	expectDamaged(t, dir) // and the next start refuses too
}

// TestCrashLeftoverTableIsNotDamage: a table written but not yet recorded in the MANIFEST when
// the process died is a crash's leftover, not damage; the store opens and drops it.
func TestCrashLeftoverTableIsNotDamage(t *testing.T) {
	dir, tables := damagedStore(t)
	data, err := os.ReadFile(tables[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "000999.sst"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	checkTestStore(t, dir, 5)
	if left, _ := filepath.Glob(filepath.Join(dir, "quarantine-*")); len(left) != 0 {
		t.Errorf("quarantine left behind: %v", left)
	}
}

// TestTruncatedTableIsRefused: a table cut short made Badger panic at open.
func TestTruncatedTableIsRefused(t *testing.T) {
	dir, tables := damagedStore(t)
	info, err := os.Stat(tables[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(tables[0], info.Size()/2); err != nil {
		t.Fatal(err)
	}
	expectDamaged(t, dir)
}

// TestBitFlippedTableIsRefused: one flipped bit in a table's data opened silently.
func TestBitFlippedTableIsRefused(t *testing.T) {
	dir, tables := damagedStore(t)
	data, err := os.ReadFile(tables[0])
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/3] ^= 0x10
	if err := os.WriteFile(tables[0], data, 0o600); err != nil {
		t.Fatal(err)
	}
	expectDamaged(t, dir)
}
