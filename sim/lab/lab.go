package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/defender"
	"github.com/mispsentinel/listener/misp"
	simdefender "github.com/mispsentinel/listener/sim/defender"
	simmisp "github.com/mispsentinel/listener/sim/misp"
	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
	"github.com/mispsentinel/listener/stix"
)

// SinkSpec is one sink of the lab's configuration.
type SinkSpec struct {
	Name        string
	WorkspaceID string
	// ClientID and Secret are the Entra app the sink authenticates as; the simulator's default
	// app when empty. Sinks with the same ClientID share an identity and its quota.
	ClientID string
	Secret   string
	// ExtraYAML is appended to the sink's YAML block (indented by the lab), e.g. a filters block.
	ExtraYAML string
	// Kind is "" (a Sentinel sink) or defender: the sink writes to the Defender simulator of
	// the same Entra tenant (WorkspaceID is then unused).
	Kind string
}

// Options configure a lab.
type Options struct {
	// Dir holds the configuration, the CA files and the store. Required.
	Dir string
	// Sinks default to one sink "primary" writing to the simulator's default workspace.
	Sinks []SinkSpec
	// ZeroMQ starts a publisher and enables the daemon's subscriber; PLAIN adds credentials.
	ZeroMQ bool
	PLAIN  bool
	// HeartbeatInterval of the publisher (default: MISP's 10 s).
	HeartbeatInterval time.Duration
	// Webhook enables the daemon's webhook on a free loopback port.
	Webhook bool
	// EventFiltersYAML replaces misp.event_filters (YAML flow mapping), e.g. `{published: true}`.
	EventFiltersYAML string
	// Linger is the pushers' linger (default 1 s).
	Linger time.Duration
	// FullInterval and IncrementalInterval schedule the reconciler (0 keeps the defaults of 6 h
	// and 5 min; the start-up catch-up always runs).
	FullInterval, IncrementalInterval time.Duration
	// ExtraYAML is appended to the configuration file at top level.
	ExtraYAML string
	// MISP and Sentinel tune the simulators. Sentinel's Apps and Workspaces are filled from Sinks.
	MISP     simmisp.Options
	Sentinel simsentinel.Options
	// Defender tunes the Defender simulator, started when a sink has Kind defender; its
	// Entra is the Sentinel simulator's.
	Defender simdefender.Options
}

// Lab is a running test bench. Close it when done.
type Lab struct {
	Opts       Options
	MISP       *simmisp.MISP
	Publisher  *simmisp.Publisher // nil without ZeroMQ
	Sentinel   *simsentinel.Server
	Defender   *simdefender.Server // nil without defender sinks
	ConfigPath string
	// WebhookAddr and WebhookToken are where and how to post workflow webhooks.
	WebhookAddr  string
	WebhookToken string
	StoreDir     string
}

// Webhook credentials and PLAIN credentials of the lab.
const (
	webhookToken  = "lab-webhook-token-0123456789"
	zmqUser       = "misp-zmq"
	zmqPassword   = "lab-zmq-password"
	webhookHeader = "Authorization"
)

// Start starts the simulators and writes the configuration.
func Start(opts Options) (*Lab, error) {
	if opts.Dir == "" {
		return nil, errors.New("lab: Options.Dir is required")
	}
	if len(opts.Sinks) == 0 {
		opts.Sinks = []SinkSpec{{Name: "primary"}}
	}
	sopts := opts.Sentinel
	apps := map[string]string{}
	seenWS := map[string]bool{}
	for i := range opts.Sinks {
		s := &opts.Sinks[i]
		if s.WorkspaceID == "" {
			s.WorkspaceID = simsentinel.DefaultWorkspaceID
		}
		if s.ClientID == "" {
			s.ClientID = simsentinel.DefaultClientID
			s.Secret = simsentinel.DefaultClientSecret
		}
		if s.Secret == "" {
			s.Secret = "secret-of-" + s.ClientID
		}
		apps[s.ClientID] = s.Secret
		if !seenWS[s.WorkspaceID] {
			seenWS[s.WorkspaceID] = true
			sopts.Workspaces = append(sopts.Workspaces, simsentinel.Workspace{ID: s.WorkspaceID})
		}
	}
	for id, secret := range apps {
		sopts.Apps = append(sopts.Apps, simsentinel.App{ClientID: id, Secret: secret})
	}
	sort.Slice(sopts.Apps, func(i, j int) bool { return sopts.Apps[i].ClientID < sopts.Apps[j].ClientID })

	l := &Lab{Opts: opts, StoreDir: filepath.Join(opts.Dir, "state"), WebhookToken: webhookToken}
	var err error
	if l.Sentinel, err = simsentinel.New(sopts); err != nil {
		return nil, fmt.Errorf("lab: start sentinel simulator: %w", err)
	}
	for _, s := range opts.Sinks {
		if s.Kind == config.SinkDefender && l.Defender == nil {
			dopts := opts.Defender
			dopts.Entra = l.Sentinel
			if l.Defender, err = simdefender.New(dopts); err != nil {
				l.Close()
				return nil, fmt.Errorf("lab: start defender simulator: %w", err)
			}
		}
	}
	mopts := opts.MISP
	mopts.TLS = true
	if len(mopts.Warninglist) == 0 {
		mopts.Warninglist = simmisp.DefaultWarninglist
	}
	l.MISP = simmisp.New(mopts)
	l.MISP.Start()
	if opts.ZeroMQ {
		pc := simmisp.PublisherConfig{HeartbeatInterval: opts.HeartbeatInterval}
		if opts.PLAIN {
			pc.Username, pc.Password = zmqUser, zmqPassword
		}
		if l.Publisher, err = simmisp.NewPublisher(pc); err != nil {
			l.Close()
			return nil, fmt.Errorf("lab: start zeromq publisher: %w", err)
		}
	}
	if opts.Webhook {
		if l.WebhookAddr, err = freeAddr(); err != nil {
			l.Close()
			return nil, err
		}
	}
	if err := l.writeConfig(); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// Close stops the simulators.
func (l *Lab) Close() {
	if l.Publisher != nil {
		l.Publisher.Close()
	}
	if l.MISP != nil {
		l.MISP.Close()
	}
	if l.Defender != nil {
		l.Defender.Close()
	}
	if l.Sentinel != nil {
		l.Sentinel.Close()
	}
}

func (l *Lab) writeConfig() error {
	sentinelCA := filepath.Join(l.Opts.Dir, "sentinel-ca.pem")
	mispCA := filepath.Join(l.Opts.Dir, "misp-ca.pem")
	if err := l.writeCertPool(sentinelCA); err != nil {
		return err
	}
	if err := os.WriteFile(mispCA, l.MISP.CertificatePEM(), 0o600); err != nil {
		return fmt.Errorf("lab: write MISP CA: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "misp:\n  url: %s\n  key: %s\n  ca_file: %s\n  page_size: 100\n", l.MISP.URL(), l.MISP.Key(), mispCA)
	if l.Opts.EventFiltersYAML != "" {
		fmt.Fprintf(&b, "  event_filters: %s\n", l.Opts.EventFiltersYAML)
	}
	if l.Publisher != nil {
		fmt.Fprintf(&b, "zeromq:\n  enabled: true\n  endpoint: %s\n  heartbeat_timeout: 30s\n  reconnect_backoff: {initial: 100ms, max: 2s}\n", l.Publisher.Addr())
		if l.Opts.PLAIN {
			fmt.Fprintf(&b, "  username: %s\n  password: %s\n", zmqUser, zmqPassword)
		}
	}
	if l.WebhookAddr != "" {
		fmt.Fprintf(&b, "webhook:\n  enabled: true\n  listen: %s\n  auth_header: %s\n  auth_token: %s\n", l.WebhookAddr, webhookHeader, webhookToken)
	}
	b.WriteString("sinks:\n")
	for _, s := range l.Opts.Sinks {
		if s.Kind == config.SinkDefender {
			fmt.Fprintf(&b, "  - name: %s\n    kind: defender\n    endpoints:\n      login_host: %s\n      api_host: %s\n      ca_file: %s\n",
				s.Name, l.Sentinel.URL, l.Defender.URL, sentinelCA)
		} else {
			fmt.Fprintf(&b, "  - name: %s\n    workspace_id: %s\n    endpoints:\n      login_host: %s\n      api_host: %s\n      management_host: %s\n      ca_file: %s\n",
				s.Name, s.WorkspaceID, l.Sentinel.URL, l.Sentinel.URL, l.Sentinel.URL, sentinelCA)
		}
		fmt.Fprintf(&b, "    identity:\n      kind: client_secret\n      tenant_id: %s\n      client_id: %s\n      client_secret: %s\n",
			l.Sentinel.TenantID(), s.ClientID, s.Secret)
		for _, line := range strings.Split(strings.TrimRight(s.ExtraYAML, "\n"), "\n") {
			if line != "" {
				fmt.Fprintf(&b, "    %s\n", line)
			}
		}
	}
	linger := l.Opts.Linger
	if linger <= 0 {
		linger = time.Second
	}
	fmt.Fprintf(&b, "store:\n  dir: %s\npusher:\n  linger: %s\n", l.StoreDir, linger)
	if l.Opts.FullInterval > 0 || l.Opts.IncrementalInterval > 0 {
		b.WriteString("reconcile:\n")
		if l.Opts.FullInterval > 0 {
			fmt.Fprintf(&b, "  full_interval: %s\n", l.Opts.FullInterval)
		}
		if l.Opts.IncrementalInterval > 0 {
			fmt.Fprintf(&b, "  incremental_interval: %s\n", l.Opts.IncrementalInterval)
		}
	}
	b.WriteString("metrics:\n  listen: \"\"\nlog:\n  level: warn\n  format: text\n")
	b.WriteString(l.Opts.ExtraYAML)
	l.ConfigPath = filepath.Join(l.Opts.Dir, "config.yaml")
	if err := os.WriteFile(l.ConfigPath, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("lab: write config: %w", err)
	}
	return nil
}

// Config loads, validates and resolves the lab's configuration file.
func (l *Lab) Config() (*config.Config, error) {
	cfg, err := config.Load(l.ConfigPath, nil)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.Resolve(context.Background(), config.Resolver{}); err != nil {
		return nil, err
	}
	return cfg, nil
}

// writeCertPool writes the certificates of the Microsoft simulators (Entra and Sentinel, and
// Defender when it runs) as one PEM bundle.
func (l *Lab) writeCertPool(path string) error {
	pem := l.Sentinel.CertificatePEM()
	if l.Defender != nil {
		pem = append(pem, l.Defender.CertificatePEM()...)
	}
	if err := os.WriteFile(path, pem, 0o600); err != nil {
		return fmt.Errorf("lab: write sentinel CA: %w", err)
	}
	return nil
}

// Live is the content of the non-revoked indicators of a sink, as a multiset of canonical
// bodies: ids, timestamps and valid_until left out, because a re-activated indicator gets a new
// id and expiry moves with the clock.
type Live map[string]int

// Diff lists what want has that got lacks and the reverse (at most max lines of each).
func (want Live) Diff(got Live, max int) (missing, extra []string) {
	for k, n := range want {
		if got[k] < n && len(missing) < max {
			missing = append(missing, k)
		}
	}
	for k, n := range got {
		if want[k] < n && len(extra) < max {
			extra = append(extra, k)
		}
	}
	return missing, extra
}

// DiffCount counts the indicators want has that got lacks, and the reverse.
func (want Live) DiffCount(got Live) (missing, extra int) {
	for k, n := range want {
		missing += max(0, n-got[k])
	}
	for k, n := range got {
		extra += max(0, n-want[k])
	}
	return missing, extra
}

// Count returns the number of indicators.
func (want Live) Count() int {
	n := 0
	for _, c := range want {
		n += c
	}
	return n
}

// canonical strips the fields that legitimately differ between what the daemon sent and what a
// fresh conversion yields.
func canonical(body []byte) (string, error) {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return "", err
	}
	for _, k := range []string{"id", "created", "modified", "valid_until", "revoked"} {
		delete(m, k)
	}
	out, err := json.Marshal(m)
	return string(out), err
}

// Actual returns the live indicators the Sentinel simulator holds for a sink.
func (l *Lab) Actual(sink SinkSpec, sourceSystem string) (Live, error) {
	live := Live{}
	for _, r := range l.Sentinel.Indicators(sink.WorkspaceID, sourceSystem) {
		if r.Revoked || r.Type != "indicator" {
			continue
		}
		k, err := canonical(r.Object)
		if err != nil {
			return nil, fmt.Errorf("decode stored %s: %w", r.ID, err)
		}
		live[k]++
	}
	return live, nil
}

// Expected converts every event the sink's filtered search returns, as the daemon should have.
func (l *Lab) Expected(ctx context.Context, cfg *config.Config, sinkName string, opts stix.Options, now time.Time) (Live, error) {
	client, err := l.mispClient(cfg)
	if err != nil {
		return nil, err
	}
	live := Live{}
	_, err = client.SearchEvents(ctx, cfg.SearchFilters(), cfg.MISP.PageSize, func(page []*misp.Event) error {
		for _, ev := range page {
			res := stix.Convert(ev, opts, now)
			for _, o := range res.Objects {
				if o.Type != "indicator" {
					continue
				}
				k, err := canonical(o.Body)
				if err != nil {
					return err
				}
				live[k]++
			}
		}
		return nil
	})
	return live, err
}

// defenderKey is how Live counts a Defender indicator: its identity in MDE.
func defenderKey(typ, action, value string) string { return typ + " " + action + " " + value }

// ActualDefender returns the indicators the Defender simulator holds for a defender sink's
// identity (every defender sink of the lab's tenant shares them).
func (l *Lab) ActualDefender(sink SinkSpec) Live {
	live := Live{}
	for _, ind := range l.Defender.Indicators() {
		if ind.CreatedBy == sink.ClientID {
			live[defenderKey(ind.IndicatorType, ind.Action, ind.IndicatorValue)]++
		}
	}
	return live
}

// mispClient returns a MISP client configured as the daemon's, talking to the simulator.
func (l *Lab) mispClient(cfg *config.Config) (*misp.Client, error) {
	mcfg := daemon.MISPClientConfig(cfg.MISP)
	mcfg.URL, mcfg.Key, mcfg.HTTPClient = l.MISP.URL(), l.MISP.Key(), l.MISP.Client()
	return misp.NewClient(mcfg)
}

// ExpectedDefender maps every event the sink's filtered search returns, as the daemon should
// have, and keeps what fits the budget (the lab's budgets hold everything).
func (l *Lab) ExpectedDefender(ctx context.Context, cfg *config.Config, s config.Sink, now time.Time) (Live, error) {
	client, err := l.mispClient(cfg)
	if err != nil {
		return nil, err
	}
	opts, mapOpts := daemon.ConversionOptions(cfg, s), daemon.DefenderMapOptions(cfg, s)
	live := Live{}
	_, err = client.SearchEvents(ctx, cfg.SearchFilters(), cfg.MISP.PageSize, func(page []*misp.Event) error {
		for _, ev := range page {
			cands, _ := defender.Map(ev, stix.Convert(ev, opts, now), mapOpts)
			for _, c := range cands {
				k := defenderKey(string(c.Indicator.IndicatorType), string(c.Indicator.Action), c.Indicator.IndicatorValue)
				live[k] = 1 // one MDE indicator per identity, whichever attributes yield it
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if live.Count() > s.Defender.Budget {
		return nil, fmt.Errorf("sink %s: %d candidates exceed the budget %d; the lab compares whole sets only", s.Name, live.Count(), s.Defender.Budget)
	}
	return live, nil
}
