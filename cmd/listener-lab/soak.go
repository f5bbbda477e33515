package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/mispsentinel/listener/internal/cli"
	"github.com/mispsentinel/listener/sim/soak"
)

// soakOptions are the flags of `listener-lab soak`.
type soakOptions struct {
	duration, settle time.Duration
	seed             uint64
	dir              string
}

func newSoakCmd(listenerPath *string) *cobra.Command {
	var o soakOptions
	cmd := &cobra.Command{
		Use:   "soak",
		Short: "Disturb a daemon (SIGKILLs, ZeroMQ restarts, 5xx, 429 storms) against the simulators, then check Sentinel equals MISP",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cli.Exit(runSoak(cmd.Context(), o, *listenerPath, cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.duration, "duration", 10*time.Minute, "how long to disturb the daemon")
	f.Uint64Var(&o.seed, "seed", 0, "seed of the disturbances (0: from the clock)")
	f.DurationVar(&o.settle, "settle", 3*time.Minute, "how long to wait for Sentinel to match MISP once the disturbances stop")
	f.StringVar(&o.dir, "dir", "", "keep the lab (configuration, store, daemon log) in `DIR` instead of a temporary directory")
	return cli.Exits(cmd, exitFailure)
}

func runSoak(ctx context.Context, o soakOptions, listenerPath string, stdout, stderr io.Writer) int {
	if o.duration <= 0 || o.settle <= 0 {
		fmt.Fprintln(stderr, "listener-lab soak: --duration and --settle must be positive")
		return exitUsage
	}
	command, err := daemonCommand(listenerPath)
	if err != nil {
		fmt.Fprintf(stderr, "listener-lab soak: %v\n", err)
		return exitFailure
	}
	res, err := soak.Run(ctx, soak.Options{
		Duration: o.duration, Seed: o.seed, Settle: o.settle, Dir: o.dir,
		Command: command, Progress: stdout,
	})
	if res != nil {
		res.Print(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "listener-lab soak: %v\n", err)
		return exitFailure
	}
	fmt.Fprintln(stdout, "soak passed: Sentinel holds exactly what MISP's events yield")
	return exitOK
}
