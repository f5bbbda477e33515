package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mispsentinel/listener/internal/cli"
	"github.com/mispsentinel/listener/misp"
	"github.com/mispsentinel/listener/stix"
)

func init() { addCommand(newConvertCmd) }

// maxConvertInput bounds one input file, so a wrong file cannot exhaust memory.
const maxConvertInput = 512 << 20

// convertOptions are the flags of `listener convert`.
type convertOptions struct {
	profile string
	explain bool
}

func newConvertCmd() *cobra.Command {
	var o convertOptions
	cmd := &cobra.Command{
		Use:   "convert [flags] FILE...",
		Short: "Convert MISP event JSON files into one STIX 2.1 bundle",
		Long: "Converts MISP events ({\"Event\": ...}, bare events or restSearch replies; - reads stdin)\n" +
			"into one STIX 2.1 bundle on stdout.",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cli.Usagef("no input file (use - for stdin)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return exitWith(runConvert(o, args, cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	cmd.Flags().StringVar(&o.profile, "profile", string(stix.ProfileSentinel), "pattern profile: sentinel or misp-stix")
	cmd.Flags().BoolVar(&o.explain, "explain", false, "print the decision and reason for every attribute instead of the bundle")
	return cli.Exits(cmd, exitFailure, exitBadInput)
}

// runConvert converts the files names.
func runConvert(o convertOptions, names []string, stdout, stderr io.Writer) int {
	opts := stix.Defaults()
	opts.Profile = stix.Profile(o.profile)
	if err := opts.Validate(); err != nil {
		fmt.Fprintf(stderr, "listener convert: %v\n", err)
		return exitUsage
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
			res := stix.Convert(ev, opts, now)
			objects = append(objects, res.Objects...)
			if o.explain {
				writeExplanation(&explanation, ev, res.Decisions)
			}
		}
	}
	var err error
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

// writeExplanation writes one tab-separated line per attribute: event, attribute, type,
// value, then "exported" and the indicator ids, or "skipped", the reason and its detail.
func writeExplanation(w *strings.Builder, ev *misp.Event, decisions []stix.Decision) {
	for _, d := range decisions {
		attr := d.AttributeUUID
		if d.ObjectUUID != "" {
			attr = d.ObjectName + "/" + attr
		}
		value := d.Value
		if len(value) > 120 {
			value = value[:120] + "..."
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t", ev.UUID, attr, d.Type, strconv.Quote(value))
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
