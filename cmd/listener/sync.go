package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/internal/cli"
)

func init() { addCommand(newSyncCmd) }

// syncOptions are the flags of `listener sync`.
type syncOptions struct {
	path   string
	event  string
	dryRun bool
	output string
}

func newSyncCmd() *cobra.Command {
	var o syncOptions
	cmd := &cobra.Command{
		Use:   "sync -c FILE",
		Short: "One full reconcile and upload, then exit (cron-compatible)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return exitWith(runSync(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.path, "config", "c", "", "configuration `FILE` (YAML)")
	f.StringVar(&o.event, "event", "", "reconcile only this event `UUID` (the other filters still apply)")
	f.BoolVar(&o.dryRun, "dry-run", false, "upload nothing; write what would be sent as one JSON document")
	f.StringVar(&o.output, "output", "", "write the dry-run document to `FILE` instead of standard output")
	return cli.Exits(cmd, exitFailure, exitBadInput)
}

func runSync(ctx context.Context, o syncOptions, stdout, stderr io.Writer) int {
	if o.output != "" && !o.dryRun {
		fmt.Fprintln(stderr, "listener sync: --output needs --dry-run")
		return exitUsage
	}
	cfg, err := loadConfig(ctx, o.path, true)
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
	if o.dryRun {
		dry, err = daemon.NewDryRun(cfg.Store, log)
		if err != nil {
			fmt.Fprintf(stderr, "listener sync: %v\n", err)
			return exitFailure
		}
		defer dry.Close()
		opts.Store = dry.Store()
	}
	progress := newSyncProgress(stderr, log, cfg.Sinks, nil)
	defer progress.Finish()
	opts.Progress = progress.Fetched
	d, err := daemon.New(cfg, opts)
	if err != nil {
		progress.Finish()
		fmt.Fprintf(stderr, "listener sync: %v\n", err)
		return exitFailure
	}
	defer d.Close()

	progress.Follow(d.Store())
	rep, searchErr := d.Sync(progress.Context(ctx), daemon.SyncOptions{EventUUID: o.event, SkipUpload: o.dryRun})
	progress.Finish()
	if o.dryRun {
		out := stdout
		if o.output != "" {
			f, err := os.Create(o.output)
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
