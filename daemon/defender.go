package daemon

import (
	"context"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/defender"
)

// This file wires sinks of kind defender: one defender.Client per sink, one defender.Tenant
// per tenant (shared by the tenant's sinks: the cap is the tenant's), read-back on a
// schedule, and the adapter that lets the pusher's one delivery loop hand batches to the
// tenant.

// DefenderConfig returns the indicator client configuration of one defender sink, with the
// trust roots of its endpoints.ca_file when it names one.
func DefenderConfig(s config.Sink) (defender.Config, error) {
	roots, err := sinkRoots(s)
	if err != nil {
		return defender.Config{}, err
	}
	return defenderConfig(s, roots), nil
}

func defenderConfig(s config.Sink, roots *x509.CertPool) defender.Config {
	scfg := sentinelConfig(s, roots) // the same identity, built the same way
	return defender.Config{
		Endpoints:      defender.Endpoints{AuthorityHost: s.Endpoints.LoginHost, APIURL: s.Endpoints.APIHost, Scope: s.Endpoints.Scope},
		Credential:     scfg.Credential,
		Application:    s.Defender.Application,
		UserAgent:      s.UserAgent,
		RequestTimeout: s.RequestTimeout,
		BatchSize:      s.BatchSize,
		TLSRootCAs:     roots,
	}
}

// DefenderMapOptions returns the mapping options of one defender sink.
func DefenderMapOptions(cfg *config.Config, s config.Sink) defender.MapOptions {
	d := s.Defender
	o := defender.MapOptions{
		Action: defender.Action(d.Action), Severity: defender.Severity(d.Severity), GenerateAlert: d.GenerateAlert,
		RbacGroupNames: d.DeviceGroups, RecommendedActions: d.RecommendedActions, Application: d.Application, MISPURL: cfg.MISP.URL,
	}
	if len(d.ActionsByType) > 0 {
		o.ActionByType = make(map[defender.Type]defender.Action, len(d.ActionsByType))
		for t, a := range d.ActionsByType {
			o.ActionByType[defender.Type(t)] = defender.Action(a)
		}
	}
	return o
}

// defenderTenantOptions returns the budget options of a defender sink's tenant.
func defenderTenantOptions(s config.Sink, now func() time.Time) defender.TenantOptions {
	sc := s.Defender.Score
	w := defender.ScoreWeights{Confidence: sc.Confidence, Decay: sc.Decay, Recency: sc.Recency, ThreatLevel: sc.ThreatLevel, RecencyHalfLife: sc.RecencyHalfLife}
	if len(sc.TypeWeights) > 0 {
		w.TypeWeights = make(map[defender.Type]float64, len(sc.TypeWeights))
		for t, v := range sc.TypeWeights {
			w.TypeWeights[defender.Type(t)] = v
		}
	}
	return defender.TenantOptions{Budget: s.Defender.Budget, Margin: s.Defender.SwapMargin, Weights: w, MaxDefer: s.Defender.MaxDefer, Now: now}
}

// defenderWiring holds what the defender sinks of one daemon share.
type defenderWiring struct {
	limiters *defender.Limiters
	tenants  map[string]*defender.Tenant
}

// defenderSink is a built defender sink and how often it reads its tenant back (0: another
// sink of the tenant does).
type defenderSink struct {
	*defender.Sink
	readBack time.Duration
}

// newDefenderSink builds the client and (shared) tenant of one defender sink and the sink
// the pusher drives.
func (d *Daemon) newDefenderSink(s config.Sink, w *defenderWiring) (*defenderSink, *defender.Client, error) {
	dcfg, err := DefenderConfig(s)
	if err != nil {
		return nil, nil, err
	}
	if d.opts.SentinelRoots != nil {
		dcfg.TLSRootCAs = d.opts.SentinelRoots
	}
	minute := time.Minute
	if d.opts.LimiterMinute > 0 {
		minute = d.opts.LimiterMinute
	}
	if w.limiters == nil {
		limits := defender.SpecRateLimits
		limits.Minute = minute
		w.limiters = defender.NewLimiters(limits)
	}
	client, err := defender.New(dcfg, w.limiters)
	if err != nil {
		return nil, nil, fmt.Errorf("sink %s: %w", s.Name, err)
	}
	key := s.DefenderTenant()
	tenant, shared := w.tenants[key]
	readBack := s.Defender.ReadBackInterval
	if shared {
		readBack = 0 // the first sink of the tenant reads it back for all
	} else {
		now := d.opts.Now
		if now == nil {
			now = time.Now
		}
		tenant, err = defender.NewTenant(client, d.store, "defender/"+key, defenderTenantOptions(s, now))
		if err != nil {
			client.Close()
			return nil, nil, fmt.Errorf("sink %s: %w", s.Name, err)
		}
		w.tenants[key] = tenant
	}
	sink := defender.NewSink(s.Name, tenant, s.BatchSize, defender.WriteQuota(client.Identity().String(), minute))
	return &defenderSink{Sink: sink, readBack: readBack}, client, nil
}

// runReadBack reads the tenant back at start and every interval until ctx ends (nothing
// for a sink whose tenant another sink reads back); a failed read-back is logged and tried
// again at the next tick.
func (d *Daemon) runReadBack(ctx context.Context, sink string, s *defenderSink) {
	if s.readBack <= 0 {
		return
	}
	t := time.NewTicker(s.readBack)
	defer t.Stop()
	for {
		if err := s.Tenant().ReadBack(ctx); err != nil && ctx.Err() == nil {
			d.log.WithError(err).WithField("sink", sink).Warn("defender read-back failed; tried again at the next interval")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
