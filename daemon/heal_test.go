package daemon_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/sim/lab"
	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
)

// healLab starts a lab with one Sentinel sink and events to deliver, and returns its
// configuration with a short failing backoff (100 ms to 400 ms).
func healLab(t *testing.T) (*lab.Lab, *config.Config) {
	t.Helper()
	l, err := lab.Start(lab.Options{Dir: t.TempDir(), Linger: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	l.MISP.Generate(20, 5, 3)
	cfg, err := l.Config()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Pusher.FailingBackoff = config.Backoff{Initial: 100 * time.Millisecond, Max: 400 * time.Millisecond}
	return l, cfg
}

// waitSinkState polls the daemon's status until the first sink is in state. The bound is a
// liveness limit.
func waitSinkState(t *testing.T, d *daemon.Daemon, state string) daemon.SinkStatus {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := d.Status()
		if err != nil {
			t.Fatal(err)
		}
		if s := st.Sinks[0]; s.State == state {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("sink never %s: %+v", state, st.Sinks[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func converge(t *testing.T, l *lab.Lab, cfg *config.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second) // a hang guard
	defer cancel()
	if states, err := l.WaitConverged(ctx, cfg, 1); err != nil {
		t.Fatalf("not converged: %v; %+v", err, states)
	}
}

// TestSinkWithWrongSecretHealsWhenTheFileIsFixed is issue 14's acceptance scenario: a sink
// whose secret file holds a wrong secret at start fails (its objects queued, status saying
// why and when it is tried again), and once the file is corrected it delivers everything on
// its next retry: no restart, nothing lost.
func TestSinkWithWrongSecretHealsWhenTheFileIsFixed(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	l, cfg := healLab(t)
	secretFile := filepath.Join(t.TempDir(), "client-secret")
	if err := os.WriteFile(secretFile, []byte("an expired secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Sinks[0].Identity.ClientSecret = config.ParseSecret("file:" + secretFile)
	if err := cfg.Resolve(context.Background(), config.Resolver{}); err != nil {
		t.Fatal(err)
	}
	d, stop := runDaemon(t, cfg, daemon.Options{})
	defer stop()

	failing := waitSinkState(t, d, "failing")
	if failing.OutboxDepth == 0 || failing.FailingSince.IsZero() || !failing.NextRetry.After(failing.FailingSince) || failing.Stopped == "" {
		t.Fatalf("failing sink status %+v, want objects queued, since, next retry and the error", failing)
	}
	if len(l.Sentinel.Indicators(simsentinel.DefaultWorkspaceID, cfg.Sinks[0].SourceSystem)) != 0 {
		t.Fatal("indicators reached Sentinel with a wrong secret")
	}

	if err := os.WriteFile(secretFile, []byte(simsentinel.DefaultClientSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	up := waitSinkState(t, d, "up")
	if up.Stopped != "" {
		t.Errorf("healed sink status %+v", up)
	}
	converge(t, l, cfg)
}

// TestSinkForbiddenHealsWhenTheRoleIsGranted: a 403 (the role not yet granted; Azure RBAC
// takes minutes) fails the sink; once the role is granted the next retry delivers
// everything, without a restart.
func TestSinkForbiddenHealsWhenTheRoleIsGranted(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	l, cfg := healLab(t)
	l.Sentinel.SetContributor(simsentinel.DefaultWorkspaceID, simsentinel.DefaultClientID, false)
	d, stop := runDaemon(t, cfg, daemon.Options{})
	defer stop()

	waitSinkState(t, d, "failing")
	if st := l.Sentinel.Stats(); st.Forbidden == 0 {
		t.Fatalf("simulator stats %+v, want 403 answers", st)
	}
	l.Sentinel.SetContributor(simsentinel.DefaultWorkspaceID, simsentinel.DefaultClientID, true)
	waitSinkState(t, d, "up")
	converge(t, l, cfg)
}
