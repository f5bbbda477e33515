package lab

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/mispsentinel/listener/daemon"
)

// ChildEnv is the environment variable that makes a test binary act as the listener command
// (see RunChild and TestBinaryCommand): tests of the soak and the benchmarks need a daemon in a
// process of its own, to SIGKILL it and to read its peak RSS, without building cmd/listener.
const ChildEnv = "LISTENER_LAB_CHILD"

// CommandFunc returns a command that runs the listener with args (for example
// "run", "-c", path), ready to start. The real binary's own `bench` and `soak` re-execute it;
// tests re-execute their test binary (TestBinaryCommand).
type CommandFunc func(args ...string) *exec.Cmd

// TestBinaryCommand re-executes the running test binary with ChildEnv set; the binary's
// TestMain must hand such runs to RunChild.
func TestBinaryCommand(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), ChildEnv+"=1")
	return cmd
}

// IsChild reports whether this process was started by TestBinaryCommand.
func IsChild() bool { return os.Getenv(ChildEnv) != "" }

// RunChild does what `listener run -c FILE` and `listener sync -c FILE` do, for test binaries
// re-executed as the daemon. It returns the process exit code.
func RunChild(args []string, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "run" && args[0] != "sync") {
		fmt.Fprintf(stderr, "lab child: want run or sync, got %q\n", args)
		return 2
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "", "configuration file")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	l := &Lab{ConfigPath: *path}
	cfg, err := l.Config()
	if err != nil {
		fmt.Fprintf(stderr, "lab child: %v\n", err)
		return 3
	}
	log := logrus.New()
	log.SetOutput(stderr)
	log.SetLevel(logrus.WarnLevel)
	d, err := daemon.New(cfg, daemon.Options{Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "lab child: %v\n", err)
		return 1
	}
	defer d.Close()
	if args[0] == "sync" {
		rep, err := d.Sync(ctx, daemon.SyncOptions{})
		fmt.Fprintln(stderr, rep.Summary())
		if rep.Failed(err) {
			fmt.Fprintf(stderr, "lab child: sync failed: %v\n", err)
			return 1
		}
		return 0
	}
	if err := d.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "lab child: run: %v\n", err)
		return 1
	}
	return 0
}
