package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/internal/cli"
	"github.com/mispsentinel/listener/misp"
	"github.com/mispsentinel/listener/sim/lab"
	simmisp "github.com/mispsentinel/listener/sim/misp"
	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
)

func init() { addCommand(newDemoCmd) }

// demoSinks are the sinks of the demo: one workspace gets everything, the other only what is
// at most TLP:GREEN and scores at least 60 with MISP's decaying models, to show per-sink
// filters; a Defender for Endpoint sink of the same tenant blocks the network indicators and
// blocks and remediates the file hashes, within a budget of its tenant's cap.
var demoSinks = []lab.SinkSpec{
	{Name: "soc-main", WorkspaceID: simsentinel.DefaultWorkspaceID},
	{Name: "partner-green", WorkspaceID: "7b3c1d9e-4f2a-4e6b-9c8d-0a1b2c3d4e5f",
		ExtraYAML: "filters:\n  max_tlp: tlp:green\ndecay:\n  model: any\n  min_score: 60"},
	{Name: "mde-block", Kind: config.SinkDefender,
		ExtraYAML: "filters:\n  attribute_types: [ip-src, ip-dst, domain, hostname, url, md5, sha1, sha256]\n" +
			"defender:\n  action: Block\n  actions_by_type: {FileMd5: BlockAndRemediate, FileSha1: BlockAndRemediate, FileSha256: BlockAndRemediate}\n  budget: 5000"},
}

// addDemoDecayModel gives the MISP simulator a decaying model scoring network indicators by
// their misp:confidence-level tag (MISP's taxonomy values), decaying over ten years, so that
// the partner sink's decay block skips the less confident ones.
func addDemoDecayModel(m *simmisp.MISP) {
	m.AddDecayingModel(misp.DecayingModel{
		Name: "Demo confidence model", Enabled: true, LifetimeDays: 3650, DecaySpeed: 1, Threshold: 20,
		DefaultBaseScore: 70, BaseScoreConfig: map[string]float64{"misp:confidence-level": 1},
		AttributeTypes: []string{"ip-src", "ip-dst", "domain", "hostname", "url"},
	})
	for tag, v := range map[string]float64{"completely-confident": 100, "usually-confident": 75, "fairly-confident": 50, "rarely-confident": 25} {
		m.SetTaxonomyValue(`misp:confidence-level="`+tag+`"`, v)
	}
}

// demoOptions are the flags of `listener demo`.
type demoOptions struct {
	events, hooks, attrs int
	verbose              bool
}

func newDemoCmd() *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole pipeline against built-in MISP and Sentinel simulators",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return exitWith(runDemo(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.events, "events", 40, "events to publish over ZeroMQ")
	f.IntVar(&o.hooks, "webhooks", 10, "events to send through the workflow webhook")
	f.IntVar(&o.attrs, "attributes", 8, "attributes per event")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "show the daemon's log")
	return cli.Exits(cmd, exitFailure)
}

func runDemo(ctx context.Context, o demoOptions, stdout, stderr io.Writer) int {
	if o.events < 4 || o.hooks < 1 || o.attrs < 2 {
		fmt.Fprintln(stderr, "listener demo: needs at least 4 events, 1 webhook and 2 attributes per event")
		return exitUsage
	}
	d := &demo{out: stdout, verbose: o.verbose, stderr: stderr}
	if err := d.run(ctx, o.events, o.hooks, o.attrs); err != nil {
		fmt.Fprintf(stderr, "listener demo: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// demoInspect, when set (tests), is called with the lab and the configuration after the
// summary was printed and before the simulators stop, so that a test can read what the
// Sentinel simulator recorded.
var demoInspect func(l *lab.Lab, cfg *config.Config)

type demo struct {
	out     io.Writer
	stderr  io.Writer
	verbose bool
	start   time.Time
	lab     *lab.Lab
	cfg     *config.Config
	daemon  *daemon.Daemon
}

func (d *demo) step(format string, args ...any) {
	fmt.Fprintf(d.out, "[%6.2fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

func (d *demo) run(ctx context.Context, events, hooks, attrs int) error {
	d.start = time.Now()
	dir, err := os.MkdirTemp("", "listener-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	d.step("starting the MISP simulator (REST + ZeroMQ with PLAIN) and the Entra/Sentinel simulator on loopback")
	l, err := lab.Start(lab.Options{Dir: dir, ZeroMQ: true, PLAIN: true, Webhook: true, Sinks: demoSinks, Linger: 300 * time.Millisecond})
	if err != nil {
		return err
	}
	defer l.Close()
	d.lab = l
	addDemoDecayModel(l.MISP)
	if d.cfg, err = l.Config(); err != nil {
		return err
	}

	log := logrus.New()
	log.SetOutput(io.Discard)
	if d.verbose {
		log.SetOutput(d.stderr)
		log.SetLevel(logrus.InfoLevel)
	}
	dm, err := daemon.New(d.cfg, daemon.Options{Logger: log})
	if err != nil {
		return err
	}
	defer dm.Close()
	d.daemon = dm
	runCtx, stop := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- dm.Run(runCtx) }()
	defer func() {
		stop()
		<-runErr
	}()
	<-dm.Started()
	d.step("listener started: 3 sinks (%s: everything; %s: at most TLP:GREEN, MISP decay score at least 60; %s: Defender for Endpoint, Block, budget 5,000), state in %s",
		demoSinks[0].Name, demoSinks[1].Name, demoSinks[2].Name, l.StoreDir)

	wait, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := l.Publisher.WaitForSubscription(wait, "misp_json"); err != nil {
		return err
	}

	// 1. Real time over ZeroMQ.
	// Events are created just before they are published: MISP already holding published
	// events that nobody announced would be the reconciler's job, not the real-time path's.
	seed := uint64(time.Now().UnixNano())
	zmqEvents := l.MISP.Generate(events, attrs, seed)
	t0 := time.Now()
	for _, u := range zmqEvents {
		if err := l.MISP.PublishZMQ(l.Publisher, u); err != nil {
			return err
		}
	}
	d.step("published %d events (%d attributes each) on MISP's ZeroMQ feed", len(zmqEvents), attrs)
	if err := d.converge(wait, "ZeroMQ events", t0); err != nil {
		return err
	}

	// 2. The workflow webhook.
	hookEvents := l.MISP.Generate(hooks, attrs, seed+1)
	t0 = time.Now()
	url := "http://" + dm.Addr("webhook") + d.cfg.Webhook.Path
	for _, u := range hookEvents {
		if err := l.MISP.Publish(u); err != nil {
			return err
		}
		code, err := l.MISP.PostWebhook(wait, url, http.Header{"Authorization": {l.WebhookToken}}, u)
		if err != nil {
			return err
		}
		if code != http.StatusAccepted {
			return fmt.Errorf("webhook answered %d, want 202", code)
		}
	}
	d.step("posted %d event(s) to the workflow webhook (each answered 202 after it was durable)", len(hookEvents))
	if err := d.converge(wait, "webhook events", t0); err != nil {
		return err
	}

	// 3. Revocation: attributes deleted and to_ids turned off, then an event deleted.
	t0 = time.Now()
	edited := zmqEvents[0]
	ev, _ := l.MISP.GetEvent(edited)
	changed := 0
	for i, a := range ev.Attributes {
		if !a.ToIDS || changed == 2 {
			continue
		}
		if i%2 == 0 {
			err = l.MISP.DeleteAttribute(edited, a.UUID)
		} else {
			err = l.MISP.SetToIDS(edited, a.UUID, false)
		}
		if err != nil {
			return err
		}
		changed++
	}
	if err := l.MISP.PublishZMQ(l.Publisher, edited); err != nil {
		return err
	}
	if err := l.MISP.DeleteZMQ(l.Publisher, zmqEvents[1]); err != nil {
		return err
	}
	d.step("deleted or un-flagged %d attributes of one event and republished it; deleted another event", changed)
	if err := d.converge(wait, "revocations", t0); err != nil {
		return err
	}

	// 4. A throttling episode: Sentinel answers 429 for three seconds.
	before := l.Sentinel.Stats().Throttled
	l.Sentinel.ThrottleStorm(3 * time.Second)
	t0 = time.Now()
	more := l.MISP.Generate(4, attrs, seed+2)
	for _, u := range more {
		if err := l.MISP.PublishZMQ(l.Publisher, u); err != nil {
			return err
		}
	}
	d.step("Sentinel throttles (429 for 3 s) while %d more events are published", len(more))
	if err := d.converge(wait, "events published during the throttling", t0); err != nil {
		return err
	}
	d.step("Sentinel answered %d request(s) with 429; the pusher waited as told and lost nothing", l.Sentinel.Stats().Throttled-before)

	err = d.summary(wait)
	if demoInspect != nil {
		demoInspect(l, d.cfg)
	}
	return err
}

// converge waits until every sink holds exactly what MISP says it should. MISP already holds
// the events when it is called, so a sink whose filter leaves it nothing (a few random events
// may all be above TLP:GREEN) is converged at zero rather than awaited forever.
func (d *demo) converge(ctx context.Context, what string, since time.Time) error {
	states, err := d.lab.WaitConverged(ctx, d.cfg, 0)
	if err != nil {
		for _, s := range states {
			fmt.Fprintln(d.out, "        ", s)
		}
		return fmt.Errorf("%s did not arrive: %w", what, err)
	}
	parts := make([]string, len(states))
	for i, s := range states {
		parts[i] = fmt.Sprintf("%s %d", s.Sink, s.Actual)
	}
	d.step("  Sentinel matches MISP after %.2fs (live indicators: %s)", time.Since(since).Seconds(), strings.Join(parts, ", "))
	return nil
}

// summary prints what arrived where, read back from the Sentinel simulator, next to what the
// listener says it did, and fails when the two disagree.
func (d *demo) summary(ctx context.Context) error {
	states, err := d.lab.Compare(ctx, d.cfg, time.Now())
	if err != nil {
		return err
	}
	st := d.lab.Sentinel.Stats()
	fmt.Fprintf(d.out, "\nSummary (read back from the Sentinel simulator)\n")
	tw := tabwriter.NewWriter(d.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SINK\tWORKSPACE\tLIVE\tREVOKED\tEXPECTED FROM MISP\tMATCH\tOUTBOX\tDEAD LETTERS")
	var problems []error
	for i, s := range states {
		spec := d.lab.Opts.Sinks[i]
		live, revoked := 0, 0
		target := spec.WorkspaceID
		if spec.Kind == config.SinkDefender {
			// MDE deletes what MISP revokes: its live indicators are all it holds.
			live, target = d.lab.ActualDefender(spec).Count(), d.lab.Sentinel.TenantID()
		}
		for _, r := range d.lab.Sentinel.Indicators(spec.WorkspaceID, d.cfg.Sinks[i].SourceSystem) {
			if spec.Kind == config.SinkDefender {
				break
			}
			if r.Type != "indicator" {
				continue
			}
			if r.Revoked {
				revoked++
			} else {
				live++
			}
		}
		ss, err := d.daemon.Store().Stats(spec.Name)
		if err != nil {
			return err
		}
		match := "yes"
		if !s.Equal() || live != s.Expected {
			match = "NO"
			problems = append(problems, errors.New(s.String()))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%d\t%d\n", spec.Name, target, live, revoked, s.Expected, match, ss.OutboxDepth, ss.DeadLetters)
	}
	tw.Flush()
	fmt.Fprintf(d.out, "\nSentinel simulator: %d upload requests, %d objects accepted, %d answered 429, %d tokens issued\n",
		st.UploadRequests, st.ObjectsAccepted, st.Throttled, st.TokensIssued)
	if d.lab.Defender != nil {
		ds := d.lab.Defender.Stats()
		fmt.Fprintf(d.out, "Defender simulator: %d import calls, %d batch deletes, %d indicators refused for the cap (its row shows the Entra tenant for a workspace)\n",
			ds.Imports, ds.BatchDeletes, ds.CapRefusals)
	}
	fmt.Fprintf(d.out, "Done in %.1fs. Next: `listener convert --explain` on your own MISP event, or point a config at your MISP (README).\n",
		time.Since(d.start).Seconds())
	return errors.Join(problems...)
}
