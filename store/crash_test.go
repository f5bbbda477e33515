package store

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/mispsentinel/listener/stix"
)

// The crash test runs a child process (this test binary again, selected by crashChildEnv)
// that applies event versions and drains the outbox as fast as it can, logging every step
// to a journal that it fsyncs: an intent line before each call and a done line after it
// returns. The parent kills it with SIGKILL at random moments, reopens the database and
// checks it against the journal.

const (
	crashChildEnv = "STORE_CRASH_CHILD_DIR"
	crashSeedEnv  = "STORE_CRASH_CHILD_SEED"
	crashSink     = "ws"
	crashEvents   = 3
	crashPool     = 12 // ids per event
)

type crashLine struct {
	Op       string            `json:"op"` // P apply intent, E applied, B end intent, A ended
	Event    string            `json:"event,omitempty"`
	Desired  map[string]string `json:"desired,omitempty"`
	Accepted []crashUpload     `json:"accepted,omitempty"`
	Rejected []uint64          `json:"rejected,omitempty"`
}

type crashUpload struct {
	Seq      uint64 `json:"seq"`
	ID       string `json:"id"`
	Modified string `json:"modified"`
	Revoked  bool   `json:"revoked"`
}

func crashEvent(e int) string { return fmt.Sprint("event-", e) }

func crashID(e, i int) string { return indicatorID(1000*e + i) }

func TestCrashRecovery(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		seed, _ := strconv.ParseInt(os.Getenv(crashSeedEnv), 10, 64)
		runCrashChild(dir, seed)
		return
	}
	kills := 50
	if testing.Short() {
		kills = 10
	}
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	dir := t.TempDir()
	dbDir := filepath.Join(dir, "db")
	journal := filepath.Join(dir, "journal")
	m := newCrashModel()
	var offset int64
	for round := range kills {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashRecovery$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, fmt.Sprint(crashSeedEnv, "=", seed+int64(round)))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(20+rng.Intn(250)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: child ended with %v before the kill: %s", round, err, stderr.Bytes())
		}

		s, err := Open(dbDir, Options{GCInterval: -1})
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		offset = m.readJournal(t, s, journal, offset)
		m.check(t, s, round)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if t.Failed() {
			return
		}
	}
	t.Logf("%d kills; %d applies, %d batches ended, %d uploads accepted, %d rejected; %d dangling intents resolved",
		kills, m.applies, m.ends, len(m.accepted), m.rejected, m.resolved)
}

// runCrashChild never returns normally: it loops until it is killed.
func runCrashChild(dir string, seed int64) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(2)
	}
	s, err := Open(filepath.Join(dir, "db"), Options{GCInterval: -1})
	if err != nil {
		fail(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "journal"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		fail(err)
	}
	write := func(l crashLine) {
		b, _ := json.Marshal(l)
		if _, err := f.Write(append(b, '\n')); err != nil {
			fail(err)
		}
		if err := f.Sync(); err != nil {
			fail(err)
		}
	}
	rng := rand.New(rand.NewSource(seed))
	hashes := []string{"a", "b", "c"}
	now := time.Now()
	for {
		now = now.Add(time.Duration(rng.Intn(2000)) * time.Microsecond)
		if rng.Intn(2) == 0 {
			e := rng.Intn(crashEvents)
			desired := map[string]string{}
			var objs []stix.Object
			if rng.Intn(8) > 0 {
				for i := range crashPool {
					if rng.Intn(3) > 0 {
						id, h := crashID(e, i), hashes[rng.Intn(len(hashes))]
						desired[id] = h
						objs = append(objs, indicator(id, h, time.Time{}))
					}
				}
			}
			write(crashLine{Op: "P", Event: crashEvent(e), Desired: desired})
			if _, err := s.Apply(crashSink, crashEvent(e), objs, now); err != nil {
				fail(err)
			}
			write(crashLine{Op: "E"})
			continue
		}
		b, err := s.Begin(crashSink, 1+rng.Intn(20))
		if err != nil {
			fail(err)
		}
		if len(b.Items) == 0 {
			continue
		}
		var o Outcome
		line := crashLine{Op: "B"}
		for i, it := range b.Items {
			switch k := rng.Intn(10); {
			case k < 8:
				o.Accepted = append(o.Accepted, i)
				var f struct {
					Modified string `json:"modified"`
				}
				if err := json.Unmarshal(it.Object, &f); err != nil {
					fail(err)
				}
				line.Accepted = append(line.Accepted, crashUpload{Seq: it.Seq, ID: it.ID, Modified: f.Modified, Revoked: it.Revoke})
			case k < 9:
				o.Rejected = append(o.Rejected, Rejection{Index: i, Message: "rejected"})
				line.Rejected = append(line.Rejected, it.Seq)
			default:
				o.Retry = append(o.Retry, i)
			}
		}
		write(line)
		if err := s.End(b, o, now); err != nil {
			fail(err)
		}
		write(crashLine{Op: "A"})
	}
}

// crashModel is what the journal says must be true of the database.
type crashModel struct {
	desired  map[string]map[string]string // event -> base id -> hash
	ever     map[string]bool              // base ids ever desired
	accepted map[uint64]crashUpload       // by seq
	dead     map[uint64]bool
	rejected int
	applies  int
	ends     int
	resolved int
	pending  *crashLine // intent whose done line is missing
}

func newCrashModel() *crashModel {
	return &crashModel{
		desired: map[string]map[string]string{}, ever: map[string]bool{},
		accepted: map[uint64]crashUpload{}, dead: map[uint64]bool{},
	}
}

func (m *crashModel) commit(l *crashLine) {
	switch l.Op {
	case "P":
		m.desired[l.Event] = l.Desired
		for id := range l.Desired {
			m.ever[id] = true
		}
		m.applies++
	case "B":
		for _, u := range l.Accepted {
			m.accepted[u.Seq] = u
		}
		for _, seq := range l.Rejected {
			m.dead[seq] = true
		}
		m.rejected += len(l.Rejected)
		m.ends++
	}
}

// readJournal applies the complete lines after offset and resolves a trailing intent (the
// child died between starting a call and logging its return) by looking at the database: the
// call must have committed entirely or not at all. It returns the new offset.
func (m *crashModel) readJournal(t *testing.T, s *Store, path string, offset int64) int64 {
	t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return offset
	}
	if err != nil {
		t.Fatal(err)
	}
	end := int64(bytes.LastIndexByte(data, '\n') + 1)
	if end < int64(len(data)) {
		// A torn last line: the child died inside write. Drop it so the next child appends
		// after a whole line.
		if err := os.Truncate(path, end); err != nil {
			t.Fatal(err)
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(data[offset:end]))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l crashLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("journal line %q: %v", sc.Bytes(), err)
		}
		switch l.Op {
		case "P", "B":
			if m.pending != nil {
				m.resolve(t, s)
			}
			m.pending = &l
		case "E", "A":
			if m.pending == nil {
				t.Fatalf("journal: %s without intent", l.Op)
			}
			m.commit(m.pending)
			m.pending = nil
		}
	}
	if m.pending != nil {
		m.resolve(t, s)
	}
	return end
}

func (m *crashModel) resolve(t *testing.T, s *Store) {
	t.Helper()
	l := m.pending
	m.pending = nil
	m.resolved++
	switch l.Op {
	case "P":
		// Committed iff the state of every object matches the intent.
		ids, err := inspectEventIDs(s, l.Event)
		if err != nil {
			t.Fatal(err)
		}
		matches := len(ids) == len(l.Desired)
		for _, id := range ids {
			st, ok := inspectState(t, s, id)
			matches = matches && ok && !st.Revoked && st.Hash == l.Desired[id]
		}
		if matches {
			m.commit(l)
		}
	case "B":
		items := inspectOutbox(t, s)
		var gone, present int
		for _, u := range l.Accepted {
			if _, ok := items[u.Seq]; ok {
				present++
			} else {
				gone++
			}
		}
		for _, seq := range l.Rejected {
			if _, ok := items[seq]; ok {
				present++
			} else {
				gone++
			}
		}
		if gone > 0 && present > 0 {
			t.Fatalf("End was half applied: %d items gone, %d still queued", gone, present)
		}
		if gone > 0 {
			m.commit(l)
		}
	}
}

func (m *crashModel) check(t *testing.T, s *Store, round int) {
	t.Helper()
	items := inspectOutbox(t, s)
	dead := inspectDead(t, s)
	var meta sinkMeta
	if err := s.db.View(func(txn *badger.Txn) error {
		var err error
		meta, err = readMeta(txn, crashSink)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// Cursors and counters match the keys; nothing hides below the head.
	if meta.Depth != int64(len(items)) || meta.Dead != int64(len(dead)) {
		t.Errorf("round %d: meta depth %d dead %d, keys %d and %d", round, meta.Depth, meta.Dead, len(items), len(dead))
	}
	lastMod := map[string]string{}
	for seq, it := range sortedItems(items) {
		if seq < meta.Head || seq >= meta.Tail {
			t.Errorf("round %d: item %d outside [head %d, tail %d)", round, seq, meta.Head, meta.Tail)
		}
		if stix.FormatTime(it.Modified) <= lastMod[it.ID] {
			t.Errorf("round %d: item %d of %s: modified not increasing", round, seq, it.ID)
		}
		lastMod[it.ID] = stix.FormatTime(it.Modified)
	}
	// Acknowledged uploads never come back; rejected ones are dead letters.
	for seq := range m.accepted {
		if _, ok := items[seq]; ok {
			t.Errorf("round %d: accepted item %d is still queued", round, seq)
		}
	}
	for seq := range m.dead {
		if _, ok := dead[seq]; !ok {
			t.Errorf("round %d: rejected item %d is not a dead letter", round, seq)
		}
	}
	// Every acknowledged Apply is in the state.
	for _, desired := range m.desired {
		for id, h := range desired {
			if st, ok := inspectState(t, s, id); !ok || st.Revoked || st.Hash != h {
				t.Errorf("round %d: %s: state %+v, want live %s", round, id, st, h)
			}
		}
	}
	// The latest version of every object is queued, accepted or dead-lettered, and so is the
	// revocation of every earlier generation.
	have := map[[2]string]bool{}
	for _, it := range items {
		have[[2]string{it.ID, stix.FormatTime(it.Modified)}] = true
	}
	for _, d := range dead {
		have[[2]string{d.Item.ID, stix.FormatTime(d.Item.Modified)}] = true
	}
	for _, u := range m.accepted {
		have[[2]string{u.ID, u.Modified}] = true
	}
	revokedIDs := map[string]bool{}
	for _, it := range items {
		revokedIDs[it.ID] = revokedIDs[it.ID] || it.Revoke
	}
	for _, d := range dead {
		revokedIDs[d.Item.ID] = revokedIDs[d.Item.ID] || d.Item.Revoke
	}
	for _, u := range m.accepted {
		revokedIDs[u.ID] = revokedIDs[u.ID] || u.Revoked
	}
	for id := range m.ever {
		st, ok := inspectState(t, s, id)
		if !ok {
			t.Errorf("round %d: %s has no state", round, id)
			continue
		}
		if !have[[2]string{stix.GenerationID(id, st.Gen), stix.FormatTime(st.Modified)}] {
			t.Errorf("round %d: latest version of %s (gen %d, %s) is lost", round, id, st.Gen, stix.FormatTime(st.Modified))
		}
		for g := range st.Gen {
			if !revokedIDs[stix.GenerationID(id, g)] {
				t.Errorf("round %d: revocation of %s gen %d is lost", round, id, g)
			}
		}
	}
}

func sortedItems(items map[uint64]outboxItem) func(func(uint64, outboxItem) bool) {
	return func(yield func(uint64, outboxItem) bool) {
		seqs := make([]uint64, 0, len(items))
		for seq := range items {
			seqs = append(seqs, seq)
		}
		slices.Sort(seqs)
		for _, seq := range seqs {
			if !yield(seq, items[seq]) {
				return
			}
		}
	}
}

// inspectOutbox reads every outbox key of the crash sink, ignoring the head cursor.
func inspectOutbox(t *testing.T, s *Store) map[uint64]outboxItem {
	t.Helper()
	out := map[uint64]outboxItem{}
	scan(t, s, sinkPrefix(kindOutbox, crashSink), func(seq uint64, v []byte) error {
		it, err := decodeItem(v)
		out[seq] = it
		return err
	})
	return out
}

func inspectDead(t *testing.T, s *Store) map[uint64]deadRecord {
	t.Helper()
	out := map[uint64]deadRecord{}
	scan(t, s, sinkPrefix(kindDead, crashSink), func(seq uint64, v []byte) error {
		r, err := decodeDead(v)
		out[seq] = r
		return err
	})
	return out
}

func scan(t *testing.T, s *Store, prefix []byte, fn func(uint64, []byte) error) {
	t.Helper()
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = prefix
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			seq, err := seqFromKey(it.Item().Key(), len(prefix))
			if err != nil {
				return err
			}
			if err := it.Item().Value(func(v []byte) error { return fn(seq, v) }); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func inspectState(t *testing.T, s *Store, id string) (indicatorState, bool) {
	t.Helper()
	var (
		st indicatorState
		ok bool
	)
	if err := s.db.View(func(txn *badger.Txn) error {
		var err error
		st, ok, err = readState(txn, crashSink, id)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return st, ok
}

func inspectEventIDs(s *Store, event string) ([]string, error) {
	var ids []string
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		ids, err = readIDList(txn, crashSink, event)
		return err
	})
	return ids, err
}
