package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/internal/cli"
	"github.com/mispsentinel/listener/verify"
)

func init() { addCommand(newVerifyCmd) }

// verifyOptions are the flags of `listener verify`.
type verifyOptions struct {
	path   string
	sink   string
	repair bool
	asJSON bool
}

func newVerifyCmd() *cobra.Command {
	var o verifyOptions
	cmd := &cobra.Command{
		Use:   "verify -c FILE",
		Short: "Compare what each Sentinel sink should hold with what its workspace holds (read_back)",
		Long: `Reads every Sentinel sink with a read_back block back through the management API and
compares it with the store's desired state (what MISP says the sink should hold). It reports,
with counts and examples: missing (should be live, is not), stale (older modified or other
content), live_revoked (revoked here, live in Sentinel) and foreign (the same observable live
under another source system). Objects queued within read_back.lag are not judged.

--repair queues the missing and stale objects and the lost revocations again and uploads them
before exiting; foreign copies are left to listener adopt. The exit code is 0 when no
difference was found and 1 otherwise (also after a repair: run verify again to confirm).

The store is opened directly: stop the daemon first, or let it compare on a schedule
(verify.interval, listener_drift_objects).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return exitWith(runVerify(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.path, "config", "c", "", "configuration `FILE` (YAML)")
	f.StringVar(&o.sink, "sink", "", "compare only the sink `NAME`")
	f.BoolVar(&o.repair, "repair", false, "queue missing and stale objects and lost revocations again, and upload them")
	f.BoolVar(&o.asJSON, "json", false, "print the reports as JSON")
	return cli.Exits(cmd, exitFailure, exitBadInput)
}

// verifyJSON is the --json document.
type verifyJSON struct {
	Differences int              `json:"differences"`
	Sinks       []verifySinkJSON `json:"sinks"`
}

type verifySinkJSON struct {
	*verify.Report
	Sink      string `json:"sink"`
	Error     string `json:"error,omitempty"`
	Uploaded  int    `json:"uploaded,omitempty"`
	Rejected  int    `json:"rejected,omitempty"`
	UploadErr string `json:"upload_error,omitempty"`
}

func runVerify(ctx context.Context, o verifyOptions, stdout, stderr io.Writer) int {
	cfg, err := loadConfig(ctx, o.path, true)
	if err != nil {
		fmt.Fprintf(stderr, "listener verify: %v\n", err)
		return exitBadInput
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "listener verify: %v\n", err)
		return exitBadInput
	}
	d, err := daemon.New(cfg, daemon.Options{Logger: log})
	if err != nil {
		if storeInUse(err) {
			fmt.Fprintf(stderr, "listener verify: the store %s is in use, most likely by the running daemon: stop it first, or let it compare on a schedule (verify.interval; listener_drift_objects{sink,kind}) (%v)\n", cfg.Store.Dir, err)
			return exitFailure
		}
		fmt.Fprintf(stderr, "listener verify: %v\n", err)
		return exitFailure
	}
	defer d.Close()
	results, err := d.Verify(ctx, daemon.VerifyOptions{Sink: o.sink, Repair: o.repair, Deliver: o.repair})
	if err != nil {
		fmt.Fprintf(stderr, "listener verify: %v\n", err)
		if errors.Is(err, daemon.ErrNoReadBack) {
			return exitBadInput
		}
		return exitUsage
	}
	code := exitOK
	doc := verifyJSON{}
	for _, r := range results {
		js := verifySinkJSON{Report: r.Report, Sink: r.Sink}
		switch {
		case r.Err != nil:
			code = exitFailure
			js.Error = r.Err.Error()
		case r.Report.Differences() > 0:
			code = exitFailure
			doc.Differences += r.Report.Differences()
		}
		if r.Delivered != nil {
			js.Uploaded, js.Rejected = r.Delivered.Accepted, r.Delivered.Rejected
			if r.Delivered.Err != nil {
				code = exitFailure
				js.UploadErr = r.Delivered.Err.Error()
			}
		}
		doc.Sinks = append(doc.Sinks, js)
	}
	if o.asJSON {
		if err := writeJSON(stdout, doc); err != nil {
			return exitFailure
		}
		return code
	}
	for _, s := range doc.Sinks {
		if s.Error != "" {
			fmt.Fprintf(stdout, "%s: FAILED: %s\n", s.Sink, s.Error)
			continue
		}
		fmt.Fprintln(stdout, s.Report.Summary())
		for _, k := range verify.Kinds {
			for _, ex := range s.Examples[k] {
				src := ""
				if ex.SourceSystem != "" {
					src = " (sourcesystem " + ex.SourceSystem + ")"
				}
				fmt.Fprintf(stdout, "  %-12s %s%s: %s\n", k, ex.ID, src, ex.Detail)
			}
		}
		if o.repair {
			fmt.Fprintf(stdout, "  repair: requeued=%d uploaded=%d rejected=%d", s.Requeued, s.Uploaded, s.Rejected)
			if s.UploadErr != "" {
				fmt.Fprintf(stdout, " FAILED (%s)", s.UploadErr)
			}
			fmt.Fprintln(stdout)
		}
	}
	if code == exitOK {
		fmt.Fprintln(stdout, "no difference")
	}
	return code
}

// storeInUse reports whether opening the store failed because another process holds it.
func storeInUse(err error) bool {
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "directory lock") || strings.Contains(msg, "another process")
}
