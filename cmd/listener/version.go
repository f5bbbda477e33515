package main

import (
	"context"
	"fmt"
	"io"

	"github.com/mispsentinel/listener/internal/version"
)

func init() {
	register("version", "print the version, VCS revision and Go version of this binary", runVersion)
}

func runVersion(_ context.Context, _ []string, stdout, _ io.Writer) int {
	printVersion(stdout)
	return exitOK
}

// printVersion writes the one version line `listener version` and `listener --version` share.
func printVersion(w io.Writer) {
	info := version.Get()
	fmt.Fprintf(w, "listener %s (revision %s, %s)\n", info.Version, info.Revision, info.GoVersion)
}
