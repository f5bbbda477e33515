package store

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/mispsentinel/listener/stix"
)

// Benchmarks run only under -bench. The 1,000,000-indicator state takes a few minutes to
// build; see docs/BENCHMARKS.md for the command and recorded figures.

const benchEventSize = 100

var benchSettle = flag.Duration("store.benchsettle", 15*time.Second, "idle time before BenchmarkState1M measures memory")

var benchStateSize = flag.Int("store.benchstate", 1_000_000, "indicators in BenchmarkState1M's state")

// benchIndicator is a realistic indicator body (872 bytes, like the converter's).
func benchIndicator(n int, version string) stix.Object {
	id := fmt.Sprintf("indicator--%08x-%04x-4%03x-8000-%012x", n, n%0xffff, n%0xfff, n)
	body, _ := json.Marshal(map[string]any{
		"type": "indicator", "spec_version": "2.1", "id": id,
		"created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
		"name":         fmt.Sprintf("ip-dst: 10.%d.%d.%d", n>>16&255, n>>8&255, n&255),
		"description":  "MISP event 42: C2 infrastructure observed in campaign " + version,
		"pattern":      fmt.Sprintf("[ipv4-addr:value = '10.%d.%d.%d']", n>>16&255, n>>8&255, n&255),
		"pattern_type": "stix", "valid_from": "2026-01-01T00:00:00.000Z",
		"indicator_types":   []string{"malicious-activity"},
		"kill_chain_phases": []map[string]string{{"kill_chain_name": "misp-category", "phase_name": "network-activity"}},
		"labels":            []string{"misp:type=\"ip-dst\"", "misp:category=\"Network activity\"", "tlp:amber"},
		"confidence":        75, "lang": "en",
		"created_by_ref":      "identity--00000000-0000-4000-8000-0000000000aa",
		"object_marking_refs": []string{"marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"},
		"external_references": []map[string]string{{"source_name": "misp", "external_id": id[11:]}},
	})
	return stix.Object{ID: id, Type: "indicator", Hash: version, Body: body}
}

func benchEvent(e int, version string) []stix.Object {
	objs := make([]stix.Object, benchEventSize)
	for i := range objs {
		objs[i] = benchIndicator(e*benchEventSize+i, version)
	}
	return objs
}

// memory reads the process's resident set from procfs after returning freed memory to the
// OS: anonymous (heap, stacks, Badger's memtables and caches) and file-backed (Badger's
// mmapped tables and value log; clean pages the kernel can drop under pressure), in MB.
func memory(b *testing.B) (anon, file float64) {
	runtime.GC()
	debug.FreeOSMemory()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skip("no /proc/self/status: RSS cannot be measured on this system")
	}
	for line := range bytes.Lines(data) {
		f := bytes.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(string(f[1]), 64)
		switch string(f[0]) {
		case "RssAnon:":
			anon = kb / 1024
		case "RssFile:":
			file = kb / 1024
		}
	}
	return anon, file
}

func reportMemory(b *testing.B) {
	anon, file := memory(b)
	b.ReportMetric(anon, "MB-rss-anon")
	b.ReportMetric(file, "MB-rss-file")
	b.ReportMetric(heapMB(), "MB-heap")
}

func heapMB() float64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapInuse) / (1 << 20)
}

func dirMB(dir string) float64 {
	var total int64
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				total += st.Blocks * 512 // allocated, not the sparse apparent size
			} else {
				total += info.Size()
			}
		}
		return nil
	})
	return float64(total) / (1 << 20)
}

func drainAll(b *testing.B, s *Store, sink string, now time.Time) int {
	n := 0
	for {
		batch, err := s.Begin(sink, 100)
		if err != nil {
			b.Fatal(err)
		}
		if len(batch.Items) == 0 {
			return n
		}
		acc := make([]int, len(batch.Items))
		for i := range acc {
			acc[i] = i
		}
		if err := s.End(batch, Outcome{Accepted: acc}, now); err != nil {
			b.Fatal(err)
		}
		n += len(acc)
	}
}

// BenchmarkEnqueue measures Apply of 100 new indicators per call on an empty store.
func BenchmarkEnqueue(b *testing.B) {
	s := openTest(b, Options{GCInterval: -1})
	e := 0
	for b.Loop() {
		if _, err := s.Apply("ws", strconv.Itoa(e), benchEvent(e, "v1"), t0); err != nil {
			b.Fatal(err)
		}
		e++
	}
	b.ReportMetric(float64(e*benchEventSize)/b.Elapsed().Seconds(), "indicators/s")
}

// BenchmarkDequeue measures Begin(100)+End(all accepted) on a filled outbox.
func BenchmarkDequeue(b *testing.B) {
	s := openTest(b, Options{GCInterval: -1})
	e, n := 0, 0
	for b.Loop() {
		b.StopTimer()
		if _, err := s.Apply("ws", strconv.Itoa(e), benchEvent(e, "v1"), t0); err != nil {
			b.Fatal(err)
		}
		e++
		b.StartTimer()
		n += drainAll(b, s, "ws", t0)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "indicators/s")
}

// BenchmarkState1M builds a state of 1,000,000 sent indicators (10,000 events of 100) through
// the public API, then measures steady-state operations against it.
func BenchmarkState1M(b *testing.B) {
	total := *benchStateSize
	events := total / benchEventSize
	dir := b.TempDir()
	s, err := Open(dir, Options{GCInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	for e := range events {
		if _, err := s.Apply("ws", strconv.Itoa(e), benchEvent(e, "v1"), t0); err != nil {
			b.Fatal(err)
		}
	}
	enq := time.Since(start)
	start = time.Now()
	if n := drainAll(b, s, "ws", t0); n != total {
		b.Fatalf("drained %d", n)
	}
	deq := time.Since(start)
	busyAnon, busyFile := memory(b)
	busyHeap := heapMB()
	// Let compactions finish and Badger's allocator pool return idle table-builder buffers.
	time.Sleep(*benchSettle)
	anon, file := memory(b)
	fmt.Printf("BenchmarkState1M right after the build: RSS anon %.0f MB, file %.0f MB; heap %.0f MB\n", busyAnon, busyFile, busyHeap)
	fmt.Printf("BenchmarkState1M build: %d indicators enqueued in %v (%.0f/s), drained in %v (%.0f/s); settled: RSS anon %.0f MB, file %.0f MB; heap %.0f MB; disk %.0f MB\n",
		total, enq.Round(time.Millisecond), float64(total)/enq.Seconds(), deq.Round(time.Millisecond), float64(total)/deq.Seconds(),
		anon, file, heapMB(), dirMB(dir))

	b.Run("reconcile-unchanged-event", func(b *testing.B) {
		e := 0
		for b.Loop() {
			st, err := s.Apply("ws", strconv.Itoa(e%events), benchEvent(e%events, "v1"), t0)
			if err != nil || st.Unchanged != benchEventSize {
				b.Fatalf("%+v %v", st, err)
			}
			e++
		}
		b.ReportMetric(float64(e*benchEventSize)/b.Elapsed().Seconds(), "indicators/s")
		reportMemory(b)
	})
	b.Run("enqueue-changed-event", func(b *testing.B) {
		e := 0
		for b.Loop() {
			if _, err := s.Apply("ws", strconv.Itoa(e%events), benchEvent(e%events, "v2-"+strconv.Itoa(e)), t0); err != nil {
				b.Fatal(err)
			}
			e++
		}
		b.ReportMetric(float64(e*benchEventSize)/b.Elapsed().Seconds(), "indicators/s")
		reportMemory(b)
	})
	b.Run("dequeue-batch-100", func(b *testing.B) {
		n := 0
		for b.Loop() {
			batch, err := s.Begin("ws", 100)
			if err != nil {
				b.Fatal(err)
			}
			if len(batch.Items) == 0 {
				b.StopTimer()
				for e := range 100 {
					if _, err := s.Apply("ws", strconv.Itoa(e), benchEvent(e, "v3-"+strconv.Itoa(n)), t0); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				continue
			}
			acc := make([]int, len(batch.Items))
			for i := range acc {
				acc[i] = i
			}
			if err := s.End(batch, Outcome{Accepted: acc}, t0); err != nil {
				b.Fatal(err)
			}
			n += len(acc)
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "indicators/s")
		reportMemory(b)
		b.ReportMetric(dirMB(dir), "MB-disk")
	})
}
