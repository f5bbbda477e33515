package soak

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/sim/lab"
	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
)

// Options configure a soak.
type Options struct {
	// Duration is how long the disturbances last. Required.
	Duration time.Duration
	// Command starts the listener as a child process (lab.TestBinaryCommand in tests, the
	// binary itself in `listener soak`). Required.
	Command lab.CommandFunc
	// Dir holds the lab (configuration, store, the daemon's log); a temporary directory,
	// removed at the end, when empty.
	Dir string
	// Seed makes the sequence of disturbances repeatable (0: from the clock).
	Seed uint64
	// CatchUpWait bounds the wait for the restarted daemon's own catch-up (default 1 min);
	// Settle bounds the wait after the full sync that follows when that was not enough
	// (default 3 min).
	CatchUpWait, Settle time.Duration
	// Progress receives one line per phase; nil discards them.
	Progress io.Writer
	// Intervals between disturbances; zero picks the defaults (see withDefaults).
	EditEvery, FaultEvery, PublisherRestartEvery, KillEvery time.Duration
}

func (o *Options) withDefaults() {
	if o.Seed == 0 {
		o.Seed = uint64(time.Now().UnixNano())
	}
	if o.Settle <= 0 {
		o.Settle = 3 * time.Minute
	}
	if o.CatchUpWait <= 0 {
		o.CatchUpWait = time.Minute
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.EditEvery <= 0 {
		o.EditEvery = 60 * time.Millisecond
	}
	if o.FaultEvery <= 0 {
		o.FaultEvery = 6 * time.Second
	}
	if o.PublisherRestartEvery <= 0 {
		o.PublisherRestartEvery = 15 * time.Second
	}
	if o.KillEvery <= 0 {
		o.KillEvery = 12 * time.Second
	}
}

// Counts is what happened during a soak and what it ended with.
type Counts struct {
	// MISP activity.
	EventsCreated, EventsDeleted, Publishes, WebhookPosts, WebhookFailures int
	AttributeEdits, AttributeDeletes, AttributeAdds, ToIDSFlips            int
	// Disturbances.
	ThrottleStorms, FaultWindows, PublisherRestarts, DaemonKills int
	// UnexpectedExits counts daemons found exited on their own (a crash) when the soak came
	// to kill or stop them.
	UnexpectedExits int
	// Sentinel simulator counters.
	UploadRequests, Throttled, ServerErrors, Dropped, ObjectsAccepted, Unrevoked, StaleIgnored int
	// Final state, summed over sinks: live indicators MISP's events yield, live and revoked
	// indicators Sentinel holds, and the differences (which must be 0).
	Expected, Live, Revoked, Missing, Extra int
	// ConvergedAfter is how long the final comparison took to hold after the disturbances
	// stopped (including the daemon's restart).
	ConvergedAfter time.Duration
	// MissingAfterCatchUp and ExtraAfterCatchUp are the differences left after the restarted
	// daemon's start-up catch-up alone; FullSyncNeeded says a full `sync` had to run.
	MissingAfterCatchUp, ExtraAfterCatchUp int
	FullSyncNeeded                         bool
}

// Result is the outcome of a soak.
type Result struct {
	Seed     uint64
	Duration time.Duration
	Counts   Counts
	States   []lab.SinkState
}

// OK reports whether Sentinel ended equal to MISP through the restarted daemon alone (no
// extra `sync` needed) and nothing was un-revoked.
func (r *Result) OK() bool {
	if len(r.States) == 0 || r.Counts.Unrevoked != 0 || r.Counts.UnexpectedExits != 0 || r.Counts.FullSyncNeeded {
		return false
	}
	for _, s := range r.States {
		if !s.Equal() {
			return false
		}
	}
	return true
}

// Print writes the counts as aligned lines.
func (r *Result) Print(w io.Writer) {
	c := r.Counts
	fmt.Fprintf(w, "soak: %s of disturbances, seed %d\n", r.Duration.Round(time.Second), r.Seed)
	fmt.Fprintf(w, "  MISP:      %d events created, %d deleted, %d publishes (%d by webhook, %d webhook posts failed), %d attribute edits, %d deletions, %d additions, %d to_ids flips\n",
		c.EventsCreated, c.EventsDeleted, c.Publishes, c.WebhookPosts, c.WebhookFailures, c.AttributeEdits, c.AttributeDeletes, c.AttributeAdds, c.ToIDSFlips)
	fmt.Fprintf(w, "  faults:    %d daemon SIGKILLs, %d ZeroMQ publisher restarts, %d 429 storms, %d 5xx/latency/drop windows; %d unexpected daemon exits\n",
		c.DaemonKills, c.PublisherRestarts, c.ThrottleStorms, c.FaultWindows, c.UnexpectedExits)
	fmt.Fprintf(w, "  Sentinel:  %d upload requests, %d answered 429, %d answered 500, %d dropped, %d objects accepted (%d older than the stored version, ignored), %d un-revoked\n",
		c.UploadRequests, c.Throttled, c.ServerErrors, c.Dropped, c.ObjectsAccepted, c.StaleIgnored, c.Unrevoked)
	fmt.Fprintf(w, "  final:     expected %d live indicators, Sentinel holds %d live and %d revoked; missing %d, extra %d; converged %s after the disturbances stopped\n",
		c.Expected, c.Live, c.Revoked, c.Missing, c.Extra, c.ConvergedAfter.Round(100*time.Millisecond))
	fmt.Fprintf(w, "  catch-up:  the restarted daemon's start-up catch-up alone left %d missing and %d extra", c.MissingAfterCatchUp, c.ExtraAfterCatchUp)
	if c.FullSyncNeeded {
		fmt.Fprint(w, "; a full `sync` ran before the final comparison")
	}
	fmt.Fprintln(w)
	for _, s := range r.States {
		fmt.Fprintf(w, "  %s\n", s)
	}
}

// soak is one run's shared state.
type soak struct {
	opts   Options
	lab    *lab.Lab
	cfg    *config.Config
	logDir string

	mu     sync.Mutex
	counts Counts
	daemon *lab.Process
}

func (s *soak) progress(format string, args ...any) {
	fmt.Fprintf(s.opts.Progress, "[%s] %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (s *soak) count(f func(c *Counts)) {
	s.mu.Lock()
	f(&s.counts)
	s.mu.Unlock()
}

// Run runs one soak. An error means the soak could not run; a soak that ran but did not
// converge returns its Result (OK false) and an error saying so.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if opts.Duration <= 0 || opts.Command == nil {
		return nil, errors.New("soak: Duration and Command are required")
	}
	opts.withDefaults()
	dir := opts.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "listener-soak-")
		if err != nil {
			return nil, fmt.Errorf("soak: %w", err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("soak: %w", err)
	}
	l, err := lab.Start(lab.Options{
		Dir: dir, ZeroMQ: true, Webhook: true, Linger: 300 * time.Millisecond,
		HeartbeatInterval: 2 * time.Second,
		Sentinel:          simsentinel.Options{Seed: opts.Seed},
	})
	if err != nil {
		return nil, fmt.Errorf("soak: %w", err)
	}
	defer l.Close()
	cfg, err := l.Config()
	if err != nil {
		return nil, fmt.Errorf("soak: lab config: %w", err)
	}
	s := &soak{opts: opts, lab: l, cfg: cfg, logDir: dir}
	defer s.stopDaemon()

	// MISP starts with some history the start-up reconcile must deliver.
	s.lab.MISP.Generate(30, 8, opts.Seed)
	if err := s.startDaemon(); err != nil {
		return nil, err
	}
	s.progress("lab up in %s; daemon pid %d; disturbing for %s (seed %d)", dir, s.daemon.Pid(), opts.Duration, opts.Seed)

	disturbCtx, stop := context.WithTimeout(ctx, opts.Duration)
	var wg sync.WaitGroup
	rng := rand.New(rand.NewPCG(opts.Seed, 0x50a6))
	loops := []func(context.Context, *rand.Rand){s.editLoop, s.faultLoop, s.publisherLoop, s.killLoop}
	for i, loop := range loops {
		r := rand.New(rand.NewPCG(rng.Uint64(), uint64(i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			loop(disturbCtx, r)
		}()
	}
	wg.Wait()
	stop()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("soak: interrupted: %w", err)
	}

	// Settle: no more faults and a restarted daemon, whose start-up run (a full reconcile,
	// which also revokes the events deleted while nobody listened) is what a real outage gets.
	// The soak passes only if that alone makes Sentinel equal to MISP. When it does not, one
	// `sync` still runs so that the report says whether a full reconcile would have fixed it.
	settleStart := time.Now()
	_ = l.Sentinel.SetFaults(simsentinel.Faults{})
	l.Sentinel.ThrottleStorm(0)
	s.progress("disturbances stopped; restarting the daemon and waiting for its catch-up (at most %s)", opts.CatchUpWait)
	if err := s.restartDaemon(false); err != nil {
		return nil, err
	}
	catchCtx, cancelCatch := context.WithTimeout(ctx, opts.CatchUpWait)
	states, convErr := l.WaitConverged(catchCtx, cfg, 0)
	cancelCatch()
	afterCatchUp := &Result{States: states}
	s.finalCounts(afterCatchUp)
	if convErr != nil && ctx.Err() == nil {
		s.progress("after the catch-up: %d missing, %d extra; stopping the daemon for one full `sync`", afterCatchUp.Counts.Missing, afterCatchUp.Counts.Extra)
		s.stopDaemon()
		p, err := lab.StartProcess(opts.Command("sync", "-c", l.ConfigPath), filepath.Join(dir, "sync.log"))
		if err != nil {
			return nil, fmt.Errorf("soak: %w", err)
		}
		if err := p.Wait(); err != nil {
			return nil, fmt.Errorf("soak: full sync failed: %w\n%s", err, p.LogTail(20))
		}
		if err := s.startDaemon(); err != nil {
			return nil, err
		}
		waitCtx, cancel := context.WithTimeout(ctx, opts.Settle)
		defer cancel()
		states, convErr = l.WaitConverged(waitCtx, cfg, 0)
	}
	res := &Result{Seed: opts.Seed, Duration: opts.Duration, States: states}
	s.mu.Lock()
	res.Counts = s.counts
	s.mu.Unlock()
	res.Counts.ConvergedAfter = time.Since(settleStart)
	res.Counts.MissingAfterCatchUp, res.Counts.ExtraAfterCatchUp = afterCatchUp.Counts.Missing, afterCatchUp.Counts.Extra
	res.Counts.FullSyncNeeded = convErr != nil || afterCatchUp.Counts.Missing+afterCatchUp.Counts.Extra > 0
	s.finalCounts(res)
	if convErr != nil {
		return res, fmt.Errorf("soak: Sentinel did not match MISP within %s of the disturbances stopping: %w\ndaemon log tail:\n%s",
			opts.Settle, convErr, s.daemonLogTail())
	}
	if !res.OK() {
		return res, fmt.Errorf("soak: %d indicators were un-revoked, %d daemons exited on their own",
			res.Counts.Unrevoked, res.Counts.UnexpectedExits)
	}
	return res, nil
}

func (s *soak) finalCounts(res *Result) {
	st := s.lab.Sentinel.Stats()
	c := &res.Counts
	c.UploadRequests, c.Throttled, c.ServerErrors, c.Dropped = st.UploadRequests, st.Throttled, st.ServerErrors, st.Dropped
	c.ObjectsAccepted, c.Unrevoked, c.StaleIgnored = st.ObjectsAccepted, st.Unrevoked, st.StaleIgnored
	for i, state := range res.States {
		c.Expected += state.Expected
		c.Live += state.Actual
		c.Missing += state.MissingCount
		c.Extra += state.ExtraCount
		spec := s.lab.Opts.Sinks[i]
		for _, r := range s.lab.Sentinel.Indicators(spec.WorkspaceID, s.cfg.Sinks[i].SourceSystem) {
			if r.Type == "indicator" && r.Revoked {
				c.Revoked++
			}
		}
	}
}

// startDaemon starts a child daemon on the lab's configuration.
func (s *soak) startDaemon() error {
	p, err := lab.StartProcess(s.opts.Command("run", "-c", s.lab.ConfigPath), filepath.Join(s.logDir, "daemon.log"))
	if err != nil {
		return fmt.Errorf("soak: %w", err)
	}
	s.mu.Lock()
	s.daemon = p
	s.mu.Unlock()
	return nil
}

// restartDaemon SIGKILLs (kill) or stops (SIGTERM) the daemon and starts a new one.
func (s *soak) restartDaemon(kill bool) error {
	s.mu.Lock()
	p := s.daemon
	s.mu.Unlock()
	if p != nil {
		select {
		case <-p.Done():
			s.count(func(c *Counts) { c.UnexpectedExits++ })
			s.progress("the daemon had exited on its own (%v); log tail:\n%s", p.Wait(), p.LogTail(20))
		default:
		}
		if kill {
			p.Kill()
		} else if err := p.Stop(30 * time.Second); err != nil {
			s.progress("daemon did not stop cleanly: %v", err)
		}
	}
	return s.startDaemon()
}

func (s *soak) stopDaemon() {
	s.mu.Lock()
	p := s.daemon
	s.daemon = nil
	s.mu.Unlock()
	if p != nil {
		_ = p.Stop(30 * time.Second)
	}
}

func (s *soak) daemonLogTail() string {
	s.mu.Lock()
	p := s.daemon
	s.mu.Unlock()
	if p == nil {
		return ""
	}
	return p.LogTail(30)
}

// sleep waits about every (±50 %) or until ctx ends; it reports whether to go on.
func sleep(ctx context.Context, r *rand.Rand, every time.Duration) bool {
	d := every/2 + time.Duration(r.Int64N(int64(every)+1))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// killLoop SIGKILLs the daemon at random intervals and starts it again.
func (s *soak) killLoop(ctx context.Context, r *rand.Rand) {
	for sleep(ctx, r, s.opts.KillEvery) {
		if err := s.restartDaemon(true); err != nil {
			s.progress("restart after SIGKILL failed: %v", err)
			return
		}
		s.count(func(c *Counts) { c.DaemonKills++ })
	}
}

// publisherLoop restarts MISP's ZeroMQ publisher at random intervals, dropping every
// subscriber connection.
func (s *soak) publisherLoop(ctx context.Context, r *rand.Rand) {
	for sleep(ctx, r, s.opts.PublisherRestartEvery) {
		if err := s.lab.Publisher.Restart(); err != nil {
			s.progress("publisher restart failed: %v", err)
			continue
		}
		s.count(func(c *Counts) { c.PublisherRestarts++ })
	}
}

// faultLoop alternates quiet periods with a 429 storm or a window of 5xx, added latency and
// dropped connections.
func (s *soak) faultLoop(ctx context.Context, r *rand.Rand) {
	for sleep(ctx, r, s.opts.FaultEvery) {
		window := time.Second + time.Duration(r.Int64N(int64(4*time.Second)))
		if r.IntN(2) == 0 {
			s.lab.Sentinel.ThrottleStorm(window)
			s.count(func(c *Counts) { c.ThrottleStorms++ })
		} else {
			f := simsentinel.Faults{
				ServerErrorRate: 0.2 + 0.5*r.Float64(),
				DropRate:        0.1 * r.Float64(),
				Latency:         time.Duration(r.Int64N(int64(500 * time.Millisecond))),
			}
			if err := s.lab.Sentinel.SetFaults(f); err != nil {
				s.progress("set faults: %v", err)
				continue
			}
			s.count(func(c *Counts) { c.FaultWindows++ })
		}
		select {
		case <-ctx.Done():
		case <-time.After(window):
		}
		_ = s.lab.Sentinel.SetFaults(simsentinel.Faults{})
	}
}

// maxEvents bounds the MISP simulator's size so that a long soak's comparisons stay cheap.
const maxEvents = 250

// editLoop changes MISP continuously and announces each change as MISP would: over ZeroMQ, or
// (one in five) through the workflow webhook.
func (s *soak) editLoop(ctx context.Context, r *rand.Rand) {
	m := s.lab.MISP
	hookURL := "http://" + s.lab.WebhookAddr + s.cfg.Webhook.Path
	for sleep(ctx, r, s.opts.EditEvery) {
		events := m.Events()
		var target string
		action := r.IntN(100)
		if len(events) == 0 || (action < 15 && len(events) < maxEvents) {
			uuids := m.Generate(1, 2+r.IntN(10), r.Uint64())
			target = uuids[0]
			s.count(func(c *Counts) { c.EventsCreated++ })
		} else {
			target = events[r.IntN(len(events))]
			if action >= 95 {
				if err := m.DeleteZMQ(s.lab.Publisher, target); err == nil {
					s.count(func(c *Counts) { c.EventsDeleted++ })
				}
				continue
			}
			if !s.editEvent(target, action, r) {
				continue
			}
		}
		if r.IntN(5) == 0 {
			if err := m.Publish(target); err != nil {
				continue
			}
			postCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := m.PostWebhook(postCtx, hookURL, http.Header{"Authorization": {s.lab.WebhookToken}}, target)
			cancel()
			s.count(func(c *Counts) {
				c.Publishes++
				c.WebhookPosts++
				if err != nil {
					c.WebhookFailures++ // the daemon was down: MISP does not retry, the reconcile catches up
				}
			})
			continue
		}
		if err := m.PublishZMQ(s.lab.Publisher, target); err == nil {
			s.count(func(c *Counts) { c.Publishes++ })
		}
	}
}

// editEvent applies one random change to an event; it reports whether the event still exists.
func (s *soak) editEvent(target string, action int, r *rand.Rand) bool {
	m := s.lab.MISP
	ev, ok := m.GetEvent(target)
	if !ok {
		return false
	}
	var live []string
	var toIDs []bool
	var types []string
	for _, a := range ev.Attributes {
		if !a.Deleted {
			live = append(live, a.UUID)
			toIDs = append(toIDs, a.ToIDS)
			types = append(types, a.Type)
		}
	}
	if len(live) == 0 || action < 40 {
		if _, err := m.AddAttribute(target, "domain", "Network activity", fmt.Sprintf("soak-%x.example.net", r.Uint64()), r.IntN(4) != 0); err == nil {
			s.count(func(c *Counts) { c.AttributeAdds++ })
		}
		return true
	}
	i := r.IntN(len(live))
	switch {
	case action < 60 && types[i] != "":
		if v := editedValue(types[i], r); v != "" {
			if err := m.SetValue(target, live[i], v); err == nil {
				s.count(func(c *Counts) { c.AttributeEdits++ })
			}
		}
	case action < 75:
		if err := m.DeleteAttribute(target, live[i]); err == nil {
			s.count(func(c *Counts) { c.AttributeDeletes++ })
		}
	case action < 90:
		if err := m.SetToIDS(target, live[i], !toIDs[i]); err == nil {
			s.count(func(c *Counts) { c.ToIDSFlips++ })
		}
	}
	return true
}

// editedValue returns a new random value of an attribute type, or "" for a type the soak does
// not edit.
func editedValue(typ string, r *rand.Rand) string {
	hex := func(n int) string {
		const digits = "0123456789abcdef"
		b := make([]byte, n)
		for i := range b {
			b[i] = digits[r.IntN(16)]
		}
		return string(b)
	}
	ip := func() string { return fmt.Sprintf("198.51.%d.%d", r.IntN(256), 1+r.IntN(254)) }
	switch typ {
	case "ip-dst", "ip-src":
		return ip()
	case "domain", "hostname":
		return fmt.Sprintf("edit-%s.example.org", hex(8))
	case "url":
		return fmt.Sprintf("https://edit-%s.example.org/x.php?id=%d", hex(6), r.IntN(1e6))
	case "md5":
		return hex(32)
	case "sha1":
		return hex(40)
	case "sha256":
		return hex(64)
	case "filename|sha256":
		return fmt.Sprintf("edit_%s.exe|%s", hex(4), hex(64))
	case "domain|ip":
		return fmt.Sprintf("edit-%s.example.org|%s", hex(6), ip())
	case "email-src":
		return fmt.Sprintf("edit-%s@example.org", hex(6))
	}
	return ""
}
