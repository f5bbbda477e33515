package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// status and deadletters never create a store: with no daemon answering, a store.dir without
// one is a clear error (exit 1) naming the directory, and the directory is still absent
// afterwards; a relative store.dir is the configuration file's, not the working directory's.
func TestInspectionCommandsNeverCreateAStore(t *testing.T) {
	confDir := t.TempDir()
	path := filepath.Join(confDir, "listener.yaml")
	const cfgText = `misp: {url: "https://misp.example", key: 0123456789abcdefghij0123456789ABCDEFGHIJ}
sinks:
  - name: soc
    workspace_id: 11111111-2222-4333-8444-555555555555
    identity: {kind: client_secret, tenant_id: aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee, client_id: 99999999-8888-4777-8666-555555555555, client_secret: x}
store: {dir: ./state}
`
	if err := os.WriteFile(path, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir()) // the relative store.dir is the configuration file's, not ours
	want := filepath.Join(confDir, "state")
	for _, args := range [][]string{
		{"status", "-c", path},
		{"status", "-c", path, "--json"},
		{"deadletters", "list", "-c", path},
		{"deadletters", "requeue", "-c", path},
	} {
		code, _, errOut := runCommand(t, args...)
		if code != exitFailure || !strings.Contains(errOut, "no store in "+want) {
			t.Errorf("%v = %d, want %d and an error naming %s:\n%s", args, code, exitFailure, want, errOut)
		}
		for _, dir := range []string{want, "state"} {
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Fatalf("%v created %s (stat: %v)", args, dir, err)
			}
		}
	}
}
