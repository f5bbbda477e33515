package daemon_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/daemon"
	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
)

// RefreshSecrets (what SIGHUP calls) reads a sink's rotated secret file again and retries the
// failing sink at once: with a failing backoff of an hour, only the refresh can heal it
// within the test, and it delivers everything without a restart.
func TestRefreshSecretsHealsAFailingSinkAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	l, cfg := healLab(t)
	cfg.Pusher.FailingBackoff = config.Backoff{Initial: time.Hour, Max: time.Hour}
	secretFile := filepath.Join(t.TempDir(), "client-secret")
	if err := os.WriteFile(secretFile, []byte("the old secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Sinks[0].Identity.ClientSecret = config.ParseSecret("file:" + secretFile)
	if err := cfg.Resolve(context.Background(), config.Resolver{}); err != nil {
		t.Fatal(err)
	}
	d, stop := runDaemon(t, cfg, daemon.Options{})
	defer stop()
	failing := waitSinkState(t, d, "failing")
	if failing.NextRetry.Sub(failing.FailingSince) < 30*time.Minute {
		t.Fatalf("next retry %s after failing, want the hour's backoff", failing.NextRetry.Sub(failing.FailingSince))
	}

	if err := os.WriteFile(secretFile, []byte(simsentinel.DefaultClientSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	refreshed, err := d.RefreshSecrets(context.Background())
	if err != nil || !slices.Equal(refreshed, []string{cfg.Sinks[0].Name}) {
		t.Fatalf("RefreshSecrets = %v, %v", refreshed, err)
	}
	waitSinkState(t, d, "up")
	converge(t, l, cfg)
}
