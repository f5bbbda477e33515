// Command listener-lab runs the harnesses that measure and disturb the listener against the
// built-in MISP and Sentinel simulators: `bench` (every performance target, docs/BENCHMARKS.md)
// and `soak` (SIGKILLs, ZeroMQ restarts, 5xx and 429 storms, then Sentinel must equal MISP).
// They live apart from the product binary so that `listener` links no test harness and no
// net/http/httptest.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/mispsentinel/listener/internal/cli"
	"github.com/mispsentinel/listener/internal/version"
	"github.com/mispsentinel/listener/sim/lab"
)

// Exit codes (the table lives in internal/cli).
const (
	exitOK      = cli.OK
	exitFailure = cli.Failure
	exitUsage   = cli.Usage
)

func main() { cli.Main(newRootCmd) }

// dispatch runs the command args name and returns the process exit code.
func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return cli.Execute(ctx, newRootCmd(), args, stdout, stderr)
}

func newRootCmd() *cobra.Command {
	var listenerPath string
	root := &cobra.Command{
		Use:     "listener-lab",
		Short:   "Benchmark and soak the listener against the built-in MISP and Sentinel simulators",
		Version: version.String(),
	}
	root.PersistentFlags().StringVar(&listenerPath, "listener", "",
		"listener `BINARY` the harness starts as the daemon (default: a listener next to this binary, else the daemon built into listener-lab)")
	root.AddCommand(newBenchCmd(&listenerPath), newSoakCmd(&listenerPath), newDaemonCmd())
	return root
}

// newDaemonCmd is the daemon the harnesses start when no listener binary is at hand: the same
// daemon package as `listener run|sync -c FILE`, with warnings-only logging.
func newDaemonCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "daemon run|sync -c FILE",
		Short:              "Run the built-in daemon (started by the harnesses)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cli.Exit(lab.RunChild(args, cmd.ErrOrStderr()))
		},
	}
}

// daemonCommand returns how the harnesses start the daemon in a process of its own: the
// listener binary given, else one next to this binary, else this binary's built-in daemon.
func daemonCommand(listenerPath string) (lab.CommandFunc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("locate own binary: %w", err)
	}
	if listenerPath == "" {
		sibling := filepath.Join(filepath.Dir(self), "listener"+filepath.Ext(self))
		if st, err := os.Stat(sibling); err == nil && !st.IsDir() {
			listenerPath = sibling
		}
	}
	if listenerPath != "" {
		if _, err := os.Stat(listenerPath); err != nil {
			return nil, fmt.Errorf("--listener: %w", err)
		}
		return func(args ...string) *exec.Cmd { return exec.Command(listenerPath, args...) }, nil
	}
	return func(args ...string) *exec.Cmd { return exec.Command(self, append([]string{"daemon"}, args...)...) }, nil
}
