package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mispsentinel/listener/adopt"
	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/pusher"
	"github.com/mispsentinel/listener/sentinel"
	"github.com/mispsentinel/listener/sim/lab"
	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
	"github.com/mispsentinel/listener/verify"
)

// adoptOnce runs one `listener adopt` in-process with a fresh daemon, as the command does.
func adoptOnce(t *testing.T, l *lab.Lab, cfg *config.Config, now func() time.Time, o daemon.AdoptOptions) daemon.AdoptResult {
	t.Helper()
	d, err := daemon.New(cfg, daemon.Options{Logger: quietLogger(t), Now: now, LimiterMinute: l.Sentinel.Minute()})
	if err != nil {
		t.Fatalf("new daemon: %v", err)
	}
	defer d.Close()
	results, err := d.Adopt(context.Background(), o)
	if err != nil || len(results) != 1 {
		t.Fatalf("adopt: %v %v", results, err)
	}
	r := results[0]
	if r.Err != nil {
		t.Fatalf("adopt %s: %v", r.Sink, r.Err)
	}
	t.Logf("adopt: %s", r.Plan.Summary())
	return r
}

// leftover is one misp2sentinel-style indicator: a random id, a single-comparison pattern,
// misp2sentinel's description and MISP back-link naming the event (none when event is "").
func leftover(pattern, event string, created time.Time) json.RawMessage {
	obj := map[string]any{
		"type": "indicator", "spec_version": "2.1", "id": "indicator--" + uuid.NewString(),
		"created": created.Format(time.RFC3339), "modified": created.Format(time.RFC3339),
		"pattern": pattern, "pattern_type": "stix", "pattern_version": "2.1", "revoked": false,
		"valid_from":  created.Add(-time.Hour).Format(time.RFC3339),
		"valid_until": created.Add(180 * 24 * time.Hour).Format(time.RFC3339), "name": "misp2sentinel",
	}
	if event != "" {
		obj["description"] = "C2 - generated event (7-" + event + ") by ORGNAME on 2026-01-01"
		obj["external_references"] = []map[string]string{{"source_name": "MISP", "description": "MISP Event", "external_id": event, "url": "https://misp.example.org/events/view/" + event}}
	}
	b, _ := json.Marshal(obj)
	return b
}

func idOf(raw json.RawMessage) string {
	var f struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(raw, &f)
	return f.ID
}

// TestAdoptAcceptance is issue 15's adopt acceptance line: a workspace seeded with
// misp2sentinel-style leftovers (random ids, several copies per observable, some for
// attributes MISP no longer flags) is planned exactly; --apply then a read-back shows no
// foreign live copy of any observable the listener owns; a second --apply changes nothing.
//
// It runs with the listener under its own source system (misp2sentinel's copies are then
// foreign, and verify counts them) and under misp2sentinel's own, MISP (its copies with random
// ids are then duplicates under the same source system).
func TestAdoptAcceptance(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	for _, own := range []string{"MISP listener", "MISP"} {
		t.Run(own, func(t *testing.T) { testAdoptAcceptance(t, own) })
	}
}

func testAdoptAcceptance(t *testing.T, ownSource string) {
	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
	l, err := lab.Start(lab.Options{Dir: t.TempDir(), Sentinel: simsentinel.Options{TimeScale: 200, Now: clk.Now}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const ws = simsentinel.DefaultWorkspaceID
	sub, rg, name := l.Sentinel.Location(ws)
	events := l.MISP.Generate(12, 15, 21)
	cfg, err := l.Config()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Sinks[0].SourceSystem = ownSource
	cfg.Sinks[0].ReadBack = config.ReadBack{SubscriptionID: sub, ResourceGroup: rg, WorkspaceName: name,
		API: config.ReadBackIndicators, APIVersion: "2025-09-01", Lag: 0, PageSize: 100, RequestsPerMinute: 1000}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}

	// Attributes MISP no longer flags: added with to_ids off before the listener's run.
	notFlagged := map[string]string{} // value → event
	for i, ev := range events[:3] {
		v := fmt.Sprintf("203.0.113.%d", 10+i)
		if _, err := l.MISP.AddAttribute(ev, "ip-dst", "Network activity", v, false); err != nil {
			t.Fatal(err)
		}
		notFlagged[v] = ev
	}
	rep, err := syncOnce(t, l, cfg, clk.Now, daemon.SyncOptions{})
	checkNotFailed(t, "sync", rep, err)

	// What the listener owns: its live single-observable indicators, by observable.
	owned := map[string]simsentinel.Record{}
	for _, rec := range l.Sentinel.Indicators(ws, ownSource) {
		var f struct {
			Pattern            string `json:"pattern"`
			ExternalReferences []struct {
				ExternalID string `json:"external_id"`
			} `json:"external_references"`
		}
		_ = json.Unmarshal(rec.Object, &f)
		if keys := adopt.PatternKeys(f.Pattern); rec.Type == "indicator" && !rec.Revoked && len(keys) == 1 {
			owned[f.Pattern] = rec
		}
	}
	patterns := make([]string, 0, len(owned))
	for p := range owned {
		patterns = append(patterns, p)
	}
	slices.Sort(patterns)
	if len(patterns) < 30 {
		t.Fatalf("the listener holds only %d single-observable indicators", len(patterns))
	}

	// misp2sentinel's leftovers under its source system MISP.
	created := clk.Now().Add(-48 * time.Hour)
	var seed []json.RawMessage
	want := map[adopt.Kind][]string{}
	add := func(k adopt.Kind, raw json.RawMessage) {
		seed = append(seed, raw)
		want[k] = append(want[k], idOf(raw))
	}
	for i, p := range patterns[:30] { // superseded: 1 to 3 copies of an owned observable
		ev := events[i%len(events)]
		for c := 0; c <= i%3; c++ {
			add(adopt.Superseded, leftover(p, ev, created))
		}
	}
	for v, ev := range notFlagged { // gone: to_ids off, two copies each
		for range 2 {
			add(adopt.Gone, leftover("[ipv4-addr:value = '"+v+"']", ev, created))
		}
	}
	deletedEvent := uuid.NewString() // gone: an event MISP no longer has
	add(adopt.Gone, leftover("[domain-name:value = 'gone.example']", deletedEvent, created))
	for i := range 4 { // unmatched: no event reference, an observable nobody owns
		add(adopt.Unmatched, leftover(fmt.Sprintf("[url:value = 'http://unmatched.example/%d']", i), "", created))
	}
	seedSink(t, l, cfg, seed)

	// 1. The dry run plans exactly the expected sets and sends nothing.
	before := l.Sentinel.Indicators(ws, "MISP")
	r := adoptOnce(t, l, cfg, clk.Now, daemon.AdoptOptions{SourceSystem: "MISP"})
	for _, k := range adopt.Kinds {
		var got []string
		for _, e := range r.Plan.Entries {
			if e.Kind == k {
				got = append(got, e.ID)
			}
		}
		slices.Sort(got)
		slices.Sort(want[k])
		if !slices.Equal(got, want[k]) {
			t.Errorf("%s: planned %d %v, want %d %v", k, len(got), got, len(want[k]), want[k])
		}
	}
	if r.Queued != 0 || r.Delivered != nil {
		t.Errorf("the dry run queued %d", r.Queued)
	}
	if after := l.Sentinel.Indicators(ws, "MISP"); !sameRecords(before, after) {
		t.Error("the dry run changed the workspace")
	}

	if ownSource != "MISP" {
		if n := verifyForeign(t, l, cfg, clk.Now); n == 0 {
			t.Error("verify before adopt reports no foreign copy: the check below would prove nothing")
		}
	}

	// 2. --apply revokes the superseded and gone copies under MISP, and nothing else.
	revoke := len(want[adopt.Superseded]) + len(want[adopt.Gone])
	r = adoptOnce(t, l, cfg, clk.Now, daemon.AdoptOptions{SourceSystem: "MISP", Apply: true})
	if r.Queued != revoke || r.Delivered == nil || r.Delivered.Err != nil || r.Delivered.Accepted != revoke {
		t.Fatalf("apply: queued %d, delivered %+v; want %d", r.Queued, r.Delivered, revoke)
	}
	recs := l.Sentinel.Indicators(ws, "MISP")
	for _, k := range adopt.Kinds {
		for _, id := range want[k] {
			if revoked := recs[id].Revoked; revoked != (k != adopt.Unmatched) {
				t.Errorf("%s %s: revoked = %v", k, id, revoked)
			}
		}
	}
	// The read-back shows no foreign live copy of an observable the listener owns: verify
	// counts none, and no live copy other than the listener's holds an owned observable.
	if n := verifyForeign(t, l, cfg, clk.Now); n != 0 {
		t.Errorf("verify after adopt: %d foreign copies", n)
	}
	for id, rec := range l.Sentinel.Indicators(ws, "MISP") {
		var f struct {
			Pattern string `json:"pattern"`
		}
		_ = json.Unmarshal(rec.Object, &f)
		if o, ok := owned[f.Pattern]; ok && !rec.Revoked && (o.ID != id || o.SourceSystem != rec.SourceSystem) {
			t.Errorf("live copy %s of the owned observable %s (the listener's is %s)", id, f.Pattern, o.ID)
		}
	}

	// 3. A second --apply changes nothing.
	before = l.Sentinel.Indicators(ws, "MISP")
	r = adoptOnce(t, l, cfg, clk.Now, daemon.AdoptOptions{SourceSystem: "MISP", Apply: true})
	if r.Queued != 0 || len(r.Plan.Revocations()) != 0 || r.Plan.Count(adopt.Unmatched) != len(want[adopt.Unmatched]) {
		t.Errorf("second apply: queued %d, %s", r.Queued, r.Plan.Summary())
	}
	if after := l.Sentinel.Indicators(ws, "MISP"); !sameRecords(before, after) {
		t.Error("the second apply changed the workspace")
	}
}

// verifyForeign runs `listener verify` and returns its count of foreign copies.
func verifyForeign(t *testing.T, l *lab.Lab, cfg *config.Config, now func() time.Time) int {
	t.Helper()
	d, err := daemon.New(cfg, daemon.Options{Logger: quietLogger(t), Now: now, LimiterMinute: l.Sentinel.Minute()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	vres, err := d.Verify(context.Background(), daemon.VerifyOptions{})
	if err != nil || len(vres) != 1 || vres[0].Err != nil {
		t.Fatalf("verify: %v %v", vres, err)
	}
	t.Logf("verify: %s", vres[0].Report.Summary())
	return vres[0].Report.Counts[verify.KindForeign]
}

// seedSink uploads objects under source system MISP to the lab's workspace with the sink's
// identity, as misp2sentinel did.
func seedSink(t *testing.T, l *lab.Lab, cfg *config.Config, objects []json.RawMessage) {
	t.Helper()
	s := cfg.Sinks[0]
	s.SourceSystem = "MISP"
	scfg, err := daemon.SentinelConfig(s)
	if err != nil {
		t.Fatal(err)
	}
	scfg.TLSRootCAs = l.Sentinel.CertPool()
	scfg.QuotaMinute = l.Sentinel.Minute()
	c, err := sentinel.New(scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for start := 0; start < len(objects); start += 100 {
		var batch []pusher.Object
		for _, o := range objects[start:min(start+100, len(objects))] {
			batch = append(batch, pusher.Object{ID: idOf(o), Body: o})
		}
		rej, err := c.Send(context.Background(), batch, func(context.Context) error { return nil })
		if err != nil || len(rej) > 0 {
			t.Fatalf("seed: %v %v", rej, err)
		}
	}
}

// sameRecords reports whether two snapshots hold the same versions.
func sameRecords(a, b map[string]simsentinel.Record) bool {
	if len(a) != len(b) {
		return false
	}
	for id, ra := range a {
		rb, ok := b[id]
		if !ok || ra.Versions != rb.Versions || ra.Revoked != rb.Revoked || !ra.Modified.Equal(rb.Modified) {
			return false
		}
	}
	return true
}
