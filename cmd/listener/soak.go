package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/mispsentinel/listener/sim/lab"
	"github.com/mispsentinel/listener/sim/soak"
)

func init() {
	register("soak", "disturb a daemon (SIGKILLs, ZeroMQ restarts, 5xx, 429 storms) against the simulators, then check Sentinel equals MISP", runSoak)
}

func runSoak(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("soak", stderr)
	duration := fs.Duration("duration", 10*time.Minute, "how long to disturb the daemon")
	seed := fs.Uint64("seed", 0, "seed of the disturbances (0: from the clock)")
	settle := fs.Duration("settle", 3*time.Minute, "how long to wait for Sentinel to match MISP once the disturbances stop")
	dir := fs.String("dir", "", "keep the lab (configuration, store, daemon log) in `DIR` instead of a temporary directory")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *duration <= 0 || *settle <= 0 {
		fmt.Fprintln(stderr, "listener soak: --duration and --settle must be positive")
		return exitUsage
	}
	command, err := selfCommand()
	if err != nil {
		fmt.Fprintf(stderr, "listener soak: %v\n", err)
		return exitFailure
	}
	res, err := soak.Run(ctx, soak.Options{
		Duration: *duration, Seed: *seed, Settle: *settle, Dir: *dir,
		Command: command, Progress: stdout,
	})
	if res != nil {
		res.Print(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "listener soak: %v\n", err)
		return exitFailure
	}
	fmt.Fprintln(stdout, "soak passed: Sentinel holds exactly what MISP's events yield")
	return exitOK
}

// selfCommand returns a lab.CommandFunc that runs this binary with the given subcommand
// arguments, for measurements and disturbances that need the daemon in its own process.
func selfCommand() (lab.CommandFunc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("locate own binary: %w", err)
	}
	return func(args ...string) *exec.Cmd { return exec.Command(self, args...) }, nil
}
