package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/mispsentinel/listener/adopt"
	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/internal/cli"
)

func init() { addCommand(newAdoptCmd) }

// adoptOptions are the flags of `listener adopt`.
type adoptOptions struct {
	path         string
	from         string
	sourceSystem string
	sink         string
	apply        bool
	delete       bool
	asJSON       bool
	examples     int
}

func newAdoptCmd() *cobra.Command {
	var o adoptOptions
	cmd := &cobra.Command{
		Use:   "adopt -c FILE --from misp2sentinel",
		Short: "Plan (and with --apply execute) the clean-up of misp2sentinel's indicators in each workspace",
		Long: `Lists the live indicators misp2sentinel left in each Sentinel sink's workspace (the sinks
with a read_back block; its source system, --sourcesystem, default MISP as in its
configuration), matches each to a MISP attribute by observable and event reference (the event
looked up in MISP with the sink's filters, time windows left out) and plans, per indicator:
  superseded  the listener holds a live copy of the observable: revoke the old one (every
              duplicate of it)
  gone        MISP no longer flags it (event deleted or outside the filters, attribute
              deleted or to_ids off): revoke
  unmatched   no MISP event reference, or MISP still flags it and the listener holds no copy
              yet: report only
Without --apply nothing is sent: it prints the plan and its counts. --apply re-uploads each
indicator to revoke under its own source system and id with revoked: true, through the
store's outbox and the pusher (the sink's identity, quota and retries); --delete also deletes
the revoked copies through the management API (not honoured everywhere for uploaded objects).
Running it again changes nothing. The store is opened directly: stop the daemon first.
Exit code 0 when the plan was made (and applied), 1 when a sink failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return exitWith(runAdopt(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.path, "config", "c", "", "configuration `FILE` (YAML)")
	f.StringVar(&o.from, "from", "", "the tool whose indicators are adopted: misp2sentinel")
	f.StringVar(&o.sourceSystem, "sourcesystem", "MISP", "the tool's source system (misp2sentinel's sourcesystem)")
	f.StringVar(&o.sink, "sink", "", "adopt into the sink `NAME` only")
	f.BoolVar(&o.apply, "apply", false, "revoke the superseded and gone indicators (default: plan only)")
	f.BoolVar(&o.delete, "delete", false, "with --apply, also delete the revoked copies through the management API")
	f.BoolVar(&o.asJSON, "json", false, "print the plans as JSON, every indicator included")
	f.IntVar(&o.examples, "examples", 10, "indicators listed per verdict and sink (0: all)")
	_ = cmd.MarkFlagRequired("from")
	return cli.Exits(cmd, exitFailure, exitBadInput)
}

// adoptJSON is the --json document.
type adoptJSON struct {
	Sinks []adoptSinkJSON `json:"sinks"`
}

type adoptSinkJSON struct {
	*adopt.Plan
	Counts    map[adopt.Kind]int `json:"counts"`
	Error     string             `json:"error,omitempty"`
	Queued    int                `json:"queued,omitempty"`
	Revoked   int                `json:"revoked,omitempty"`
	Rejected  int                `json:"rejected,omitempty"`
	UploadErr string             `json:"upload_error,omitempty"`
	Deleted   int                `json:"deleted,omitempty"`
	DeleteErr string             `json:"delete_error,omitempty"`
}

func runAdopt(ctx context.Context, o adoptOptions, stdout, stderr io.Writer) int {
	if o.from != adopt.FromMISP2Sentinel {
		fmt.Fprintf(stderr, "listener adopt: --from %q: the only tool known is %s\n", o.from, adopt.FromMISP2Sentinel)
		return exitUsage
	}
	if o.delete && !o.apply {
		fmt.Fprintln(stderr, "listener adopt: --delete needs --apply")
		return exitUsage
	}
	cfg, err := loadConfig(ctx, o.path, true)
	if err != nil {
		fmt.Fprintf(stderr, "listener adopt: %v\n", err)
		return exitBadInput
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "listener adopt: %v\n", err)
		return exitBadInput
	}
	d, err := daemon.New(cfg, daemon.Options{Logger: log, Resolver: newResolver(cfg)})
	if err != nil {
		if storeInUse(err) {
			fmt.Fprintf(stderr, "listener adopt: the store %s is in use, most likely by the running daemon: stop it for the adoption (%v)\n", cfg.Store.Dir, err)
			return exitFailure
		}
		fmt.Fprintf(stderr, "listener adopt: %v\n", err)
		return exitFailure
	}
	defer d.Close()
	results, err := d.Adopt(ctx, daemon.AdoptOptions{Sink: o.sink, SourceSystem: o.sourceSystem, Apply: o.apply, Delete: o.delete})
	if err != nil {
		fmt.Fprintf(stderr, "listener adopt: %v\n", err)
		if errors.Is(err, daemon.ErrNoAdoptableSink) {
			return exitBadInput
		}
		return exitUsage
	}
	code := exitOK
	var doc adoptJSON
	for _, r := range results {
		js := adoptSinkJSON{Plan: r.Plan, Queued: r.Queued, Deleted: r.Deleted}
		if js.Plan == nil {
			js.Plan = &adopt.Plan{Sink: r.Sink, SourceSystem: o.sourceSystem}
		}
		js.Counts = map[adopt.Kind]int{}
		for _, k := range adopt.Kinds {
			js.Counts[k] = js.Plan.Count(k)
		}
		if r.Err != nil {
			code, js.Error = exitFailure, r.Err.Error()
		}
		if r.Delivered != nil {
			js.Revoked, js.Rejected = r.Delivered.Accepted, r.Delivered.Rejected
			if r.Delivered.Err != nil {
				code, js.UploadErr = exitFailure, r.Delivered.Err.Error()
			}
		}
		if r.DeleteErr != nil {
			code, js.DeleteErr = exitFailure, r.DeleteErr.Error()
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
		fmt.Fprintln(stdout, s.Plan.Summary())
		for _, k := range adopt.Kinds {
			n := 0
			for _, e := range s.Plan.Entries {
				if e.Kind != k {
					continue
				}
				if o.examples > 0 && n == o.examples {
					fmt.Fprintf(stdout, "  %-10s ... (%d more)\n", k, s.Plan.Count(k)-n)
					break
				}
				fmt.Fprintf(stdout, "  %-10s %s %s: %s\n", k, e.ID, e.Pattern, e.Reason)
				n++
			}
		}
		switch {
		case !o.apply:
			fmt.Fprintf(stdout, "  dry run: nothing sent (--apply revokes %d)\n", s.Counts[adopt.Superseded]+s.Counts[adopt.Gone])
		default:
			fmt.Fprintf(stdout, "  apply: queued=%d revoked=%d rejected=%d", s.Queued, s.Revoked, s.Rejected)
			if s.UploadErr != "" {
				fmt.Fprintf(stdout, " FAILED (%s)", s.UploadErr)
			}
			if o.delete {
				fmt.Fprintf(stdout, " deleted=%d", s.Deleted)
				if s.DeleteErr != "" {
					fmt.Fprintf(stdout, " (%s)", s.DeleteErr)
				}
			}
			fmt.Fprintln(stdout)
		}
	}
	return code
}
