package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/sim/lab"
	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
)

// crashChildEnv, when set in the environment of this test binary, makes it run the daemon from
// the configuration file it names instead of the tests: the crash test re-executes itself as
// the daemon process so that it can SIGKILL it.
const crashChildEnv = "LISTENER_TEST_DAEMON_CONFIG"

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		os.Exit(runChildDaemon(path))
	}
	os.Exit(m.Run())
}

// runChildDaemon runs the daemon as `listener run -c path` would, until SIGTERM or SIGINT.
func runChildDaemon(path string) int {
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	log.SetOutput(os.Stderr)
	cfg, err := config.Load(path, nil)
	if err == nil {
		err = cfg.Validate()
	}
	if err == nil {
		err = cfg.Resolve(context.Background(), config.Resolver{})
	}
	if err != nil {
		log.WithError(err).Error("child daemon: configuration")
		return 2
	}
	d, err := daemon.New(cfg, daemon.Options{Logger: log})
	if err != nil {
		log.WithError(err).Error("child daemon: assemble")
		return 2
	}
	defer d.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := d.Run(ctx); err != nil {
		log.WithError(err).Error("child daemon: run")
		return 1
	}
	return 0
}

// childDaemon is the daemon running as a child process of the test.
type childDaemon struct {
	cmd    *exec.Cmd
	output *lockedBuffer
	done   chan error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func startChildDaemon(t *testing.T, configPath string) *childDaemon {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := &childDaemon{output: &lockedBuffer{}, done: make(chan error, 1)}
	c.cmd = exec.Command(exe, "-test.run=^$")
	c.cmd.Env = append(os.Environ(), crashChildEnv+"="+configPath)
	c.cmd.Stdout, c.cmd.Stderr = c.output, c.output
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start child daemon: %v", err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

// kill SIGKILLs the child and waits for it to be gone.
func (c *childDaemon) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill child daemon: %v", err)
	}
	err := <-c.done
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child daemon did not die of SIGKILL: %v\n%s", err, c.output)
	}
}

// stop SIGTERMs the child and requires a clean exit.
func (c *childDaemon) stop(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("terminate child daemon: %v", err)
	}
	select {
	case err := <-c.done:
		if err != nil {
			t.Errorf("child daemon exited with %v after SIGTERM\n%s", err, c.output)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("child daemon did not exit within 30 s of SIGTERM")
	}
}

// TestCrashMidStream runs the daemon as a child process and SIGKILLs it three times while
// events are being published over ZeroMQ and batches are being uploaded, restarting it each
// time. PUB/SUB drops what is published while no daemon listens, so what the dead daemon
// missed must come back through the start-up catch-up; what it had queued must survive in the
// store; at the end Sentinel must hold exactly the indicators of every published event.
func TestCrashMidStream(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end crash test: skipped with -short")
	}
	// Every upload answer is delayed, so a kill right after an upload request arrived hits a
	// batch in flight.
	const uploadLatency = 150 * time.Millisecond
	l, err := lab.Start(lab.Options{
		Dir: t.TempDir(), ZeroMQ: true, Linger: 100 * time.Millisecond,
		Sentinel: simsentinel.Options{Faults: simsentinel.Faults{Latency: uploadLatency}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg, err := l.Config()
	if err != nil {
		t.Fatal(err)
	}
	const events, kills = 600, 3
	uuids := generateUnpublished(t, l, events, 5, 11)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	child := startChildDaemon(t, l.ConfigPath)
	if err := l.Publisher.WaitForSubscription(ctx, "misp_json"); err != nil {
		t.Fatalf("child daemon never subscribed: %v\n%s", err, child.output)
	}

	// Publish in the background at about 100 events per second.
	published := make(chan int, events)
	pubErr := make(chan error, 1)
	go func() {
		defer close(published)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i, u := range uuids {
			<-tick.C
			if err := l.MISP.PublishZMQ(l.Publisher, u); err != nil {
				pubErr <- fmt.Errorf("publish event %d: %w", i, err)
				return
			}
			published <- i
		}
	}()

	// Kill the daemon once it has uploaded something since it started, a further stretch of
	// the stream has been published, and an upload request has just arrived: notices, store
	// writes and a batch are in flight when it dies.
	count := 0
	for k := range kills {
		uploadsBefore := l.Sentinel.Stats().UploadRequests
		waitFor(t, 60*time.Second, fmt.Sprintf("uploads by daemon %d", k+1), func() (bool, string) {
			return l.Sentinel.Stats().UploadRequests > uploadsBefore+1, "no upload yet"
		})
		for target := count + events/(kills+2); count < target; count++ {
			if _, ok := <-published; !ok {
				t.Fatalf("publisher stopped early: %v", <-pubErr)
			}
		}
		requests := l.Sentinel.Stats().UploadRequests
		waitFor(t, 60*time.Second, "an upload request", func() (bool, string) {
			return l.Sentinel.Stats().UploadRequests > requests, "none"
		})
		time.Sleep(uploadLatency / 5)
		child.kill(t)
		t.Logf("kill %d: %d events published, upload request %d in flight", k+1, count, l.Sentinel.Stats().UploadRequests)
		time.Sleep(200 * time.Millisecond) // some events are published to nobody
		child = startChildDaemon(t, l.ConfigPath)
	}
	for range published {
	}
	select {
	case err := <-pubErr:
		t.Fatal(err)
	default:
	}

	states := waitConverged(t, l, cfg, 60*time.Second)
	for _, s := range states {
		t.Log(s)
	}
	// Every event the test published is in MISP's filtered search, so every one of its
	// indicators is in the expected state WaitConverged compared; check that this covers all.
	_, liveByEvent := countIndicators(sentinelIndicators(t, l, cfg))
	missing := 0
	for _, u := range uuids {
		if liveByEvent[u] == 0 {
			missing++
		}
	}
	if missing > events/50 {
		t.Errorf("%d of %d published events have no indicator in Sentinel", missing, events)
	}
	child.stop(t)
}
