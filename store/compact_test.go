package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mispsentinel/listener/stix"
)

// allocatedBytes is the disk space the files below dir really take (not their sparse size).
func allocatedBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	err := filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && !info.IsDir() {
			total += st.Blocks * 512
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

// TestCompactGivesDrainedSpaceBack fills an outbox, drains it, and checks that a compaction
// gives most of the drained items' space back to the file system.
func TestCompactGivesDrainedSpaceBack(t *testing.T) {
	if _, err := os.Stat("/proc/self"); err != nil {
		t.Skip("needs a Linux file system to read allocated blocks")
	}
	dir := t.TempDir()
	s, err := Open(dir, Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	now := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	pad := strings.Repeat("x", 800)
	for e := 0; e < 200; e++ {
		objs := make([]stix.Object, 100)
		for i := range objs {
			id := fmt.Sprintf("indicator--%08x-0000-4000-8000-%012x", e, i)
			objs[i] = stix.Object{ID: id, Type: "indicator", Hash: "v1",
				Body: fmt.Appendf(nil, `{"type":"indicator","id":%q,"pattern":"[url:value = 'x']","description":%q}`, id, pad)}
		}
		if _, err := s.Apply("sink", fmt.Sprintf("event-%d", e), objs, now); err != nil {
			t.Fatal(err)
		}
	}
	var drained int64
	for {
		b, err := s.Begin("sink", 100)
		if err != nil {
			t.Fatal(err)
		}
		acc := make([]int, len(b.Items))
		for i, it := range b.Items {
			acc[i] = i
			drained += int64(len(it.Object))
		}
		if err := s.End(b, Outcome{Accepted: acc}, now); err != nil {
			t.Fatal(err)
		}
		if len(b.Items) == 0 {
			break
		}
	}
	// Closing flushes the memtables, so that what the test measures is on disk in tables.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, Options{GCInterval: -1}); err != nil {
		t.Fatal(err)
	}
	before := allocatedBytes(t, dir)
	if err := s.Compact(); err != nil {
		t.Fatal(err)
	}
	after := allocatedBytes(t, dir)
	t.Logf("drained %d KB of outbox items; disk %d KB before compaction, %d KB after", drained>>10, before>>10, after>>10)
	// Tables are compressed, so the drained items took far less disk than their size; what
	// the compaction gives back is measured against the disk they were on.
	if before-after < before/3 {
		t.Errorf("compaction gave back %d KB of %d KB, want at least a third (%d KB of items drained)", (before-after)>>10, before>>10, drained>>10)
	}
	if st, err := s.Stats("sink"); err != nil || st.Live != 20000 || st.OutboxDepth != 0 {
		t.Errorf("state after compaction: %+v, %v; want 20000 live, empty outbox", st, err)
	}
}
