package store

import (
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// fuzzTemplate is a small closed store (tables, MANIFEST, logs, marker) built once per process.
var fuzzTemplate = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "store-fuzz-template-")
	if err != nil {
		return "", err
	}
	s, err := Open(dir, Options{GCInterval: -1})
	if err != nil {
		return "", err
	}
	for e := range 3 {
		if _, err := s.Apply("ws", indicatorID(e), benchEvent(e, "v1"), t0); err != nil {
			return "", err
		}
	}
	if b, err := s.Begin("ws", 50); err == nil {
		_ = s.End(b, Outcome{Accepted: []int{0, 1, 2}}, t0)
	}
	if err := s.SetWatermark("reconcile/full", t0); err != nil {
		return "", err
	}
	return dir, s.Close()
})

// FuzzOpenMutatedStore mutates one file of a closed store (overwrites bytes at an offset, or
// cuts it short) and opens it: Open must return an error or a store that answers reads, and
// never panic or hang.
//
//	go test ./store -run '^$' -fuzz FuzzOpenMutatedStore -fuzztime 10m
func FuzzOpenMutatedStore(f *testing.F) {
	f.Add(uint8(0), uint32(0), []byte{0xff}, false)
	f.Add(uint8(1), uint32(100), []byte("garbage"), false)
	f.Add(uint8(2), uint32(8), []byte{}, true)
	f.Add(uint8(3), uint32(4096), []byte{0, 0, 0, 0}, false)
	f.Add(uint8(4), uint32(20), []byte{0x10}, true)
	f.Fuzz(func(t *testing.T, file uint8, offset uint32, data []byte, truncate bool) {
		template, err := fuzzTemplate()
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		entries, err := os.ReadDir(template)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			if e.Type().IsRegular() && e.Name() != "LOCK" {
				names = append(names, e.Name())
			}
		}
		slices.Sort(names)
		for _, n := range names {
			b, err := os.ReadFile(filepath.Join(template, n))
			if err != nil {
				t.Fatal(err)
			}
			if n == names[int(file)%len(names)] {
				b = mutate(b, int(offset), data, truncate)
			}
			if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			s, err := Open(dir, Options{GCInterval: -1, MinFreeBytes: -1})
			if err != nil {
				return
			}
			defer s.Close()
			if _, err := s.Sinks(); err != nil {
				return
			}
			_, _ = s.Stats("ws")
			_ = s.Events("ws", func(string) error { return nil })
			if b, err := s.Begin("ws", 100); err == nil {
				_ = s.End(b, Outcome{}, t0)
			}
		}()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Fatalf("open of a store with %s mutated hangs", names[int(file)%len(names)])
		}
	})
}

func mutate(b []byte, offset int, data []byte, truncate bool) []byte {
	if len(b) == 0 {
		return append(b, data...)
	}
	offset %= len(b)
	if truncate {
		return b[:offset]
	}
	out := slices.Clone(b)
	for i, c := range data {
		if offset+i >= len(out) {
			break
		}
		out[offset+i] = c
	}
	return out
}
