package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
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
	if cfg.Metrics.Listen == "" {
		return nil, "", fmt.Errorf("open store (is the daemon running? enable metrics.listen to query it): %w", err)
	}
	url := "http://" + cfg.Metrics.Listen + "/status"
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	client := &http.Client{Timeout: 10 * time.Second}
	resp, herr := client.Do(req)
	if herr != nil {
		return nil, "", errors.Join(fmt.Errorf("open store: %w", err), fmt.Errorf("ask the running daemon: %w", herr))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("ask the running daemon: %s", resp.Status)
	}
	var status daemon.Status
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&status); err != nil {
		return nil, "", fmt.Errorf("decode the daemon's status: %w", err)
	}
	return &status, "running daemon at " + cfg.Metrics.Listen, nil
}

func when(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}
