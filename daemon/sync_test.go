package daemon_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/misp"
	"github.com/mispsentinel/listener/sim/lab"
	simmisp "github.com/mispsentinel/listener/sim/misp"
	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
	"github.com/mispsentinel/listener/stix"
	"github.com/mispsentinel/listener/store"
)

// clock is a settable clock shared by the daemon under test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// filterTagYAML selects the events carrying the generator's workflow tag (about 80 %).
const filterTagYAML = `{tags: ['workflow:state="complete"']}`

// syncOnce runs one `listener sync` in-process with a fresh daemon, as the command does.
func syncOnce(t *testing.T, l *lab.Lab, cfg *config.Config, now func() time.Time, opts daemon.SyncOptions) (*daemon.SyncReport, error) {
	t.Helper()
	start := time.Now()
	defer func() { t.Logf("sync took %s", time.Since(start).Round(time.Millisecond)) }()
	d, err := daemon.New(cfg, daemon.Options{Logger: quietLogger(t), Now: now, LimiterMinute: l.Sentinel.Minute()})
	if err != nil {
		t.Fatalf("new daemon: %v", err)
	}
	defer d.Close()
	return d.Sync(context.Background(), opts)
}

// sentinelSnapshot is the Sentinel simulator's records of the lab's sink, by id.
func sentinelSnapshot(l *lab.Lab, cfg *config.Config) map[string]simsentinel.Record {
	return l.Sentinel.Indicators(simsentinel.DefaultWorkspaceID, cfg.Sinks[0].SourceSystem)
}

func liveIDs(recs map[string]simsentinel.Record) map[string]bool {
	out := map[string]bool{}
	for id, r := range recs {
		if !r.Revoked && r.Type == "indicator" {
			out[id] = true
		}
	}
	return out
}

func mustCompare(t *testing.T, l *lab.Lab, cfg *config.Config, now time.Time) {
	t.Helper()
	states, err := l.Compare(context.Background(), cfg, now)
	if err != nil {
		t.Fatalf("compare: %v", err)
	}
	for _, s := range states {
		if !s.Equal() || s.Expected == 0 {
			t.Fatalf("Sentinel does not hold what MISP exports: %s", s)
		}
	}
}

// indicatorIDs converts ev as the sink does and returns its indicator ids.
func indicatorIDs(ev *misp.Event, opts stix.Options, now time.Time) map[string]bool {
	out := map[string]bool{}
	for _, o := range stix.Convert(ev, opts, now).Objects {
		if o.Type == "indicator" {
			out[o.ID] = true
		}
	}
	return out
}

func hasTag(ev *misp.Event, name string) bool {
	return slices.ContainsFunc(ev.Tags, func(tg misp.Tag) bool { return tg.Name == name })
}

func checkNotFailed(t *testing.T, what string, rep *daemon.SyncReport, err error) {
	t.Helper()
	if err != nil || rep.Failed(err) {
		errs := []error{err}
		if rep != nil && rep.Reconcile != nil {
			errs = append(errs, rep.Reconcile.Errors...)
		}
		t.Fatalf("%s failed: %v; %s", what, errs, rep.Summary())
	}
}

// TestSyncAcceptance100k is issue 6's acceptance scenario against 100,000 MISP attributes:
// the first sync uploads everything exported, the second nothing; deleted attributes, to_ids
// turned off and an event losing the filter tag revoke exactly their indicators; and moving
// the clock into the refresh window re-uploads exactly the expiring indicators.
func TestSyncAcceptance100k(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	l, err := lab.Start(lab.Options{
		Dir:              t.TempDir(),
		EventFiltersYAML: filterTagYAML,
		ExtraYAML:        "reconcile:\n  gone_grace: 0s\n",
		// A quota minute of 0.3 s: the uploads are not what this test measures.
		Sentinel: simsentinel.Options{TimeScale: 200},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	uuids := l.MISP.Generate(1000, 100, 7)
	if n := l.MISP.AttributeCount(); n != 100_000 {
		t.Fatalf("simulator holds %d attributes, want 100000", n)
	}
	cfg, err := l.Config()
	if err != nil {
		t.Fatal(err)
	}
	opts := daemon.ConversionOptions(cfg, cfg.Sinks[0])
	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}

	// 1. The first sync uploads every exported indicator.
	rep, err := syncOnce(t, l, cfg, clk.Now, daemon.SyncOptions{})
	checkNotFailed(t, "first sync", rep, err)
	mustCompare(t, l, cfg, clk.Now())
	first := sentinelSnapshot(l, cfg)
	diff := rep.Reconcile.Sinks["primary"]
	if diff.New != len(first) || rep.Sinks["primary"].Accepted != len(first) {
		t.Errorf("first sync: new=%d accepted=%d, Sentinel holds %d", diff.New, rep.Sinks["primary"].Accepted, len(first))
	}
	t.Logf("first sync: %s", rep.Summary())

	// 2. A second sync uploads nothing.
	before := l.Sentinel.Stats()
	clk.Set(clk.Now().Add(time.Minute))
	rep, err = syncOnce(t, l, cfg, clk.Now, daemon.SyncOptions{})
	checkNotFailed(t, "second sync", rep, err)
	after := l.Sentinel.Stats()
	if after.UploadRequests != before.UploadRequests || after.ObjectsAccepted != before.ObjectsAccepted {
		t.Errorf("second sync uploaded: requests %d -> %d, objects %d -> %d",
			before.UploadRequests, after.UploadRequests, before.ObjectsAccepted, after.ObjectsAccepted)
	}
	// Unchanged counts the shared identity once per event.
	if d := rep.Reconcile.Sinks["primary"]; d.Enqueued() != 0 || d.Unchanged < len(first) {
		t.Errorf("second sync: %+v, want at least %d unchanged and nothing queued", d, len(first))
	}

	// 3. Delete 10 attributes, turn to_ids off on 10 others, untag one event.
	wantRevoked := map[string]bool{}
	var deleted, untoided, untagged int
	for _, uuid := range uuids {
		if untagged == 1 {
			break
		}
		ev, ok := l.MISP.GetEvent(uuid)
		if !ok {
			t.Fatalf("event %s vanished", uuid)
		}
		if !hasTag(ev, simmisp.FilterTag) || len(indicatorIDs(ev, opts, clk.Now())) == 0 {
			continue // not exported: editing it would prove nothing
		}
		beforeIDs := indicatorIDs(ev, opts, clk.Now())
		var attr *misp.Attribute
		for i := range ev.Attributes {
			if ev.Attributes[i].ToIDS {
				attr = &ev.Attributes[i]
				break
			}
		}
		switch {
		case deleted < 10 && attr != nil:
			if err := l.MISP.DeleteAttribute(uuid, attr.UUID); err != nil {
				t.Fatal(err)
			}
			deleted++
		case untoided < 10 && attr != nil:
			if err := l.MISP.SetToIDS(uuid, attr.UUID, false); err != nil {
				t.Fatal(err)
			}
			untoided++
		case deleted == 10 && untoided == 10:
			if err := l.MISP.RemoveEventTag(uuid, simmisp.FilterTag); err != nil {
				t.Fatal(err)
			}
			untagged++
			for id := range beforeIDs {
				wantRevoked[id] = true
			}
			continue
		default:
			continue
		}
		edited, _ := l.MISP.GetEvent(uuid)
		afterIDs := indicatorIDs(edited, opts, clk.Now())
		for id := range beforeIDs {
			if !afterIDs[id] {
				wantRevoked[id] = true
			}
		}
	}
	if deleted != 10 || untoided != 10 || untagged != 1 || len(wantRevoked) < 21 {
		t.Fatalf("could not prepare the edits: deleted %d, to_ids off %d, untagged %d, %d indicators to revoke", deleted, untoided, untagged, len(wantRevoked))
	}
	clk.Set(clk.Now().Add(time.Minute))
	rep, err = syncOnce(t, l, cfg, clk.Now, daemon.SyncOptions{})
	checkNotFailed(t, "sync after the edits", rep, err)
	mustCompare(t, l, cfg, clk.Now())
	third := sentinelSnapshot(l, cfg)
	var revoked []string
	for id, r := range third {
		old := first[id]
		switch {
		case r.Revoked && !old.Revoked:
			revoked = append(revoked, id)
			if !wantRevoked[id] {
				t.Errorf("indicator %s revoked but not affected by the edits", id)
			}
		case r.Versions != old.Versions:
			t.Errorf("indicator %s re-uploaded (versions %d -> %d) though the edits do not touch it", id, old.Versions, r.Versions)
		}
	}
	if len(revoked) != len(wantRevoked) {
		t.Errorf("Sentinel revoked %d indicators, want %d", len(revoked), len(wantRevoked))
	}
	d3 := rep.Reconcile.Sinks["primary"]
	if d3.Revoked != len(wantRevoked) || d3.New+d3.Changed+d3.Refreshed != 0 {
		t.Errorf("sync after the edits: %+v, want exactly %d revoked", d3, len(wantRevoked))
	}
	if rep.Reconcile.FilteredEvents != 1 || rep.Reconcile.GoneEvents != 0 {
		t.Errorf("filtered-out events %d, gone %d; want 1 and 0", rep.Reconcile.FilteredEvents, rep.Reconcile.GoneEvents)
	}

	// 4. Move the clock into the refresh window of the shortest-lived indicators: exactly
	// those whose valid_until is now within the window are re-uploaded.
	moved := clk.Now().Add(time.Duration(cfg.Conversion.DaysToExpire)*24*time.Hour - cfg.Store.RefreshWindow + time.Hour)
	wantRefresh := map[string]bool{}
	for id, r := range third {
		if r.Revoked {
			continue
		}
		var body struct {
			ValidUntil time.Time `json:"valid_until"`
		}
		if err := json.Unmarshal(r.Object, &body); err != nil {
			t.Fatalf("decode %s: %v", id, err)
		}
		if !body.ValidUntil.IsZero() && body.ValidUntil.Sub(moved) < cfg.Store.RefreshWindow {
			wantRefresh[id] = true
		}
	}
	if len(wantRefresh) == 0 || len(wantRefresh) == len(liveIDs(third)) {
		t.Fatalf("%d of %d live indicators expire within the window; the scenario needs some but not all", len(wantRefresh), len(liveIDs(third)))
	}
	clk.Set(moved)
	rep, err = syncOnce(t, l, cfg, clk.Now, daemon.SyncOptions{})
	checkNotFailed(t, "sync in the refresh window", rep, err)
	fourth := sentinelSnapshot(l, cfg)
	refreshed := 0
	for id, r := range fourth {
		old := third[id]
		if r.Versions == old.Versions {
			if wantRefresh[id] {
				t.Errorf("expiring indicator %s not re-uploaded", id)
			}
			continue
		}
		refreshed++
		if !wantRefresh[id] {
			t.Errorf("indicator %s re-uploaded though it is not expiring", id)
		}
	}
	if d4 := rep.Reconcile.Sinks["primary"]; d4.Refreshed != len(wantRefresh) || d4.New+d4.Changed+d4.Revoked != 0 {
		t.Errorf("refresh sync: %+v, want exactly %d refreshed", d4, len(wantRefresh))
	}
	if refreshed != len(wantRefresh) {
		t.Errorf("%d indicators re-uploaded, want %d", refreshed, len(wantRefresh))
	}
	t.Log(fmt.Sprintf("revoked %d, refreshed %d of %d live", len(revoked), refreshed, len(liveIDs(third))))
}

var benchAttributes = flag.Int("reconcile.attributes", 100_000, "MISP size (in attributes, 100 per event) of BenchmarkFullReconcileUnchanged")

// BenchmarkFullReconcileUnchanged measures a full reconcile of an unchanged MISP in-process
// (search, decode, convert, diff; nothing to upload), after a first sync that uploaded
// everything. It is the profile target of the reconcile benchmark; wall time and peak RSS of
// the 1,000,000-attribute target are measured in a child process by
// `listener bench --only reconcile` (docs/BENCHMARKS.md, "Reconcile").
//
//	go test ./daemon -run '^$' -bench FullReconcileUnchanged -benchtime 3x -args -reconcile.attributes 100000
func BenchmarkFullReconcileUnchanged(b *testing.B) {
	l, err := lab.Start(lab.Options{Dir: b.TempDir(), Sentinel: simsentinel.Options{QuotaPerMinute: -1, TimeScale: 1000}})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	l.MISP.Generate(max(1, *benchAttributes/100), 100, 1)
	cfg, err := l.Config()
	if err != nil {
		b.Fatal(err)
	}
	d, err := daemon.New(cfg, daemon.Options{Logger: quietLogger(b), LimiterMinute: l.Sentinel.Minute()})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	rep, err := d.Sync(context.Background(), daemon.SyncOptions{})
	if rep.Failed(err) {
		b.Fatalf("first sync: %v: %s", err, rep.Summary())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rep, err := d.Sync(context.Background(), daemon.SyncOptions{})
		if rep.Failed(err) || rep.Reconcile.Sinks["primary"].Enqueued() != 0 {
			b.Fatalf("unchanged sync: %v: %s", err, rep.Summary())
		}
	}
	b.ReportMetric(float64(l.MISP.AttributeCount()), "attributes")
}

var benchChildEnv = flag.String("reconcile.childenv", "", "extra NAME=VALUE environment of the child of BenchmarkFullReconcileChild (e.g. GOMEMLIMIT=100MiB)")

var benchListener = flag.String("reconcile.listener", "", "listener binary BenchmarkFullReconcileChild runs `sync -c` with (built with `go build` when empty)")

// BenchmarkFullReconcileChild is issue 6's reconcile benchmark: a full reconcile of an
// unchanged MISP (default 1,000,000 attributes), run as `listener sync -c` in a child process so
// that neither the simulators nor the preparation count. The preparation applies every event
// and marks everything uploaded without HTTP (Sentinel's quota would make it take hours).
// Reported per op: wall time of the child from start to exit, and the child's peak VmHWM and
// peak RssAnon / RssFile sampled every 20 ms from /proc (getrusage's ru_maxrss is not used:
// on Linux a child started by fork+exec inherits its parent's high-water mark).
//
//	go build -o /tmp/listener ./cmd/listener
//	go test ./daemon -run '^$' -bench FullReconcileChild -benchtime 1x -timeout 60m -args -reconcile.attributes 1000000 -reconcile.listener /tmp/listener
func BenchmarkFullReconcileChild(b *testing.B) {
	bin := *benchListener
	if bin == "" {
		bin = filepath.Join(b.TempDir(), "listener")
		out, err := exec.Command("go", "build", "-o", bin, "github.com/mispsentinel/listener/cmd/listener").CombinedOutput()
		if err != nil {
			b.Fatalf("build listener: %v\n%s", err, out)
		}
	}
	l, err := lab.Start(lab.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	l.MISP.Generate(max(1, *benchAttributes/100), 100, 1)
	cfg, err := l.Config()
	if err != nil {
		b.Fatal(err)
	}
	prepStart := time.Now()
	d, err := daemon.New(cfg, daemon.Options{Logger: quietLogger(b)})
	if err != nil {
		b.Fatal(err)
	}
	rep, err := d.Sync(context.Background(), daemon.SyncOptions{SkipUpload: true})
	if rep.Failed(err) {
		d.Close()
		b.Fatalf("preparation: %v: %s", err, rep.Summary())
	}
	queued, err := markAllSent(d.Store(), "primary")
	d.Close()
	if err != nil {
		b.Fatal(err)
	}
	if err := settleStore(l.StoreDir); err != nil {
		b.Fatal(err)
	}
	b.Logf("prepared %d attributes, %d objects queued and marked sent, store compacted, in %s", l.MISP.AttributeCount(), queued, time.Since(prepStart).Round(time.Second))

	var wall time.Duration
	var peak lab.Memory
	for b.Loop() {
		before := l.Sentinel.Stats()
		cmd := exec.Command(bin, "sync", "-c", l.ConfigPath)
		if *benchChildEnv != "" {
			cmd.Env = append(os.Environ(), *benchChildEnv)
		}
		var run lab.Memory
		var stderr strings.Builder
		cmd.Stderr = &stderr
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		tick := time.NewTicker(20 * time.Millisecond)
	sample:
		for {
			select {
			case err = <-done:
				break sample
			case <-tick.C:
				if m, merr := lab.ReadMemory(cmd.Process.Pid); merr == nil {
					run.Peak = max(run.Peak, m.Peak)
					run.Anon = max(run.Anon, m.Anon)
					run.File = max(run.File, m.File)
				}
			}
		}
		tick.Stop()
		took := time.Since(start)
		wall += took
		peak.Peak, peak.Anon, peak.File = max(peak.Peak, run.Peak), max(peak.Anon, run.Anon), max(peak.File, run.File)
		if err != nil {
			b.Fatalf("listener sync: %v\n%s", err, stderr.String())
		}
		if after := l.Sentinel.Stats(); after.UploadRequests != before.UploadRequests {
			b.Fatalf("the unchanged sync uploaded %d requests", after.UploadRequests-before.UploadRequests)
		}
		b.Logf("child run: wall %.2f s, peak VmHWM %.1f MB, RssAnon %.1f MB, RssFile %.1f MB: %s", took.Seconds(),
			float64(run.Peak)/1e6, float64(run.Anon)/1e6, float64(run.File)/1e6, strings.TrimSpace(stderr.String()))
	}
	b.ReportMetric(wall.Seconds()/float64(b.N), "wall-s/op")
	b.ReportMetric(float64(peak.Peak)/1e6, "peak-VmHWM-MB")
	b.ReportMetric(float64(peak.Anon)/1e6, "peak-RssAnon-MB")
	b.ReportMetric(float64(peak.File)/1e6, "peak-RssFile-MB")
	b.ReportMetric(float64(l.MISP.AttributeCount()), "attributes")
}

// settleStore compacts the store (Badger Flatten, through the store's own GC loop) so that the
// measured runs do not inherit the compaction debt of writing a million indicators in minutes;
// a daemon would have paid it long before its next full reconcile.
func settleStore(dir string) error {
	st, err := store.Open(dir, store.Options{GCInterval: 500 * time.Millisecond, CompactInterval: time.Millisecond})
	if err != nil {
		return err
	}
	// A write, so that the GC loop sees a new version and flattens.
	if err := st.SetWatermark("bench/settle", time.Now()); err != nil {
		st.Close()
		return err
	}
	time.Sleep(2 * time.Second)
	return st.Close() // waits for the flatten in progress
}

// markAllSent empties a sink's outbox as if Sentinel had accepted everything.
func markAllSent(st *store.Store, sink string) (int, error) {
	n := 0
	for {
		batch, err := st.Begin(sink, store.MaxBatch)
		if err != nil {
			return n, err
		}
		if len(batch.Items) == 0 {
			return n, st.End(batch, store.Outcome{}, time.Now())
		}
		accepted := make([]int, len(batch.Items))
		for i := range accepted {
			accepted[i] = i
		}
		if err := st.End(batch, store.Outcome{Accepted: accepted}, time.Now()); err != nil {
			return n, err
		}
		n += len(batch.Items)
	}
}
