package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mispsentinel/listener/internal/cli"
	"github.com/mispsentinel/listener/sim/bench"
)

// benchOptions are the flags of `listener-lab bench`.
type benchOptions struct {
	quick          bool
	jsonPath       string
	only           string
	reconcileAttrs int
	verbose        bool
}

func newBenchCmd(listenerPath *string) *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure every performance target against the simulators and print the table",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cli.Exit(runBench(cmd.Context(), o, *listenerPath, cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.quick, "quick", false, "smaller sizes: a smoke test of the benchmark, not the targets' sizes")
	f.StringVar(&o.jsonPath, "json", "", "also write the report as JSON to `FILE`")
	f.StringVar(&o.only, "only", "", "comma-separated measurements to run (of "+strings.Join(bench.Measurements, ", ")+"); all when empty")
	f.IntVar(&o.reconcileAttrs, "reconcile-attributes", 0, "MISP size of the reconcile measurement (default 1,000,000; 10,000 with --quick)")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "show progress")
	return cli.Exits(cmd, exitFailure)
}

func runBench(ctx context.Context, o benchOptions, listenerPath string, stdout, stderr io.Writer) int {
	if o.reconcileAttrs < 0 {
		fmt.Fprintln(stderr, "listener-lab bench: --reconcile-attributes must not be negative")
		return exitUsage
	}
	command, err := daemonCommand(listenerPath)
	if err != nil {
		fmt.Fprintf(stderr, "listener-lab bench: %v\n", err)
		return exitFailure
	}
	opts := bench.Options{Quick: o.quick, Command: command}
	if o.only != "" {
		opts.Only = strings.Split(o.only, ",")
	}
	if o.reconcileAttrs > 0 {
		sizes := bench.FullSizes
		if o.quick {
			sizes = bench.QuickSizes
		}
		sizes.ReconcileAttributes = o.reconcileAttrs
		opts.Sizes = &sizes
	}
	if o.verbose {
		opts.Progress = stderr
	}
	rep, err := bench.Run(ctx, opts)
	if err != nil {
		fmt.Fprintf(stderr, "listener-lab bench: %v\n", err)
		return exitUsage
	}
	if err := rep.WriteTable(stdout); err != nil {
		fmt.Fprintf(stderr, "listener-lab bench: %v\n", err)
		return exitFailure
	}
	if o.jsonPath != "" {
		f, err := os.Create(o.jsonPath)
		if err != nil {
			fmt.Fprintf(stderr, "listener-lab bench: %v\n", err)
			return exitFailure
		}
		werr := rep.WriteJSON(f)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			fmt.Fprintf(stderr, "listener-lab bench: write %s: %v\n", o.jsonPath, werr)
			return exitFailure
		}
	}
	if !rep.AllPass {
		return exitFailure
	}
	return exitOK
}
