package main

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// SIGHUP re-reads the log level and names the changed settings that need a restart.
func TestHangupReloadsLogLevelAndNamesRestartSettings(t *testing.T) {
	const base = `misp: {url: "https://misp.example", key: 0123456789abcdefghij0123456789ABCDEFGHIJ}
sinks:
  - name: soc
    workspace_id: 11111111-2222-4333-8444-555555555555
    identity: {kind: client_secret, tenant_id: aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee, client_id: 99999999-8888-4777-8666-555555555555, client_secret: x}
store: {dir: /tmp/unused}
`
	path := writeTemp(t, base+"log: {level: info}\n")
	cfg, err := loadConfig(context.Background(), path, true)
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	log, err := newLogger(cfg.Log, &out)
	if err != nil {
		t.Fatal(err)
	}
	hup := make(chan os.Signal, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { reloadOnHangup(ctx, hup, path, cfg, log, nil); close(done) }()
	defer func() { cancel(); <-done }()

	changed := strings.Replace(base, "/tmp/unused", "/tmp/elsewhere", 1) + "log: {level: debug}\n"
	if err := os.WriteFile(path, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	hup <- syscall.SIGHUP
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(out.String(), "SIGHUP: configuration re-read") {
		if time.Now().After(deadline) {
			t.Fatalf("no reload line after SIGHUP:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if log.GetLevel() != logrus.DebugLevel {
		t.Errorf("log level %s after SIGHUP, want debug", log.GetLevel())
	}
	line := out.String()
	if !strings.Contains(line, `"log_level":"debug"`) || !strings.Contains(line, `"need_restart":["store"]`) {
		t.Errorf("reload line does not name the new level and the store as needing a restart:\n%s", line)
	}
}

// check --offline resolves env: and file: secret references and fails on a missing one, as
// run would at start.
func TestCheckOfflineFailsOnAMissingSecret(t *testing.T) {
	const cfgText = `misp: {url: "https://misp.example", key: 0123456789abcdefghij0123456789ABCDEFGHIJ}
sinks:
  - name: soc
    workspace_id: 11111111-2222-4333-8444-555555555555
    identity: {kind: client_secret, tenant_id: aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee, client_id: 99999999-8888-4777-8666-555555555555, client_secret: "env:LISTENER_TEST_UNSET_SECRET"}
store: {dir: /tmp/unused}
`
	os.Unsetenv("LISTENER_TEST_UNSET_SECRET")
	path := writeTemp(t, cfgText)
	code, _, errOut := runCommand(t, "check", "-c", path, "--offline")
	if code != exitBadInput || !strings.Contains(errOut, "LISTENER_TEST_UNSET_SECRET") {
		t.Errorf("check --offline with an unset secret variable = %d, want %d naming it:\n%s", code, exitBadInput, errOut)
	}
	t.Setenv("LISTENER_TEST_UNSET_SECRET", "s3cret")
	if code, _, errOut := runCommand(t, "check", "-c", path, "--offline"); code != exitOK {
		t.Errorf("check --offline with the variable set = %d:\n%s", code, errOut)
	}
}

// fakeRefresher records RefreshSecrets calls.
type fakeRefresher struct{ calls chan struct{} }

func (f fakeRefresher) RefreshSecrets(context.Context) ([]string, error) {
	f.calls <- struct{}{}
	return []string{"soc"}, nil
}

// SIGHUP re-reads the sinks' secrets: the refresher is called, the line names the sinks
// refreshed, and a rotated sink secret is not reported as needing a restart.
func TestHangupRefreshesSecrets(t *testing.T) {
	secretFile := writeTemp(t, "first-secret")
	cfgText := `misp: {url: "https://misp.example", key: 0123456789abcdefghij0123456789ABCDEFGHIJ}
sinks:
  - name: soc
    workspace_id: 11111111-2222-4333-8444-555555555555
    identity: {kind: client_secret, tenant_id: aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee, client_id: 99999999-8888-4777-8666-555555555555, client_secret: "file:` + secretFile + `"}
store: {dir: /tmp/unused}
`
	path := writeTemp(t, cfgText)
	cfg, err := loadConfig(context.Background(), path, true)
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	log, err := newLogger(cfg.Log, &out)
	if err != nil {
		t.Fatal(err)
	}
	hup := make(chan os.Signal, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	ref := fakeRefresher{calls: make(chan struct{}, 1)}
	go func() { reloadOnHangup(ctx, hup, path, cfg, log, ref); close(done) }()
	defer func() { cancel(); <-done }()

	if err := os.WriteFile(secretFile, []byte("rotated-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	hup <- syscall.SIGHUP
	<-ref.calls
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(out.String(), "SIGHUP: configuration re-read") {
		if time.Now().After(deadline) {
			t.Fatalf("no reload line after SIGHUP:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	line := out.String()
	if !strings.Contains(line, `"secrets_refreshed":["soc"]`) || strings.Contains(line, "need_restart") {
		t.Errorf("reload line should name the refreshed sink and nothing needing a restart:\n%s", line)
	}
	if strings.Contains(line, "rotated-secret") || strings.Contains(line, "first-secret") {
		t.Errorf("the reload line holds a secret:\n%s", line)
	}
}
