package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mispsentinel/listener/daemon"
)

// TestTraceCommand traces an event of a synced lab without a daemon (the CLI opens the store)
// and with one running (it answers through its control socket), by event uuid, attribute
// value and indicator id, in text and --json; checks that `deadletters list --json` prints []
// both ways when there is no dead letter and that `status` reads the running daemon.
func TestTraceCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the simulators: skipped with -short")
	}
	l := startLab(t)
	events := l.MISP.Generate(4, 4, 9)
	if code, out, errOut := runCommand(t, "sync", "-c", l.ConfigPath); code != exitOK {
		t.Fatalf("sync = %d\n%s%s", code, out, errOut)
	}
	socket := filepath.Join(l.StoreDir, "control.sock")

	// Without a daemon.
	code, out, errOut := runCommand(t, "trace", "-c", l.ConfigPath, events[0])
	if code != exitOK {
		t.Fatalf("trace without a daemon = %d\n%s%s", code, out, errOut)
	}
	wantLines(t, "trace without a daemon", out,
		`^trace "`+events[0]+`" \(event\)$`,
		`^source: store `+regexp.QuoteMeta(l.StoreDir)+` \(no daemon answered\)$`,
		`^MISP attribute \S+ \(id \d+\): \S+ ".*", to_ids (true|false)`,
		`^  event `+events[0]+` \(id \d+\) ".*": passes the event filters, published true`,
		`^  sink soc: exported`,
		`^    indicator--\S+$`,
		`^      store: accepted; version modified \d{4}-\S+, valid_until \S+, Sentinel accepted the version modified \d{4}-`,
		`^      sentinel: not available: the daemon has no Sentinel read-back for this sink$`,
	)
	code, out, _ = runCommand(t, "trace", "-c", l.ConfigPath, "--json", events[0])
	var tr daemon.Trace
	if err := json.Unmarshal([]byte(out), &tr); code != exitOK || err != nil || tr.Kind != "event" || len(tr.Attributes) == 0 {
		t.Fatalf("trace --json = %d %v:\n%s", code, err, out)
	}
	var value, id string
	for _, a := range tr.Attributes {
		if s := a.Sinks[0]; s.Decision == "exported" && len(s.Indicators) > 0 && value == "" {
			value, id = a.Value, s.Indicators[0].ID
		}
	}
	if value == "" {
		t.Fatalf("no exported attribute in the trace:\n%s", out)
	}
	for _, args := range [][]string{{"deadletters", "list", "-c", l.ConfigPath, "--json"}, {"deadletters", "list", "-c", l.ConfigPath, "--json", "--sink", "soc"}} {
		if code, out, errOut := runCommand(t, args...); code != exitOK || out != "[]\n" {
			t.Errorf("%v without dead letters = %d %q %s, want []", args, code, out, errOut)
		}
	}
	if code, _, errOut := runCommand(t, "trace", "-c", l.ConfigPath, "--sink", "nope", value); code != exitUsage {
		t.Errorf("trace --sink nope = %d, want usage\n%s", code, errOut)
	}

	// With the daemon running: the same answers, from it.
	stop := startRun(t, l.ConfigPath)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(socket); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon never created its control socket %s", socket)
		}
		time.Sleep(50 * time.Millisecond)
	}
	from := `^source: running daemon \(control socket ` + regexp.QuoteMeta(socket) + `\)$`
	code, out, errOut = runCommand(t, "trace", "-c", l.ConfigPath, value)
	if code != exitOK {
		t.Fatalf("trace with the daemon = %d\n%s", code, errOut)
	}
	wantLines(t, "trace of a value with the daemon", out, `^trace "`+regexp.QuoteMeta(value)+`" \(value\)$`, from,
		`^    `+regexp.QuoteMeta(id)+`$`)
	code, out, errOut = runCommand(t, "trace", "-c", l.ConfigPath, "--json", id)
	if err := json.Unmarshal([]byte(out), &tr); code != exitOK || err != nil || tr.Kind != "indicator" || !strings.HasPrefix(tr.Source, "running daemon") {
		t.Errorf("trace --json of an indicator with the daemon = %d %v:\n%s%s", code, err, out, errOut)
	}
	code, out, _ = runCommand(t, "status", "-c", l.ConfigPath)
	wantLines(t, "status with the daemon", out, from)
	if code, out, errOut := runCommand(t, "deadletters", "list", "-c", l.ConfigPath, "--json"); code != exitOK || out != "[]\n" {
		t.Errorf("deadletters list --json with the daemon = %d %q %s, want []", code, out, errOut)
	}
	stop()
	if _, err := os.Lstat(socket); !os.IsNotExist(err) {
		t.Errorf("the control socket outlives the daemon: %v", err)
	}
	// And no store is created where there is none.
	empty := writeVariant(t, l, "nostore.yaml", "dir: "+l.StoreDir, "dir: "+filepath.Join(t.TempDir(), "none"))
	if code, _, errOut := runCommand(t, "deadletters", "list", "-c", empty); code != exitFailure || !strings.Contains(errOut, "no store") {
		t.Errorf("deadletters list without a store = %d %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(empty), "none")); err == nil {
		t.Error("deadletters list created a store directory")
	}
}
