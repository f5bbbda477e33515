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
	"github.com/mispsentinel/listener/internal/control"
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
		if err := writeJSON(stdout, st); err != nil {
			return exitFailure
		}
		return exitOK
	}
	fmt.Fprintf(stdout, "source: %s\n", source)
	fmt.Fprintf(stdout, "last full reconcile:        %s\n", when(st.LastFullReconcile))
	fmt.Fprintf(stdout, "last incremental reconcile: %s\n\n", when(st.LastIncrementalReconcile))
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	// LIVE is what Sentinel accepted and still holds; NOT YET SENT is live in the store but
	// never accepted (queued, or dead-lettered); REVOKED has ended.
	fmt.Fprintln(tw, "SINK\tSTATE\tLIVE\tNOT YET SENT\tREVOKED\tOUTBOX\tDEAD LETTERS\tOLDEST QUEUED\tLAST UPLOAD\tPROBLEM")
	for _, s := range st.Sinks {
		state := s.State
		if state == "" {
			state = "-" // only a running daemon knows
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", s.Name, state, s.LiveObjects, s.QueuedObjects, s.RevokedObjects,
			s.OutboxDepth, s.DeadLetters, when(s.OldestQueuedAt), when(s.LastUploadAt), s.Problem())
	}
	tw.Flush()
	return exitOK
}

// readStatus asks the running daemon through its control endpoint and, when no daemon
// answers, reads the store.
func readStatus(ctx context.Context, cfg *config.Config) (*daemon.Status, string, error) {
	var status daemon.Status
	source, err := askDaemon(ctx, cfg, func(c *control.Client) error { return c.Get(ctx, "/status", nil, &status) })
	if err == nil {
		return &status, source, nil
	}
	if !errors.Is(err, control.ErrNoDaemon) {
		return nil, "", err
	}
	st, err := openStore(cfg)
	if err != nil {
		return nil, "", opsFallback(ctx, cfg, "/status", err, &status, &source)
	}
	defer st.Close()
	names := make([]string, len(cfg.Sinks))
	for i, s := range cfg.Sinks {
		names[i] = s.Name
	}
	out, err := daemon.ReadStatus(st, names)
	return out, "store " + cfg.Store.Dir, err
}

// opsFallback reads a running daemon's read-only ops route path into v after storeErr kept
// the store from being opened: a daemon whose control socket is off still answers there.
// It returns nil (and sets *source) when the daemon answered, storeErr's story otherwise.
func opsFallback(ctx context.Context, cfg *config.Config, path string, storeErr error, v any, source *string) error {
	if cfg.Metrics.Listen == "" {
		return storeErr
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+cfg.Metrics.Listen+path, nil)
	client := &http.Client{Timeout: 10 * time.Second}
	resp, herr := client.Do(req)
	if herr != nil {
		return errors.Join(storeErr, fmt.Errorf("ask the ops listener %s: %w", cfg.Metrics.Listen, herr))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.Join(storeErr, fmt.Errorf("ask the ops listener %s: %s", cfg.Metrics.Listen, resp.Status))
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v); err != nil {
		return fmt.Errorf("decode the daemon's answer: %w", err)
	}
	*source = "running daemon (ops listener " + cfg.Metrics.Listen + ")"
	return nil
}

// readStanding says where an indicator stands in every defender sink's budget.
func readStanding(ctx context.Context, cfg *config.Config, id string) ([]daemon.IndicatorStanding, string, error) {
	var out []daemon.IndicatorStanding
	q := url.Values{"id": {id}}
	source, err := askDaemon(ctx, cfg, func(c *control.Client) error { return c.Get(ctx, "/status/defender", q, &out) })
	if err == nil {
		return out, source, nil
	}
	if !errors.Is(err, control.ErrNoDaemon) {
		return nil, "", err
	}
	st, err := openStore(cfg)
	if err != nil {
		return out, source, opsFallback(ctx, cfg, "/status/defender?"+q.Encode(), err, &out, &source)
	}
	defer st.Close()
	out, err = daemon.ReadDefenderStanding(st, cfg, id)
	return out, "store " + cfg.Store.Dir, err
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
