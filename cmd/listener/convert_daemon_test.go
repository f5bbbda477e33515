package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/internal/sharedref"
	"github.com/mispsentinel/listener/sim/lab"
)

// convertFixtureEvents exercise what differs between the test fixture (internal/stixtest) and the daemon's options:
// the default TLP marking, tags_ignore (misp-galaxy labels), a sink's max_tlp and
// min_confidence, lifetimes per type, composite attributes and an object.
var convertFixtureEvents = []string{
	`{"Event":{"uuid":"7d1e0c1a-0001-4a00-8000-000000000001","info":"fixture one","published":true,"timestamp":"1700000000","date":"2023-11-14",
	 "Orgc":{"name":"CIRCL","uuid":"55f6ea5e-2c60-40e5-964f-47a8950d210f"},
	 "Tag":[{"name":"misp-galaxy:threat-actor=\"Sofacy\""},{"name":"malware-family"},{"name":"misp:confidence-level=\"fairly-confident\""}],
	 "Attribute":[
	  {"uuid":"7d1e0c1a-0001-4a00-8000-0000000000a1","type":"domain|ip","category":"Network activity","value":"evil.example|198.51.100.7","to_ids":true,"timestamp":"1700000000"},
	  {"uuid":"7d1e0c1a-0001-4a00-8000-0000000000a2","type":"url","category":"Network activity","value":"https://amber.example/x","to_ids":true,"timestamp":"1700000000","Tag":[{"name":"tlp:amber"}]},
	  {"uuid":"7d1e0c1a-0001-4a00-8000-0000000000a3","type":"sha256","category":"Payload delivery","value":"0f3ba1fa8f5a8e3c5e4d8c3b4e2b7f3d8a9c0e1f2a3b4c5d6e7f8091a2b3c4d5","to_ids":true,"timestamp":"1700000000","Tag":[{"name":"tlp:green"}]},
	  {"uuid":"7d1e0c1a-0001-4a00-8000-0000000000a4","type":"ip-dst","category":"Network activity","value":"203.0.113.9","to_ids":false,"timestamp":"1700000000"}],
	 "Object":[{"uuid":"7d1e0c1a-0001-4a00-8000-0000000000b1","name":"domain-ip","meta-category":"network","timestamp":"1700000000","Attribute":[
	  {"uuid":"7d1e0c1a-0001-4a00-8000-0000000000b2","type":"domain","object_relation":"domain","category":"Network activity","value":"obj.example","to_ids":true,"timestamp":"1700000000"},
	  {"uuid":"7d1e0c1a-0001-4a00-8000-0000000000b3","type":"ip-dst","object_relation":"ip","category":"Network activity","value":"192.0.2.44","to_ids":true,"timestamp":"1700000000"}]}]}}`,
	`{"Event":{"uuid":"7d1e0c1a-0002-4a00-8000-000000000002","info":"fixture two, red and unsure","published":true,"timestamp":"1700000100","date":"2023-11-14",
	 "Orgc":{"name":"ACME CERT","uuid":"0b7c3f0e-2222-4a00-8000-00000000c0de"},
	 "Tag":[{"name":"tlp:red"},{"name":"misp:confidence-level=\"unconfident\""}],
	 "Attribute":[
	  {"uuid":"7d1e0c1a-0002-4a00-8000-0000000000a1","type":"domain","category":"Network activity","value":"red.example","to_ids":true,"timestamp":"1700000100"},
	  {"uuid":"7d1e0c1a-0002-4a00-8000-0000000000a2","type":"email-src","category":"Payload delivery","value":"phish@red.example","to_ids":true,"timestamp":"1700000100","Tag":[{"name":"tlp:clear"}]}]}}`,
}

// stampedTime matches the fields the conversion or the store stamps with the current time.
var stampedTime = regexp.MustCompile(`"(modified|valid_until)":"[^"]*"`)

// TestConvertMatchesDaemonExport: `listener convert -c FILE --sink NAME` yields the objects the
// daemon exports for that sink, byte for byte once both are in the store's canonical encoding
// (sorted keys) and the stamped modified and valid_until are set aside, for a built-in fixture
// and, when ../shared is present, every misp-stix corpus event. Events yielding the same
// indicator id are exported once by the daemon; convert must yield that version among its own.
func TestConvertMatchesDaemonExport(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the simulators: skipped with -short")
	}
	l, err := lab.Start(lab.Options{
		Dir: t.TempDir(),
		Sinks: []lab.SinkSpec{
			{Name: "soc", ExtraYAML: "conversion:\n  default_confidence: 70\n  days_to_expire_by_type: {url: 30}"},
			{Name: "partner", WorkspaceID: otherWS, ClientID: otherClientID, Secret: otherSecret,
				ExtraYAML: "filters:\n  max_tlp: tlp:green\n  min_confidence: 40"},
		},
		ExtraYAML: "conversion:\n  tags_ignore: [\"misp-galaxy:\", \"tlp:\"]\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	for _, ev := range convertFixtureEvents {
		if err := l.MISP.Put([]byte(ev)); err != nil {
			t.Fatal(err)
		}
	}
	corpus := putCorpusEvents(t, l)

	dryRun := filepath.Join(t.TempDir(), "dry-run.json")
	if code, _, errOut := runCommand(t, "sync", "-c", l.ConfigPath, "--dry-run", "--output", dryRun); code != exitOK {
		t.Fatalf("sync --dry-run = %d\n%s", code, errOut)
	}
	var doc struct {
		Sinks []struct {
			Name    string            `json:"name"`
			Objects []json.RawMessage `json:"objects"`
		} `json:"sinks"`
	}
	data, err := os.ReadFile(dryRun)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	events := searchAsDaemon(t, l)

	for _, sink := range doc.Sinks {
		// One convert per event: a bundle holds an id once, and events sharing an indicator id
		// each yield their own version of it.
		converted := map[string]map[string]bool{}
		for _, ev := range events {
			code, out, errOut := runCommand(t, "convert", ev, "-c", l.ConfigPath, "--sink", sink.Name)
			if code != exitOK {
				t.Fatalf("convert --sink %s = %d\n%s", sink.Name, code, errOut)
			}
			var bundle struct {
				Objects []json.RawMessage `json:"objects"`
			}
			if err := json.Unmarshal([]byte(out), &bundle); err != nil {
				t.Fatal(err)
			}
			for id, versions := range objectsByID(t, bundle.Objects) {
				if converted[id] == nil {
					converted[id] = map[string]bool{}
				}
				for v := range versions {
					converted[id][v] = true
				}
			}
		}
		daemon := objectsByID(t, sink.Objects)
		if len(daemon) < 5 {
			t.Fatalf("sink %s: the daemon exported only %d objects", sink.Name, len(daemon))
		}
		for id, want := range daemon {
			if len(want) != 1 {
				t.Errorf("sink %s: the daemon exported %s in %d versions", sink.Name, id, len(want))
			}
			for body := range want {
				if !converted[id][body] {
					t.Errorf("sink %s: convert lacks %s as the daemon exports it:\ndaemon:  %s\nconvert: %v", sink.Name, id, body, keys(converted[id]))
				}
			}
		}
		for id := range converted {
			if daemon[id] == nil {
				t.Errorf("sink %s: convert yields %s, which the daemon does not export: %v", sink.Name, id, keys(converted[id]))
			}
		}
		t.Logf("sink %s: %d objects identical (fixture and %d corpus events)", sink.Name, len(daemon), corpus)
	}
	// The differences from the test fixture (internal/stixtest) the fixture is there for.
	fixture := writeTemp(t, "["+strings.Join(convertFixtureEvents, ",")+"]")
	_, soc, _ := runCommand(t, "convert", fixture, "-c", l.ConfigPath, "--sink", "soc")
	if !strings.Contains(soc, "obj.example") || strings.Contains(soc, "misp-galaxy:") {
		t.Errorf("soc: want the object's indicators and no misp-galaxy labels:\n%.600s", soc)
	}
	_, partner, _ := runCommand(t, "convert", fixture, "-c", l.ConfigPath, "--sink", "partner")
	if strings.Contains(partner, "amber.example") || strings.Contains(partner, "red.example") {
		t.Errorf("partner (max_tlp green) exports amber or red indicators:\n%.600s", partner)
	}
}

// objectsByID keys the objects by id, each as the set of its versions in canonical encoding
// (sorted keys, as the store writes them) with the stamped times blanked.
func objectsByID(t *testing.T, objects []json.RawMessage) map[string]map[string]bool {
	t.Helper()
	out := map[string]map[string]bool{}
	for _, o := range objects {
		var m map[string]any
		if err := json.Unmarshal(o, &m); err != nil {
			t.Fatal(err)
		}
		canonical, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := m["id"].(string)
		if out[id] == nil {
			out[id] = map[string]bool{}
		}
		out[id][stampedTime.ReplaceAllString(string(canonical), `"$1":"(stamped)"`)] = true
	}
	return out
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// putCorpusEvents stores every misp-stix corpus event, published, in the MISP simulator, when
// the reference folder is present; it returns how many.
func putCorpusEvents(t *testing.T, l *lab.Lab) int {
	t.Helper()
	shared := filepath.Join(sharedref.ModuleRoot(t), "..", "shared", "corpus", "misp-stix")
	files, _ := filepath.Glob(filepath.Join(shared, "*.misp.json"))
	if len(files) == 0 {
		t.Logf("corpus not present at %s: the built-in fixture only", shared)
		return 0
	}
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]map[string]any
		if json.Unmarshal(data, &doc) != nil || doc["Event"] == nil {
			continue
		}
		doc["Event"]["published"] = true
		data, _ = json.Marshal(doc)
		if err := l.MISP.Put(data); err != nil {
			continue // not an event the simulator can hold; the daemon would never see it
		}
		n++
	}
	if n < 100 {
		t.Fatalf("only %d of %d corpus events stored", n, len(files))
	}
	return n
}

// searchAsDaemon fetches what the daemon's search with the configured event filters returns,
// and writes each event to a file of its own.
func searchAsDaemon(t *testing.T, l *lab.Lab) []string {
	t.Helper()
	cfg, err := config.Load(l.ConfigPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	params := cfg.SearchFilters()
	params["returnFormat"] = "json"
	params["limit"] = 100000
	params["page"] = 1
	body, _ := json.Marshal(params)
	req, _ := http.NewRequest(http.MethodPost, l.MISP.URL()+"/events/restSearch", bytes.NewReader(body))
	req.Header.Set("Authorization", l.MISP.Key())
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.MISP.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var reply struct {
		Response []json.RawMessage `json:"response"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("restSearch: %v %s", err, resp.Status)
	}
	dir := t.TempDir()
	var paths []string
	for i, ev := range reply.Response {
		path := filepath.Join(dir, fmt.Sprintf("event-%d.json", i))
		if err := os.WriteFile(path, ev, 0o600); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, path)
	}
	if len(paths) < len(convertFixtureEvents) {
		t.Fatalf("the search returned %d events", len(paths))
	}
	return paths
}

// TestConvertWithoutConfigUsesTheDaemonDefaults: without -c, convert converts as the daemon does
// with an empty configuration: indicators without a TLP tag are marked tlp:clear and
// misp-galaxy tags are not labels (the test fixture does neither).
func TestConvertWithoutConfigUsesTheDaemonDefaults(t *testing.T) {
	code, out, errOut := runCommand(t, "convert", writeTemp(t, convertFixtureEvents[0]))
	if code != exitOK {
		t.Fatalf("convert = %d\n%s", code, errOut)
	}
	var bundle struct {
		Objects []struct {
			Type    string   `json:"type"`
			Pattern string   `json:"pattern"`
			Marking []string `json:"object_marking_refs"`
			Labels  []string `json:"labels"`
		} `json:"objects"`
	}
	if err := json.Unmarshal([]byte(out), &bundle); err != nil {
		t.Fatal(err)
	}
	indicators := 0
	for _, o := range bundle.Objects {
		if o.Type != "indicator" {
			continue
		}
		indicators++
		if len(o.Marking) != 1 {
			t.Errorf("%s: markings %v, want exactly one TLP marking", o.Pattern, o.Marking)
		}
		for _, l := range o.Labels {
			if strings.HasPrefix(l, "misp-galaxy:") || strings.HasPrefix(l, "tlp:") {
				t.Errorf("%s: label %q, which tags_ignore drops by default", o.Pattern, l)
			}
		}
	}
	if indicators < 4 {
		t.Errorf("%d indicators, want the fixture's to_ids attributes", indicators)
	}
	// --explain names the sink an empty configuration gives the daemon.
	_, explain, _ := runCommand(t, "convert", writeTemp(t, convertFixtureEvents[0]), "--explain")
	if !strings.Contains(explain, "\tdefault\texported\t") || !strings.Contains(explain, "\tdefault\tskipped\tnot_ids\t") {
		t.Errorf("explain:\n%s", explain)
	}
}

// TestConvertExplainShowsEverySink: with a configuration of several sinks, --explain gives each
// attribute one line per sink, and a bundle needs --sink.
func TestConvertExplainShowsEverySink(t *testing.T) {
	cfg := writeTemp(t, `misp: {url: "https://misp.example", key: 0123456789abcdefghij0123456789ABCDEFGHIJ}
sinks:
  - name: soc
    workspace_id: 11111111-2222-4333-8444-555555555555
    identity: {kind: client_secret, tenant_id: aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee, client_id: 99999999-8888-4777-8666-555555555555, client_secret: x}
  - name: partner
    workspace_id: 21111111-2222-4333-8444-555555555555
    identity: {kind: client_secret, tenant_id: aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee, client_id: 99999999-8888-4777-8666-555555555555, client_secret: x}
    filters: {max_tlp: tlp:green}
store: {dir: /tmp/unused}
`)
	events := writeTemp(t, convertFixtureEvents[0])
	code, out, errOut := runCommand(t, "convert", events, "--explain", "-c", cfg)
	if code != exitOK {
		t.Fatalf("convert --explain -c = %d\n%s", code, errOut)
	}
	for _, want := range []string{
		"\"https://amber.example/x\"\tsoc\texported\t",
		"\"https://amber.example/x\"\tpartner\tskipped\t",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explain lacks %q:\n%s", want, out)
		}
	}
	if n, attrs := strings.Count(out, "\n"), 2*6; n != attrs {
		t.Errorf("%d explain lines, want %d (6 attributes, 2 sinks)", n, attrs)
	}
	if code, _, errOut := runCommand(t, "convert", events, "-c", cfg); code != exitUsage || !strings.Contains(errOut, "choose one with --sink (soc, partner)") {
		t.Errorf("convert -c with two sinks and no --sink = %d: %s", code, errOut)
	}
	if code, _, errOut := runCommand(t, "convert", events, "-c", cfg, "--sink", "nope"); code != exitUsage || !strings.Contains(errOut, `no such sink`) {
		t.Errorf("convert --sink nope = %d: %s", code, errOut)
	}
}
