package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/internal/cli"
	"github.com/mispsentinel/listener/internal/control"
	"github.com/mispsentinel/listener/internal/printable"
)

func init() { addCommand(newTraceCmd) }

// traceOptions are the flags of `listener trace`.
type traceOptions struct {
	path   string
	sink   string
	asJSON bool
}

func newTraceCmd() *cobra.Command {
	var o traceOptions
	cmd := &cobra.Command{
		Use:   "trace -c FILE VALUE|ATTRIBUTE-UUID|INDICATOR-ID|EVENT-UUID",
		Short: "Follow one indicator from MISP through each sink's conversion, the store and Sentinel",
		Long: "Follows one indicator through the system and prints each step: the MISP attribute(s)\n" +
			"(a value is looked up with MISP's attribute search, a uuid as an attribute and then as an\n" +
			"event, an indicator id through the event the store records for it), whether the event\n" +
			"passes the event filters, each sink's conversion decision with its reason (the daemon's\n" +
			"own options, as `convert --explain` prints them), what the store holds (version,\n" +
			"modified, valid_until; queued, accepted, revoked or dead letter with Sentinel's message)\n" +
			"and, where the sink can read Sentinel back, what Sentinel holds.\n\n" +
			"It asks the running daemon through its control endpoint and, when no daemon runs,\n" +
			"opens the store itself.",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cli.Usagef("give exactly one value, attribute uuid, event uuid or indicator id")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return exitWith(runTrace(cmd.Context(), o, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.path, "config", "c", "", "configuration `FILE` (YAML)")
	f.StringVar(&o.sink, "sink", "", "only this sink (default: every sink)")
	f.BoolVar(&o.asJSON, "json", false, "print the trace as one JSON object")
	return cli.Exits(cmd, exitFailure, exitBadInput)
}

func runTrace(ctx context.Context, o traceOptions, query string, stdout, stderr io.Writer) int {
	cfg, err := loadConfig(ctx, o.path, false)
	if err != nil {
		fmt.Fprintf(stderr, "listener trace: %v\n", err)
		return exitBadInput
	}
	tr, err := readTrace(ctx, cfg, query, o.sink)
	if err != nil {
		fmt.Fprintf(stderr, "listener trace: %v\n", err)
		if errors.Is(err, daemon.ErrBadTraceQuery) || strings.Contains(err.Error(), "no such sink") {
			return exitUsage
		}
		return exitFailure
	}
	if o.asJSON {
		if err := writeJSON(stdout, tr); err != nil {
			return exitFailure
		}
		return exitOK
	}
	writeTrace(stdout, tr)
	return exitOK
}

// readTrace asks the running daemon and, when none answers, assembles the daemon's conversion
// against the store to trace without it.
func readTrace(ctx context.Context, cfg *config.Config, query, sink string) (*daemon.Trace, error) {
	var tr daemon.Trace
	q := url.Values{"q": {query}}
	if sink != "" {
		q.Set("sink", sink)
	}
	source, err := askDaemon(ctx, cfg, func(c *control.Client) error { return c.Get(ctx, "/trace", q, &tr) })
	if err == nil {
		tr.Source = source
		return &tr, nil
	}
	if !errors.Is(err, control.ErrNoDaemon) {
		return nil, err
	}
	if err := cfg.Resolve(ctx, config.Resolver{KeyVault: &lazyKeyVault{}}); err != nil {
		return nil, fmt.Errorf("resolve secrets:\n%w", err)
	}
	st, err := openStore(cfg)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	d, err := daemon.New(cfg, daemon.Options{Store: st, Logger: quiet})
	if err != nil {
		return nil, err
	}
	defer d.Close()
	out, err := d.Trace(ctx, query, sink)
	if err != nil {
		return nil, err
	}
	out.Source = "store " + cfg.Store.Dir + " (no daemon answered)"
	return out, nil
}

// writeTrace prints a trace for people: one block per attribute, one line per sink and
// indicator.
func writeTrace(w io.Writer, tr *daemon.Trace) {
	fmt.Fprintf(w, "trace %s (%s)\nsource: %s\n", strconv.Quote(tr.Query), tr.Kind, tr.Source)
	for _, n := range tr.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	for _, a := range tr.Attributes {
		fmt.Fprintf(w, "\nMISP attribute %s (id %s): %s %s, to_ids %t", a.UUID, a.ID, a.Type, strconv.Quote(printable.Escape(a.Value)), a.ToIDS)
		if a.ObjectName != "" {
			fmt.Fprintf(w, ", in object %s", a.ObjectName)
		}
		fmt.Fprintf(w, "\n  event %s (id %s) %s: ", a.EventUUID, a.EventID, strconv.Quote(printable.Escape(a.EventInfo)))
		switch {
		case !a.Event.Found:
			fmt.Fprint(w, "not found")
		case a.Event.InFilters:
			fmt.Fprintf(w, "passes the event filters, published %t", a.Event.Published)
		default:
			fmt.Fprint(w, "outside the event filters")
		}
		if a.Event.Note != "" {
			fmt.Fprintf(w, " (%s)", a.Event.Note)
		}
		fmt.Fprintln(w)
		for _, s := range a.Sinks {
			fmt.Fprintf(w, "  sink %s: %s", s.Sink, s.Decision)
			if s.Reason != "" {
				fmt.Fprintf(w, ", %s", s.Reason)
			}
			if s.Detail != "" {
				fmt.Fprintf(w, " (%s)", s.Detail)
			}
			fmt.Fprintln(w)
			for _, ind := range s.Indicators {
				writeTraceIndicator(w, "    ", ind)
			}
		}
	}
	if len(tr.Stored) > 0 {
		fmt.Fprintln(w, "\nwhat the store still holds:")
		for _, ind := range tr.Stored {
			fmt.Fprintf(w, "  sink %s:\n", ind.Sink)
			writeTraceIndicator(w, "    ", ind)
		}
	}
}

func writeTraceIndicator(w io.Writer, indent string, ind daemon.TraceIndicator) {
	fmt.Fprintf(w, "%s%s\n", indent, ind.ID)
	s := ind.Store
	if s == nil || !s.Known {
		fmt.Fprintf(w, "%s  store: no record (never queued)\n", indent)
	} else {
		fmt.Fprintf(w, "%s  store: %s", indent, s.State)
		if s.ID != ind.ID {
			fmt.Fprintf(w, " as %s (generation %d)", s.ID, s.Generation)
		}
		fmt.Fprintf(w, "; version modified %s, valid_until %s", when(s.Modified), when(s.ValidUntil))
		if !s.QueuedAt.IsZero() {
			fmt.Fprintf(w, ", queued at %s", when(s.QueuedAt))
		}
		if !s.AcceptedModified.IsZero() {
			fmt.Fprintf(w, ", Sentinel accepted the version modified %s", when(s.AcceptedModified))
		}
		fmt.Fprintln(w)
		if dl := s.DeadLetter; dl != nil {
			fmt.Fprintf(w, "%s  dead letter seq %d, rejected at %s: %s\n", indent, dl.Seq, when(dl.RejectedAt), printable.Escape(dl.Message))
		}
	}
	switch {
	case ind.Sentinel != nil:
		h := ind.Sentinel
		fmt.Fprintf(w, "%s  sentinel: holds %s, modified %s, valid_until %s, revoked %t\n", indent, h.ID, when(h.Modified), when(h.ValidUntil), h.Revoked)
	case ind.SentinelNote != "":
		fmt.Fprintf(w, "%s  sentinel: %s\n", indent, ind.SentinelNote)
	}
}
