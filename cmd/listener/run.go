package main

import (
	"context"
	"fmt"
	"io"

	"github.com/sirupsen/logrus"

	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/internal/version"
)

func init() {
	register("run", "run the daemon: real-time listeners, reconciler and pushers", runRun)
}

func runRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("run", stderr)
	path := fs.String("c", "", "configuration file (YAML)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, err := loadConfig(ctx, *path, true)
	if err != nil {
		fmt.Fprintf(stderr, "listener run: %v\n", err)
		return exitBadInput
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "listener run: %v\n", err)
		return exitBadInput
	}
	d, err := daemon.New(cfg, daemon.Options{Logger: log})
	if err != nil {
		log.WithError(err).Error("start failed")
		return exitFailure
	}
	defer d.Close()
	info := version.Get()
	log.WithFields(logrus.Fields{"sinks": len(cfg.Sinks), "version": info.Version, "revision": info.Revision, "goversion": info.GoVersion}).Info("listener started")
	if err := d.Run(ctx); err != nil {
		log.WithError(err).Error("listener stopped on an error")
		return exitFailure
	}
	log.Info("listener stopped")
	return exitOK
}
