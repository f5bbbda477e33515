package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
)

// TestNoSecretInLogsOrOutput runs the daemon (`listener run`) at debug level with every kind
// of secret, some written literally and some as env: references, drives it through uploads,
// webhook posts with right and wrong tokens, token expiry, throttling and server errors, and
// runs `config print`, `status` and `check` (passing and failing) next to it. No secret value
// may appear in the log or in any command's output.
func TestNoSecretInLogsOrOutput(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the simulators and the daemon: skipped with -short")
	}
	l := startLab(t)
	zmqPass := zmqPassword(t, l)
	secrets := map[string]string{
		"MISP key":                    l.MISP.Key(),
		"client secret (literal)":     simsentinel.DefaultClientSecret,
		"client secret (env)":         otherSecret,
		"webhook token (literal)":     l.WebhookToken,
		"ZeroMQ PLAIN password (env)": zmqPass,
	}
	t.Setenv("SECRET_TEST_MISP_KEY", l.MISP.Key())
	t.Setenv("SECRET_TEST_ZMQ_PASSWORD", zmqPass)
	t.Setenv("SECRET_TEST_CLIENT_SECRET", otherSecret)
	path := writeVariant(t, l, "secrets.yaml",
		"key: "+l.MISP.Key(), "key: env:SECRET_TEST_MISP_KEY",
		"password: "+zmqPass, "password: env:SECRET_TEST_ZMQ_PASSWORD",
		"client_secret: "+otherSecret, "client_secret: env:SECRET_TEST_CLIENT_SECRET",
	)
	badPath := writeVariant(t, l, "secrets-bad.yaml",
		"key: "+l.MISP.Key(), "key: "+strings.Repeat("b", 40),
		"client_secret: "+otherSecret, "client_secret: "+otherSecret+"-wrong",
	)
	t.Setenv("LISTENER_LOG_LEVEL", "debug")
	addr := freeLoopbackAddr(t)
	t.Setenv("LISTENER_METRICS_LISTEN", addr)

	var outputs []string
	record := func(what string, code int, stdout, stderr string) {
		outputs = append(outputs, what+"\n"+stdout+stderr)
	}
	code, out, errOut := runCommand(t, "config", "print", "-c", path)
	record("config print", code, out, errOut)

	l.MISP.Generate(6, 4, 21)
	stop := startRun(t, path)
	waitReady(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.Publisher.WaitForSubscription(ctx, "misp_json"); err != nil {
		t.Fatal(err)
	}
	cfg, err := l.Config()
	if err != nil {
		t.Fatal(err)
	}

	// Real time over ZeroMQ, with throttling, server errors and expired tokens on the way.
	l.Sentinel.InvalidateTokens()
	l.Sentinel.ThrottleStorm(time.Second)
	if err := l.Sentinel.SetFaults(simsentinel.Faults{ServerErrorRate: 0.3}); err != nil {
		t.Fatal(err)
	}
	for _, u := range l.MISP.Generate(4, 4, 22) {
		if err := l.MISP.PublishZMQ(l.Publisher, u); err != nil {
			t.Fatal(err)
		}
	}
	// The webhook: the right token, a wrong one, none.
	hookURL := "http://" + cfg.Webhook.Listen + cfg.Webhook.Path
	u := l.MISP.Generate(1, 4, 23)[0]
	if err := l.MISP.Publish(u); err != nil {
		t.Fatal(err)
	}
	if _, err := l.MISP.PostWebhook(ctx, hookURL, http.Header{"Authorization": {l.WebhookToken}}, u); err != nil {
		t.Fatal(err)
	}
	for _, h := range []http.Header{{"Authorization": {l.WebhookToken + "x"}}, {}} {
		if _, err := l.MISP.PostWebhook(ctx, hookURL, h, u); err == nil || !strings.Contains(err.Error(), "401") {
			t.Errorf("webhook post with a wrong or no token: %v, want 401", err)
		}
	}
	if states, err := l.WaitConverged(ctx, cfg, 1); err != nil {
		t.Fatalf("never converged: %v %v", err, states)
	}
	if err := l.Sentinel.SetFaults(simsentinel.Faults{}); err != nil {
		t.Fatal(err)
	}

	code, out, errOut = runCommand(t, "status", "-c", path)
	record("status (daemon)", code, out, errOut)
	if !strings.Contains(out, "source: running daemon") {
		t.Errorf("status did not ask the running daemon:\n%s%s", out, errOut)
	}
	code, out, errOut = runCommand(t, "check", "-c", path)
	record("check", code, out, errOut)
	if code != exitOK {
		t.Errorf("check = %d:\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCommand(t, "check", "-c", badPath)
	record("check (bad credentials)", code, out, errOut)
	if code != exitFailure || strings.Count(out, "FAIL") < 2 {
		t.Errorf("check with a bad MISP key and client secret = %d:\n%s", code, out)
	}

	log := stop()
	code, out, errOut = runCommand(t, "status", "-c", path)
	record("status (store)", code, out, errOut)
	outputs = append(outputs, "daemon log\n"+log)

	if !strings.Contains(log, "level=debug") || strings.Count(log, "\n") < 8 {
		t.Errorf("the daemon's log has no debug line or few lines: the scan would prove little\n%s", log)
	}
	if !strings.Contains(log, "level=warning") {
		t.Errorf("the daemon logged no warning although uploads failed:\n%s", log)
	}
	for _, text := range outputs {
		what, _, _ := strings.Cut(text, "\n")
		for name, secret := range secrets {
			if strings.Contains(text, secret) {
				t.Errorf("%s shows the %s", what, name)
			}
		}
	}
	t.Logf("scanned %d outputs, %d log lines, for %d secrets", len(outputs), strings.Count(log, "\n"), len(secrets))
}
