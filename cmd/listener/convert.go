package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/internal/cli"
	"github.com/mispsentinel/listener/misp"
	"github.com/mispsentinel/listener/stix"
)

func init() { addCommand(newConvertCmd) }

// maxConvertInput bounds one input file, so a wrong file cannot exhaust memory.
const maxConvertInput = 512 << 20

// convertOptions are the flags of `listener convert`.
type convertOptions struct {
	path    string
	sink    string
	profile string
	explain bool
}

func newConvertCmd() *cobra.Command {
	var o convertOptions
	cmd := &cobra.Command{
		Use:   "convert [-c FILE] [--sink NAME] [--explain] FILE...",
		Short: "Convert MISP event JSON files into one STIX 2.1 bundle, with a sink's options",
		Long: "Converts MISP events ({\"Event\": ...}, bare events or restSearch replies; - reads stdin)\n" +
			"into one STIX 2.1 bundle on stdout, with exactly the options the daemon converts with for\n" +
			"a sink: the conversion block, the sink's filters (tags, types, max_tlp, min_confidence) and\n" +
			"lifetimes. With -c they come from the configuration (--sink chooses the sink when there are\n" +
			"several); without, from the defaults the daemon uses with an empty configuration. Decaying\n" +
			"models are not read from MISP: a sink's configured decay parameters apply, else only the\n" +
			"scores the file carries.\n\n" +
			"--explain prints, per attribute and per sink, the decision: exported with the indicator ids,\n" +
			"or skipped with the reason (tab-separated: event, attribute, type, value, sink, decision);\n" +
			"then, per galaxy cluster and sink, the context object it became with its number of\n" +
			"relationships, or why it is not exported (event, \"galaxy\", galaxy type, value, sink,\n" +
			"decision).",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cli.Usagef("no input file (use - for stdin)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("profile") {
				o.profile = ""
			}
			return exitWith(runConvert(cmd.Context(), o, args, cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.path, "config", "c", "", "convert with the options of this configuration `FILE` (default: the daemon's defaults)")
	f.StringVar(&o.sink, "sink", "", "the sink whose options apply (default: every sink for --explain; the only sink otherwise)")
	f.StringVar(&o.profile, "profile", string(stix.ProfileSentinel), "pattern profile, overriding the configuration's: sentinel or misp-stix")
	f.BoolVar(&o.explain, "explain", false, "print the decision and reason for every attribute and sink instead of the bundle")
	return cli.Exits(cmd, exitFailure, exitBadInput)
}

// convertSink is one sink's name and the options the daemon converts with for it.
type convertSink struct {
	name string
	opts stix.Options
}

// convertSinks returns the sinks convert converts for: from the configuration file, or the one
// sink an empty configuration gives the daemon.
func convertSinks(ctx context.Context, o convertOptions) ([]convertSink, int, error) {
	var cfg *config.Config
	if o.path == "" {
		var err error
		cfg, err = config.Parse([]byte("sinks:\n  - name: default\n"), nil)
		if err != nil {
			return nil, exitFailure, fmt.Errorf("default configuration: %w", err)
		}
	} else {
		var err error
		if cfg, err = loadConfig(ctx, o.path, false); err != nil {
			return nil, exitBadInput, err
		}
	}
	var sinks []convertSink
	for _, s := range cfg.Sinks {
		if o.sink == "" || s.Name == o.sink {
			if o.profile != "" {
				// Set before mapping: the profile decides the default composite handling.
				s.Conversion.Profile = o.profile
			}
			sinks = append(sinks, convertSink{name: s.Name, opts: daemon.ConversionOptions(cfg, s)})
		}
	}
	names := make([]string, len(cfg.Sinks))
	for i, s := range cfg.Sinks {
		names[i] = s.Name
	}
	switch {
	case len(sinks) == 0:
		return nil, exitUsage, fmt.Errorf("--sink %q: no such sink (have %s)", o.sink, strings.Join(names, ", "))
	case len(sinks) > 1 && !o.explain:
		return nil, exitUsage, fmt.Errorf("the configuration has %d sinks: choose one with --sink (%s)", len(sinks), strings.Join(names, ", "))
	}
	for i := range sinks {
		if err := sinks[i].opts.Validate(); err != nil {
			return nil, exitUsage, err
		}
	}
	return sinks, exitOK, nil
}

// runConvert converts the files names.
func runConvert(ctx context.Context, o convertOptions, names []string, stdout, stderr io.Writer) int {
	sinks, code, err := convertSinks(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "listener convert: %v\n", err)
		return code
	}
	now := time.Now()
	var objects []stix.Object
	var explanation strings.Builder
	for _, name := range names {
		data, err := readInput(name)
		if err != nil {
			fmt.Fprintf(stderr, "listener convert: %v\n", err)
			return exitBadInput
		}
		events, err := misp.DecodeEvents(data)
		if err != nil {
			fmt.Fprintf(stderr, "listener convert: %s: %v\n", displayName(name), err)
			return exitBadInput
		}
		for _, ev := range events {
			decisions := make([][]stix.Decision, len(sinks))
			contexts := make([][]stix.ContextDecision, len(sinks))
			for i, s := range sinks {
				res := stix.Convert(ev, s.opts, now)
				decisions[i], contexts[i] = res.Decisions, res.Context
				if !o.explain {
					objects = append(objects, res.Objects...)
				}
			}
			if o.explain {
				writeExplanation(&explanation, ev, sinks, decisions)
				writeContextExplanation(&explanation, ev, sinks, contexts)
			}
		}
	}
	if o.explain {
		_, err = io.WriteString(stdout, explanation.String())
	} else {
		bundle := stix.Bundle(objects)
		_, err = stdout.Write(append(bundle, '\n'))
	}
	if err != nil {
		fmt.Fprintf(stderr, "listener convert: write output: %v\n", err)
		return exitFailure
	}
	return exitOK
}

func displayName(name string) string {
	if name == "-" {
		return "stdin"
	}
	return name
}

func readInput(name string) ([]byte, error) {
	var r io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("open input: %w", err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxConvertInput+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", displayName(name), err)
	}
	if len(data) > maxConvertInput {
		return nil, fmt.Errorf("read %s: larger than %d MiB", displayName(name), maxConvertInput>>20)
	}
	return data, nil
}

// writeExplanation writes one tab-separated line per attribute and sink, attribute by
// attribute: event, attribute, type, value, sink, then "exported" and the indicator ids, or
// "skipped", the reason and its detail. decisions[i] are sinks[i]'s, one per attribute in event
// order (stix.Result.Decisions).
func writeExplanation(w *strings.Builder, ev *misp.Event, sinks []convertSink, decisions [][]stix.Decision) {
	for a := range decisions[0] {
		for i, s := range sinks {
			if a >= len(decisions[i]) {
				continue
			}
			d := decisions[i][a]
			attr := d.AttributeUUID
			if d.ObjectUUID != "" {
				attr = d.ObjectName + "/" + attr
			}
			value := d.Value
			if len(value) > 120 {
				value = value[:120] + "..."
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t", ev.UUID, attr, d.Type, strconv.Quote(value), s.name)
			if len(d.Exported) > 0 {
				fmt.Fprintf(w, "exported\t%s", strings.Join(d.Exported, ","))
				if d.Detail != "" {
					fmt.Fprintf(w, "\t%s", d.Detail)
				}
			} else {
				fmt.Fprintf(w, "skipped\t%s\t%s", d.Reason, d.Detail)
			}
			w.WriteByte('\n')
		}
	}
}

// writeContextExplanation writes one tab-separated line per galaxy cluster of the event and
// sink: event, "galaxy", the galaxy type, the cluster value, sink, then "exported", the object
// id and its number of relationships, or "skipped", the reason and its detail; after it, one
// line per relation from that cluster to another of the event: event, "relation", the type,
// "source -> target", sink, then "exported" and the relationship id, or "skipped", the reason
// and its detail.
func writeContextExplanation(w *strings.Builder, ev *misp.Event, sinks []convertSink, contexts [][]stix.ContextDecision) {
	for i, s := range sinks {
		list := contexts[i]
		if s.opts.Context == "" || s.opts.Context == stix.ContextNone {
			list = nil
			for _, g := range eventGalaxies(ev) {
				for _, c := range g.Clusters {
					typ := c.Type
					if typ == "" {
						typ = g.Type
					}
					list = append(list, stix.ContextDecision{Galaxy: typ, Value: c.Value, Reason: stix.ContextExcludedByMode,
						Detail: "the sink's context is none: galaxies stay tags on the indicators"})
				}
			}
		}
		for _, d := range list {
			fmt.Fprintf(w, "%s	galaxy	%s	%s	%s	", ev.UUID, d.Galaxy, strconv.Quote(d.Value), s.name)
			if d.Reason == "" {
				fmt.Fprintf(w, "exported\t%s\t%d relationships\n", d.ID, d.Relationships)
			} else {
				fmt.Fprintf(w, "skipped\t%s\t%s\n", d.Reason, d.Detail)
			}
			for _, r := range d.Relations {
				fmt.Fprintf(w, "%s	relation	%s	%s -> %s	%s	", ev.UUID, r.Type, strconv.Quote(d.Value), strconv.Quote(r.Target), s.name)
				if r.Reason == "" {
					fmt.Fprintf(w, "exported\t%s\n", r.ID)
					continue
				}
				fmt.Fprintf(w, "skipped\t%s\t%s\n", r.Reason, r.Detail)
			}
		}
	}
}

// eventGalaxies returns the event's galaxies and those of its attributes, each cluster once.
func eventGalaxies(ev *misp.Event) []misp.Galaxy {
	seen := map[string]bool{}
	var out []misp.Galaxy
	add := func(gs []misp.Galaxy) {
		for _, g := range gs {
			var keep []misp.GalaxyCluster
			for _, c := range g.Clusters {
				if k := g.Type + "/" + c.Type + "/" + c.UUID + "/" + c.Value; !seen[k] {
					seen[k] = true
					keep = append(keep, c)
				}
			}
			if len(keep) > 0 {
				g.Clusters = keep
				out = append(out, g)
			}
		}
	}
	add(ev.Galaxies)
	ev.AllAttributes(func(_ *misp.Object, a *misp.Attribute) bool { add(a.Galaxies); return true })
	return out
}
