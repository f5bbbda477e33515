package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"time"

	"github.com/sirupsen/logrus"

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

// EventFetcher re-reads events through MISP's filtered search (*misp.Client): one restSearch
// request with filters and `"uuid": uuids`. An event the filters exclude (or that no longer
// exists) is absent from the result.
type EventFetcher interface {
	SearchEventsByUUID(ctx context.Context, uuids []string, filters map[string]any) ([]*misp.Event, error)
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
	// RefetchBatch is the most events one re-fetch asks MISP for: notices waiting while
	// earlier re-fetches are in flight are gathered into one restSearch call of up to this
	// many uuids. RefetchConcurrency bounds the re-fetches in flight at once. Both are
	// required (config.Default has them).
	RefetchBatch       int
	RefetchConcurrency int
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
	// Log receives one line per event applied (info; debug for a reconcile read that changed
	// nothing) and, at debug, one line per attribute decision; nil discards them.
	Log *logrus.Logger
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
	// queue is the real-time path's wait set: coalesced, concurrent re-fetches.
	queue *noticeQueue
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
	if cfg.RefetchBatch < 1 || cfg.RefetchConcurrency < 1 {
		return nil, fmt.Errorf("pipeline: re-fetch batch %d and concurrency %d: must be positive", cfg.RefetchBatch, cfg.RefetchConcurrency)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = logrus.New()
		cfg.Log.SetOutput(io.Discard)
	}
	p := &Pipeline{cfg: cfg, noticeFilters: noticeFiltersOf(cfg.EventFilters), realtime: newRealtimeLog()}
	p.queue = newNoticeQueue(p, cfg.RefetchBatch, cfg.RefetchConcurrency)
	return p, nil
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
	for i, result := range p.convert(ev, now) {
		sink := p.cfg.Sinks[i]
		p.cfg.Metrics.observeConversion(sink.Name, result)
		p.logDecisions(sink.Name, ev, result)
		diff, err := apply(sink.Name, ev.UUID, result.Objects, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("apply event %s to sink %s: %w", ev.UUID, sink.Name, err))
			continue
		}
		stats[sink.Name] = diff
	}
	return stats, errors.Join(errs...)
}

// convert converts ev for every sink, in the order of p.cfg.Sinks.
func (p *Pipeline) convert(ev *misp.Event, now time.Time) []stix.Result {
	out := make([]stix.Result, len(p.cfg.Sinks))
	var models map[string]misp.DecayingModel
	for i, sink := range p.cfg.Sinks {
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
		out[i] = result
	}
	return out
}

// Explain converts ev for every sink exactly as ApplyEvent would, and returns each sink's
// result (objects and one decision per attribute) without applying anything (`listener
// trace`).
func (p *Pipeline) Explain(ev *misp.Event) map[string]stix.Result {
	out := make(map[string]stix.Result, len(p.cfg.Sinks))
	for i, res := range p.convert(ev, p.cfg.Now()) {
		out[p.cfg.Sinks[i].Name] = res
	}
	return out
}

// NoticeFilters returns the filters a published notice's event is re-fetched with: the
// membership filters but "published" and the time windows (empty without event filters).
func (p *Pipeline) NoticeFilters() map[string]any { return maps.Clone(p.noticeFilters) }

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
// It is SubmitNotice waiting for done, or for ctx to end.
func (p *Pipeline) HandleNotice(ctx context.Context, n Notice) error {
	done := make(chan error, 1)
	p.SubmitNotice(ctx, n, func(err error) { done <- err })
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("handle notice for event %s: %w", n.EventUUID, context.Cause(ctx))
	}
}

// SubmitNotice queues a real-time notice and returns at once; done is called once, after the
// notice's consequences are committed (nil) or with what stopped them (see noticeQueue for
// the order and merging rules). A notice whose ctx ends before its event's turn is withdrawn
// and answered with ctx's error. A committed notice is counted as applied.
func (p *Pipeline) SubmitNotice(ctx context.Context, n Notice, done func(error)) {
	p.queue.submit(ctx, n, func(err error) {
		if err == nil {
			p.cfg.Metrics.observeNotice(n.Source)
		}
		done(err)
	})
}
