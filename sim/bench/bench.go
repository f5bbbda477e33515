package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/sim/lab"
)

// Sizes are the workloads of a run.
type Sizes struct {
	// ConversionAttributes is the size of the event converted; ConversionSeconds how long the
	// conversion loop runs.
	ConversionAttributes int     `json:"conversion_attributes"`
	ConversionSeconds    float64 `json:"conversion_seconds"`
	// UploadEvents events of 100 attributes make the upload backlog; UploadTimeScale shortens
	// the simulator's quota minute (and the daemon's limiter's). The pusher uploads one batch
	// at a time, so a scale that makes the limiter's interval shorter than one batch's round
	// trip (upload plus store commit) measures the round trip, not the pacing: at the real
	// scale the interval is 606 ms.
	UploadEvents    int     `json:"upload_events"`
	UploadTimeScale float64 `json:"upload_time_scale"`
	// LatencyEvents are published one by one, LatencyGap apart.
	LatencyEvents int           `json:"latency_events"`
	LatencyGap    time.Duration `json:"latency_gap_ns"`
	// ReconcileAttributes is the MISP size (events of 100 attributes) of the reconcile.
	ReconcileAttributes int `json:"reconcile_attributes"`
	// IdleSettle is how long the daemon runs before its idle RSS is read.
	IdleSettle time.Duration `json:"idle_settle_ns"`
}

// FullSizes are the sizes the targets name; QuickSizes a smoke test of the same code.
var (
	FullSizes = Sizes{
		ConversionAttributes: 10_000, ConversionSeconds: 3,
		UploadEvents: 150, UploadTimeScale: 2,
		LatencyEvents: 100, LatencyGap: 250 * time.Millisecond,
		ReconcileAttributes: 1_000_000,
		IdleSettle:          10 * time.Second,
	}
	QuickSizes = Sizes{
		ConversionAttributes: 2_000, ConversionSeconds: 0.5,
		UploadEvents: 30, UploadTimeScale: 6,
		LatencyEvents: 12, LatencyGap: 200 * time.Millisecond,
		ReconcileAttributes: 10_000,
		IdleSettle:          2 * time.Second,
	}
)

// Measurements, in table order. Each name selects a group of figures with Options.Only.
var Measurements = []string{"conversion", "upload", "latency", "reconcile", "idle"}

// Options configure a run.
type Options struct {
	// Quick uses QuickSizes instead of FullSizes (Sizes, when set, overrides both).
	Quick bool
	Sizes *Sizes
	// Only limits the run to these measurements (names from Measurements); all when empty.
	Only []string
	// Command starts the listener in a child process ("sync -c FILE", "run -c FILE"); the
	// reconcile and idle measurements need it.
	Command lab.CommandFunc
	// Dir holds the labs; a temporary directory, removed at the end, when empty.
	Dir string
	// Progress receives one line per step; nil discards them.
	Progress io.Writer
	// Seed seeds the simulators' generated events (0: 1).
	Seed uint64
}

// runner is one run's shared state.
type runner struct {
	opts  Options
	sizes Sizes
	dir   string
	start time.Time
}

func (r *runner) progress(format string, args ...any) {
	fmt.Fprintf(r.opts.Progress, "[%6.1fs] %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

// Run runs the selected measurements and returns the report. A measurement that fails is
// reported as a figure with Error set; Run itself fails only on bad options or a cancelled ctx.
func Run(ctx context.Context, opts Options) (*Report, error) {
	for _, name := range opts.Only {
		if !slices.Contains(Measurements, name) {
			return nil, fmt.Errorf("bench: unknown measurement %q (have %s)", name, strings.Join(Measurements, ", "))
		}
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	r := &runner{opts: opts, sizes: FullSizes, start: time.Now()}
	if opts.Quick {
		r.sizes = QuickSizes
	}
	if opts.Sizes != nil {
		r.sizes = *opts.Sizes
	}
	r.dir = opts.Dir
	if r.dir == "" {
		tmp, err := os.MkdirTemp("", "listener-bench-")
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		defer os.RemoveAll(tmp)
		r.dir = tmp
	}
	rep := &Report{Started: r.start, Quick: opts.Quick, Machine: DescribeMachine(), Sizes: r.sizes, LoadAvg: loadAverage()}
	steps := map[string]func(context.Context) ([]Figure, error){
		"conversion": r.conversion,
		"upload":     r.upload,
		"latency":    r.latency,
		"reconcile":  r.reconcile,
		"idle":       r.idle,
	}
	for _, name := range Measurements {
		if len(opts.Only) > 0 && !slices.Contains(opts.Only, name) {
			continue
		}
		r.progress("%s: starting", name)
		figs, err := steps[name](ctx)
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("bench: interrupted during %s: %w", name, ctxErr)
		}
		if err != nil {
			if len(figs) == 0 {
				figs = []Figure{{Key: name, Name: name}}
			}
			for i := range figs {
				figs[i].Error, figs[i].Pass = err.Error(), false
			}
		}
		for _, f := range figs {
			r.progress("%s: %s %s", name, f.Name, orDash(f.Display))
		}
		rep.Figures = append(rep.Figures, figs...)
	}
	rep.Seconds = time.Since(r.start).Seconds()
	rep.AllPass = true
	for _, f := range rep.Figures {
		if !f.Pass {
			rep.AllPass = false
		}
	}
	return rep, nil
}

// newLab starts a lab in its own subdirectory and loads its configuration.
func (r *runner) newLab(name string, opts lab.Options) (*lab.Lab, *config.Config, error) {
	opts.Dir = filepath.Join(r.dir, name)
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("lab directory: %w", err)
	}
	l, err := lab.Start(opts)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := l.Config()
	if err != nil {
		l.Close()
		return nil, nil, fmt.Errorf("lab config: %w", err)
	}
	return l, cfg, nil
}

// quietLogger drops the daemon's log below errors; errors go to the progress writer.
func (r *runner) quietLogger() *logrus.Logger {
	log := logrus.New()
	log.SetOutput(r.opts.Progress)
	log.SetLevel(logrus.ErrorLevel)
	return log
}

// runDaemon runs an in-process daemon until the returned stop function is called.
func (r *runner) runDaemon(ctx context.Context, cfg *config.Config, opts daemon.Options) (*daemon.Daemon, func() error, error) {
	if opts.Logger == nil {
		opts.Logger = r.quietLogger()
	}
	d, err := daemon.New(cfg, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("start daemon: %w", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	select {
	case <-d.Started():
	case err := <-done:
		cancel()
		d.Close()
		return nil, nil, fmt.Errorf("daemon stopped while starting: %w", err)
	}
	stop := func() error {
		cancel()
		err := <-done
		return errors.Join(err, d.Close())
	}
	return d, stop, nil
}
