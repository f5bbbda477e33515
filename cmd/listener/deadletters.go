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

	"github.com/mispsentinel/listener/store"
)

func init() {
	register("deadletters", "list or re-queue the records Sentinel rejected (list|requeue)", runDeadLetters)
}

func runDeadLetters(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "list" && args[0] != "requeue") {
		fmt.Fprintln(stderr, "usage: listener deadletters list|requeue -c config.yaml [--sink NAME] [--seq N,...] [--json]")
		return exitUsage
	}
	action := args[0]
	fs := newFlagSet("deadletters "+action, stderr)
	path := fs.String("c", "", "configuration file (YAML)")
	sinkName := fs.String("sink", "", "only this sink (default: every sink)")
	limit := fs.Int("limit", 1000, "list at most this many per sink")
	seqs := fs.String("seq", "", "requeue only these comma-separated sequence numbers (default: all)")
	asJSON := fs.Bool("json", false, "list as JSON lines")
	if code, ok := parseFlags(fs, args[1:]); !ok {
		return code
	}
	cfg, err := loadConfig(ctx, *path, false)
	if err != nil {
		fmt.Fprintf(stderr, "listener deadletters: %v\n", err)
		return exitBadInput
	}
	var only []uint64
	if *seqs != "" {
		for _, f := range strings.Split(*seqs, ",") {
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
	if action == "list" && !*asJSON {
		fmt.Fprintln(tw, "SINK\tSEQ\tID\tREVOKE\tREJECTED AT\tMESSAGE")
	}
	for _, s := range cfg.Sinks {
		if *sinkName != "" && s.Name != *sinkName {
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
		dls, err := st.DeadLetters(s.Name, *limit)
		if err != nil {
			fmt.Fprintf(stderr, "listener deadletters: list %s: %v\n", s.Name, err)
			return exitFailure
		}
		for _, dl := range dls {
			if *asJSON {
				line, _ := json.Marshal(map[string]any{
					"sink": s.Name, "seq": dl.Seq, "id": dl.ID, "revoke": dl.Revoke, "message": dl.Message,
					"rejected_at": dl.RejectedAt, "object": json.RawMessage(dl.Object),
				})
				fmt.Fprintln(stdout, string(line))
				continue
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%t\t%s\t%s\n", s.Name, dl.Seq, dl.ID, dl.Revoke, when(dl.RejectedAt), dl.Message)
		}
	}
	tw.Flush()
	return exitOK
}
