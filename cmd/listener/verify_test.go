package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/mispsentinel/listener/sim/lab"
	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
	"github.com/mispsentinel/listener/store"
)

// TestVerifyCommand runs `listener verify` against the simulators: no difference after a
// sync (exit 0), a deleted object reported (exit 1, --json), --repair uploads it again, the
// next verify is clean; a store held by another process, an unknown sink and a configuration
// without read_back are refused with clear messages.
func TestVerifyCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	readBack := fmt.Sprintf("read_back:\n  subscription_id: %s\n  resource_group: %s\n  workspace_name: %s\n  lag: 0s\n",
		simsentinel.DefaultSubscriptionID, simsentinel.DefaultResourceGroup, simsentinel.DefaultWorkspaceName)
	l, err := lab.Start(lab.Options{
		Dir:      t.TempDir(),
		Sinks:    []lab.SinkSpec{{Name: "primary", ExtraYAML: readBack}},
		Sentinel: simsentinel.Options{TimeScale: 100},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.MISP.Generate(10, 10, 3)
	if code, _, stderr := runCommand(t, "sync", "-c", l.ConfigPath); code != exitOK {
		t.Fatalf("sync: exit %d\n%s", code, stderr)
	}
	code, stdout, stderr := runCommand(t, "verify", "-c", l.ConfigPath)
	if code != exitOK || !strings.Contains(stdout, "no difference") {
		t.Fatalf("verify after sync: exit %d\n%s%s", code, stdout, stderr)
	}

	var victim string
	for id, r := range l.Sentinel.Indicators(simsentinel.DefaultWorkspaceID, "MISP") {
		if r.Type == "indicator" && !r.Revoked {
			victim = id
			break
		}
	}
	l.Sentinel.DeleteObject(simsentinel.DefaultWorkspaceID, "MISP", victim)
	code, stdout, stderr = runCommand(t, "verify", "-c", l.ConfigPath, "--json", "--sink", "primary")
	var doc struct {
		Differences int `json:"differences"`
		Sinks       []struct {
			Sink     string                       `json:"sink"`
			Counts   map[string]int               `json:"counts"`
			Examples map[string][]json.RawMessage `json:"examples"`
		} `json:"sinks"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("--json: %v\n%s%s", err, stdout, stderr)
	}
	if code != exitFailure || doc.Differences != 1 || doc.Sinks[0].Counts["missing"] != 1 || !strings.Contains(string(doc.Sinks[0].Examples["missing"][0]), victim) {
		t.Fatalf("after a deletion: exit %d %+v", code, doc)
	}
	code, stdout, _ = runCommand(t, "verify", "-c", l.ConfigPath, "--repair")
	if code != exitFailure || !strings.Contains(stdout, "repair: requeued=1 uploaded=1 rejected=0") {
		t.Fatalf("--repair: exit %d\n%s", code, stdout)
	}
	if code, stdout, _ = runCommand(t, "verify", "-c", l.ConfigPath); code != exitOK {
		t.Fatalf("after --repair: exit %d\n%s", code, stdout)
	}

	// The store held by another process (the daemon): a clear message.
	st, err := store.Open(l.StoreDir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCommand(t, "verify", "-c", l.ConfigPath)
	st.Close()
	if code != exitFailure || !strings.Contains(stderr, "in use, most likely by the running daemon") {
		t.Errorf("store in use: exit %d\n%s", code, stderr)
	}
	if code, _, stderr = runCommand(t, "verify", "-c", l.ConfigPath, "--sink", "nosuch"); code != exitUsage || !strings.Contains(stderr, `no sink named "nosuch"`) {
		t.Errorf("unknown sink: exit %d\n%s", code, stderr)
	}
}
