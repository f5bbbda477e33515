package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/sim/lab"
	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
	"github.com/mispsentinel/listener/stix"
	"github.com/mispsentinel/listener/store"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a running command.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runCommand runs one listener command in-process and returns its exit code and output.
func runCommand(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut syncBuffer
	code = dispatch(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// Second identity of the command tests' lab.
const (
	otherClientID = "6a7b8c9d-0e1f-4a2b-9c3d-4e5f6a7b8c9d"
	otherSecret   = "other-app-secret-Zq8#v2"
	otherWS       = "2c3d4e5f-6071-4b8c-9d0e-1f2a3b4c5d6e"
)

// startLab starts the simulators with two sinks (two identities) and ZeroMQ with PLAIN.
func startLab(t *testing.T) *lab.Lab {
	t.Helper()
	l, err := lab.Start(lab.Options{
		Dir: t.TempDir(), ZeroMQ: true, PLAIN: true, Webhook: true, Linger: 100 * time.Millisecond,
		Sinks: []lab.SinkSpec{
			{Name: "soc"},
			{Name: "partner", WorkspaceID: otherWS, ClientID: otherClientID, Secret: otherSecret,
				ExtraYAML: "filters:\n  max_tlp: tlp:green"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// writeVariant writes the lab's configuration with each old string replaced by its new one
// and returns the new file's path.
func writeVariant(t *testing.T, l *lab.Lab, name string, replacements ...string) string {
	t.Helper()
	data, err := os.ReadFile(l.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for i := 0; i+1 < len(replacements); i += 2 {
		if !strings.Contains(text, replacements[i]) {
			t.Fatalf("the lab configuration has no %q", replacements[i])
		}
		text = strings.ReplaceAll(text, replacements[i], replacements[i+1])
	}
	path := filepath.Join(filepath.Dir(l.ConfigPath), name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// zmqPassword reads the PLAIN password the lab wrote into its configuration.
func zmqPassword(t *testing.T, l *lab.Lab) string {
	t.Helper()
	data, err := os.ReadFile(l.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^  password: (\S+)$`).FindStringSubmatch(string(data))
	if m == nil {
		t.Fatal("the lab configuration has no zeromq password")
	}
	return m[1]
}

func wantLines(t *testing.T, what, out string, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		if !regexp.MustCompile(`(?m)` + p).MatchString(out) {
			t.Errorf("%s: no line matching %q in:\n%s", what, p, out)
		}
	}
}

func TestCheckCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the simulators: skipped with -short")
	}
	l := startLab(t)

	code, out, errOut := runCommand(t, "check", "-c", l.ConfigPath, "--timeout", "20s")
	if code != exitOK {
		t.Fatalf("check = %d\n%s%s", code, out, errOut)
	}
	wantLines(t, "check", out,
		`^ok    configuration .* \(2 sinks\)$`,
		`^ok    MISP https://127\.0\.0\.1:\d+ \(version \S+\)$`,
		`^ok    ZeroMQ tcp://127\.0\.0\.1:\d+$`,
		`^ok    token for identity \S+/`+simsentinel.DefaultClientID+` \(client_secret\)$`,
		`^ok    token for identity \S+/`+otherClientID+` \(client_secret\)$`,
		`^ok    workspace `+simsentinel.DefaultWorkspaceID+` \(sink soc\) accepts uploads$`,
		`^ok    workspace `+otherWS+` \(sink partner\) accepts uploads$`,
	)
	if strings.Contains(out, "FAIL") {
		t.Errorf("check reported a failure:\n%s", out)
	}

	code, out, _ = runCommand(t, "check", "-c", l.ConfigPath, "--offline")
	if code != exitOK || strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "ok    configuration") {
		t.Errorf("check --offline = %d:\n%s", code, out)
	}

	unknownWS := uuid.NewString()
	tests := []struct {
		name         string
		replacements []string
		want         []string
	}{
		{"bad MISP key", []string{"key: " + l.MISP.Key(), "key: " + strings.Repeat("a", 40)},
			[]string{`^FAIL  MISP https://\S+: .*check misp\.key`}},
		{"bad client secret", []string{"client_secret: " + otherSecret, "client_secret: wrong-secret"},
			[]string{`^FAIL  token for identity \S+/` + otherClientID + ` \(client_secret\): `,
				`^FAIL  workspace ` + otherWS + ` \(sink partner\): skipped: no token$`,
				`^ok    workspace ` + simsentinel.DefaultWorkspaceID + ` \(sink soc\) accepts uploads$`}},
		{"unknown workspace", []string{"workspace_id: " + otherWS, "workspace_id: " + unknownWS},
			[]string{`^FAIL  workspace ` + unknownWS + ` \(sink partner\): .*404`,
				`^ok    workspace ` + simsentinel.DefaultWorkspaceID + ` \(sink soc\) accepts uploads$`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeVariant(t, l, strings.ReplaceAll(tt.name, " ", "-")+".yaml", tt.replacements...)
			code, out, errOut := runCommand(t, "check", "-c", path, "--timeout", "20s")
			if code != exitFailure {
				t.Errorf("check = %d, want %d\n%s%s", code, exitFailure, out, errOut)
			}
			wantLines(t, tt.name, out, tt.want...)
		})
	}
}

func TestConfigPrintCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the simulators: skipped with -short")
	}
	l := startLab(t)
	t.Setenv("CMD_TEST_MISP_KEY", l.MISP.Key())
	path := writeVariant(t, l, "env.yaml", "key: "+l.MISP.Key(), "key: env:CMD_TEST_MISP_KEY")
	code, out, errOut := runCommand(t, "config", "print", "-c", path)
	if code != exitOK {
		t.Fatalf("config print = %d\n%s", code, errOut)
	}
	wantLines(t, "config print", out,
		`^  key: env:CMD_TEST_MISP_KEY$`,
		`^      client_secret: <secret>$`,
		`^  auth_token: <secret>$`,
		`^  password: <secret>$`,
		`^      max_tlp: tlp:green$`,
	)
	for _, secret := range []string{l.MISP.Key(), otherSecret, simsentinel.DefaultClientSecret, l.WebhookToken, zmqPassword(t, l)} {
		if strings.Contains(out, secret) {
			t.Errorf("config print shows the secret %q", secret)
		}
	}
	// What it prints is itself a valid configuration (with the secrets redacted).
	if _, err := config.Parse([]byte(out), nil); err != nil {
		t.Errorf("config print output does not parse: %v", err)
	}

	if code, _, _ := runCommand(t, "config", "-c", path); code != exitUsage {
		t.Errorf("config without print = %d, want %d", code, exitUsage)
	}
}

// TestStatusAndDeadLettersCommands syncs once, leaves a record Sentinel rejects in the dead
// letters, and checks `status` (store mode), `deadletters list` and `deadletters requeue`,
// then `status` and `deadletters list` through a running daemon's control socket.
func TestStatusAndDeadLettersCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the simulators: skipped with -short")
	}
	l := startLab(t)
	l.MISP.Generate(10, 4, 5)

	// Queue one object Sentinel will reject, next to what the sync finds in MISP.
	bad := lab.RejectedIndicator()
	st, err := store.Open(l.StoreDir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply("soc", bad.EventUUID, []stix.Object{bad}, time.Now()); err != nil {
		t.Fatal(err)
	}
	st.Close()
	code, out, errOut := runCommand(t, "sync", "-c", l.ConfigPath)
	if code != exitOK && code != exitFailure {
		t.Fatalf("sync = %d\n%s%s", code, out, errOut)
	}
	live := func(ws string) int {
		n := 0
		for _, r := range l.Sentinel.Indicators(ws, "MISP") {
			if !r.Revoked {
				n++
			}
		}
		return n
	}
	socLive, partnerLive := live(simsentinel.DefaultWorkspaceID), live(otherWS)
	if socLive == 0 || partnerLive == 0 {
		t.Fatalf("sync uploaded nothing: soc %d, partner %d\n%s%s", socLive, partnerLive, out, errOut)
	}

	code, out, errOut = runCommand(t, "status", "-c", l.ConfigPath)
	if code != exitOK {
		t.Fatalf("status = %d\n%s", code, errOut)
	}
	wantLines(t, "status", out,
		`^source: store `+regexp.QuoteMeta(l.StoreDir)+`$`,
		`^last full reconcile: +\d{4}-\d\d-\d\dT`,
		`^SINK +STATE +LIVE +NOT YET SENT +REVOKED +OUTBOX +DEAD LETTERS +OLDEST QUEUED +LAST UPLOAD +PROBLEM$`,
		// The bad object's event is not in MISP: the sync revoked it, and the revocation
		// was dead-lettered.
		`^soc +- +\d+ +0 +1 +0 +1 +never +\d{4}-`,
		`^partner +- +\d+ +0 +\d+ +0 +0 +never +\d{4}-`,
	)
	code, out, _ = runCommand(t, "status", "-c", l.ConfigPath, "--json")
	var js struct {
		Sinks []struct {
			Name        string `json:"name"`
			DeadLetters int    `json:"dead_letters"`
			LiveObjects int    `json:"live_objects"`
		} `json:"sinks"`
	}
	if err := json.Unmarshal([]byte(out), &js); code != exitOK || err != nil || len(js.Sinks) != 2 {
		t.Fatalf("status --json = %d %v:\n%s", code, err, out)
	}
	// The store's live objects are the simulator's live indicators plus the shared identities.
	if js.Sinks[0].DeadLetters != 1 || js.Sinks[0].LiveObjects < socLive || js.Sinks[1].LiveObjects < partnerLive {
		t.Errorf("status --json = %+v; simulator live: soc %d, partner %d", js.Sinks, socLive, partnerLive)
	}

	code, out, _ = runCommand(t, "deadletters", "list", "-c", l.ConfigPath)
	wantLines(t, "deadletters list", out,
		`^SINK +SEQ +ID +REVOKE +REJECTED AT +MESSAGE$`,
		`^soc +\d+ +`+regexp.QuoteMeta(bad.ID)+` +(true|false) +\d{4}-\S+ +.*valid_until must be greater than valid_from`)
	if code != exitOK || strings.Count(out, "\n") != 2 {
		t.Errorf("deadletters list = %d, want one dead letter:\n%s", code, out)
	}
	code, out, _ = runCommand(t, "deadletters", "list", "-c", l.ConfigPath, "--json", "--sink", "soc")
	var dl []struct {
		Sink string          `json:"sink"`
		ID   string          `json:"id"`
		Obj  json.RawMessage `json:"object"`
	}
	if err := json.Unmarshal([]byte(out), &dl); code != exitOK || err != nil || len(dl) != 1 || dl[0].ID != bad.ID || len(dl[0].Obj) == 0 {
		t.Errorf("deadletters list --json = %d %v:\n%s", code, err, out)
	}
	// A sink without dead letters lists as an empty JSON array, not as nothing.
	if code, out, _ = runCommand(t, "deadletters", "list", "-c", l.ConfigPath, "--json", "--sink", "partner"); code != exitOK || out != "[]\n" {
		t.Errorf("deadletters list --json of a sink without dead letters = %d %q, want []", code, out)
	}
	code, out, _ = runCommand(t, "deadletters", "requeue", "-c", l.ConfigPath)
	if code != exitOK || !strings.Contains(out, "soc: re-queued 1\n") || !strings.Contains(out, "partner: re-queued 0\n") {
		t.Errorf("deadletters requeue = %d:\n%s", code, out)
	}
	code, out, _ = runCommand(t, "status", "-c", l.ConfigPath)
	wantLines(t, "status after requeue", out, `^soc +- +\d+ +0 +1 +1 +0 +\d{4}-`)
	if code, _, errOut := runCommand(t, "deadletters", "purge", "-c", l.ConfigPath); code != exitUsage {
		t.Errorf("deadletters purge = %d, want usage error\n%s", code, errOut)
	}

	// With the daemon running (it holds the store), status asks it through its control socket. The
	// partner sink now names a workspace Sentinel does not know: it stops alone, and status
	// says why.
	addr := freeLoopbackAddr(t)
	t.Setenv("LISTENER_METRICS_LISTEN", addr)
	unknownWS := uuid.NewString()
	broken := writeVariant(t, l, "broken-partner.yaml", "workspace_id: "+otherWS, "workspace_id: "+unknownWS)
	stop := startRun(t, broken)
	waitReady(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.Publisher.WaitForSubscription(ctx, "misp_json"); err != nil {
		t.Fatal(err)
	}
	for _, u := range l.MISP.Generate(6, 4, 6) {
		if err := l.MISP.PublishZMQ(l.Publisher, u); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		code, out, errOut = runCommand(t, "status", "-c", broken)
		if code != exitOK {
			t.Fatalf("status with the daemon running = %d\n%s", code, errOut)
		}
		if strings.Contains(out, "HTTP 404") || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	wantLines(t, "status via daemon", out,
		`^source: running daemon \(control socket `+regexp.QuoteMeta(filepath.Join(l.StoreDir, "control.sock"))+`\)$`,
		`^soc +up +\d+ +\d+ +\d+ +\d+ +\d+ +\S+ +\S+ *$`,
		`^partner +failing +\d+ +\d+ +\d+ +[1-9]\d* +0 +\S+ +\S+ +failing since \S+, next retry \S+: sink stopped: partner: sink misconfigured \(workspace_or_path, HTTP 404\): .*Workspace not found`)
	// deadletters list asks the running daemon too, instead of failing on the locked store.
	if code, out, errOut := runCommand(t, "deadletters", "list", "-c", l.ConfigPath); code != exitOK || !strings.HasPrefix(out, "SINK") {
		t.Errorf("deadletters list with the daemon running = %d: %s%s", code, out, errOut)
	}
	if code, out, errOut := runCommand(t, "deadletters", "list", "-c", l.ConfigPath, "--json", "--sink", "partner"); code != exitOK || out != "[]\n" {
		t.Errorf("deadletters list --json with the daemon running = %d %q %s, want []", code, out, errOut)
	}
	if log := stop(); !strings.Contains(log, "sink stopped") {
		t.Errorf("the daemon's log does not say the partner sink stopped:\n%s", log)
	}
}

// freeLoopbackAddr returns a loopback address no one listens on.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startRun runs `listener run -c path` in-process; the returned function stops it, checks its
// exit code and returns its standard error (the log).
func startRun(t *testing.T, path string) (stop func() string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() { done <- dispatch(ctx, []string{"run", "-c", path}, &out, &errOut) }()
	var once sync.Once
	stop = func() string {
		once.Do(func() {
			cancel()
			select {
			case code := <-done:
				if code != exitOK {
					t.Errorf("run = %d\n%s", code, errOut.String())
				}
			case <-time.After(30 * time.Second):
				t.Errorf("run did not stop within 30 s of cancellation")
			}
		})
		return errOut.String()
	}
	t.Cleanup(func() { stop() })
	return stop
}

// waitReady polls the daemon's /readyz (a liveness bound, not a speed assertion).
func waitReady(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the daemon at %s never became ready", addr)
}
