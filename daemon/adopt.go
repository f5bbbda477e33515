package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mispsentinel/listener/adopt"
	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/misp"
	"github.com/mispsentinel/listener/pusher"
	"github.com/mispsentinel/listener/sentinel"
	"github.com/mispsentinel/listener/stix"
	"github.com/mispsentinel/listener/store"
)

// ErrNoAdoptableSink says that no Sentinel sink can be adopted into: none has a read_back
// block (or the one asked for does not exist or has none).
var ErrNoAdoptableSink = errors.New("no Sentinel sink with a read_back block")

// AdoptOptions say what `listener adopt` does.
type AdoptOptions struct {
	// Sink limits the run to one sink ("" = every Sentinel sink with read_back).
	Sink string
	// SourceSystem is the other tool's source system (misp2sentinel's sourcesystem).
	SourceSystem string
	// Apply revokes the superseded and gone indicators; without it the plan is only made.
	Apply bool
	// Delete also deletes each revoked copy through the management API (with Apply).
	Delete bool
}

// AdoptResult is the outcome of one sink.
type AdoptResult struct {
	Sink string
	Plan *adopt.Plan
	// Queued is the number of revocations queued (Apply); Delivered what sending them did.
	Queued    int
	Delivered *SinkResult
	// Deleted counts the copies deleted through the management API (Delete), DeleteErr the
	// first failure.
	Deleted   int
	DeleteErr error
	Err       error
}

// adoptSinkSuffix names the store's queue of a sink's adoption revocations: a character no
// configured sink name may hold, so it can never collide with a sink.
const adoptSinkSuffix = "~adopt:"

// Adopt plans, and with Apply executes, the clean-up of another tool's indicators in every
// Sentinel sink with a read_back block (see package adopt). The revocations are queued in the
// store under a queue of their own (one event per indicator, so that a later plan without
// them never revokes them again) and delivered by a pusher whose client uploads under the
// other tool's source system with the sink's identity, sharing its quota.
func (d *Daemon) Adopt(ctx context.Context, o AdoptOptions) ([]AdoptResult, error) {
	if strings.TrimSpace(o.SourceSystem) == "" {
		return nil, errors.New("adopt: empty source system")
	}
	var out []AdoptResult
	for _, s := range d.sinks {
		if (o.Sink != "" && s.name != o.Sink) || (s.reader == nil && s.readErr == nil) {
			continue
		}
		out = append(out, d.adoptSink(ctx, s, o))
	}
	if len(out) == 0 {
		if o.Sink != "" {
			return nil, fmt.Errorf("%w: sink %q", ErrNoAdoptableSink, o.Sink)
		}
		return nil, ErrNoAdoptableSink
	}
	return out, nil
}

func (d *Daemon) adoptSink(ctx context.Context, s *sinkRunner, o AdoptOptions) AdoptResult {
	res := AdoptResult{Sink: s.name}
	if res.Err = s.readBackErr(); res.Err != nil {
		return res
	}
	sinkCfg, ok := d.sinkConfig(s.name)
	if !ok {
		res.Err = fmt.Errorf("sink %s: not in the configuration", s.name)
		return res
	}
	now := d.opts.Now()
	own, err := d.ownIndicators(s.name, s.sourceName, now)
	if err != nil {
		res.Err = err
		return res
	}
	opts := ConversionOptions(d.cfg, sinkCfg)
	res.Plan, res.Err = adopt.Build(ctx, s.reader, d.misp, adopt.Options{
		Sink: s.name, SourceSystem: o.SourceSystem, Own: own,
		Filters: misp.MembershipFilters(d.cfg.SearchFilters()),
		Convert: func(ev *misp.Event) []stix.Object { return stix.Convert(ev, opts, now).Objects },
	})
	if res.Err != nil || !o.Apply {
		return res
	}
	revocations := res.Plan.Revocations()
	if len(revocations) == 0 {
		return res
	}
	queue := s.name + adoptSinkSuffix + o.SourceSystem
	for _, e := range revocations {
		obj, err := adopt.Revocation(e.Held())
		if err != nil {
			res.Err = err
			return res
		}
		stats, err := d.store.Apply(queue, obj.EventUUID, []stix.Object{obj}, now)
		if err != nil {
			res.Err = fmt.Errorf("adopt: queue the revocation of %s: %w", e.ID, err)
			return res
		}
		res.Queued += stats.Enqueued()
	}
	p, err := d.adoptPusher(sinkCfg, queue, o.SourceSystem)
	if err != nil {
		res.Err = err
		return res
	}
	stats, err := p.Drain(ctx)
	if err != nil && errors.Is(err, pusher.ErrSinkStopped) {
		err = fmt.Errorf("sink stopped: %w", errors.Unwrap(err))
	}
	res.Delivered = &SinkResult{DrainStats: stats, Err: err}
	if err != nil || !o.Delete {
		return res
	}
	for _, e := range revocations {
		if err := s.reader.Delete(ctx, e.Held()); err != nil {
			if res.DeleteErr == nil {
				res.DeleteErr = fmt.Errorf("delete %s: %w", e.ID, err)
			}
			continue
		}
		res.Deleted++
	}
	return res
}

// ownIndicators returns what the listener holds in a sink: every id, and the observable keys
// of its live indicators whose last version Sentinel accepted.
func (d *Daemon) ownIndicators(sink, sourceSystem string, now time.Time) (adopt.Own, error) {
	own := adopt.Own{SourceSystem: sourceSystem, IDs: map[string]bool{}, Observables: map[string]string{}}
	err := d.store.Indicators(sink, func(ind store.Indicator) error {
		own.IDs[ind.ID] = true
		own.IDs[ind.Base] = true
		if ind.Revoked || !ind.Accepted || ind.Queued || ind.Rejected || (!ind.ValidUntil.IsZero() && !ind.ValidUntil.After(now)) {
			return nil
		}
		body, err := d.store.SentObject(sink, ind.Base)
		if err != nil {
			return err
		}
		var f struct {
			Type    string `json:"type"`
			Pattern string `json:"pattern"`
		}
		if err := json.Unmarshal(body, &f); err != nil || f.Type != "indicator" {
			return nil // identities and other objects hold no observable
		}
		for _, k := range adopt.PatternKeys(f.Pattern) {
			if _, taken := own.Observables[k]; !taken {
				own.Observables[k] = ind.ID
			}
		}
		return nil
	})
	if err != nil {
		return own, fmt.Errorf("adopt: read the listener's indicators of sink %s: %w", sink, err)
	}
	return own, nil
}

// adoptPusher returns a pusher that delivers queue through a client of the sink's workspace
// and identity uploading under sourceSystem; it shares the identity's quota with the sink.
func (d *Daemon) adoptPusher(s config.Sink, queue, sourceSystem string) (*pusher.Pusher, error) {
	s.SourceSystem = sourceSystem
	scfg, err := SentinelConfig(s)
	if err != nil {
		return nil, err
	}
	if d.opts.SentinelRoots != nil {
		scfg.TLSRootCAs = d.opts.SentinelRoots
	}
	if d.opts.LimiterMinute > 0 {
		scfg.QuotaMinute = d.opts.LimiterMinute
	}
	client, err := sentinel.New(scfg)
	if err != nil {
		return nil, fmt.Errorf("sink %s: adopt client: %w", s.Name, err)
	}
	d.adoptClients = append(d.adoptClients, client)
	p, err := pusher.New(pusherConfig(d.cfg.Pusher, queue), d.store, client, d.pacers, d.log, d.pusherMetrics)
	if err != nil {
		return nil, fmt.Errorf("sink %s: adopt pusher: %w", s.Name, err)
	}
	return p, nil
}

// sinkConfig returns the configuration of the sink named name.
func (d *Daemon) sinkConfig(name string) (config.Sink, bool) {
	for _, s := range d.cfg.Sinks {
		if s.Name == name {
			return s, true
		}
	}
	return config.Sink{}, false
}
