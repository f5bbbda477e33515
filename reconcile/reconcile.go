package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mispsentinel/listener/internal/version"
	"github.com/mispsentinel/listener/misp"
	"github.com/mispsentinel/listener/pipeline"
	"github.com/mispsentinel/listener/store"
)

// MISP is the part of the MISP REST client the reconciler uses.
type MISP interface {
	StreamEvents(ctx context.Context, filters map[string]any, pageSize int, v misp.Visitor) (misp.SearchStats, error)
	// ListEvents is StreamEvents with up to concurrency pages in flight, for small pages.
	ListEvents(ctx context.Context, filters map[string]any, pageSize, concurrency int, v misp.Visitor) (misp.SearchStats, error)
	SearchEvent(ctx context.Context, uuid string, filters map[string]any) (*misp.Event, bool, error)
	ViewEvent(ctx context.Context, uuid string) (*misp.Event, error)
}

// Applier is the pipeline funnel. Every read of MISP takes a mark before it starts; what
// it found is applied with that mark, and is not applied (superseded) when the real-time path
// acted on the event after the mark (see pipeline.Pipeline.ApplyRead).
type Applier interface {
	ReadMark() uint64
	ApplyRead(ev *misp.Event, mark uint64) (st pipeline.Stats, superseded bool, err error)
	RemoveRead(uuid string, mark uint64) (st pipeline.Stats, superseded bool, err error)
	// ApplyAgedRead is ApplyRead for an event that matches the filters but not their time
	// window: changes and revocations, no refresh.
	ApplyAgedRead(ev *misp.Event, mark uint64) (st pipeline.Stats, superseded bool, err error)
	Sinks() []pipeline.Sink
}

// State is the part of the store the reconciler reads and writes besides the pipeline's diff.
type State interface {
	Events(sink string, fn func(eventUUID string) error) error
	Watermark(name string) (time.Time, error)
	SetWatermark(name string, t time.Time) error
	// GraceMark, SetGraceMark and DeleteGraceMark keep when an existing event was first found
	// outside the filters (the start of its GoneGrace).
	GraceMark(eventUUID string) (time.Time, error)
	SetGraceMark(eventUUID string, t time.Time) error
	DeleteGraceMark(eventUUID string) error
	// EventStamps and SetEventStamps keep, per event, the MISP version and the content key of
	// its last full apply by a run: a listing run fetches only events whose stamp differs.
	EventStamps(eventUUIDs []string) (map[string]store.EventStamp, error)
	SetEventStamps(stamps map[string]store.EventStamp, forget []string) error
}

// Config tunes the reconciler. It has no defaults: the daemon fills it from the configuration
// (config.Default holds the values).
type Config struct {
	// EventFilters are the user's restSearch filters, passed through verbatim.
	EventFilters map[string]any
	// PageSize is the number of events per restSearch page.
	PageSize int
	// FullInterval is the time between full runs; 0 disables scheduled full runs.
	FullInterval time.Duration
	// FullSchedule, when set, is a cron expression (5 fields, or a descriptor such as
	// @daily or @every 6h) that schedules full runs instead of FullInterval. Day of month and
	// day of week combine with OR, as in Vixie cron. Run fails at once if it does not parse.
	FullSchedule string
	// IncrementalInterval is the time between incremental runs; 0 disables them.
	IncrementalInterval time.Duration
	// Overlap is subtracted from the watermark of an incremental run so that events modified
	// while the previous run paged are searched again (0: no overlap).
	Overlap time.Duration
	// GoneGrace is how long an event that still exists in MISP but no longer matches the
	// filters keeps its indicators before they are revoked (0: revoke at once). The time an
	// event was first found outside the filters is kept in the store, so that the grace also
	// works across one-shot `listener sync` runs.
	GoneGrace time.Duration
	// CatchUpRetry is the wait before a failed start-up or catch-up run is tried again (it
	// is never dropped: a lost catch-up would leave a gap unreconciled).
	CatchUpRetry time.Duration
	// ListPageSize is the number of events per page of a listing run's metadata search
	// (events without attributes are small).
	ListPageSize int
	// ListConcurrency is the most pages of a listing asked at once.
	ListConcurrency int
	// FetchBatch is the most event uuids a listing run fetches in one restSearch.
	FetchBatch int
	// Progress, when set, is called after each search page with the run's counts so far.
	Progress func(kind string, pages, events int)
}

// validate reports the settings Run cannot work with.
func (c Config) validate() error {
	var errs []error
	if c.PageSize < 1 {
		errs = append(errs, fmt.Errorf("page size %d: must be at least 1", c.PageSize))
	}
	if c.ListPageSize < 1 {
		errs = append(errs, fmt.Errorf("list page size %d: must be at least 1", c.ListPageSize))
	}
	if c.ListConcurrency < 1 {
		errs = append(errs, fmt.Errorf("list concurrency %d: must be at least 1", c.ListConcurrency))
	}
	if c.FetchBatch < 1 {
		errs = append(errs, fmt.Errorf("fetch batch %d: must be at least 1", c.FetchBatch))
	}
	if c.CatchUpRetry <= 0 {
		errs = append(errs, fmt.Errorf("catch-up retry %s: must be positive", c.CatchUpRetry))
	}
	if c.Overlap < 0 {
		errs = append(errs, fmt.Errorf("overlap %s: must not be negative", c.Overlap))
	}
	return errors.Join(errs...)
}

// Names of the reconciler's watermarks in the store: the start of the last successful full
// and incremental run (`listener status` reads them).
const (
	WatermarkFull        = "reconcile/full"
	WatermarkIncremental = "reconcile/incremental"
	// watermarkWindow is where the next incremental window starts (before the overlap): the
	// newest MISP timestamp the last full or incremental run saw, never later than that run's
	// start by the local clock. The two marks above are the runs' start times (status).
	watermarkWindow = "reconcile/window"
)

// Reconciler runs full and incremental reconciliations. Its methods may be called
// concurrently; runs are serialised.
type Reconciler struct {
	cfg     Config
	misp    MISP
	apply   Applier
	state   State
	log     logrus.FieldLogger
	now     func() time.Time
	metrics *Metrics

	running chan struct{} // one token: held while a run is in progress
	gaps    chan catchUp

	// undecodable holds the events a search returned that could not be decoded, by uuid,
	// with the reason: each is logged once, never revoked for being unreadable, and tried
	// again alone at the start of every later run until it decodes or leaves MISP. Only
	// runs (serialised by running) touch it.
	undecodable map[string]error
}

// New returns a Reconciler. metrics may be nil.
func New(cfg Config, m MISP, apply Applier, state State, log logrus.FieldLogger, metrics *Metrics) *Reconciler {
	if log == nil {
		log = logrus.StandardLogger()
	}
	r := &Reconciler{
		cfg: cfg, misp: m, apply: apply, state: state,
		log: log.WithField("component", "reconcile"), now: time.Now, metrics: metrics,
		running:     make(chan struct{}, 1),
		gaps:        make(chan catchUp, 1),
		undecodable: map[string]error{},
	}
	return r
}

// SetClock replaces the reconciler's clock (tests, `sync` with a moved clock).
func (r *Reconciler) SetClock(now func() time.Time) { r.now = now }

// Report says what one run did.
type Report struct {
	Kind           string // "full", "incremental" or "event"
	Started        time.Time
	Finished       time.Time
	Events         int // events returned by the search
	Pages          int
	GoneEvents     int // events revoked because MISP no longer has them
	FilteredEvents int // events revoked because they no longer match the filters
	GracedEvents   int // events outside the filters whose grace period is not over yet
	// SupersededEvents are the events the run read before a real-time notice acted on them;
	// the run left them as the notice did.
	SupersededEvents int
	// AgedEvents are events the search's time window no longer covers that still match every
	// other filter: applied without refresh, never revoked for their age.
	AgedEvents int
	// UndecodableEvents are the events MISP returned that could not be decoded: skipped,
	// never revoked for it, and tried again alone at the start of the next run.
	UndecodableEvents int
	// unidentified counts undecodable events whose uuid could not be read either: the run
	// cannot tell which event it missed, so it revokes nothing.
	unidentified int
	// Listed is the number of events a listing run's metadata search returned; Fetched the
	// number it fetched in full because they were new or their version or content key moved.
	Listed  int
	Fetched int
	Sinks   pipeline.Stats
	// Errors are the failures that did not stop the run (one event that could not be
	// applied). A search failure stops the run and is returned as the run's error instead.
	Errors []error

	// newest is the latest timestamp or publish_timestamp of the events the searches returned.
	newest time.Time
	// stamps and forget are the event stamps to write and delete at the next flush.
	stamps map[string]store.EventStamp
	forget []string
	key    [8]byte
}

func (rep *Report) add(stats pipeline.Stats) {
	if rep.Sinks == nil {
		rep.Sinks = pipeline.Stats{}
	}
	for sink, d := range stats {
		s := rep.Sinks[sink]
		s.New += d.New
		s.Changed += d.Changed
		s.Unchanged += d.Unchanged
		s.Refreshed += d.Refreshed
		s.Revoked += d.Revoked
		s.Expired += d.Expired
		rep.Sinks[sink] = s
	}
}

// Full searches every event matching the filters, applies each, then revokes what was synced
// before and is gone or filtered out. When the search fails part-way, the events already applied
// stay applied and no revocation happens (an incomplete search proves nothing is gone).
func (r *Reconciler) Full(ctx context.Context) (*Report, error) {
	return r.run(ctx, "full", []map[string]any{r.cfg.EventFilters}, "", true)
}

// Event reconciles one event as a full run would, keeping the other filters.
func (r *Reconciler) Event(ctx context.Context, uuid string) (*Report, error) {
	filters := cloneFilters(r.cfg.EventFilters)
	filters["uuid"] = uuid
	return r.run(ctx, "event", []map[string]any{filters}, uuid, true)
}

// Incremental is the cheap catch-up (issue 13): it lists the filters' events with restSearch
// metadata only (no attributes) to learn which exist and each one's version (the later of its
// timestamp and publish_timestamp), fetches the full content only of events that are new or
// whose version or content key differs from the stamp the store keeps of their last full apply
// (in restSearch calls of up to FetchBatch uuids), and treats events missing from the listing
// exactly as a full run does: confirmed by a one-event lookup before anything is revoked, a
// time window bounding what is fetched, never membership. The listing is what makes a deleted
// event noticed within the incremental interval even without ZeroMQ.
//
// A store never reconciled gets a full run instead. since is kept for callers and ignored: a
// listing covers every event whatever it missed.
func (r *Reconciler) Incremental(ctx context.Context, since time.Time) (*Report, error) {
	_ = since
	full, err := r.state.Watermark(WatermarkFull)
	if err != nil {
		return nil, fmt.Errorf("read full watermark: %w", err)
	}
	incr, err := r.state.Watermark(WatermarkIncremental)
	if err != nil {
		return nil, fmt.Errorf("read incremental watermark: %w", err)
	}
	if full.IsZero() && incr.IsZero() {
		// Never reconciled: only a full run establishes the baseline.
		return r.Full(ctx)
	}
	return r.run(ctx, "incremental", nil, "", true)
}

func (r *Reconciler) run(ctx context.Context, kind string, searches []map[string]any, onlyEvent string, checkGone bool) (*Report, error) {
	select {
	case r.running <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-r.running }()

	rep := &Report{Kind: kind, Started: r.now(), key: r.contentKey()}
	seen := make(map[string]struct{})
	r.retryUndecodable(ctx, seen, onlyEvent, rep)
	var err error
	if kind == "incremental" {
		err = r.listAndFetch(ctx, seen, rep)
	}
	for _, filters := range searches {
		if err != nil {
			break
		}
		err = r.search(ctx, kind, filters, seen, rep)
	}
	if err != nil {
		r.flushStamps(rep)
		rep.Finished = r.now()
		r.metrics.observe(rep, false)
		return rep, fmt.Errorf("%s reconcile: search MISP: %w", kind, err)
	}
	if checkGone && rep.unidentified > 0 {
		rep.Errors = append(rep.Errors, fmt.Errorf("%d undecodable events without a readable uuid: nothing revoked, a search that missed events proves nothing gone", rep.unidentified))
		checkGone = false
	}
	if checkGone {
		if err := r.revokeMissing(ctx, seen, onlyEvent, rep); err != nil {
			r.flushStamps(rep)
			rep.Finished = r.now()
			r.metrics.observe(rep, false)
			return rep, fmt.Errorf("%s reconcile: %w", kind, err)
		}
	}
	r.flushStamps(rep)
	rep.Finished = r.now()
	ok := len(rep.Errors) == 0
	if ok && onlyEvent == "" {
		name := WatermarkIncremental
		if kind == "full" {
			name = WatermarkFull
		}
		if err := r.state.SetWatermark(name, rep.Started); err != nil {
			rep.Errors = append(rep.Errors, fmt.Errorf("save %s watermark: %w", kind, err))
			ok = false
		} else if err := r.saveWindow(rep); err != nil {
			rep.Errors = append(rep.Errors, err)
			ok = false
		}
	}
	r.metrics.observe(rep, ok)
	return rep, nil
}

// listingShape is what a listing adds to the membership filters: metadata (no attributes,
// objects, proposals or reports) and the events/restSearch parameters MISP honours that leave
// more out of each answer without changing which events it returns (Event::fetchEvent options):
// galaxy clusters (often the largest part of a metadata answer), sharing group objects and
// local tags. A listing reads each event's uuid and timestamps only. RelatedEvent stays: MISP's
// restSearch does not accept includeEventCorrelations.
var listingShape = map[string]any{"metadata": true, "excludeGalaxy": true, "sgReferenceOnly": true, "excludeLocalTags": true}

// listedEvent is one event of a listing: its uuid (a copy) and version.
type listedEvent struct {
	uuid    string
	version time.Time
}

// listAndFetch is the listing run's search: the metadata listing, then the full content of the
// events whose stamp differs, applied as a full run applies what it finds. Events listed but
// no longer returned by the content fetch (deleted or filtered out in between) are left out of
// seen, so the gone check settles them.
func (r *Reconciler) listAndFetch(ctx context.Context, seen map[string]struct{}, rep *Report) error {
	// The listing has no time window: a window bounds what is fetched, never membership, and
	// listing an event is cheap. An event listed but outside the window is fetched (when its
	// stamp differs) with the window, not found there, and settled as a full run settles it.
	listing := misp.MembershipFilters(r.cfg.EventFilters)
	maps.Copy(listing, listingShape)
	var (
		page   []listedEvent
		stale  []listedEvent
		listed = map[string]struct{}{} // a page read again after a failure lists its events again
	)
	_, err := r.misp.ListEvents(ctx, listing, r.cfg.ListPageSize, r.cfg.ListConcurrency, misp.Visitor{
		Event: func(ev *misp.Event) error {
			if _, dup := listed[ev.UUID]; dup || ev.UUID == "" {
				return nil
			}
			l := listedEvent{uuid: strings.Clone(ev.UUID), version: eventVersion(ev)}
			listed[l.uuid] = struct{}{}
			page = append(page, l)
			seen[l.uuid] = struct{}{}
			rep.Listed++
			rep.newest = latest(rep.newest, ev.Timestamp, ev.PublishTimestamp)
			return nil
		},
		Undecodable: func(u misp.UndecodableEvent) { r.noteUndecodable(u, seen, rep) },
		PageEnd: func() error {
			uuids := make([]string, len(page))
			for i, l := range page {
				uuids[i] = l.uuid
			}
			stamps, err := r.state.EventStamps(uuids)
			if err != nil {
				return err
			}
			for _, l := range page {
				st, ok := stamps[l.uuid]
				if !ok || st.Key != rep.key || !st.Version.Equal(l.version) {
					stale = append(stale, l)
				}
			}
			page = page[:0]
			rep.Pages++
			if r.cfg.Progress != nil {
				r.cfg.Progress("incremental", rep.Pages, rep.Listed)
			}
			return ctx.Err()
		},
	})
	if err != nil {
		return fmt.Errorf("list events (metadata): %w", err)
	}
	for len(stale) > 0 {
		batch := stale[:min(r.cfg.FetchBatch, len(stale))]
		stale = stale[len(batch):]
		uuids := make([]string, len(batch))
		for i, l := range batch {
			uuids[i] = l.uuid
			delete(seen, l.uuid) // back in once fetched (or found undecodable)
		}
		filters := cloneFilters(r.cfg.EventFilters)
		filters["uuid"] = uuids
		var mark uint64
		_, err := r.misp.StreamEvents(ctx, filters, len(batch), misp.Visitor{
			Request: func() { mark = r.apply.ReadMark() },
			Event: func(ev *misp.Event) error {
				if ev.UUID == "" || !slices.Contains(uuids, ev.UUID) {
					return nil
				}
				rep.Fetched++
				r.applySearched(ev, mark, seen, rep)
				return ctx.Err()
			},
			Undecodable: func(u misp.UndecodableEvent) { r.noteUndecodable(u, seen, rep) },
			PageEnd: func() error {
				r.flushStamps(rep)
				return ctx.Err()
			},
		})
		if err != nil {
			return fmt.Errorf("fetch %d changed events: %w", len(batch), err)
		}
	}
	return nil
}

// eventVersion is what a listing compares: MISP stamps an edit in timestamp and a publication
// in publish_timestamp only.
func eventVersion(ev *misp.Event) time.Time {
	return latest(ev.Timestamp, ev.PublishTimestamp).Truncate(time.Second).UTC()
}

// contentKey identifies what shapes an event's indicators besides its content: the filters,
// every sink with its conversion options, and this binary's version. A stamp written under
// another key does not vouch for the event.
func (r *Reconciler) contentKey() [8]byte {
	h := sha256.New()
	enc := json.NewEncoder(h)
	_ = enc.Encode(version.String())
	_ = enc.Encode(r.cfg.EventFilters)
	for _, s := range r.apply.Sinks() {
		_ = enc.Encode(s.Name)
		if err := enc.Encode(s.Options); err != nil {
			fmt.Fprintf(h, "%#v", s.Options)
		}
	}
	var key [8]byte
	copy(key[:], h.Sum(nil))
	return key
}

// stamp records that ev's full content was applied by this run.
func (rep *Report) stamp(ev *misp.Event) {
	if rep.stamps == nil {
		rep.stamps = map[string]store.EventStamp{}
	}
	rep.stamps[strings.Clone(ev.UUID)] = store.EventStamp{Version: eventVersion(ev), Key: rep.key}
}

// flushStamps writes the stamps the run collected (and deletes those it invalidated).
func (r *Reconciler) flushStamps(rep *Report) {
	if len(rep.stamps) == 0 && len(rep.forget) == 0 {
		return
	}
	if err := r.state.SetEventStamps(rep.stamps, rep.forget); err != nil {
		rep.Errors = append(rep.Errors, err)
	}
	rep.stamps, rep.forget = nil, nil
}

// saveWindow moves the start of the next incremental window to the newest MISP timestamp the
// run saw (MISP's clock, the one its timestamp filters compare with), but never past the run's
// start by the local clock: a local clock jumping ahead would otherwise push every later window
// past the events MISP modifies meanwhile. A run that saw no event keeps the previous window;
// without one, the run's start stands.
func (r *Reconciler) saveWindow(rep *Report) error {
	window := rep.newest
	if window.IsZero() {
		prev, err := r.state.Watermark(watermarkWindow)
		if err != nil {
			return fmt.Errorf("read incremental window watermark: %w", err)
		}
		window = prev
	}
	if window.IsZero() || window.After(rep.Started) {
		window = rep.Started
	}
	if err := r.state.SetWatermark(watermarkWindow, window); err != nil {
		return fmt.Errorf("save incremental window watermark: %w", err)
	}
	return nil
}

// search runs one paged restSearch and applies every event it returns, one at a time as the
// client decodes them. An event that cannot be decoded is skipped (see noteUndecodable).
func (r *Reconciler) search(ctx context.Context, kind string, filters map[string]any, seen map[string]struct{}, rep *Report) error {
	// The mark of an event is taken before the request that read it.
	var mark uint64
	_, err := r.misp.StreamEvents(ctx, filters, r.cfg.PageSize, misp.Visitor{
		Request: func() { mark = r.apply.ReadMark() },
		Event: func(ev *misp.Event) error {
			if ev.UUID == "" {
				return nil
			}
			r.applySearched(ev, mark, seen, rep)
			return ctx.Err()
		},
		Undecodable: func(u misp.UndecodableEvent) { r.noteUndecodable(u, seen, rep) },
		PageEnd: func() error {
			rep.Pages++
			r.flushStamps(rep)
			if r.cfg.Progress != nil {
				r.cfg.Progress(kind, rep.Pages, rep.Events)
			}
			return ctx.Err()
		},
	})
	return err
}

// applySearched applies one event a search returned, read at mark.
func (r *Reconciler) applySearched(ev *misp.Event, mark uint64, seen map[string]struct{}, rep *Report) {
	// The decoder's strings share the event's input: a uuid kept in seen must not keep every
	// event of the run alive.
	seen[strings.Clone(ev.UUID)] = struct{}{}
	delete(r.undecodable, ev.UUID)
	rep.Events++
	rep.newest = latest(rep.newest, ev.Timestamp, ev.PublishTimestamp)
	st, superseded, err := r.apply.ApplyRead(ev, mark)
	rep.add(st)
	if err != nil {
		rep.Errors = append(rep.Errors, err)
	}
	if superseded {
		rep.SupersededEvents++
		return
	}
	if err == nil {
		rep.stamp(ev)
	}
	if err := r.clearOutside(ev.UUID); err != nil {
		rep.Errors = append(rep.Errors, err)
	}
}

// noteUndecodable records an event a search returned that could not be decoded (issue 19
// row 3): it counts as seen, so it is never revoked for being unreadable; it is counted,
// logged once with its uuid and the failing field, and tried again alone by the next run.
func (r *Reconciler) noteUndecodable(u misp.UndecodableEvent, seen map[string]struct{}, rep *Report) {
	rep.UndecodableEvents++
	r.metrics.undecodableEvent()
	if u.UUID == "" {
		rep.unidentified++
		r.log.WithError(u.Err).Warn("MISP returned an event that cannot be decoded and whose uuid cannot be read either; skipped, and this run revokes nothing")
		return
	}
	seen[u.UUID] = struct{}{}
	rep.forget = append(rep.forget, u.UUID) // an old stamp must not vouch for it
	if _, known := r.undecodable[u.UUID]; !known {
		r.log.WithField("event", u.UUID).WithError(u.Err).Warn("MISP returned an event that cannot be decoded; skipped (its indicators stay as they are) and tried again alone at the next run")
	}
	r.undecodable[u.UUID] = u.Err
}

// retryUndecodable tries each event earlier runs could not decode again, alone, with the
// run's filters: applied when it decodes now, forgotten when MISP no longer returns it (a
// full run's gone check then settles it), kept for the next run otherwise. A run for one
// event retries only that one.
func (r *Reconciler) retryUndecodable(ctx context.Context, seen map[string]struct{}, onlyEvent string, rep *Report) {
	for uuid := range r.undecodable {
		if ctx.Err() != nil || (onlyEvent != "" && uuid != onlyEvent) {
			continue
		}
		mark := r.apply.ReadMark()
		ev, found, err := r.misp.SearchEvent(ctx, uuid, r.cfg.EventFilters)
		var u misp.UndecodableEvent
		switch {
		case errors.As(err, &u):
			r.log.WithField("event", uuid).WithError(err).Debug("event still cannot be decoded")
		case err != nil:
			rep.Errors = append(rep.Errors, fmt.Errorf("retry undecodable event %s: %w", uuid, err))
		case !found:
			delete(r.undecodable, uuid)
		default:
			r.log.WithField("event", uuid).Info("an event that could not be decoded decodes now; applied")
			r.applySearched(ev, mark, seen, rep)
		}
	}
}

// revokeMissing looks up every event some sink still exports that the search did not return.
func (r *Reconciler) revokeMissing(ctx context.Context, seen map[string]struct{}, onlyEvent string, rep *Report) error {
	missing, err := r.missingEvents(seen, onlyEvent)
	if err != nil {
		return err
	}
	for uuid := range missing {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.settleMissing(ctx, uuid, rep)
	}
	return nil
}

// missingEvents returns the events some sink holds that the search did not return (only
// onlyEvent, when set).
func (r *Reconciler) missingEvents(seen map[string]struct{}, onlyEvent string) (map[string]struct{}, error) {
	missing := make(map[string]struct{})
	for _, sink := range r.apply.Sinks() {
		err := r.state.Events(sink.Name, func(uuid string) error {
			if onlyEvent != "" && uuid != onlyEvent {
				return nil
			}
			if _, ok := seen[uuid]; !ok {
				missing[uuid] = struct{}{}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list events of sink %s: %w", sink.Name, err)
		}
	}
	if onlyEvent != "" {
		if _, ok := seen[onlyEvent]; !ok {
			missing[onlyEvent] = struct{}{}
		}
	}
	return missing, nil
}

// settleMissing decides about one event missing from the search: gone from MISP (revoked),
// found after all by a one-event search (applied), aged out of the filters' time window but
// matching the rest (applied without refresh, never revoked for its age), or outside the
// filters (revoked once its grace period is over).
func (r *Reconciler) settleMissing(ctx context.Context, uuid string, rep *Report) {
	mark := r.apply.ReadMark()
	if len(misp.WindowKeys(r.cfg.EventFilters)) > 0 {
		// A time window limits which events a run fetches; it never makes an event "filtered
		// out" (misp.WindowKeys). Only an event that fails the other filters is.
		ev, member, err := r.misp.SearchEvent(ctx, uuid, misp.MembershipFilters(r.cfg.EventFilters))
		if err != nil {
			rep.Errors = append(rep.Errors, fmt.Errorf("look up event %s missing from the search without its time window: %w", uuid, err))
			return
		}
		if member {
			r.settleMember(ctx, ev, mark, rep)
			return
		}
	}
	_, err := r.misp.ViewEvent(ctx, uuid)
	switch {
	case errors.Is(err, misp.ErrEventNotFound):
		if r.revoke(uuid, mark, rep) {
			rep.GoneEvents++
		}
		return
	case err != nil:
		rep.Errors = append(rep.Errors, fmt.Errorf("look up event %s missing from the search: %w", uuid, err))
		return
	}
	// Offset paging skips an event when an earlier one leaves the result mid-scan: ask once
	// more, for this event alone, before calling it filtered out.
	ev, found, err := r.misp.SearchEvent(ctx, uuid, r.cfg.EventFilters)
	if err != nil {
		rep.Errors = append(rep.Errors, fmt.Errorf("confirm event %s is outside the filters: %w", uuid, err))
		return
	}
	if found {
		r.applyFound(ev, mark, rep, r.apply.ApplyRead)
		return
	}
	expired, err := r.outsideFilterExpired(uuid)
	if err != nil {
		rep.Errors = append(rep.Errors, err)
		return
	}
	if !expired {
		rep.GracedEvents++
		return
	}
	if r.revoke(uuid, mark, rep) {
		rep.FilteredEvents++
	}
}

// settleMember applies an event missing from a windowed search that still matches the filters
// without their time window: as the search would have (offset paging skipped it) when it is
// inside the window, without refresh when it aged out.
func (r *Reconciler) settleMember(ctx context.Context, ev *misp.Event, mark uint64, rep *Report) {
	_, inWindow, err := r.misp.SearchEvent(ctx, ev.UUID, r.cfg.EventFilters)
	if err != nil {
		rep.Errors = append(rep.Errors, fmt.Errorf("look up event %s in the search's time window: %w", ev.UUID, err))
		return
	}
	if inWindow {
		r.applyFound(ev, mark, rep, r.apply.ApplyRead)
		return
	}
	rep.AgedEvents++
	r.applyFound(ev, mark, rep, r.apply.ApplyAgedRead)
}

// applyFound applies an event a one-event search found and ends its grace period, unless the
// real-time path acted on it after mark.
func (r *Reconciler) applyFound(ev *misp.Event, mark uint64, rep *Report, apply func(*misp.Event, uint64) (pipeline.Stats, bool, error)) {
	st, superseded, err := apply(ev, mark)
	rep.add(st)
	if err != nil {
		rep.Errors = append(rep.Errors, err)
	}
	if superseded {
		rep.SupersededEvents++
		return
	}
	if err == nil {
		rep.stamp(ev)
	}
	r.endGrace(ev.UUID, rep)
}

// revoke revokes in every sink what event uuid yielded and ends its grace period, unless the
// real-time path acted on the event after mark. It reports whether the revocation was committed.
func (r *Reconciler) revoke(uuid string, mark uint64, rep *Report) bool {
	st, superseded, err := r.apply.RemoveRead(uuid, mark)
	rep.add(st)
	if err != nil {
		rep.Errors = append(rep.Errors, err)
		return false
	}
	if superseded {
		rep.SupersededEvents++
		return false
	}
	rep.forget = append(rep.forget, uuid)
	r.endGrace(uuid, rep)
	return true
}

// endGrace forgets that event uuid was found outside the filters, recording a failure in rep.
func (r *Reconciler) endGrace(uuid string, rep *Report) {
	if err := r.clearOutside(uuid); err != nil {
		rep.Errors = append(rep.Errors, err)
	}
}

// outsideFilterExpired records when an existing event was first found outside the filters and
// reports whether its grace period is over.
func (r *Reconciler) outsideFilterExpired(uuid string) (bool, error) {
	if r.cfg.GoneGrace <= 0 {
		return true, nil
	}
	now := r.now()
	first, err := r.state.GraceMark(uuid)
	if err != nil {
		return false, fmt.Errorf("read grace period of event %s: %w", uuid, err)
	}
	if first.IsZero() {
		if err := r.state.SetGraceMark(uuid, now); err != nil {
			return false, fmt.Errorf("start grace period of event %s: %w", uuid, err)
		}
		return false, nil
	}
	return now.Sub(first) >= r.cfg.GoneGrace, nil
}

// clearOutside forgets that an event was found outside the filters (it is back, or revoked).
func (r *Reconciler) clearOutside(uuid string) error {
	if r.cfg.GoneGrace <= 0 {
		return nil
	}
	// A read is cheap and the mark is rare: write only when there is one.
	first, err := r.state.GraceMark(uuid)
	if err != nil {
		return fmt.Errorf("read grace period of event %s: %w", uuid, err)
	}
	if first.IsZero() {
		return nil
	}
	if err := r.state.DeleteGraceMark(uuid); err != nil {
		return fmt.Errorf("end grace period of event %s: %w", uuid, err)
	}
	return nil
}

func cloneFilters(in map[string]any) map[string]any {
	out := make(map[string]any, len(in)+2)
	for k, v := range in {
		out[k] = v
	}
	return out
}

func latest(ts ...time.Time) time.Time {
	var out time.Time
	for _, t := range ts {
		if t.After(out) {
			out = t
		}
	}
	return out
}
