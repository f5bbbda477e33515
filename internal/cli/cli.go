// Package cli owns the command-line conventions the listener binaries share: the exit codes and
// their one documented table, turning a command's error into its exit code, suggesting the
// closest name for an unknown flag or subcommand, accepting the older single-dash spelling of
// long flags (-json as --json), and the Markdown reference generated from a command tree.
//
// It never does a command's work: the binaries under cmd/ build their cobra trees and call
// Execute.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes of every listener binary.
const (
	OK       = 0 // the work was done
	Failure  = 1 // the work failed: a sink failed, a record was rejected, a check failed
	Usage    = 2 // bad flags, arguments or subcommand
	BadInput = 3 // bad configuration or input file
)

// ExitCode describes one exit code for the generated reference.
type ExitCode struct {
	Code    int
	Name    string
	Meaning string
}

// ExitCodes is the documented table of exit codes, in order.
var ExitCodes = []ExitCode{
	{OK, "ok", "the command did what it was asked"},
	{Failure, "failure", "the work failed: MISP or a sink failed, Sentinel rejected a record, a check failed, a benchmark target was missed"},
	{Usage, "usage", "bad flags, arguments or subcommand (the message names the closest valid one)"},
	{BadInput, "bad input", "the configuration or an input file is invalid or unreadable"},
}

// ExitError carries the exit code a command ends with. Err, when set, is printed once by
// Execute, prefixed with the command's path.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit code %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Failed ends the command with Failure and err's message.
func Failed(err error) error { return &ExitError{Code: Failure, Err: err} }

// BadInputErr ends the command with BadInput and err's message.
func BadInputErr(err error) error { return &ExitError{Code: BadInput, Err: err} }

// Usagef ends the command with Usage and the formatted message.
func Usagef(format string, args ...any) error {
	return &ExitError{Code: Usage, Err: fmt.Errorf(format, args...)}
}

// Exit ends the command with code and no further message: the command's output said why.
func Exit(code int) error {
	if code == OK {
		return nil
	}
	return &ExitError{Code: code}
}

// Main runs the command line of a binary: SIGINT and SIGTERM cancel the command's context,
// and the process exits with the command's exit code.
func Main(newRoot func() *cobra.Command) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Execute(ctx, newRoot(), os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Execute runs root with args and returns the process exit code. Errors are printed to stderr
// once, as "<command path>: <message>"; errors cobra itself raises (unknown command, bad flag,
// wrong number of arguments) exit with Usage.
func Execute(ctx context.Context, root *cobra.Command, args []string, stdout, stderr io.Writer) int {
	root.SetArgs(LegacyLongFlags(root, args))
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SilenceErrors = true
	root.SilenceUsage = true
	root.SetFlagErrorFunc(flagError)
	Complete(root)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return OK
	}
	if cmd == nil {
		cmd = root
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", cmd.CommandPath(), ee.Err)
		}
		if ee.Code == Usage {
			fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
		return ee.Code
	}
	fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", cmd.CommandPath(), strings.TrimRight(err.Error(), "\n"), cmd.CommandPath())
	return Usage
}

// Complete adds cobra's help and completion commands and --version to root, as Execute would,
// so that walks of the tree (tests, the reference) see every command. The completion scripts
// are written to root's output as set when Complete runs.
func Complete(root *cobra.Command) *cobra.Command {
	root.InitDefaultHelpCmd()
	root.InitDefaultVersionFlag()
	root.InitDefaultCompletionCmd()
	return root
}

// flagError turns a flag parse error into a usage error that names the closest flag.
func flagError(cmd *cobra.Command, err error) error {
	if name, ok := strings.CutPrefix(err.Error(), "unknown flag: --"); ok {
		if s := closestFlag(cmd, name); s != "" {
			err = fmt.Errorf("%w\n\nDid you mean this?\n\t--%s", err, s)
		}
	}
	return &ExitError{Code: Usage, Err: err}
}

// closestFlag returns the flag of cmd whose name is nearest to name, or "" when none is near.
func closestFlag(cmd *cobra.Command, name string) string {
	best, bestDist := "", len(name)/2+1
	visit := func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		d := distance(name, f.Name)
		if strings.HasPrefix(f.Name, name) || strings.HasPrefix(name, f.Name) {
			d = min(d, 1)
		}
		if d < bestDist || (d == bestDist && f.Name < best) {
			best, bestDist = f.Name, d
		}
	}
	cmd.Flags().VisitAll(visit)
	cmd.InheritedFlags().VisitAll(visit)
	if bestDist > 2 && !strings.HasPrefix(best, name) {
		return ""
	}
	return best
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// LegacyLongFlags rewrites the single-dash spelling of a long flag (-json, -dry-run=true) that
// Go's flag package accepted into the double-dash one, for the flags of the command args
// select. Everything after "--" is left alone, as are shorthands (-c) and unknown names.
func LegacyLongFlags(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == nil {
		return args
	}
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			out = append(out, args[i:]...)
			break
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			name, _, _ := strings.Cut(a[1:], "=")
			if len(name) > 1 && (cmd.Flags().Lookup(name) != nil || cmd.InheritedFlags().Lookup(name) != nil || name == "help") {
				a = "-" + a
			}
		}
		out = append(out, a)
	}
	return out
}

// Group returns a command that only holds subcommands: run without one it fails with Usage and
// lists them; with an unknown one it names the closest.
func Group(use, short string, subs ...*cobra.Command) *cobra.Command {
	g := &cobra.Command{
		Use:   use,
		Short: short,
		// SuggestionsFor uses this as is; only the root's is defaulted by cobra.
		SuggestionsMinimumDistance: 2,
		// Let an unknown subcommand be reported as such rather than as an unknown flag.
		FParseErrWhitelist: cobra.FParseErrWhitelist{UnknownFlags: true},
		RunE: func(cmd *cobra.Command, args []string) error {
			var names []string
			for _, c := range cmd.Commands() {
				if c.IsAvailableCommand() {
					names = append(names, c.Name())
				}
			}
			if len(args) == 0 {
				return Usagef("missing subcommand: one of %s", strings.Join(names, ", "))
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
			}
			return Usagef("%s", msg)
		},
	}
	g.AddCommand(subs...)
	return g
}

// exitCodesAnnotation is the cobra annotation listing the exit codes a command may return
// beyond OK and Usage, which every command may return.
const exitCodesAnnotation = "listener-exit-codes"

// Exits records on cmd the exit codes it may return besides OK and Usage, for the reference.
func Exits(cmd *cobra.Command, codes ...int) *cobra.Command {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprint(c)
	}
	cmd.Annotations[exitCodesAnnotation] = strings.Join(parts, " ")
	return cmd
}
