package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mispsentinel/listener/internal/version"
)

func init() { addCommand(newVersionCmd) }

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, VCS revision and Go version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), versionLine())
			return err
		},
	}
}

// versionLine is what `listener version` and `listener --version` print.
func versionLine() string {
	info := version.Get()
	return fmt.Sprintf("listener %s (revision %s, %s)", info.Version, info.Revision, info.GoVersion)
}
