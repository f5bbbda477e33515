package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mispsentinel/listener/sim/bench"
)

func init() {
	register("bench", "measure every performance target against the simulators and print the table", runBench)
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("bench", stderr)
	quick := fs.Bool("quick", false, "smaller sizes: a smoke test of the benchmark, not the targets' sizes")
	jsonPath := fs.String("json", "", "also write the report as JSON to `FILE`")
	only := fs.String("only", "", "comma-separated measurements to run (of "+strings.Join(bench.Measurements, ", ")+"); all when empty")
	reconcileAttrs := fs.Int("reconcile-attributes", 0, "MISP size of the reconcile measurement (default 1,000,000; 10,000 with --quick)")
	verbose := fs.Bool("v", false, "show progress")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *reconcileAttrs < 0 {
		fmt.Fprintln(stderr, "listener bench: --reconcile-attributes must not be negative")
		return exitUsage
	}
	command, err := selfCommand()
	if err != nil {
		fmt.Fprintf(stderr, "listener bench: %v\n", err)
		return exitFailure
	}
	opts := bench.Options{Quick: *quick, Command: command}
	if *only != "" {
		opts.Only = strings.Split(*only, ",")
	}
	if *reconcileAttrs > 0 {
		sizes := bench.FullSizes
		if *quick {
			sizes = bench.QuickSizes
		}
		sizes.ReconcileAttributes = *reconcileAttrs
		opts.Sizes = &sizes
	}
	if *verbose {
		opts.Progress = stderr
	}
	rep, err := bench.Run(ctx, opts)
	if err != nil {
		fmt.Fprintf(stderr, "listener bench: %v\n", err)
		return exitUsage
	}
	if err := rep.WriteTable(stdout); err != nil {
		fmt.Fprintf(stderr, "listener bench: %v\n", err)
		return exitFailure
	}
	if *jsonPath != "" {
		f, err := os.Create(*jsonPath)
		if err != nil {
			fmt.Fprintf(stderr, "listener bench: %v\n", err)
			return exitFailure
		}
		werr := rep.WriteJSON(f)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			fmt.Fprintf(stderr, "listener bench: write %s: %v\n", *jsonPath, werr)
			return exitFailure
		}
	}
	if !rep.AllPass {
		return exitFailure
	}
	return exitOK
}
