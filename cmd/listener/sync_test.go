package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/misp"
	"github.com/mispsentinel/listener/pusher"
	"github.com/mispsentinel/listener/reconcile"
	"github.com/mispsentinel/listener/sim/lab"
	simmisp "github.com/mispsentinel/listener/sim/misp"
	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
	"github.com/mispsentinel/listener/store"
)

// syncLab starts one sink, a filter on the generator's workflow tag and 60 generated events.
func syncLab(t *testing.T) (*lab.Lab, []string) {
	t.Helper()
	l, err := lab.Start(lab.Options{
		Dir:              t.TempDir(),
		EventFiltersYAML: `{tags: ['workflow:state="complete"']}`,
		Sentinel:         simsentinel.Options{TimeScale: 100},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l, l.MISP.Generate(60, 10, 11)
}

// summaryLine matches the one-line summary of a run with one sink "primary" and captures
// events, new, changed, unchanged, refreshed, revoked, uploaded and rejected.
var summaryLine = regexp.MustCompile(`(?m)^events=(\d+) \| primary: new=(\d+) changed=(\d+) unchanged=(\d+) refreshed=(\d+) revoked=(\d+) uploaded=(\d+) rejected=(\d+)$`)

type summary struct{ events, new, changed, unchanged, refreshed, revoked, uploaded, rejected int }

func parseSummary(t *testing.T, stderr string) summary {
	t.Helper()
	m := summaryLine.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no one-line summary in:\n%s", stderr)
	}
	n := make([]int, 8)
	for i := range n {
		n[i], _ = strconv.Atoi(m[i+1])
	}
	return summary{n[0], n[1], n[2], n[3], n[4], n[5], n[6], n[7]}
}

func liveCount(l *lab.Lab) int {
	n := 0
	for _, r := range l.Sentinel.Objects(simsentinel.DefaultWorkspaceID) {
		if !r.Revoked && r.Type == "indicator" {
			n++
		}
	}
	return n
}

func revokedCount(l *lab.Lab) int {
	n := 0
	for _, r := range l.Sentinel.Objects(simsentinel.DefaultWorkspaceID) {
		if r.Revoked {
			n++
		}
	}
	return n
}

// dryRunDoc is the document `sync --dry-run` writes.
type dryRunDoc struct {
	DryRun bool `json:"dry_run"`
	Sinks  []struct {
		Name    string            `json:"name"`
		Upserts int               `json:"upserts"`
		Revokes int               `json:"revocations"`
		Objects []json.RawMessage `json:"objects"`
	} `json:"sinks"`
}

func readDryRun(t *testing.T, data []byte) dryRunDoc {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var doc dryRunDoc
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("dry-run output is not one JSON document: %v\n%s", err, data)
	}
	if dec.More() {
		t.Fatal("dry-run output holds more than one JSON document")
	}
	if !doc.DryRun || len(doc.Sinks) != 1 || doc.Sinks[0].Name != "primary" {
		t.Fatalf("dry-run document: %+v", doc)
	}
	for _, o := range doc.Sinks[0].Objects {
		var obj struct {
			ID, Type, Modified string
		}
		if err := json.Unmarshal(o, &obj); err != nil || obj.ID == "" || obj.Type == "" || obj.Modified == "" {
			t.Fatalf("dry-run object %s is not a stamped STIX object (%v)", o, err)
		}
	}
	if got := doc.Sinks[0].Upserts + doc.Sinks[0].Revokes; got != len(doc.Sinks[0].Objects) {
		t.Errorf("dry run counts %d objects, lists %d", got, len(doc.Sinks[0].Objects))
	}
	return doc
}

func firstAttribute(t *testing.T, l *lab.Lab, uuid string) *misp.Attribute {
	t.Helper()
	ev, ok := l.MISP.GetEvent(uuid)
	if !ok {
		t.Fatalf("event %s missing", uuid)
	}
	for i := range ev.Attributes {
		if ev.Attributes[i].ToIDS && ev.Attributes[i].Type == "sha256" {
			return &ev.Attributes[i]
		}
	}
	return nil
}

// exportedEvent returns a generated event the filters select that has a sha256 to_ids
// attribute (its change yields exactly one changed indicator), and one they do not select.
func pickEvents(t *testing.T, l *lab.Lab, uuids []string) (in, out string) {
	t.Helper()
	for _, u := range uuids {
		ev, _ := l.MISP.GetEvent(u)
		tagged := slices.ContainsFunc(ev.Tags, func(tg misp.Tag) bool { return tg.Name == simmisp.FilterTag })
		switch {
		case tagged && in == "" && firstAttribute(t, l, u) != nil:
			in = u
		case !tagged && out == "" && firstAttribute(t, l, u) != nil:
			out = u
		}
	}
	if in == "" || out == "" {
		t.Fatal("the generated events lack the needed shapes")
	}
	return in, out
}

func TestSyncCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	l, uuids := syncLab(t)
	inside, outside := pickEvents(t, l, uuids)
	dir := filepath.Dir(l.ConfigPath)

	// A dry run before anything was synced: no store yet, nothing uploaded, the document lists
	// every indicator and the shared identity.
	out := filepath.Join(dir, "dry.json")
	code, stdout, stderr := runCommand(t, "sync", "-c", l.ConfigPath, "--dry-run", "--output", out)
	if code != exitOK || stdout != "" {
		t.Fatalf("dry run: exit %d, stdout %q\n%s", code, stdout, stderr)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	doc := readDryRun(t, data)
	s := parseSummary(t, stderr)
	if doc.Sinks[0].Upserts != s.new || s.uploaded != 0 || s.new == 0 {
		t.Errorf("dry run: %d upserts listed, summary %+v", doc.Sinks[0].Upserts, s)
	}
	if st := l.Sentinel.Stats(); st.UploadRequests != 0 {
		t.Errorf("dry run uploaded %d requests", st.UploadRequests)
	}
	if _, err := os.Stat(l.StoreDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dry run created the store: %v", err)
	}

	// The real sync uploads exactly what the dry run listed.
	code, _, stderr = runCommand(t, "sync", "-c", l.ConfigPath)
	if code != exitOK {
		t.Fatalf("sync: exit %d\n%s", code, stderr)
	}
	s = parseSummary(t, stderr)
	if s.uploaded != doc.Sinks[0].Upserts || s.rejected != 0 || s.events == 0 || s.events == 60 {
		t.Errorf("sync summary %+v, dry run listed %d", s, doc.Sinks[0].Upserts)
	}
	cfg, err := l.Config()
	if err != nil {
		t.Fatal(err)
	}
	states, err := l.Compare(context.Background(), cfg, time.Now())
	if err != nil || !states[0].Equal() {
		t.Fatalf("after sync: %v %v", states, err)
	}
	live := liveCount(l)

	// Change one indicator. A dry run against a copy of the real store lists exactly that
	// change and uploads nothing; on stdout by default.
	attr := firstAttribute(t, l, inside)
	if err := l.MISP.SetValue(inside, attr.UUID, strings.Repeat("ab", 32)); err != nil {
		t.Fatal(err)
	}
	before := l.Sentinel.Stats()
	code, stdout, stderr = runCommand(t, "sync", "-c", l.ConfigPath, "--dry-run")
	if code != exitOK {
		t.Fatalf("dry run: exit %d\n%s", code, stderr)
	}
	doc = readDryRun(t, []byte(stdout))
	if doc.Sinks[0].Upserts != 1 || doc.Sinks[0].Revokes != 0 || !strings.Contains(string(doc.Sinks[0].Objects[0]), strings.Repeat("ab", 32)) {
		t.Errorf("dry run after one change: %+v", doc.Sinks[0])
	}
	if s := parseSummary(t, stderr); s.changed != 1 || s.new != 0 || s.uploaded != 0 {
		t.Errorf("dry-run summary %+v", s)
	}
	if after := l.Sentinel.Stats(); after.UploadRequests != before.UploadRequests {
		t.Error("dry run uploaded")
	}

	// --event on an event the filters exclude: the filters still apply, nothing happens.
	code, _, stderr = runCommand(t, "sync", "-c", l.ConfigPath, "--event", outside)
	if code != exitOK {
		t.Fatalf("sync --event (outside the filters): exit %d\n%s", code, stderr)
	}
	if s := parseSummary(t, stderr); s.events != 0 || s.uploaded != 0 || s.revoked != 0 {
		t.Errorf("sync --event of an excluded event: %+v", s)
	}
	// --event on the changed event: exactly its change is uploaded (the dry run wrote nothing
	// to the real store, so the change is still pending).
	code, _, stderr = runCommand(t, "sync", "-c", l.ConfigPath, "--event", inside)
	if code != exitOK {
		t.Fatalf("sync --event: exit %d\n%s", code, stderr)
	}
	if s := parseSummary(t, stderr); s.events != 1 || s.changed != 1 || s.uploaded != 1 || s.new+s.revoked != 0 {
		t.Errorf("sync --event of the changed event: %+v", s)
	}
	if liveCount(l) != live {
		t.Errorf("live indicators %d, want %d", liveCount(l), live)
	}

	// A sink that cannot authenticate fails the run.
	bad := writeVariant(t, l, "bad-secret.yaml", "client_secret: "+simsentinel.DefaultClientSecret, "client_secret: wrong-secret-0000")
	if err := l.MISP.SetValue(inside, attr.UUID, strings.Repeat("cd", 32)); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCommand(t, "sync", "-c", bad)
	if code == exitOK || !strings.Contains(stderr, "FAILED") {
		t.Errorf("sync with a sink that cannot authenticate: exit %d\n%s", code, stderr)
	}
	// Usage errors.
	if code, _, _ := runCommand(t, "sync", "-c", l.ConfigPath, "--output", out); code != exitUsage {
		t.Errorf("--output without --dry-run: exit %d, want %d", code, exitUsage)
	}
}

func TestSyncFailingMISPPage(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	l, uuids := syncLab(t)
	cfgPath := writeVariant(t, l, "paged.yaml", "page_size: 100", "page_size: 5")
	if code, _, stderr := runCommand(t, "sync", "-c", cfgPath); code != exitOK {
		t.Fatalf("first sync: exit %d\n%s", code, stderr)
	}
	revoked := revokedCount(l)

	// The first exported event changes (page 1), the last one is deleted (a later page).
	var exported []string
	for _, u := range uuids {
		ev, _ := l.MISP.GetEvent(u)
		if slices.ContainsFunc(ev.Tags, func(tg misp.Tag) bool { return tg.Name == simmisp.FilterTag }) {
			exported = append(exported, u)
		}
	}
	attr := firstAttribute(t, l, exported[0])
	if attr == nil {
		t.Skip("generated event shape changed: no sha256 attribute in the first exported event")
	}
	if err := l.MISP.SetValue(exported[0], attr.UUID, strings.Repeat("ef", 32)); err != nil {
		t.Fatal(err)
	}
	if !l.MISP.Delete(exported[len(exported)-1]) {
		t.Fatal("delete failed")
	}

	// A transient fault (one broken page) is retried and the run succeeds.
	l.MISP.InjectFault(simmisp.Fault{Page: 2, Kind: simmisp.FaultBrokenJSON, Times: 1})
	l.MISP.InjectFault(simmisp.Fault{Page: 3, Kind: simmisp.FaultServerError, Times: 1})
	code, _, stderr := runCommand(t, "sync", "-c", cfgPath, "--dry-run")
	if code != exitOK {
		t.Fatalf("sync with transient page faults: exit %d\n%s", code, stderr)
	}
	l.MISP.ClearFaults()

	// Page 2 fails every time: the run fails, page 1's change is uploaded, nothing is revoked.
	l.MISP.InjectFault(simmisp.Fault{Page: 2, Kind: simmisp.FaultServerError})
	before := l.Sentinel.Stats()
	code, _, stderr = runCommand(t, "sync", "-c", cfgPath)
	if code == exitOK {
		t.Fatalf("sync with a failing page exited 0\n%s", stderr)
	}
	if !strings.Contains(stderr, "page 2") {
		t.Errorf("the failure does not name the page:\n%s", stderr)
	}
	s := parseSummary(t, stderr)
	if s.events != 5 || s.changed != 1 || s.uploaded != 1 || s.revoked != 0 {
		t.Errorf("summary after a failed page: %+v, want page 1's 5 events and its one change uploaded", s)
	}
	if after := l.Sentinel.Stats(); after.ObjectsAccepted-before.ObjectsAccepted != 1 {
		t.Errorf("%d objects uploaded, want the 1 change of page 1", after.ObjectsAccepted-before.ObjectsAccepted)
	}
	if revokedCount(l) != revoked {
		t.Error("a revocation happened after an incomplete search")
	}

	// Once MISP answers again, the deleted event's indicators are revoked.
	l.MISP.ClearFaults()
	code, _, stderr = runCommand(t, "sync", "-c", cfgPath)
	if code != exitOK {
		t.Fatalf("sync after recovery: exit %d\n%s", code, stderr)
	}
	if s := parseSummary(t, stderr); s.revoked == 0 || revokedCount(l) != revoked+s.revoked {
		t.Errorf("sync after recovery: %+v; revoked in Sentinel %d -> %d", s, revoked, revokedCount(l))
	}
}

func TestSyncReportFailed(t *testing.T) {
	ok := &reconcile.Report{Kind: "full"}
	tests := []struct {
		name      string
		rep       daemon.SyncReport
		searchErr error
		want      bool
	}{
		{"clean", daemon.SyncReport{Reconcile: ok, Sinks: map[string]daemon.SinkResult{"a": {}}}, nil, false},
		{"search failed", daemon.SyncReport{Reconcile: ok}, errors.New("page 3: 500"), true},
		{"event not applied", daemon.SyncReport{Reconcile: &reconcile.Report{Errors: []error{errors.New("x")}}}, nil, true},
		{"sink failed", daemon.SyncReport{Reconcile: ok, Sinks: map[string]daemon.SinkResult{"a": {Err: errors.New("401")}}}, nil, true},
		{"record rejected", daemon.SyncReport{Reconcile: ok, Sinks: map[string]daemon.SinkResult{"a": {DrainStats: pusher.DrainStats{Rejected: 1}}}}, nil, true},
		{"no run", daemon.SyncReport{}, nil, true},
	}
	for _, tc := range tests {
		if got := tc.rep.Failed(tc.searchErr); got != tc.want {
			t.Errorf("%s: Failed = %v, want %v", tc.name, got, tc.want)
		}
	}
	rep := daemon.SyncReport{Reconcile: &reconcile.Report{Events: 3, Sinks: map[string]store.DiffStats{"a": {New: 2, Revoked: 1}}},
		Sinks: map[string]daemon.SinkResult{"a": {DrainStats: pusher.DrainStats{Accepted: 2, Rejected: 1}}}}
	if got, want := rep.Summary(), "events=3 | a: new=2 changed=0 unchanged=0 refreshed=0 revoked=1 uploaded=2 rejected=1"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
}

// TestSyncProgressLogsLinesWithoutATerminal: off a terminal, each tick logs one line with
// events fetched of MISP's total, then indicators uploaded of those queued and the ETA the
// identities' quotas give; no bar is drawn.
func TestSyncProgressLogsLinesWithoutATerminal(t *testing.T) {
	var buf syncBuffer
	log := logrus.New()
	log.SetOutput(&buf)
	log.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true})
	sinks := []config.Sink{
		{Name: "a", BatchSize: 100, RequestsPerMinute: 100, Identity: config.Identity{TenantID: "t", ClientID: "one"}},
		{Name: "b", BatchSize: 100, RequestsPerMinute: 100, Identity: config.Identity{TenantID: "t", ClientID: "one"}},
		{Name: "c", BatchSize: 50, RequestsPerMinute: 10, Identity: config.Identity{TenantID: "t", ClientID: "two"}},
	}
	ticks := make(chan time.Time)
	p := newSyncProgress(&buf, log, sinks, ticks)
	tick := func(want string) {
		t.Helper()
		ticks <- time.Now()
		ticks <- time.Now() // the second send returns once the first tick's line is written
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		if last := lines[len(lines)-1]; !strings.Contains(last, want) {
			t.Errorf("progress line %q lacks %q", last, want)
		}
	}
	tick("sync progress: events 0/? fetched; indicators 0/0 uploaded")
	p.searchTotal(500)
	p.Fetched("full", 1, 100)
	p.Outboxes(map[string]int{"a": 3000, "b": 3000, "c": 1000})
	tick("events 100/500 fetched; indicators 0/7000 uploaded\"")
	p.Fetched("full", 5, 500)
	p.Outboxes(map[string]int{"a": 2000, "b": 1000, "c": 500})
	// Identity one: 30 requests at 100/min = 18 s; identity two: 10 requests at 10/min = 1 min.
	tick("events 500/500 fetched; indicators 3500/7000 uploaded, ETA 1m0s at the identities' quota")
	p.Finish()
	if strings.Contains(buf.String(), "\r") || strings.Contains(buf.String(), "█") {
		t.Errorf("a bar was drawn off a terminal:\n%q", buf.String())
	}
	n := strings.Count(buf.String(), "sync progress:")
	if n != 6 {
		t.Errorf("%d progress lines for 6 ticks", n)
	}
}

// TestSyncProgressBarOnATerminal drives the terminal display into a buffer: a bar of events
// fetched of the total, then one of indicators uploaded with the quota's ETA, and a final
// newline so the summary stands on its own line.
func TestSyncProgressBarOnATerminal(t *testing.T) {
	var buf syncBuffer
	sinks := []config.Sink{{Name: "a", BatchSize: 100, RequestsPerMinute: 100, Identity: config.Identity{TenantID: "t", ClientID: "one"}}}
	p := &syncProgress{sinks: sinks, total: -1, depth: map[string]int{}, peak: map[string]int{},
		out: &buf, terminal: true, stop: make(chan struct{}), done: make(chan struct{})}
	close(p.done)
	p.searchTotal(40)
	p.Fetched("full", 1, 20)
	p.Outboxes(map[string]int{"a": 900})
	p.Fetched("full", 2, 40)
	p.Outboxes(map[string]int{"a": 400})
	p.Finish()
	out := buf.String()
	for _, want := range []string{"events fetched", "40/40", "indicators uploaded (ETA 2s at quota)", "500/900"} {
		if !strings.Contains(out, want) {
			t.Errorf("terminal output lacks %q:\n%q", want, out)
		}
	}
	if !strings.HasSuffix(out, "\n") {
		t.Errorf("the display does not end its line: %q", out)
	}
}
