package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/internal/cli"
	"github.com/mispsentinel/listener/internal/version"
)

func init() { addCommand(newRunCmd) }

func newRunCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run -c FILE",
		Short: "Run the daemon: real-time listeners, reconciler and pushers",
		Args:  cobra.NoArgs,
	}
	path := configFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return exitWith(runRun(cmd.Context(), *path, cmd.ErrOrStderr()))
	}
	return cli.Exits(cmd, exitFailure, exitBadInput)
}

func runRun(ctx context.Context, path string, stderr io.Writer) int {
	cfg, err := loadConfig(ctx, path, true)
	if err != nil {
		fmt.Fprintf(stderr, "listener run: %v\n", err)
		return exitBadInput
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "listener run: %v\n", err)
		return exitBadInput
	}
	// A failing sink's secret is fetched again before each retry, and every sink's on SIGHUP
	// (a rotated secret needs no restart), Key Vault ones in the vaults' cloud.
	d, err := daemon.New(cfg, daemon.Options{Logger: log, Resolver: newResolver(cfg)})
	if err != nil {
		log.WithError(err).Error("start failed")
		return exitFailure
	}
	defer d.Close()
	// SIGHUP would otherwise end the process (exit 129, nothing flushed).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	hupCtx, stopHup := context.WithCancel(ctx)
	defer stopHup()
	go reloadOnHangup(hupCtx, hup, path, cfg, log, d)
	info := version.Get()
	fields := logrus.Fields{"sinks": len(cfg.Sinks), "version": info.Version, "revision": info.Revision, "goversion": info.GoVersion,
		"config": path, "store_dir": cfg.Store.Dir}
	if written := cfg.Store.DirAsWritten(); written != "" {
		fields["store_dir_as_written"] = written // resolved against the configuration file's directory
	}
	log.WithFields(fields).Info("listener starting")
	if err := d.Run(ctx); err != nil {
		log.WithError(err).Error("listener stopped on an error")
		return exitFailure
	}
	log.Info("listener stopped")
	return exitOK
}
