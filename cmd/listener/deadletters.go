package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mispsentinel/listener/internal/cli"
	"github.com/mispsentinel/listener/internal/printable"
	"github.com/mispsentinel/listener/store"
)

func init() {
	addCommand(func() *cobra.Command {
		return cli.Group("deadletters", "List or re-queue the records Sentinel rejected (list|requeue)",
			newDeadLettersCmd("list", "List the dead letters of every sink (or one)"),
			newDeadLettersCmd("requeue", "Put dead letters back in their sink's outbox"))
	})
}

// deadLetterOptions are the flags of `listener deadletters list|requeue`.
type deadLetterOptions struct {
	path   string
	sink   string
	limit  int
	seqs   string
	asJSON bool
}

func newDeadLettersCmd(action, short string) *cobra.Command {
	var o deadLetterOptions
	cmd := &cobra.Command{
		Use:   action + " -c FILE",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return exitWith(runDeadLetters(cmd.Context(), action, o, cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.path, "config", "c", "", "configuration `FILE` (YAML)")
	f.StringVar(&o.sink, "sink", "", "only this sink (default: every sink)")
	if action == "list" {
		f.IntVar(&o.limit, "limit", 1000, "list at most this many per sink")
		f.BoolVar(&o.asJSON, "json", false, "list as one JSON array ([] when there is none)")
	} else {
		f.StringVar(&o.seqs, "seq", "", "requeue only these comma-separated sequence numbers (default: all)")
	}
	return cli.Exits(cmd, exitFailure, exitBadInput)
}

// deadLetterJSON is one element of `deadletters list --json`.
type deadLetterJSON struct {
	Sink       string          `json:"sink"`
	Seq        uint64          `json:"seq"`
	ID         string          `json:"id"`
	Revoke     bool            `json:"revoke"`
	Message    string          `json:"message"`
	RejectedAt time.Time       `json:"rejected_at"`
	Object     json.RawMessage `json:"object"`
}

func runDeadLetters(ctx context.Context, action string, o deadLetterOptions, stdout, stderr io.Writer) int {
	cfg, err := loadConfig(ctx, o.path, false)
	if err != nil {
		fmt.Fprintf(stderr, "listener deadletters: %v\n", err)
		return exitBadInput
	}
	var only []uint64
	if o.seqs != "" {
		for _, f := range strings.Split(o.seqs, ",") {
			n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
			if err != nil {
				fmt.Fprintf(stderr, "listener deadletters: --seq: %q is not a sequence number\n", f)
				return exitUsage
			}
			only = append(only, n)
		}
	}
	st, err := store.Open(cfg.Store.Dir, store.Options{})
	if err != nil {
		fmt.Fprintf(stderr, "listener deadletters: open store (stop the daemon first: it holds the store): %v\n", err)
		return exitFailure
	}
	defer st.Close()

	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	if action == "list" && !o.asJSON {
		fmt.Fprintln(tw, "SINK\tSEQ\tID\tREVOKE\tREJECTED AT\tMESSAGE")
	}
	listed := []deadLetterJSON{}
	for _, s := range cfg.Sinks {
		if o.sink != "" && s.Name != o.sink {
			continue
		}
		if action == "requeue" {
			n, err := st.Requeue(s.Name, only, time.Now())
			if err != nil {
				fmt.Fprintf(stderr, "listener deadletters: requeue %s: %v\n", s.Name, err)
				return exitFailure
			}
			fmt.Fprintf(stdout, "%s: re-queued %d\n", s.Name, n)
			continue
		}
		dls, err := st.DeadLetters(s.Name, o.limit)
		if err != nil {
			fmt.Fprintf(stderr, "listener deadletters: list %s: %v\n", s.Name, err)
			return exitFailure
		}
		for _, dl := range dls {
			if o.asJSON {
				listed = append(listed, deadLetterJSON{Sink: s.Name, Seq: dl.Seq, ID: dl.ID, Revoke: dl.Revoke,
					Message: dl.Message, RejectedAt: dl.RejectedAt, Object: json.RawMessage(dl.Object)})
				continue
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%t\t%s\t%s\n", s.Name, dl.Seq, dl.ID, dl.Revoke, when(dl.RejectedAt), printable.Escape(dl.Message))
		}
	}
	if action == "list" && o.asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(listed); err != nil {
			fmt.Fprintf(stderr, "listener deadletters: %v\n", err)
			return exitFailure
		}
		return exitOK
	}
	tw.Flush()
	return exitOK
}
