package main

import (
	"context"
	"fmt"
	"io"
)

func init() {
	register("config", "print the effective configuration with secrets redacted (config print)", runConfig)
}

func runConfig(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "print" {
		fmt.Fprintln(stderr, "usage: listener config print -c config.yaml")
		return exitUsage
	}
	fs := newFlagSet("config print", stderr)
	path := fs.String("c", "", "configuration file (YAML)")
	if code, ok := parseFlags(fs, args[1:]); !ok {
		return code
	}
	cfg, err := loadConfig(ctx, *path, false)
	if err != nil {
		fmt.Fprintf(stderr, "listener config: %v\n", err)
		return exitBadInput
	}
	if err := cfg.Print(stdout); err != nil {
		fmt.Fprintf(stderr, "listener config: %v\n", err)
		return exitFailure
	}
	return exitOK
}
