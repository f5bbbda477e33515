package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

// TestDiskFullRefusesIntakeWithAClearError covers the free-space logic without privileges:
// the file system's free space is injected. Below MinFreeBytes, Apply, RemoveEvent and
// watermarks are refused with ErrDiskFull (the webhook answers 503), Writable says why, the
// outbox still drains down to a quarter of the reserve, and a store is not opened below that.
func TestDiskFullRefusesIntakeWithAClearError(t *testing.T) {
	var free atomic.Uint64
	free.Store(1 << 30)
	opts := Options{GCInterval: -1, MinFreeBytes: 8 << 20, freeSpace: func(string) (uint64, error) { return free.Load(), nil }}
	dir := t.TempDir()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply("ws", "e1", benchEvent(1, "v1"), t0); err != nil {
		t.Fatal(err)
	}
	if got, err := s.FreeBytes(); err != nil || got != 1<<30 {
		t.Errorf("FreeBytes = %d, %v", got, err)
	}

	free.Store(5 << 20) // below the reserve, above a quarter of it
	if err := s.Writable(); !errors.Is(err, ErrDiskFull) || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Writable = %v, want ErrDiskFull", err)
	}
	if _, err := s.Apply("ws", "e2", benchEvent(2, "v1"), t0); !errors.Is(err, ErrDiskFull) {
		t.Errorf("Apply on a full disk: %v, want ErrDiskFull", err)
	}
	if _, err := s.RemoveEvent("ws", "e1", t0); !errors.Is(err, ErrDiskFull) {
		t.Errorf("RemoveEvent on a full disk: %v, want ErrDiskFull", err)
	}
	if err := s.SetWatermark("x", t0); !errors.Is(err, ErrDiskFull) {
		t.Errorf("SetWatermark on a full disk: %v, want ErrDiskFull", err)
	}
	b, err := s.Begin("ws", 10)
	if err != nil {
		t.Fatalf("Begin above the floor: %v", err)
	}
	if err := s.End(b, Outcome{Accepted: []int{0}}, t0); err != nil {
		t.Fatalf("End above the floor: %v", err)
	}

	free.Store(1 << 20) // below the floor: nothing writes
	if _, err := s.Begin("ws", 10); !errors.Is(err, ErrDiskFull) {
		t.Errorf("Begin below the floor: %v, want ErrDiskFull", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, opts); !errors.Is(err, ErrDiskFull) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("open on a full disk: %v, want ErrDiskFull naming the directory", err)
	}

	free.Store(1 << 30) // space freed: everything acknowledged is there
	s, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Writable(); err != nil {
		t.Errorf("Writable after space was freed: %v", err)
	}
	st, err := s.Stats("ws")
	if err != nil || st.Live != benchEventSize || st.OutboxDepth != benchEventSize-1 {
		t.Errorf("after the full disk: %+v, %v", st, err)
	}
}

const diskFullChildEnv = "STORE_DISKFULL_CHILD"

// TestDiskFullOnTmpfs fills a real 8 MiB tmpfs. Before the free-space reserve, Badger's
// memory-mapped write-ahead log faulted (SIGBUS) when the file system filled, and a restart
// while still full faulted again in replay. Now the writer stops with ErrDiskFull, a restart
// on the full file system says "disk full", and once space is freed every event acknowledged
// before is there. It needs root (mount) and skips otherwise.
func TestDiskFullOnTmpfs(t *testing.T) {
	if dir := os.Getenv(diskFullChildEnv); dir != "" {
		diskFullChild(dir)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs; TestDiskFullRefusesIntakeWithAClearError covers the logic")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (%v: %s)", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	dir := filepath.Join(mnt, "state")

	// 1. Write until the store refuses.
	out := runDiskFullChild(t, dir, "write")
	acked, err := strconv.Atoi(field(out, "acked"))
	if err != nil || acked == 0 {
		t.Fatalf("writer acknowledged %q events: %s", field(out, "acked"), out)
	}
	if !strings.Contains(field(out, "error"), "disk full") {
		t.Fatalf("the writer stopped without a disk-full error: %s", out)
	}
	t.Logf("writer: %d events acknowledged, then: %s", acked, field(out, "error"))

	// 2. Fill what is left, then restart on the full file system.
	filler, err := os.Create(filepath.Join(mnt, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := filler.Write(chunk); err != nil {
			break
		}
	}
	filler.Close()
	out = runDiskFullChild(t, dir, "open")
	if !strings.Contains(field(out, "error"), "disk full") {
		t.Fatalf("open on a full file system: %s; want a disk-full error", out)
	}
	t.Logf("restart while full: %s", field(out, "error"))

	// 3. Space freed: every acknowledged event is there.
	if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
		t.Fatal(err)
	}
	out = runDiskFullChild(t, dir, "count")
	if got := field(out, "live"); got != strconv.Itoa(acked*benchEventSize) {
		t.Fatalf("after freeing space: live %s, want %d (%s)", got, acked*benchEventSize, out)
	}
}

// runDiskFullChild runs one step in a child process, so that a fault kills the child, not the
// test, and fails the test if the child did not exit normally.
func runDiskFullChild(t *testing.T, dir, step string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDiskFullOnTmpfs$")
	cmd.Env = append(os.Environ(), diskFullChildEnv+"="+dir+"|"+step)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if ws := exit.Sys().(syscall.WaitStatus); ws.Signaled() {
			t.Fatalf("step %s: the store process died of %v on the full disk: %s", step, ws.Signal(), firstLines(stderr.String()))
		}
	}
	if strings.Contains(stderr.String(), "SIGBUS") {
		t.Fatalf("step %s: the store process faulted on the full disk: %s", step, firstLines(stderr.String()))
	}
	if err != nil {
		t.Fatalf("step %s: %v: %s", step, err, firstLines(stderr.String()))
	}
	return stdout.String()
}

func diskFullChild(env string) {
	dir, step, _ := strings.Cut(env, "|")
	report := func(k string, v any) { fmt.Printf("%s=%v\n", k, v) }
	s, err := Open(dir, Options{GCInterval: -1, MinFreeBytes: 1 << 20})
	if err != nil {
		report("error", err)
		os.Exit(0)
	}
	switch step {
	case "write":
		acked := 0
		for e := 0; ; e++ {
			if _, err := s.Apply("ws", strconv.Itoa(e), benchEvent(e, "v1"), t0); err != nil {
				report("error", err)
				break
			}
			acked++
		}
		report("acked", acked)
	case "count":
		st, err := s.Stats("ws")
		report("live", st.Live)
		if err != nil {
			report("error", err)
		}
	}
	if err := s.Close(); err != nil {
		report("close", err)
	}
	os.Exit(0)
}

func field(out, key string) string {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+"="); ok {
			return v
		}
	}
	return ""
}

func firstLines(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[:min(40, len(lines))], "\n") // the fault and its goroutine
}
