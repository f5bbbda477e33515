// Command listener pushes threat intelligence from MISP into Microsoft Sentinel in near real
// time. Run `listener --help` for its commands; docs/CLI.md is the reference generated from the
// command tree (go test ./cmd/listener -run TestCLIDoc -update).
//
// Adding a command is one file: define a constructor returning a *cobra.Command (RunE gets the
// context from cmd.Context() and writes to cmd.OutOrStdout/ErrOrStderr) and call addCommand
// with it from the file's init. The help walk, the reference and completion pick it up.
package main

import (
	"context"
	"io"

	"github.com/spf13/cobra"

	"github.com/mispsentinel/listener/internal/cli"
	"github.com/mispsentinel/listener/internal/version"
)

// Exit codes shared by the commands (the table lives in internal/cli).
const (
	exitOK       = cli.OK
	exitFailure  = cli.Failure
	exitUsage    = cli.Usage
	exitBadInput = cli.BadInput
)

// commandConstructors builds each top-level command; every command's file adds its own.
var commandConstructors []func() *cobra.Command

// addCommand registers a top-level command's constructor; call it from the file's init.
func addCommand(build func() *cobra.Command) {
	commandConstructors = append(commandConstructors, build)
}

func main() { cli.Main(newRootCmd) }

// dispatch runs the command args name and returns the process exit code.
func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return cli.Execute(ctx, newRootCmd(), args, stdout, stderr)
}

// newRootCmd builds a fresh command tree (flag values live in it, so each run gets its own).
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:     "listener",
		Short:   "Push threat intelligence from MISP into Microsoft Sentinel in near real time",
		Version: version.String(),
		// Without a command: the help, as a usage error.
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SetOut(cmd.ErrOrStderr())
			_ = cmd.Help()
			return cli.Exit(exitUsage)
		},
	}
	root.SetVersionTemplate(versionLine() + "\n")
	for _, build := range commandConstructors {
		root.AddCommand(build())
	}
	return root
}
