package daemon

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/defender"
	"github.com/mispsentinel/listener/internal/control"
	"github.com/mispsentinel/listener/internal/httpserve"
	"github.com/mispsentinel/listener/listener"
	"github.com/mispsentinel/listener/misp"
	"github.com/mispsentinel/listener/pipeline"
	"github.com/mispsentinel/listener/pusher"
	"github.com/mispsentinel/listener/reconcile"
	"github.com/mispsentinel/listener/sentinel"
	"github.com/mispsentinel/listener/store"
)

// Options are what the configuration file cannot say: the process's registry, logger and clock,
// and the trust roots of simulators.
type Options struct {
	// Registry receives every metric; a fresh registry when nil.
	Registry *prometheus.Registry
	// Logger is the daemon's logger; logrus's standard logger when nil.
	Logger *logrus.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// SentinelRoots, when set, verifies Entra and Sentinel instead of the system roots.
	SentinelRoots *x509.CertPool
	// MISPHTTPClient, when set, carries MISP REST requests.
	MISPHTTPClient *http.Client
	// LimiterMinute is the length of a quota minute (simulators with a time scale); a real
	// minute when zero.
	LimiterMinute time.Duration
	// LimiterHeadroom, when not zero, replaces pusher.quota_headroom, the fraction of each
	// identity's quota left unused to absorb network jitter. The default 1 % is 0.6 s of a
	// real minute; a shortened LimiterMinute needs a larger fraction for the same absolute
	// slack.
	LimiterHeadroom float64
	// Store, when set, is used instead of opening cfg.Store.Dir (dry runs); the caller
	// closes it.
	Store *store.Store
	// Resolver fetches secret references again when a failing sink is retried (a rotated
	// secret); env and file references without one, Key Vault only with its KeyVault set.
	Resolver config.Resolver
	// Progress, when set, receives the reconciler's progress after each search page.
	Progress func(kind string, pages, events int)
	// ReadBack, when set, returns the read-back client of a sink's workspace (nil when the
	// sink cannot read Sentinel back); `listener trace` shows what Sentinel holds through it.
	ReadBack func(sink string) ReadBack
}

// Daemon is an assembled listener. Create it with New, then call Run or Sync once, then Close.
type Daemon struct {
	cfg      *config.Config
	opts     Options
	log      *logrus.Logger
	registry *prometheus.Registry

	store      *store.Store
	ownStore   bool
	misp       *misp.Client
	pipeline   *pipeline.Pipeline
	reconciler *reconcile.Reconciler
	sinks      []*sinkRunner

	listenerMetrics *listener.Metrics
	pusherMetrics   *pusher.Metrics
	// pacers hold the quotas of every identity (sinks of one identity share them); adopt's
	// clients use them too.
	pacers        *pusher.Pacers
	adoptClients  []*sentinel.Client
	verifyMetrics *verifyMetrics

	mu      sync.Mutex
	addrs   map[string]string // bound addresses by component, for tests and the demo
	ready   bool
	started chan struct{}

	probes probes
}

// sinkRunner is one sink's upload client and pusher.
type sinkRunner struct {
	name   string
	client interface{ Close() }
	pusher *pusher.Pusher
	// defender is set for a sink of kind defender (its read-back runs beside the pusher).
	defender *defenderSink
	// reader reads a Sentinel sink's workspace back (read_back); readErr says why it could
	// not be built.
	reader     *sentinel.Reader
	readErr    error
	readBack   config.ReadBack
	sourceName string
	err        error // set when the sink could not be built; it then never runs

	// heal resolves the sink's identity secrets again and gives its client a credential
	// built from them (nil for sinks that cannot: defender).
	heal func(context.Context) error
}

// healingSink is a sink the pusher can heal while it fails: heal resolves the identity's
// secrets again and hands the client a fresh credential.
type healingSink struct {
	pusher.Sink
	heal func(context.Context) error
}

// Heal implements pusher.Healer.
func (h healingSink) Heal(ctx context.Context) error { return h.heal(ctx) }

// sentinelHealer returns the Heal of a Sentinel sink: the client secret and certificate
// password are read again from their references (environment, file, Key Vault) and the
// client gets a credential built from them, so a rotated secret heals the sink without a
// restart. A newly granted role needs nothing but the retry itself.
func (d *Daemon) sentinelHealer(s config.Sink, scfg sentinel.Config, client *sentinel.Client) func(context.Context) error {
	return func(ctx context.Context) error {
		secret, err := d.opts.Resolver.Refresh(ctx, s.Identity.ClientSecret)
		if err != nil {
			return fmt.Errorf("sink %s: identity.client_secret: %w", s.Name, err)
		}
		password, err := d.opts.Resolver.Refresh(ctx, s.Identity.CertificatePassword)
		if err != nil {
			return fmt.Errorf("sink %s: identity.certificate_password: %w", s.Name, err)
		}
		scfg.Credential.ClientSecret = sentinel.Secret(secret.Value())
		scfg.Credential.CertificatePassword = sentinel.Secret(password.Value())
		cred, err := sentinel.NewCredential(scfg)
		if err != nil {
			return fmt.Errorf("sink %s: %w", s.Name, err)
		}
		client.SetCredential(cred)
		return nil
	}
}

// RefreshSecrets resolves every Sentinel sink's identity secrets again from their references
// (environment, file, Key Vault) and hands each client a credential built from them, then
// makes every failing sink try again at once: SIGHUP picks up a rotated secret without a
// restart. It returns the sinks refreshed; a sink whose secret cannot be resolved keeps its
// credential, and its error is returned with the others'.
func (d *Daemon) RefreshSecrets(ctx context.Context) (refreshed []string, err error) {
	var errs []error
	for _, s := range d.sinks {
		if s.heal == nil || s.pusher == nil {
			continue
		}
		if err := s.heal(ctx); err != nil {
			errs = append(errs, err)
			continue
		}
		refreshed = append(refreshed, s.name)
		s.pusher.RetryNow()
	}
	return refreshed, errors.Join(errs...)
}

// New assembles the daemon from a validated, resolved configuration. It opens the store; the
// caller must Close the daemon. A sink whose client cannot be built is reported by Run and
// Sync but does not stop the others.
func New(cfg *config.Config, opts Options) (*Daemon, error) {
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.Logger == nil {
		opts.Logger = logrus.StandardLogger()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	d := &Daemon{
		cfg: cfg, opts: opts, log: opts.Logger, registry: opts.Registry,
		addrs: map[string]string{}, started: make(chan struct{}),
	}
	st := opts.Store
	if st == nil {
		var err error
		st, err = store.Open(cfg.Store.Dir, storeOptions(cfg.Store, opts.Logger))
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		d.ownStore = true
	}
	d.store = st
	if err := d.assemble(); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func (d *Daemon) assemble() error {
	cfg := d.cfg
	reg := d.registry
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(newStoreCollector(d.store, cfg), newBuildInfo())

	mc, err := misp.NewClient(mispClientConfig(cfg.MISP, d.opts.MISPHTTPClient))
	if err != nil {
		return fmt.Errorf("misp client: %w", err)
	}
	d.misp = mc

	var sinks []pipeline.Sink
	headroom := cfg.Pusher.QuotaHeadroom
	if d.opts.LimiterHeadroom != 0 {
		headroom = d.opts.LimiterHeadroom
	}
	pacers, err := pusher.NewPacers(headroom) // shared: sinks of one identity share its quota
	if err != nil {
		return err
	}
	d.pacers = pacers
	d.pusherMetrics = pusher.NewMetrics(reg)
	d.verifyMetrics = newVerifyMetrics(reg)
	defenders := &defenderWiring{tenants: map[string]*defender.Tenant{}}
	for _, s := range cfg.Sinks {
		ps := pipeline.Sink{Name: s.Name, Options: ConversionOptions(cfg, s)}
		run := &sinkRunner{name: s.Name}
		d.sinks = append(d.sinks, run)
		if s.Kind == config.SinkDefender {
			ps.Adapt = defender.Adapt(DefenderMapOptions(cfg, s))
			sinks = append(sinks, ps)
			sink, client, err := d.newDefenderSink(s, defenders)
			if err != nil {
				run.err = err
				continue
			}
			run.client, run.defender = client, sink
			if run.pusher, err = pusher.New(pusherConfig(cfg.Pusher, s.Name), d.store, sink, pacers, d.log, d.pusherMetrics); err != nil {
				run.err = err
			}
			continue
		}
		sinks = append(sinks, ps)
		scfg, err := SentinelConfig(s)
		if err != nil {
			run.err = err
			continue
		}
		if d.opts.SentinelRoots != nil {
			scfg.TLSRootCAs = d.opts.SentinelRoots
		}
		if d.opts.LimiterMinute > 0 {
			scfg.QuotaMinute = d.opts.LimiterMinute
		}
		client, err := sentinel.New(scfg)
		if err != nil {
			run.err = fmt.Errorf("sink %s: %w", s.Name, err)
			continue
		}
		run.client = client
		if s.ReadBack.Enabled() {
			run.readBack, run.sourceName = s.ReadBack, s.SourceSystem
			run.reader, run.readErr = d.newReader(s, pacers)
		}
		run.heal = d.sentinelHealer(s, scfg, client)
		sink := healingSink{Sink: client, heal: run.heal}
		if run.pusher, err = pusher.New(pusherConfig(cfg.Pusher, s.Name), d.store, sink, pacers, d.log, d.pusherMetrics); err != nil {
			run.err = err
			continue
		}
	}

	var models pipeline.DecayModelSource
	if cfg.DecayEnabled() {
		cache := misp.NewModelCache(mc, cfg.MISP.DecayingModelsMaxAge, d.opts.Now)
		cache.OnError = func(id string, err error) {
			d.log.WithError(err).WithField("decaying_model", id).Warn("decaying model unreadable: its indicators keep their configured lifetime until a full reconcile finds them decayed")
		}
		models = cache
	}
	searchFilters := cfg.SearchFilters()
	p, err := pipeline.New(pipeline.Config{
		Sinks: sinks, EventFilters: searchFilters, Refetch: cfg.RefetchOnNotice(), DecayModels: models,
		Fetcher: mc, RefetchBatch: cfg.MISP.RefetchBatch, RefetchConcurrency: cfg.MISP.RefetchConcurrency, Store: d.store, Pending: d.store, Now: d.opts.Now, Metrics: pipeline.NewMetrics(reg), Log: d.log,
	})
	if err != nil {
		return err
	}
	d.pipeline = p
	d.reconciler = reconcile.New(reconcile.Config{
		EventFilters:        searchFilters,
		PageSize:            cfg.MISP.PageSize,
		FullInterval:        cfg.Reconcile.FullInterval,
		FullSchedule:        cfg.Reconcile.Schedule,
		IncrementalInterval: cfg.Reconcile.IncrementalInterval,
		Overlap:             cfg.Reconcile.Overlap,
		GoneGrace:           cfg.Reconcile.GoneGrace,
		CatchUpRetry:        config.ReconcileCatchUpRetry,
		ListPageSize:        config.ReconcileListPageSize,
		ListConcurrency:     cfg.MISP.RefetchConcurrency,
		FetchBatch:          config.ReconcileFetchBatch,
		Progress:            d.opts.Progress,
	}, mc, p, d.store, d.log, reconcile.NewMetrics(reg))
	d.reconciler.SetClock(d.opts.Now)
	d.listenerMetrics = listener.NewMetrics(reg)
	return nil
}

// Store returns the daemon's store (status commands, tests).
func (d *Daemon) Store() *store.Store { return d.store }

// Reconciler returns the daemon's reconciler.
func (d *Daemon) Reconciler() *reconcile.Reconciler { return d.reconciler }

// Pipeline returns the daemon's pipeline.
func (d *Daemon) Pipeline() *pipeline.Pipeline { return d.pipeline }

// Registry returns the registry every metric is registered on.
func (d *Daemon) Registry() *prometheus.Registry { return d.registry }

// Addr returns the bound address of a component ("webhook", "metrics") once Run has started
// it, or "".
func (d *Daemon) Addr(component string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.addrs[component]
}

// Started is closed once Run has started every component.
func (d *Daemon) Started() <-chan struct{} { return d.started }

// Close closes the store and the clients. Call it after Run or Sync returned.
func (d *Daemon) Close() error {
	for _, s := range d.sinks {
		if s.client != nil {
			s.client.Close()
		}
		if s.reader != nil {
			s.reader.Close()
		}
	}
	for _, c := range d.adoptClients {
		c.Close()
	}
	if !d.ownStore {
		return nil
	}
	return d.store.Close()
}

// Run runs every component until ctx ends. It returns nil on a clean shutdown; a sink that
// fails fatally is logged and stops alone.
func (d *Daemon) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, w := range d.cfg.Warnings() {
		d.log.Warn("insecure configuration: " + w)
	}
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	goRun := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}

	for _, s := range d.sinks {
		if s.err != nil {
			d.log.WithError(s.err).WithField("sink", s.name).Error("sink not started: configuration error")
			continue
		}
		s := s
		if s.defender != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d.runReadBack(ctx, s.name, s.defender)
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A sink's configuration error never stops the others: the sink fails, its
			// objects stay queued, `listener status` shows why, and the pusher retries it
			// with backoff until it heals.
			_ = s.pusher.Run(ctx)
		}()
	}
	// Notices the last shutdown received but could not apply come first, before the catch-up
	// and before any new notice; what fails (MISP unreachable) is retried in the background.
	if !d.applyPending(ctx) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.retryPending(ctx)
		}()
	}
	goRun("reconciler", d.reconciler.Run)
	if err := d.startControl(ctx, goRun); err != nil {
		cancel()
		wg.Wait()
		return err
	}
	if d.cfg.Verify.Interval > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.runVerify(ctx)
		}()
	}
	if d.needsMISP() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.runMISPProber(ctx)
		}()
	}

	if d.cfg.Metrics.Listen != "" {
		limits := metricsLimits(d.cfg.Metrics)
		ln, err := httpserve.Listen(d.cfg.Metrics.Listen, limits)
		if err != nil {
			cancel()
			wg.Wait()
			return fmt.Errorf("metrics listener: %w", err)
		}
		d.setAddr("metrics", ln.Addr().String())
		srv := httpserve.Server(d.opsHandler(), limits)
		goRun("metrics server", func(ctx context.Context) error {
			go func() { <-ctx.Done(); shutdown(srv) }()
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	if d.cfg.ZeroMQ.Enabled {
		z := listener.NewZeroMQ(zeroMQConfig(d.cfg.ZeroMQ), d.pipeline, d.reconciler.RequestCatchUp, d.log, d.listenerMetrics)
		goRun("zeromq", z.Run)
	}
	if d.cfg.Webhook.Enabled {
		w := listener.NewWebhook(webhookConfig(d.cfg.Webhook, d.readiness), d.pipeline, d.log, d.listenerMetrics)
		goRun("webhook", w.Run)
		// Started promises every component is up: the webhook's address is known before it.
		select {
		case <-w.Listening():
			d.setAddr("webhook", w.Addr())
		case <-ctx.Done():
		case err := <-errc:
			cancel()
			wg.Wait()
			return err
		}
	}
	d.mu.Lock()
	d.ready = true
	bound := logrus.Fields{}
	for component, addr := range d.addrs {
		bound[component+"_addr"] = addr
	}
	d.mu.Unlock()
	close(d.started)
	// Every address actually bound (an ephemeral port included), in one line.
	d.log.WithFields(bound).WithField("store_dir", d.cfg.Store.Dir).Info("listener started")

	var firstErr error
	select {
	case <-ctx.Done():
	case firstErr = <-errc:
		cancel()
	}
	wg.Wait()
	return firstErr
}

// applyPending applies the notices recorded at the last shutdown and reports whether none is
// left.
func (d *Daemon) applyPending(ctx context.Context) bool {
	n, err := d.pipeline.ApplyPending(ctx)
	if n > 0 {
		d.log.WithField("notices", n).Info("applied the notices the last shutdown left pending")
	}
	if err != nil {
		d.log.WithError(err).Warn("applying the notices the last shutdown left pending failed; retrying")
		return false
	}
	return true
}

// retryPending calls applyPending every config.ReconcileCatchUpRetry until it succeeds or ctx
// ends.
func (d *Daemon) retryPending(ctx context.Context) {
	t := time.NewTicker(config.ReconcileCatchUpRetry)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if d.applyPending(ctx) {
				return
			}
		}
	}
}

func (d *Daemon) setAddr(component, addr string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.addrs[component] = addr
}

// opsHandler serves /metrics, /healthz and /readyz.
func (d *Daemon) opsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.registry, promhttp.HandlerOpts{Registry: d.registry}))
	mux.HandleFunc("GET /status", d.serveStatus)
	mux.HandleFunc("GET /status/defender", d.serveStanding)
	if tok := d.cfg.Control.Token; tok.IsSet() {
		// The control routes on a network port: each request carries the bearer token.
		mux.Handle(control.Prefix+"/", control.Authorize(tok.Value(), d.controlHandler()))
	}
	// Liveness: only a wedged process fails it (a restart helps); readiness: whether intake
	// can be accepted durably now (a restart does not help). See docs/DEPLOYING.md.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		probeAnswer(w, "ok", d.wedged(), "wedged")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		probeAnswer(w, "ready", d.notReady(), "not ready")
	})
	return mux
}

func shutdown(srv *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
}
