package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/mispsentinel/listener/daemon"
)

func init() {
	register("sync", "one full reconcile and upload, then exit (cron-compatible)", runSync)
}

func runSync(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("sync", stderr)
	path := fs.String("c", "", "configuration file (YAML)")
	event := fs.String("event", "", "reconcile only this event `UUID` (the other filters still apply)")
	dryRun := fs.Bool("dry-run", false, "upload nothing; write what would be sent as one JSON document")
	output := fs.String("output", "", "write the dry-run document to `FILE` instead of standard output")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *output != "" && !*dryRun {
		fmt.Fprintln(stderr, "listener sync: --output needs --dry-run")
		return exitUsage
	}
	cfg, err := loadConfig(ctx, *path, true)
	if err != nil {
		fmt.Fprintf(stderr, "listener sync: %v\n", err)
		return exitBadInput
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "listener sync: %v\n", err)
		return exitBadInput
	}

	opts := daemon.Options{Logger: log}
	var dry *daemon.DryRun
	if *dryRun {
		dry, err = daemon.NewDryRun(cfg.Store.Dir, log)
		if err != nil {
			fmt.Fprintf(stderr, "listener sync: %v\n", err)
			return exitFailure
		}
		defer dry.Close()
		opts.Store = dry.Store()
	}
	opts.Progress = progressReporter(stderr, log)
	d, err := daemon.New(cfg, opts)
	if err != nil {
		fmt.Fprintf(stderr, "listener sync: %v\n", err)
		return exitFailure
	}
	defer d.Close()

	rep, searchErr := d.Sync(ctx, daemon.SyncOptions{EventUUID: *event, SkipUpload: *dryRun})
	if *dryRun {
		out := stdout
		if *output != "" {
			f, err := os.Create(*output)
			if err != nil {
				fmt.Fprintf(stderr, "listener sync: %v\n", err)
				return exitFailure
			}
			defer f.Close()
			out = f
		}
		if err := dry.Write(out, cfg); err != nil {
			fmt.Fprintf(stderr, "listener sync: write dry-run document: %v\n", err)
			return exitFailure
		}
	}
	fmt.Fprintln(stderr, rep.Summary())
	if searchErr != nil {
		fmt.Fprintf(stderr, "listener sync: %v\n", searchErr)
	}
	if rep.Reconcile != nil {
		for _, e := range rep.Reconcile.Errors {
			fmt.Fprintf(stderr, "listener sync: %v\n", e)
		}
	}
	if rep.Failed(searchErr) {
		return exitFailure
	}
	return exitOK
}

// progressReporter shows a progress bar on a terminal and plain log lines otherwise.
func progressReporter(stderr io.Writer, log interface{ Infof(string, ...any) }) func(kind string, pages, events int) {
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		bar := progressbar.NewOptions(-1,
			progressbar.OptionSetWriter(stderr),
			progressbar.OptionSetDescription("events"),
			progressbar.OptionShowCount(),
			progressbar.OptionClearOnFinish(),
		)
		return func(_ string, _ int, events int) { _ = bar.Set(events) }
	}
	return func(kind string, pages, events int) {
		log.Infof("%s reconcile: %d events from %d pages", kind, events, pages)
	}
}
