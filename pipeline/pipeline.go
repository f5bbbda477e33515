package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mispsentinel/listener/misp"
	"github.com/mispsentinel/listener/stix"
	"github.com/mispsentinel/listener/store"
)

// Sink is one Sentinel workspace as the pipeline sees it.
type Sink struct {
	// Name is the sink's outbox in the store.
	Name string
	// Options are the conversion options, the sink's own filters included.
	Options stix.Options
	// Adapt, when set, turns the converted result into the objects the sink's API takes
	// (a Defender sink's candidates), adding its own skip decisions.
	Adapt func(ev *misp.Event, res stix.Result) stix.Result
}

// EventFetcher re-reads one event through MISP's filtered search. found is false when the
// filters exclude the event (or it no longer exists).
type EventFetcher interface {
	SearchEvent(ctx context.Context, uuid string, filters map[string]any) (ev *misp.Event, found bool, err error)
}

// Store is the part of the store the pipeline writes to.
type Store interface {
	Apply(sink, eventUUID string, desired []stix.Object, now time.Time) (store.DiffStats, error)
	RemoveEvent(sink, eventUUID string, now time.Time) (store.DiffStats, error)
	// ApplyAged is Apply without refreshing unchanged objects, for an event that aged out of
	// the search's time window (see store.Store.ApplyAged).
	ApplyAged(sink, eventUUID string, desired []stix.Object, now time.Time) (store.DiffStats, error)
}

// Config wires a Pipeline.
type Config struct {
	Sinks []Sink
	// EventFilters are the restSearch filters every exported event must satisfy (the user's
	// misp_event_filters). The reconciler searches with them; the real-time path re-fetches a
	// notified event with them when Refetch is set.
	EventFilters map[string]any
	// Refetch re-reads a published notice's event through restSearch before it is converted,
	// instead of trusting the notice's payload. The policy is decided in one place,
	// config.Config.RefetchOnNotice (with event filters or decay scores, always: only MISP
	// applies some filters and computes the scores, and an unfiltered payload would upload
	// what the reconciler later revokes).
	Refetch bool
	Fetcher EventFetcher
	// DecayModels supplies the decaying models an event's decay scores name, for the sinks
	// with decay on and no configured parameters; nil leaves them unknown (no decay-bound
	// valid_until).
	DecayModels DecayModelSource
	Store       Store
	// Pending keeps the notices a shutdown could not apply (RecordPending, ApplyPending); nil
	// turns that off.
	Pending PendingStore
	// Now is the clock; time.Now when nil.
	Now     func() time.Time
	Metrics *Metrics
}

// DecayModelSource returns the known decaying models among ids (misp.ModelCache).
type DecayModelSource interface {
	Models(ctx context.Context, ids []string) map[string]misp.DecayingModel
}

// Pipeline applies events to every sink. It is safe for concurrent use.
type Pipeline struct {
	cfg Config
	// noticeFilters are the event filters a published notice is re-fetched with: all of
	// them but "published" and the time windows (see noticeFiltersOf).
	noticeFilters map[string]any
	// realtime orders real-time actions against the reconciler's reads (ApplyRead).
	realtime *realtimeLog
}

// noticeFiltersOf returns the filters a notified event is re-fetched with: the membership
// filters without "published" or any time window.
//
// A notice of publication is itself the proof that the event is published, and MISP sends it
// before it has saved that: the workflow's event-publish trigger runs "just before
// publishing", and misp_json's payload is fetched before published=1 and publish_timestamp are
// stored (spec/misp-interfaces.md 1.4, 2.2). Re-fetching with them would find a first
// publication "outside the filters" and revoke a republished event. Any other time window
// (timestamp, from, ...) limits what a reconcile run scans; it never decides membership, so a
// notice about an event outside it must not revoke the event either (misp.WindowKeys).
func noticeFiltersOf(filters map[string]any) map[string]any {
	out := misp.MembershipFilters(filters)
	delete(out, "published")
	return out
}

// New returns a Pipeline.
func New(cfg Config) (*Pipeline, error) {
	if cfg.Store == nil {
		return nil, errors.New("pipeline: no store")
	}
	if cfg.Fetcher == nil && cfg.Refetch {
		return nil, errors.New("pipeline: re-fetching events needs a MISP fetcher")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Pipeline{cfg: cfg, noticeFilters: noticeFiltersOf(cfg.EventFilters), realtime: newRealtimeLog()}, nil
}

// Sinks returns the configured sinks.
func (p *Pipeline) Sinks() []Sink { return p.cfg.Sinks }

// Stats sums what one call changed, per sink.
type Stats map[string]store.DiffStats

// ApplyEvent makes every sink's desired state for ev equal to what converting ev yields. ev
// must already satisfy the event filters (it came from a filtered search).
func (p *Pipeline) ApplyEvent(ev *misp.Event) (Stats, error) {
	return p.applyEvent(ev, p.cfg.Store.Apply)
}

// ApplyAgedEvent is ApplyEvent for an event that satisfies the event filters but their time
// window no longer: what changed in it is applied, what it no longer yields is revoked, and
// nothing unchanged is refreshed (a time window scans, it never decides).
func (p *Pipeline) ApplyAgedEvent(ev *misp.Event) (Stats, error) {
	return p.applyEvent(ev, p.cfg.Store.ApplyAged)
}

func (p *Pipeline) applyEvent(ev *misp.Event, apply func(sink, eventUUID string, desired []stix.Object, now time.Time) (store.DiffStats, error)) (Stats, error) {
	if ev == nil || ev.UUID == "" {
		return nil, errors.New("apply event: event has no uuid")
	}
	now := p.cfg.Now()
	stats := make(Stats, len(p.cfg.Sinks))
	var errs []error
	var models map[string]misp.DecayingModel
	for _, sink := range p.cfg.Sinks {
		opts := sink.Options
		if opts.Decay.Enabled && opts.Decay.Parameters == nil && p.cfg.DecayModels != nil {
			if models == nil {
				// Read at most once per event; the cache reads MISP rarely (see
				// misp.ModelCache), each request bounded by the MISP client's timeout.
				models = p.cfg.DecayModels.Models(context.Background(), misp.ScoredModelIDs(ev))
			}
			opts.Decay.Models = models
		}
		result := stix.Convert(ev, opts, now)
		if sink.Adapt != nil {
			result = sink.Adapt(ev, result)
		}
		p.cfg.Metrics.observeConversion(sink.Name, result)
		diff, err := apply(sink.Name, ev.UUID, result.Objects, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("apply event %s to sink %s: %w", ev.UUID, sink.Name, err))
			continue
		}
		stats[sink.Name] = diff
	}
	return stats, errors.Join(errs...)
}

// RemoveEvent revokes, in every sink, everything the event yielded.
func (p *Pipeline) RemoveEvent(uuid string) (Stats, error) {
	if uuid == "" {
		return nil, errors.New("remove event: no uuid")
	}
	now := p.cfg.Now()
	stats := make(Stats, len(p.cfg.Sinks))
	var errs []error
	for _, sink := range p.cfg.Sinks {
		diff, err := p.cfg.Store.RemoveEvent(sink.Name, uuid, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("remove event %s from sink %s: %w", uuid, sink.Name, err))
			continue
		}
		stats[sink.Name] = diff
	}
	return stats, errors.Join(errs...)
}

// HandleNotice applies a real-time notice. It returns after the consequences are committed
// to the store, so the webhook may acknowledge it; only then is the notice counted as applied.
func (p *Pipeline) HandleNotice(ctx context.Context, n Notice) error {
	unlock := p.realtime.lock(n.EventUUID)
	err := p.handleNotice(ctx, n)
	if err == nil {
		p.realtime.record(n.EventUUID)
	}
	unlock()
	if err != nil {
		return err
	}
	p.cfg.Metrics.observeNotice(n.Source)
	return nil
}

func (p *Pipeline) handleNotice(ctx context.Context, n Notice) error {
	switch n.Kind {
	case Deleted:
		_, err := p.RemoveEvent(n.EventUUID)
		return err
	case Published:
	default:
		return fmt.Errorf("handle notice: unknown kind %d", n.Kind)
	}
	if p.cfg.Refetch {
		return p.refetchAndApply(ctx, n.EventUUID)
	}
	if n.Event == nil {
		return fmt.Errorf("handle notice for event %s: no event content", n.EventUUID)
	}
	_, err := p.ApplyEvent(n.Event)
	return err
}

// refetchAndApply re-reads the event through restSearch with the notice filters and applies
// it, or removes it when the filters exclude it.
func (p *Pipeline) refetchAndApply(ctx context.Context, uuid string) error {
	if p.cfg.Fetcher == nil {
		return fmt.Errorf("re-fetch event %s: no MISP fetcher", uuid)
	}
	ev, found, err := p.cfg.Fetcher.SearchEvent(ctx, uuid, p.noticeFilters)
	if err != nil {
		return fmt.Errorf("re-fetch event %s with the event filters: %w", uuid, err)
	}
	if !found {
		// Outside the filters (or gone since): nothing of it may stay exported.
		_, err := p.RemoveEvent(uuid)
		return err
	}
	_, err = p.ApplyEvent(ev)
	return err
}
