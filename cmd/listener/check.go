package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/defender"
	"github.com/mispsentinel/listener/internal/cli"
	"github.com/mispsentinel/listener/listener"
	"github.com/mispsentinel/listener/misp"
	"github.com/mispsentinel/listener/pipeline"
	"github.com/mispsentinel/listener/pusher"
	"github.com/mispsentinel/listener/sentinel"
)

func init() { addCommand(newCheckCmd) }

// checkOptions are the flags of `listener check`.
type checkOptions struct {
	path     string
	offline  bool
	noUpload bool
	timeout  time.Duration
}

func newCheckCmd() *cobra.Command {
	var o checkOptions
	cmd := &cobra.Command{
		Use:   "check -c FILE",
		Short: "Check MISP, ZeroMQ, every identity's token and every workspace",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return exitWith(runCheck(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	cmd.Flags().StringVarP(&o.path, "config", "c", "", "configuration `FILE` (YAML)")
	cmd.Flags().BoolVar(&o.offline, "offline", false, "only validate the configuration; contact nothing")
	cmd.Flags().BoolVar(&o.noUpload, "no-upload", false, "do not upload the probe identity object to each workspace")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 30*time.Second, "time limit of each check")
	return cli.Exits(cmd, exitFailure, exitBadInput)
}

// probeObject is what `check` uploads to prove a workspace accepts writes: an identity object
// naming this tool, which Sentinel stores like any other STIX identity. Re-running check
// replaces it (same id and modified), so it never accumulates.
var probeObject = json.RawMessage(`{"type":"identity","spec_version":"2.1","id":"identity--0b8c7d52-6a9e-5f3b-8e4a-1c2d3e4f5a6b","created":"2020-01-01T00:00:00.000Z","modified":"2020-01-01T00:00:00.000Z","name":"MISP to Sentinel listener","identity_class":"system"}`)

func runCheck(ctx context.Context, o checkOptions, stdout, stderr io.Writer) int {
	cfg, err := loadConfig(ctx, o.path, !o.offline)
	if err != nil {
		fmt.Fprintf(stderr, "listener check: %v\n", err)
		return exitBadInput
	}
	if o.offline {
		// env: and file: references are local: a missing one fails the start, so it fails
		// here too. Key Vault is not contacted offline.
		if err := cfg.Resolve(ctx, config.Resolver{KeyVault: offlineKeyVault{}}); err != nil {
			fmt.Fprintf(stderr, "listener check: config %s: resolve secrets:\n%v\n", o.path, err)
			return exitBadInput
		}
	}
	fmt.Fprintf(stdout, "ok    configuration %s (%d sinks)\n", o.path, len(cfg.Sinks))
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(stdout, "WARN  %s\n", w)
	}
	if note := cfg.MISP.WindowNote(); note != "" {
		fmt.Fprintf(stdout, "note  %s\n", note)
	}
	if o.offline {
		return exitOK
	}
	failed := false
	report := func(name string, err error, detail string) {
		if err != nil {
			failed = true
			fmt.Fprintf(stdout, "FAIL  %s: %v\n", name, err)
			return
		}
		fmt.Fprintf(stdout, "ok    %s%s\n", name, detail)
	}
	step := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, o.timeout) }

	// MISP: reachable, key valid, version.
	{
		c, cancel := step()
		version, err := checkMISP(c, cfg)
		cancel()
		report("MISP "+cfg.MISP.URL, err, " (version "+version+")")
	}
	// ZeroMQ: the endpoint accepts a subscriber (PLAIN included).
	if cfg.ZeroMQ.Enabled {
		c, cancel := step()
		quiet := logrus.New()
		quiet.SetOutput(io.Discard)
		z := listener.NewZeroMQ(daemon.ZeroMQConfig(cfg.ZeroMQ), pipeline.HandlerFunc(func(context.Context, pipeline.Notice) error { return nil }), nil, quiet, nil)
		err := z.Probe(c)
		cancel()
		report("ZeroMQ "+cfg.ZeroMQ.Endpoint, err, "")
	}
	// Each identity once: a token; each workspace: an upload.
	tokens := map[string]error{}
	for _, s := range cfg.Sinks {
		if s.Kind == config.SinkDefender {
			// A token for MDE's audience and one read-only call: the permission shows.
			c, cancel := step()
			err := checkDefender(c, s)
			cancel()
			report("Defender for Endpoint "+s.Endpoints.APIHost+" (sink "+s.Name+")", err, " answers a read-only call with the identity's token")
			continue
		}
		scfg, err := daemon.SentinelConfig(s)
		if err != nil {
			report("sink "+s.Name, err, "")
			continue
		}
		key := s.Identity.Key()
		if _, done := tokens[key]; !done {
			c, cancel := step()
			tokens[key] = checkToken(c, scfg)
			cancel()
			report(fmt.Sprintf("token for identity %s/%s (%s)", s.Identity.TenantID, s.Identity.ClientID, s.Identity.Kind), tokens[key], "")
		}
		if tokens[key] != nil {
			report("workspace "+s.WorkspaceID+" (sink "+s.Name+")", errors.New("skipped: no token"), "")
			continue
		}
		if o.noUpload || s.API == config.APILegacy {
			fmt.Fprintf(stdout, "skip  workspace %s (sink %s): upload probe disabled or legacy API\n", s.WorkspaceID, s.Name)
			continue
		}
		c, cancel := step()
		err = checkWorkspace(c, scfg)
		cancel()
		report("workspace "+s.WorkspaceID+" (sink "+s.Name+")", err, " accepts uploads")
	}
	if failed {
		return exitFailure
	}
	return exitOK
}

func checkMISP(ctx context.Context, cfg *config.Config) (string, error) {
	c, err := misp.NewClient(daemon.MISPClientConfig(cfg.MISP))
	if err != nil {
		return "", err
	}
	v, err := c.Version(ctx)
	if errors.Is(err, misp.ErrAuth) {
		return "", fmt.Errorf("%w (check misp.key: an automation key of a user allowed to search events)", err)
	}
	return v, err
}

func checkToken(ctx context.Context, scfg sentinel.Config) error {
	cred, err := sentinel.NewCredential(scfg)
	if err != nil {
		return err
	}
	_, err = cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scfg.Scope}})
	return err
}

func checkWorkspace(ctx context.Context, scfg sentinel.Config) error {
	client, err := sentinel.New(scfg)
	if err != nil {
		return err
	}
	defer client.Close()
	// One probe request: far below any quota, so it needs no pacing.
	noPacing := func(context.Context) error { return nil }
	rejected, err := client.Send(ctx, []pusher.Object{{ID: "probe", Body: probeObject}}, noPacing)
	if err != nil {
		return err
	}
	if len(rejected) > 0 {
		return fmt.Errorf("probe object rejected: %s", rejected[0].Message)
	}
	return nil
}

// checkDefender gets a token for the Defender sink's audience and lists one indicator, which
// needs the Ti.ReadWrite.All application permission (a 403 names it).
func checkDefender(ctx context.Context, s config.Sink) error {
	dcfg, err := daemon.DefenderConfig(s)
	if err != nil {
		return err
	}
	client, err := defender.New(dcfg, nil)
	if err != nil {
		return err
	}
	defer client.Close()
	return client.Check(ctx)
}

// offlineKeyVault stands in for Key Vault under check --offline: it contacts nothing and
// answers every reference with a placeholder (`check` without --offline reads them).
type offlineKeyVault struct{}

func (offlineKeyVault) GetSecret(context.Context, string, string, string) (string, error) {
	return "unchecked-offline", nil
}
