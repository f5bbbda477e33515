package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/mispsentinel/listener/internal/cli"
)

func init() {
	addCommand(func() *cobra.Command {
		return cli.Group("config", "Work with the configuration file (config print)", newConfigPrintCmd())
	})
}

func newConfigPrintCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "print -c FILE",
		Short: "Print the effective configuration with secrets redacted",
		Args:  cobra.NoArgs,
	}
	path := configFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return exitWith(runConfigPrint(cmd.Context(), *path, cmd.OutOrStdout(), cmd.ErrOrStderr()))
	}
	return cli.Exits(cmd, exitFailure, exitBadInput)
}

func runConfigPrint(ctx context.Context, path string, stdout, stderr io.Writer) int {
	cfg, err := loadConfig(ctx, path, false)
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
