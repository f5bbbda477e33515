package daemon_test

import (
	"bytes"
	"context"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/misp"
	"github.com/mispsentinel/listener/sim/lab"
	simmisp "github.com/mispsentinel/listener/sim/misp"
	"github.com/mispsentinel/listener/stix"
)

// convertAsDaemon returns the indicators (id → content hash) the daemon should export for an
// event: MISP's filtered search for it (warninglist applied by MISP) converted with the sink's
// options. An event outside the filters yields nothing.
func convertAsDaemon(t *testing.T, l *lab.Lab, cfg *config.Config, uuid string) map[string]string {
	t.Helper()
	mcfg := daemon.MISPClientConfig(cfg.MISP)
	mcfg.URL, mcfg.Key, mcfg.HTTPClient = l.MISP.URL(), l.MISP.Key(), l.MISP.Client()
	client, err := misp.NewClient(mcfg)
	if err != nil {
		t.Fatal(err)
	}
	ev, found, err := client.SearchEvent(context.Background(), uuid, cfg.MISP.EventFilters)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	if !found {
		return out
	}
	res := stix.Convert(ev, daemon.ConversionOptions(cfg, cfg.Sinks[0]), time.Now())
	for _, o := range res.Objects {
		if o.Type == "indicator" {
			out[o.ID] = o.Hash
		}
	}
	return out
}

// TestRevocationsAreExact deletes one event (misp_json_event delete) and republishes another
// without two of its attributes, and checks that exactly the indicators that are gone are
// revoked in Sentinel, and that nothing whose content did not change is uploaded again.
func TestRevocationsAreExact(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	l, err := lab.Start(lab.Options{Dir: t.TempDir(), ZeroMQ: true, Linger: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	uuids := generateUnpublished(t, l, 6, 8, 21)
	d, cfg := startDaemon(t, l)
	waitForInitialReconcile(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.Publisher.WaitForSubscription(ctx, "misp_json"); err != nil {
		t.Fatal(err)
	}
	for _, u := range uuids {
		if err := l.MISP.PublishZMQ(l.Publisher, u); err != nil {
			t.Fatal(err)
		}
	}
	waitConverged(t, l, cfg, 60*time.Second)
	before := sentinelIndicators(t, l, cfg)
	revokedBefore, liveBefore := countIndicators(before)
	if revokedBefore != 0 {
		t.Fatalf("%d indicators revoked before any deletion", revokedBefore)
	}

	// 1. Delete an event: all of its indicators, and only those, are revoked.
	deleted := uuids[0]
	if liveBefore[deleted] == 0 {
		t.Fatalf("event %s has no indicator to revoke; pick another seed", deleted)
	}
	if err := l.MISP.DeleteZMQ(l.Publisher, deleted); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "revocation of the deleted event", func() (bool, string) {
		revoked, _ := countIndicators(sentinelIndicators(t, l, cfg))
		return revoked >= liveBefore[deleted], "revoked so far: " + strconv.Itoa(revoked)
	})
	waitConverged(t, l, cfg, 30*time.Second)
	afterDelete := sentinelIndicators(t, l, cfg)
	checkRevocations(t, before, afterDelete, func(r sentinelRecord) bool { return r.Event == deleted }, nil)

	// 2. Remove two exported attributes of another event and publish it again.
	edited := uuids[1]
	wantBefore := convertAsDaemon(t, l, cfg, edited)
	ev, ok := l.MISP.GetEvent(edited)
	if !ok {
		t.Fatalf("event %s not in the simulator", edited)
	}
	var removedAttrs []string
	for _, a := range ev.Attributes {
		if _, exported := wantBefore["indicator--"+a.UUID]; exported && len(removedAttrs) < 2 {
			removedAttrs = append(removedAttrs, a.UUID)
		}
	}
	if len(removedAttrs) < 2 {
		t.Fatalf("event %s has fewer than two simply exported attributes; pick another seed", edited)
	}
	for _, a := range removedAttrs {
		if err := l.MISP.DeleteAttribute(edited, a); err != nil {
			t.Fatal(err)
		}
	}
	// Editing unpublished the event; publishing it puts it back into the filtered search.
	if err := l.MISP.PublishZMQ(l.Publisher, edited); err != nil {
		t.Fatal(err)
	}
	wantAfter := convertAsDaemon(t, l, cfg, edited)
	gone := map[string]bool{}
	for id := range wantBefore {
		if _, ok := wantAfter[id]; !ok {
			gone[id] = true
		}
	}
	if len(gone) != len(removedAttrs) {
		t.Fatalf("deleting %d attributes removes %d indicators from the conversion", len(removedAttrs), len(gone))
	}
	revokedNow, _ := countIndicators(afterDelete)
	waitFor(t, 30*time.Second, "revocation of the removed attributes", func() (bool, string) {
		revoked, _ := countIndicators(sentinelIndicators(t, l, cfg))
		return revoked >= revokedNow+len(gone), "revoked so far: " + strconv.Itoa(revoked)
	})
	waitConverged(t, l, cfg, 30*time.Second)
	afterEdit := sentinelIndicators(t, l, cfg)
	// Indicators of the edited event whose content did change may legitimately be uploaded
	// again; the others must not be.
	changed := map[string]bool{}
	for id, h := range wantAfter {
		if wantBefore[id] != h {
			changed[id] = true
		}
	}
	checkRevocations(t, afterDelete, afterEdit, func(r sentinelRecord) bool { return gone[r.ID] }, changed)
}

// checkRevocations compares two snapshots: the records selected by shouldRevoke went from live
// to revoked, every other record is untouched (same version, not ingested again) unless its
// id is in mayChange.
func checkRevocations(t *testing.T, before, after map[string]sentinelRecord, shouldRevoke func(sentinelRecord) bool, mayChange map[string]bool) {
	t.Helper()
	var wrong []string
	revoked, untouched := 0, 0
	for id, b := range before {
		a, ok := after[id]
		if !ok {
			wrong = append(wrong, id+": vanished")
			continue
		}
		switch {
		case b.Revoked:
			if !a.Revoked || a.Versions != b.Versions {
				wrong = append(wrong, id+": already revoked, but touched again")
			}
		case shouldRevoke(b):
			if !a.Revoked {
				wrong = append(wrong, id+": should be revoked, is live")
			} else {
				revoked++
			}
		case a.Revoked:
			wrong = append(wrong, id+" ("+b.Value+"): revoked although still in MISP")
		case mayChange[id]:
		case a.Versions != b.Versions || !a.LastIngested.Equal(b.LastIngested):
			wrong = append(wrong, id+": uploaded again although unchanged")
		default:
			untouched++
		}
	}
	for id, a := range after {
		if _, ok := before[id]; !ok && !mayChange[id] {
			wrong = append(wrong, id+" ("+a.Value+"): new indicator")
		}
	}
	sort.Strings(wrong)
	if len(wrong) > 0 {
		t.Errorf("%d unexpected changes in Sentinel, e.g.:\n%s", len(wrong), strings.Join(wrong[:min(10, len(wrong))], "\n"))
	}
	if revoked == 0 {
		t.Error("nothing was revoked")
	}
	t.Logf("%d indicators revoked, %d live ones untouched", revoked, untouched)
}

// TestWarninglistedValuesAreNeverUploaded publishes events holding values on MISP's
// warninglist over ZeroMQ and through the webhook, whose payloads carry every attribute
// unfiltered, and checks that with the default event filters (enforceWarninglist) no
// warninglisted value ever reaches Sentinel while the rest of each event does.
func TestWarninglistedValuesAreNeverUploaded(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	l, err := lab.Start(lab.Options{Dir: t.TempDir(), ZeroMQ: true, Webhook: true, Linger: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	generated := generateUnpublished(t, l, 2, 6, 31)
	viaZMQ, viaHook := generated[0], generated[1]
	listed := map[string][]string{
		viaZMQ:  {simmisp.DefaultWarninglist[0], simmisp.DefaultWarninglist[4]},
		viaHook: {simmisp.DefaultWarninglist[1], simmisp.DefaultWarninglist[3]},
	}
	for ev, values := range listed {
		for _, v := range values {
			typ := "domain"
			if strings.Count(v, ".") == 3 && strings.Trim(v, "0123456789.") == "" {
				typ = "ip-dst"
			}
			if _, err := l.MISP.AddAttribute(ev, typ, "Network activity", v, true); err != nil {
				t.Fatal(err)
			}
		}
	}
	d, cfg := startDaemon(t, l)
	if !cfg.MISP.RefetchOnNotice() {
		t.Fatalf("the default event filters %v should make notices re-fetched", cfg.MISP.EventFilters)
	}
	waitForInitialReconcile(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.Publisher.WaitForSubscription(ctx, "misp_json"); err != nil {
		t.Fatal(err)
	}

	// The notices themselves carry the warninglisted values.
	for ev, values := range listed {
		body, err := l.MISP.WebhookBody(ev)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range values {
			if !bytes.Contains(body, []byte(`"`+v+`"`)) {
				t.Fatalf("the payload of event %s lacks %s: the test would prove nothing", ev, v)
			}
		}
	}
	if err := l.MISP.PublishZMQ(l.Publisher, viaZMQ); err != nil {
		t.Fatal(err)
	}
	if err := l.MISP.Publish(viaHook); err != nil {
		t.Fatal(err)
	}
	hookURL := "http://" + d.Addr("webhook") + "/v1/misp/webhook"
	if status, err := l.MISP.PostWebhook(ctx, hookURL, http.Header{"Authorization": {l.WebhookToken}}, viaHook); err != nil || status != http.StatusAccepted {
		t.Fatalf("webhook: status %d, %v", status, err)
	}
	waitConverged(t, l, cfg, 30*time.Second)

	recs := sentinelIndicators(t, l, cfg)
	_, live := countIndicators(recs)
	for ev, values := range listed {
		want := convertAsDaemon(t, l, cfg, ev)
		if len(want) == 0 || live[ev] != len(want) {
			t.Errorf("event %s: %d live indicators in Sentinel, want the %d non-warninglisted ones", ev, live[ev], len(want))
		}
		for _, r := range recs {
			for _, v := range values {
				if strings.Contains(r.Value, "'"+v+"'") {
					t.Errorf("warninglisted %s was uploaded (indicator %s, revoked %v)", v, r.ID, r.Revoked)
				}
			}
		}
	}
	if got := metricValue(t, d, `listener_event_notices_applied_total{source="zeromq"}`); got != 1 {
		t.Errorf("ZeroMQ notices applied = %v, want 1", got)
	}
	if got := metricValue(t, d, `listener_event_notices_applied_total{source="webhook"}`); got != 1 {
		t.Errorf("webhook notices applied = %v, want 1", got)
	}
}
