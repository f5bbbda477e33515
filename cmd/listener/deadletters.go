package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/internal/cli"
	"github.com/mispsentinel/listener/internal/control"
	"github.com/mispsentinel/listener/internal/printable"
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
	if o.sink != "" && !slices.ContainsFunc(cfg.Sinks, func(s config.Sink) bool { return s.Name == o.sink }) {
		fmt.Fprintf(stderr, "listener deadletters: --sink %q: no such sink in %s\n", o.sink, o.path)
		return exitUsage
	}
	if action == "requeue" {
		out, err := requeueDeadLetters(ctx, cfg, o.sink, only)
		if err != nil {
			fmt.Fprintf(stderr, "listener deadletters: requeue: %v\n", err)
			return exitFailure
		}
		for _, q := range out {
			fmt.Fprintf(stdout, "%s: re-queued %d\n", q.Sink, q.Requeued)
		}
		return exitOK
	}
	listed, err := listDeadLetters(ctx, cfg, o.sink, o.limit)
	if err != nil {
		fmt.Fprintf(stderr, "listener deadletters: list: %v\n", err)
		return exitFailure
	}
	if o.asJSON {
		if err := writeJSON(stdout, listed); err != nil {
			fmt.Fprintf(stderr, "listener deadletters: %v\n", err)
			return exitFailure
		}
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SINK\tSEQ\tID\tREVOKE\tREJECTED AT\tMESSAGE")
	for _, dl := range listed {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%t\t%s\t%s\n", dl.Sink, dl.Seq, dl.ID, dl.Revoke, when(dl.RejectedAt), printable.Escape(dl.Message))
	}
	tw.Flush()
	return exitOK
}

// listDeadLetters asks the running daemon and, when none answers, reads the store. The list
// is never nil: its JSON is [] when there is no dead letter.
func listDeadLetters(ctx context.Context, cfg *config.Config, sink string, limit int) ([]daemon.DeadLetter, error) {
	out := []daemon.DeadLetter{}
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if sink != "" {
		q.Set("sink", sink)
	}
	_, err := askDaemon(ctx, cfg, func(c *control.Client) error { return c.Get(ctx, "/deadletters", q, &out) })
	if err == nil {
		if out == nil {
			out = []daemon.DeadLetter{}
		}
		return out, nil
	}
	if !errors.Is(err, control.ErrNoDaemon) {
		return nil, err
	}
	st, err := openStore(cfg)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return daemon.ListDeadLetters(st, cfg, sink, limit)
}

// requeueDeadLetters has the running daemon re-queue (its pusher picks them up at once) and,
// when none answers, re-queues in the store.
func requeueDeadLetters(ctx context.Context, cfg *config.Config, sink string, seqs []uint64) ([]daemon.Requeued, error) {
	var out []daemon.Requeued
	req := daemon.RequeueRequest{Sink: sink, Seqs: seqs}
	_, err := askDaemon(ctx, cfg, func(c *control.Client) error { return c.Post(ctx, "/deadletters/requeue", req, &out) })
	if err == nil {
		return out, nil
	}
	if !errors.Is(err, control.ErrNoDaemon) {
		return nil, err
	}
	st, err := openStore(cfg)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return daemon.RequeueDeadLetters(st, cfg, sink, seqs, time.Now())
}
