package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/internal/cli"
	"github.com/mispsentinel/listener/store"
)

func init() { addCommand(newStatusCmd) }

func newStatusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status -c FILE",
		Short: "Per sink: outbox depth, dead letters, last upload, last reconcile",
		Args:  cobra.NoArgs,
	}
	path := configFlag(cmd)
	asJSON := cmd.Flags().Bool("json", false, "print JSON")
	indicator := cmd.Flags().String("indicator", "", "say for a STIX indicator id whether it holds a slot in each Defender sink's budget, and why, or what outranks it")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if *indicator != "" {
			return exitWith(runStanding(cmd.Context(), *path, *indicator, cmd.OutOrStdout(), cmd.ErrOrStderr()))
		}
		return exitWith(runStatus(cmd.Context(), *path, *asJSON, cmd.OutOrStdout(), cmd.ErrOrStderr()))
	}
	return cli.Exits(cmd, exitFailure, exitBadInput)
}

func runStatus(ctx context.Context, path string, asJSON bool, stdout, stderr io.Writer) int {
	cfg, err := loadConfig(ctx, path, false)
	if err != nil {
		fmt.Fprintf(stderr, "listener status: %v\n", err)
		return exitBadInput
	}
	st, source, err := readStatus(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "listener status: %v\n", err)
		return exitFailure
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return exitFailure
		}
		return exitOK
	}
	fmt.Fprintf(stdout, "source: %s\n", source)
	fmt.Fprintf(stdout, "last full reconcile:        %s\n", when(st.LastFullReconcile))
	fmt.Fprintf(stdout, "last incremental reconcile: %s\n\n", when(st.LastIncrementalReconcile))
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SINK\tOUTBOX\tDEAD LETTERS\tLIVE\tOLDEST QUEUED\tLAST UPLOAD\tPROBLEM")
	for _, s := range st.Sinks {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\n", s.Name, s.OutboxDepth, s.DeadLetters, s.LiveObjects,
			when(s.OldestQueuedAt), when(s.LastUploadAt), s.Problem())
	}
	tw.Flush()
	return exitOK
}

// readStatus opens the store when no daemon holds it, and otherwise asks the running daemon
// through its ops endpoint.
func readStatus(ctx context.Context, cfg *config.Config) (*daemon.Status, string, error) {
	st, err := store.Open(cfg.Store.Dir, store.Options{})
	if err == nil {
		defer st.Close()
		names := make([]string, len(cfg.Sinks))
		for i, s := range cfg.Sinks {
			names[i] = s.Name
		}
		status, err := daemon.ReadStatus(st, names)
		return status, "store " + cfg.Store.Dir, err
	}
	var status daemon.Status
	source, err := askDaemon(ctx, cfg, "/status", err, &status)
	if err != nil {
		return nil, "", err
	}
	return &status, source, nil
}

// askDaemon reads the running daemon's ops endpoint path into v, after storeErr kept the
// store from being opened.
func askDaemon(ctx context.Context, cfg *config.Config, path string, storeErr error, v any) (string, error) {
	if cfg.Metrics.Listen == "" {
		return "", fmt.Errorf("open store (is the daemon running? enable metrics.listen to query it): %w", storeErr)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+cfg.Metrics.Listen+path, nil)
	client := &http.Client{Timeout: 10 * time.Second}
	resp, herr := client.Do(req)
	if herr != nil {
		return "", errors.Join(fmt.Errorf("open store: %w", storeErr), fmt.Errorf("ask the running daemon: %w", herr))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("ask the running daemon: %s", resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v); err != nil {
		return "", fmt.Errorf("decode the daemon's answer: %w", err)
	}
	return "running daemon at " + cfg.Metrics.Listen, nil
}

// readStanding says where an indicator stands in every defender sink's budget.
func readStanding(ctx context.Context, cfg *config.Config, id string) ([]daemon.IndicatorStanding, string, error) {
	st, err := store.Open(cfg.Store.Dir, store.Options{})
	if err == nil {
		defer st.Close()
		out, err := daemon.ReadDefenderStanding(st, cfg, id)
		return out, "store " + cfg.Store.Dir, err
	}
	var out []daemon.IndicatorStanding
	source, err := askDaemon(ctx, cfg, "/status/defender?id="+url.QueryEscape(id), err, &out)
	return out, source, err
}

func when(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

func runStanding(ctx context.Context, path, id string, stdout, stderr io.Writer) int {
	cfg, err := loadConfig(ctx, path, false)
	if err != nil {
		fmt.Fprintf(stderr, "listener status: %v\n", err)
		return exitBadInput
	}
	out, source, err := readStanding(ctx, cfg, id)
	if err != nil {
		fmt.Fprintf(stderr, "listener status: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "source: %s\n", source)
	if len(out) == 0 {
		fmt.Fprintln(stdout, "no sink of kind defender")
	}
	for _, s := range out {
		fmt.Fprintf(stdout, "%s: %s\n", s.Sink, s.Standing)
	}
	return exitOK
}
