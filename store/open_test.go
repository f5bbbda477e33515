package store

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// fillTestStore writes a few events into a store in dir and closes it.
func fillTestStore(t *testing.T, dir string, events int) {
	t.Helper()
	s, err := Open(dir, Options{GCInterval: -1})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	for e := range events {
		if _, err := s.Apply("ws", indicatorID(e), benchEvent(e, "v1"), t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkTestStore reopens the store in dir and checks that it holds every event fillTestStore
// wrote.
func checkTestStore(t *testing.T, dir string, events int) {
	t.Helper()
	s, err := Open(dir, Options{GCInterval: -1})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	st, err := s.Stats("ws")
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(events * benchEventSize); st.Live != want || st.OutboxDepth != want {
		t.Errorf("live %d, outbox %d; want %d of each", st.Live, st.OutboxDepth, want)
	}
}

// TestStateFilesArePrivate: the state holds TLP:RED and TLP:AMBER bodies. A state directory
// that already exists with 0755 (as the Dockerfile creates it) and files Badger wrote with
// 0644 are tightened to 0700 and 0600 at open, and the files written afterwards are 0600.
func TestStateFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "leftover"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	syscall.Umask(0o022) // a process that did not tighten its umask
	fillTestStore(t, dir, 3)
	checkPrivate(t, dir)

	// Loosened again from outside (a restore, a copy): the next open tightens everything.
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			mode := fs.FileMode(0o644)
			if d.IsDir() {
				mode = 0o755
			}
			_ = os.Chmod(p, mode)
		}
		return nil
	})
	syscall.Umask(0o022)
	fillTestStore(t, dir, 4)
	checkPrivate(t, dir)
}

func checkPrivate(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", p, info.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestOpenAfterCrashTruncatedFile: a SIGKILL right after Badger created a memtable or value-log
// file and before it sized it leaves a zero-length file; Badger's next open initialises the
// file but fails with "Create a new file", and only the open after it succeeds (the store's
// TestCrashRecovery failed on exactly this). Open recognises the error and opens again.
func TestOpenAfterCrashTruncatedFile(t *testing.T) {
	for _, name := range []string{"00099.mem", "000099.vlog"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			fillTestStore(t, dir, 3)
			if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			checkTestStore(t, dir, 3)
		})
	}
}
