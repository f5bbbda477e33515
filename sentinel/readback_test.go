package sentinel

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/mispsentinel/listener/pusher"
	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
)

// readerConfig is a complete read-back configuration for the simulator's default workspace.
func readerConfig(sim *simsentinel.Server, api ReadAPI) ReaderConfig {
	sub, rg, name := sim.Location(simsentinel.DefaultWorkspaceID)
	version := "2025-09-01"
	if api == ReadSTIXObjects {
		version = "2025-07-01-preview"
	}
	return ReaderConfig{
		API: api, APIVersion: version, Cloud: "public",
		AuthorityHost: sim.URL + "/", ManagementURL: sim.URL, Scope: simsentinel.ManagementScope,
		SubscriptionID: sub, ResourceGroup: rg, WorkspaceName: name,
		UserAgent: "test", RequestTimeout: 10 * time.Second, PageSize: 40, MaxPages: 100,
		RequestsPerMinute: 1000, QuotaMinute: time.Minute, MaxRetryAfter: 2 * time.Second,
		MaxAttempts: 5, RetryInitial: 10 * time.Millisecond,
		TLSRootCAs: sim.CertPool(),
		Credential: Credential{
			Kind: CredentialClientSecret, TenantID: sim.TenantID(), ClientID: simsentinel.DefaultClientID,
			ClientSecret: simsentinel.DefaultClientSecret, DisableInstanceDiscovery: true,
		},
	}
}

func newTestReader(t *testing.T, sim *simsentinel.Server, api ReadAPI) *Reader {
	t.Helper()
	pacers, err := pusher.NewPacers(0)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(readerConfig(sim, api), pacers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// uploadTestIndicators uploads indicators first..first+n-1 under sourceSystem.
func uploadTestIndicators(t *testing.T, sim *simsentinel.Server, sourceSystem string, first, n int, edit func(map[string]any)) {
	t.Helper()
	cfg := simConfig(sim)
	cfg.SourceSystem = sourceSystem
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	now := time.Now().Add(-time.Minute)
	for start := first; start < first+n; start += 100 {
		var batch []pusher.Object
		for i := start; i < min(start+100, first+n); i++ {
			batch = append(batch, pusher.Object{ID: testID(i), Body: testIndicator(i, now, edit)})
		}
		rej, err := c.Send(context.Background(), batch, func(context.Context) error { return nil })
		if err != nil || len(rej) > 0 {
			t.Fatalf("upload: %v %v", rej, err)
		}
	}
}

func heldIDs(t *testing.T, r *Reader, q Query) []string {
	t.Helper()
	held, err := r.List(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, h := range held {
		ids = append(ids, h.SourceSystem+"/"+h.ID)
	}
	slices.Sort(ids)
	return ids
}

func TestReaderPagesBothAPIsFilteredBySource(t *testing.T) {
	sim := startSim(t, simsentinel.Options{})
	uploadTestIndicators(t, sim, "MISP", 0, 130, nil)
	uploadTestIndicators(t, sim, "misp2sentinel", 1000, 15, nil)
	for _, api := range []ReadAPI{ReadIndicators, ReadSTIXObjects} {
		t.Run(string(api), func(t *testing.T) {
			r := newTestReader(t, sim, api)
			before := sim.ReadStats().Pages
			if got := heldIDs(t, r, Query{SourceSystems: []string{"MISP"}}); len(got) != 130 {
				t.Fatalf("MISP: %d objects, want 130", len(got))
			}
			if pages := sim.ReadStats().Pages - before; pages != 4 {
				t.Errorf("%d pages for 130 objects of 40, want 4", pages)
			}
			all := heldIDs(t, r, Query{})
			if len(all) != 145 {
				t.Fatalf("all sources: %d objects, want 145", len(all))
			}
			held, err := r.Lookup(context.Background(), testID(1003))
			if err != nil || len(held) != 1 || held[0].SourceSystem != "misp2sentinel" {
				t.Fatalf("Lookup: %+v %v", held, err)
			}
			h := held[0]
			if len(h.Observables) != 1 || h.Observables[0] != (Observable{Type: "ipv4-addr", Value: "10.0.3.235"}) || !h.Live(time.Now()) || h.Modified.IsZero() {
				t.Errorf("held object %+v", h)
			}
			if api == ReadSTIXObjects && len(h.Data) == 0 {
				t.Error("the STIX-object view carries no data")
			}
			byValue, err := r.LookupValue(context.Background(), "10.0.0.7")
			if err != nil || len(byValue) != 1 || byValue[0].ID != testID(7) {
				t.Errorf("LookupValue: %+v %v", byValue, err)
			}
		})
	}
}

func TestReaderSeesTestControlsAndLag(t *testing.T) {
	sim := startSim(t, simsentinel.Options{})
	uploadTestIndicators(t, sim, "MISP", 0, 10, nil)
	if !sim.DeleteObject(simsentinel.DefaultWorkspaceID, "MISP", testID(3)) {
		t.Fatal("DeleteObject found nothing")
	}
	if ok, err := sim.AlterObject(simsentinel.DefaultWorkspaceID, "MISP", testID(4), func(o map[string]any) { o["revoked"] = true }); !ok || err != nil {
		t.Fatalf("AlterObject: %v %v", ok, err)
	}
	for _, api := range []ReadAPI{ReadIndicators, ReadSTIXObjects} {
		r := newTestReader(t, sim, api)
		live := heldIDs(t, r, Query{SourceSystems: []string{"MISP"}})
		if len(live) != 8 || slices.Contains(live, "MISP/"+testID(3)) || slices.Contains(live, "MISP/"+testID(4)) {
			t.Errorf("%s: live %v", api, live)
		}
		if all := heldIDs(t, r, Query{IncludeRevoked: true}); len(all) != 9 {
			t.Errorf("%s: with revoked %d, want 9", api, len(all))
		}
	}
	// Within the lag a new object is invisible and a changed one shows its previous version.
	sim.SetVisibilityLag(time.Hour)
	uploadTestIndicators(t, sim, "MISP", 100, 5, nil)
	uploadTestIndicators(t, sim, "MISP", 0, 1, func(o map[string]any) {
		o["modified"], o["pattern"] = stixTime(time.Now()), "[ipv4-addr:value = '192.0.2.1']"
	})
	r := newTestReader(t, sim, ReadIndicators)
	if got := heldIDs(t, r, Query{}); len(got) != 0 {
		t.Errorf("everything was ingested within the lag, yet %d objects are visible", len(got))
	}
	sim.SetVisibilityLag(0)
	if got := heldIDs(t, r, Query{}); len(got) != 13 {
		t.Errorf("after the lag: %d objects, want 13", len(got))
	}
}

func TestReaderHonoursThrottlingAndReportsErrors(t *testing.T) {
	sim := startSim(t, simsentinel.Options{})
	uploadTestIndicators(t, sim, "MISP", 0, 50, nil)
	r := newTestReader(t, sim, ReadIndicators)
	sim.ThrottleReads(2, time.Second)
	if got := heldIDs(t, r, Query{}); len(got) != 50 {
		t.Fatalf("after 429s: %d objects, want 50", len(got))
	}
	if st := sim.ReadStats(); st.Throttled != 2 {
		t.Errorf("throttled %d, want 2", st.Throttled)
	}

	cfg := readerConfig(sim, ReadIndicators)
	cfg.WorkspaceName = "no-such-workspace"
	pacers, _ := pusher.NewPacers(0)
	bad, err := NewReader(cfg, pacers)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	_, err = bad.List(context.Background(), Query{})
	var re *ReadError
	if !errors.As(err, &re) || re.Status != http.StatusNotFound || re.Hint == "" {
		t.Errorf("unknown workspace: %v", err)
	}

	cfg = readerConfig(sim, ReadIndicators)
	cfg.APIVersion = "2020-01-01"
	if bad, err = NewReader(cfg, pacers); err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if _, err = bad.List(context.Background(), Query{}); !errors.As(err, &re) || re.Status != http.StatusBadRequest {
		t.Errorf("bad api-version: %v", err)
	}

	cfg = readerConfig(sim, "")
	if err := cfg.Validate(); err == nil {
		t.Error("an empty API validates")
	}
}

func TestReaderDeleteThenGone(t *testing.T) {
	sim := startSim(t, simsentinel.Options{})
	uploadTestIndicators(t, sim, "MISP", 0, 3, nil)
	for _, api := range []ReadAPI{ReadIndicators, ReadSTIXObjects} {
		r := newTestReader(t, sim, api)
		held, err := r.Lookup(context.Background(), testID(0))
		if err != nil || len(held) != 1 {
			t.Fatalf("%s: lookup %v %v", api, held, err)
		}
		if err := r.Delete(context.Background(), held[0]); err != nil {
			t.Fatalf("%s: delete: %v", api, err)
		}
		if err := r.Delete(context.Background(), held[0]); err != nil {
			t.Errorf("%s: a second delete (404) is not success: %v", api, err)
		}
		if held, _ := r.Lookup(context.Background(), testID(0)); len(held) != 0 {
			t.Errorf("%s: deleted object still listed", api)
		}
		uploadTestIndicators(t, sim, "MISP", 0, 1, func(o map[string]any) { o["modified"] = stixTime(time.Now()) })
	}
}

func TestPatternObservables(t *testing.T) {
	for pattern, want := range map[string][]Observable{
		"[ipv4-addr:value = '198.51.100.1']":                                 {{"ipv4-addr", "198.51.100.1"}},
		"[file:hashes.'SHA-256' = 'ABCD']":                                   {{"file:hashes.'SHA-256'", "ABCD"}},
		"[domain-name:value = 'a.example' AND ipv4-addr:value = '10.0.0.1']": {{"domain-name", "a.example"}, {"ipv4-addr", "10.0.0.1"}},
		`[url:value = 'http://x/it\'s']`:                                     {{"url", "http://x/it's"}},
		"free text":                                                          nil,
	} {
		if got := PatternObservables(pattern); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", pattern, got, want)
		}
	}
	if (Observable{"domain-name", "A.Example"}).Key() != (Observable{"domain-name", "a.example"}).Key() {
		t.Error("domain keys are case-sensitive")
	}
}
