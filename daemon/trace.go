package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/misp"
	"github.com/mispsentinel/listener/pipeline"
	"github.com/mispsentinel/listener/sentinel"
	"github.com/mispsentinel/listener/stix"
	"github.com/mispsentinel/listener/store"
)

// ErrBadTraceQuery is a trace query that names nothing: empty, or too long to be a value.
var ErrBadTraceQuery = errors.New("bad trace query")

// maxTraceQuery bounds a trace query (a value, a uuid or an indicator id).
const maxTraceQuery = 4096

// ReadBack reads what a sink's Sentinel workspace holds for one indicator. A read-back client
// of the workspace (the Sentinel query client) satisfies it; Options.ReadBack hands one to the
// daemon per sink.
type ReadBack interface {
	// ReadIndicator returns the workspace's copy of the STIX indicator id; found is false when
	// the workspace holds none.
	ReadIndicator(ctx context.Context, id string) (held HeldIndicator, found bool, err error)
}

// HeldIndicator is what a Sentinel workspace holds for one indicator.
type HeldIndicator struct {
	ID         string    `json:"id"`
	Modified   time.Time `json:"modified,omitzero"`
	ValidUntil time.Time `json:"valid_until,omitzero"`
	Revoked    bool      `json:"revoked"`
	Pattern    string    `json:"pattern,omitempty"`
}

// Trace is the answer of `listener trace`: the MISP attributes the query found and, for each,
// its event, the decision of every sink and what the store and Sentinel hold.
type Trace struct {
	Query string `json:"query"`
	// Kind is what the query was taken as: "value", "attribute", "event" or "indicator".
	Kind string `json:"kind"`
	// Source says who answered: the running daemon or a store opened by the CLI.
	Source string `json:"source,omitempty"`
	// Notes are findings that belong to no attribute (nothing found in MISP, a result cut).
	Notes      []string         `json:"notes,omitempty"`
	Attributes []TraceAttribute `json:"attributes"`
	// Stored lists, for an indicator id MISP yields no attribute for, what each sink holds.
	Stored []TraceIndicator `json:"stored,omitempty"`
}

// TraceAttribute is one MISP attribute and what became of it in each sink.
type TraceAttribute struct {
	UUID       string `json:"uuid"`
	ID         string `json:"id,omitempty"`
	Type       string `json:"type"`
	Category   string `json:"category,omitempty"`
	Value      string `json:"value"`
	ToIDS      bool   `json:"to_ids"`
	ObjectName string `json:"object,omitempty"`
	EventUUID  string `json:"event_uuid"`
	EventID    string `json:"event_id,omitempty"`
	EventInfo  string `json:"event_info,omitempty"`
	// Event says whether the event passes the event filters (the daemon's re-fetch).
	Event TraceEvent  `json:"event"`
	Sinks []TraceSink `json:"sinks"`
}

// TraceEvent is the event's standing against the event filters.
type TraceEvent struct {
	// Found: MISP returned the event.
	Found bool `json:"found"`
	// InFilters: the event filters' search (without "published" and time windows, as the
	// daemon re-fetches a notice) returns it; an event outside them is not exported.
	InFilters bool   `json:"in_filters"`
	Published bool   `json:"published"`
	Note      string `json:"note,omitempty"`
}

// TraceSink is one sink's conversion decision for an attribute and its indicators.
type TraceSink struct {
	Sink string `json:"sink"`
	// Decision is "exported" or "skipped".
	Decision   string           `json:"decision"`
	Reason     string           `json:"reason,omitempty"`
	Detail     string           `json:"detail,omitempty"`
	Indicators []TraceIndicator `json:"indicators"`
}

// TraceIndicator is what the store and Sentinel hold for one indicator of one sink.
type TraceIndicator struct {
	Sink string `json:"sink,omitempty"`
	// ID is the generation-0 id the conversion yields.
	ID    string      `json:"id"`
	Store *TraceStore `json:"store"`
	// Sentinel is the workspace's copy when the sink can read Sentinel back and it holds one.
	Sentinel *HeldIndicator `json:"sentinel,omitempty"`
	// SentinelNote says why Sentinel is not shown, or that it holds nothing.
	SentinelNote string `json:"sentinel_note,omitempty"`
}

// TraceStore is the store's record of one indicator in one sink.
type TraceStore struct {
	Known bool `json:"known"`
	// State is "queued", "accepted", "revoked", "revocation queued", "dead letter", "expired"
	// or "unknown" (the store never had it).
	State string `json:"state"`
	// ID is the id of the current generation (what Sentinel holds it under).
	ID               string      `json:"id,omitempty"`
	Generation       uint32      `json:"generation,omitempty"`
	Event            string      `json:"event,omitempty"`
	Modified         time.Time   `json:"modified,omitzero"`
	ValidUntil       time.Time   `json:"valid_until,omitzero"`
	QueuedAt         time.Time   `json:"queued_at,omitzero"`
	AcceptedModified time.Time   `json:"accepted_modified,omitzero"`
	DeadLetter       *DeadLetter `json:"dead_letter,omitempty"`
}

// tracer holds what a trace reads: the configuration, the store, MISP and the pipeline's
// conversion (the daemon's own, or one assembled by the CLI against a store no daemon holds).
type tracer struct {
	cfg      *config.Config
	store    *store.Store
	misp     *misp.Client
	pipeline *pipeline.Pipeline
	readBack func(sink string) ReadBack
	now      func() time.Time
	sinks    []string
}

// Trace follows one indicator (a value, an attribute or event uuid, or a STIX indicator id)
// through MISP, each sink's conversion, the store and, where a sink can read Sentinel back,
// Sentinel. sink, when not empty, limits it to one sink.
func (d *Daemon) Trace(ctx context.Context, query, sink string) (*Trace, error) {
	names, err := selectSinks(d.cfg, sink)
	if err != nil {
		return nil, err
	}
	readBack := d.opts.ReadBack
	if readBack == nil {
		readBack = d.sinkReadBack
	}
	t := &tracer{cfg: d.cfg, store: d.store, misp: d.misp, pipeline: d.pipeline, now: d.opts.Now, sinks: names, readBack: readBack}
	return t.trace(ctx, strings.TrimSpace(query))
}

func (t *tracer) trace(ctx context.Context, q string) (*Trace, error) {
	if q == "" || len(q) > maxTraceQuery {
		return nil, fmt.Errorf("%w: give a value, an attribute or event uuid, or an indicator id (at most %d bytes)", ErrBadTraceQuery, maxTraceQuery)
	}
	out := &Trace{Query: q, Attributes: []TraceAttribute{}}
	limit := config.ControlTraceMaxAttributes
	var hits []misp.AttributeHit
	switch {
	case strings.HasPrefix(q, "indicator--"):
		out.Kind = "indicator"
		var err error
		if hits, err = t.indicatorHits(ctx, q, out); err != nil {
			return nil, err
		}
	case isUUID(q):
		found, err := t.attributeHits(ctx, map[string]any{"uuid": q}, limit)
		if err != nil {
			return nil, err
		}
		for _, h := range found {
			if strings.EqualFold(h.UUID, q) {
				hits = append(hits, h)
			}
		}
		out.Kind = "attribute"
		if len(hits) == 0 {
			out.Kind = "event"
			ev, ok, err := t.misp.SearchEvent(ctx, q, nil)
			if err != nil {
				return nil, fmt.Errorf("search MISP for event %s: %w", q, err)
			}
			if ok {
				hits = eventHits(ev)
			}
		}
		if len(hits) == 0 {
			out.Notes = append(out.Notes, "MISP has no attribute and no event with this uuid (or the API key's user may not see it)")
			out.Stored = t.storedOnly("indicator--" + strings.ToLower(q))
		}
	default:
		out.Kind = "value"
		var err error
		if hits, err = t.attributeHits(ctx, map[string]any{"value": q}, limit+1); err != nil {
			return nil, err
		}
		if len(hits) == 0 {
			out.Notes = append(out.Notes, "MISP's attribute search finds no attribute with this value")
		}
	}
	if len(hits) > limit {
		out.Notes = append(out.Notes, fmt.Sprintf("showing the first %d attributes; MISP has more", limit))
		hits = hits[:limit]
	}
	events := map[string]*tracedEvent{}
	for _, h := range hits {
		ev, ok := events[h.EventUUID]
		if !ok {
			var err error
			if ev, err = t.fetchEvent(ctx, h.EventUUID); err != nil {
				return nil, err
			}
			events[h.EventUUID] = ev
		}
		out.Attributes = append(out.Attributes, t.traceAttribute(ctx, h, ev))
	}
	return out, nil
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}

// attributeHits runs MISP's attribute search.
func (t *tracer) attributeHits(ctx context.Context, filters map[string]any, limit int) ([]misp.AttributeHit, error) {
	hits, err := t.misp.SearchAttributes(ctx, filters, limit)
	if err != nil {
		return nil, fmt.Errorf("ask MISP: %w", err)
	}
	return hits, nil
}

// indicatorHits finds the attribute an indicator id came from: through the event the store
// records for it, else through the attribute uuid the id carries (indicator--<uuid v4>).
func (t *tracer) indicatorHits(ctx context.Context, id string, out *Trace) ([]misp.AttributeHit, error) {
	known := false
	for _, sink := range t.sinks {
		ind, found, err := t.store.Indicator(sink, id)
		if err != nil {
			return nil, err
		}
		known = known || found
		if !found || ind.Event == "" {
			continue
		}
		ev, ok, err := t.misp.SearchEvent(ctx, ind.Event, nil)
		if err != nil {
			return nil, fmt.Errorf("search MISP for event %s: %w", ind.Event, err)
		}
		if !ok {
			out.Notes = append(out.Notes, fmt.Sprintf("the store records event %s for this indicator; MISP no longer has it", ind.Event))
			out.Stored = t.storedOnly(id)
			return nil, nil
		}
		var hits []misp.AttributeHit
		results := t.pipeline.Explain(ev)
		for _, h := range eventHits(ev) {
			for _, res := range results {
				if decisionExports(res, h.UUID, ind.Base) {
					hits = append(hits, h)
					break
				}
			}
		}
		if len(hits) == 0 {
			out.Notes = append(out.Notes, fmt.Sprintf("event %s no longer yields this indicator in any sink", ind.Event))
			out.Stored = t.storedOnly(id)
		}
		return hits, nil
	}
	attr := strings.TrimPrefix(id, "indicator--")
	if isUUID(attr) {
		found, err := t.attributeHits(ctx, map[string]any{"uuid": attr}, config.ControlTraceMaxAttributes)
		if err != nil {
			return nil, err
		}
		var hits []misp.AttributeHit
		for _, h := range found {
			if strings.EqualFold(h.UUID, attr) {
				hits = append(hits, h)
			}
		}
		if len(hits) > 0 {
			return hits, nil
		}
	}
	if known {
		out.Notes = append(out.Notes, "the store holds this object for no single event (a shared object, such as an identity) and MISP has no attribute it names")
		out.Stored = t.storedOnly(id)
		return nil, nil
	}
	out.Notes = append(out.Notes, "no sink's store knows this indicator and MISP has no attribute it names")
	return nil, nil
}

// decisionExports says whether res exported base from the attribute attr.
func decisionExports(res stix.Result, attr, base string) bool {
	for _, d := range res.Decisions {
		if d.AttributeUUID == attr {
			for _, id := range d.Exported {
				if id == base {
					return true
				}
			}
		}
	}
	return false
}

// eventHits lists an event's attributes as attribute search hits.
func eventHits(ev *misp.Event) []misp.AttributeHit {
	var hits []misp.AttributeHit
	ev.AllAttributes(func(obj *misp.Object, a *misp.Attribute) bool {
		h := misp.AttributeHit{Attribute: *a, EventUUID: ev.UUID, EventID: ev.ID, EventInfo: ev.Info}
		if obj != nil {
			h.ObjectName = obj.Name
		}
		hits = append(hits, h)
		return true
	})
	return hits
}

// tracedEvent is one event as the daemon sees it: through the event filters, and each sink's
// conversion of it.
type tracedEvent struct {
	standing TraceEvent
	results  map[string]stix.Result
}

// fetchEvent reads the event as the daemon's re-fetch of a notice does (restSearch with the
// event filters), and without filters when they exclude it, to say why.
func (t *tracer) fetchEvent(ctx context.Context, eventUUID string) (*tracedEvent, error) {
	te := &tracedEvent{}
	if eventUUID == "" {
		te.standing.Note = "MISP named no event for this attribute"
		return te, nil
	}
	ev, found, err := t.misp.SearchEvent(ctx, eventUUID, t.pipeline.NoticeFilters())
	if err != nil {
		return nil, fmt.Errorf("search MISP for event %s with the event filters: %w", eventUUID, err)
	}
	if found {
		te.standing = TraceEvent{Found: true, InFilters: true, Published: ev.Published}
		te.results = t.pipeline.Explain(ev)
		if !ev.Published {
			te.standing.Note = "not published yet: the reconciler exports it only if the event filters do not ask for published events, a notice once it is published"
		}
		return te, nil
	}
	ev, found, err = t.misp.SearchEvent(ctx, eventUUID, nil)
	if err != nil {
		return nil, fmt.Errorf("search MISP for event %s: %w", eventUUID, err)
	}
	if !found {
		te.standing.Note = "MISP does not return the event"
		return te, nil
	}
	te.standing = TraceEvent{Found: true, Published: ev.Published,
		Note: "outside the event filters (misp.event_filters): nothing of it is exported, and what was is revoked"}
	return te, nil
}

func (t *tracer) traceAttribute(ctx context.Context, h misp.AttributeHit, ev *tracedEvent) TraceAttribute {
	ta := TraceAttribute{
		UUID: h.UUID, ID: h.ID, Type: h.Type, Category: h.Category, Value: h.Value, ToIDS: h.ToIDS,
		ObjectName: h.ObjectName, EventUUID: h.EventUUID, EventID: h.EventID, EventInfo: h.EventInfo,
		Event: ev.standing, Sinks: []TraceSink{},
	}
	for _, sink := range t.sinks {
		ts := TraceSink{Sink: sink, Decision: "skipped", Indicators: []TraceIndicator{}}
		var ids []string
		switch res, ok := ev.results[sink]; {
		case !ev.standing.InFilters:
			ts.Reason, ts.Detail = "event_filters", "the event is outside the event filters"
		case !ok:
			ts.Reason, ts.Detail = "not_converted", "the sink converted nothing"
		default:
			d, found := decisionOf(res, h.UUID)
			switch {
			case !found:
				ts.Reason, ts.Detail = "event_filters", "the search with the event filters leaves this attribute out (to_ids, a warninglist or a tag filter)"
			case len(d.Exported) > 0:
				ts.Decision, ts.Reason, ts.Detail = "exported", "", d.Detail
				ids = d.Exported
			default:
				ts.Reason, ts.Detail = string(d.Reason), d.Detail
			}
		}
		if len(ids) == 0 && isUUID(h.UUID) {
			// Not exported now; the store may still hold what an earlier version yielded.
			if u, _ := uuid.Parse(h.UUID); u.Version() == 4 {
				ids = []string{"indicator--" + strings.ToLower(h.UUID)}
			}
		}
		for _, id := range ids {
			ti := t.indicator(ctx, sink, id)
			if ts.Decision != "exported" && !ti.Store.Known {
				continue // never exported: nothing to show
			}
			ts.Indicators = append(ts.Indicators, ti)
		}
		ta.Sinks = append(ta.Sinks, ts)
	}
	return ta
}

func decisionOf(res stix.Result, attr string) (stix.Decision, bool) {
	for _, d := range res.Decisions {
		if d.AttributeUUID == attr {
			return d, true
		}
	}
	return stix.Decision{}, false
}

// storedOnly lists what each sink's store holds for id when MISP gives no attribute for it.
func (t *tracer) storedOnly(id string) []TraceIndicator {
	var out []TraceIndicator
	for _, sink := range t.sinks {
		ti := t.indicator(context.Background(), sink, id)
		if ti.Store.Known {
			ti.Sink = sink
			out = append(out, ti)
		}
	}
	return out
}

// indicator reads what the store and, where the sink reads Sentinel back, Sentinel hold for
// id in sink.
func (t *tracer) indicator(ctx context.Context, sink, id string) TraceIndicator {
	ti := TraceIndicator{ID: id, Store: &TraceStore{State: "unknown"}}
	ind, found, err := t.store.Indicator(sink, id)
	switch {
	case err != nil:
		ti.Store.State = "unreadable: " + err.Error()
	case found:
		ti.Store = storeView(ind, t.now())
	}
	rb := ReadBack(nil)
	if t.readBack != nil {
		rb = t.readBack(sink)
	}
	if rb == nil {
		ti.SentinelNote = "not available: the daemon has no Sentinel read-back for this sink"
		return ti
	}
	held, ok, err := rb.ReadIndicator(ctx, ti.Store.currentID(id))
	switch {
	case err != nil:
		ti.SentinelNote = "read-back failed: " + err.Error()
	case !ok:
		ti.SentinelNote = "Sentinel holds no indicator with this id"
	default:
		ti.Sentinel = &held
	}
	return ti
}

// currentID is the id Sentinel holds the indicator under: the current generation's.
func (s *TraceStore) currentID(id string) string {
	if s != nil && s.ID != "" {
		return s.ID
	}
	return id
}

func storeView(ind store.Indicator, now time.Time) *TraceStore {
	v := &TraceStore{
		Known: true, ID: ind.ID, Generation: ind.Gen, Event: ind.Event, Modified: ind.Modified,
		ValidUntil: ind.ValidUntil, QueuedAt: ind.QueuedAt, AcceptedModified: ind.AcceptedModified,
	}
	switch {
	case ind.Queued && ind.Revoked:
		v.State = "revocation queued"
	case ind.Queued:
		v.State = "queued"
	case ind.Rejected:
		v.State = "dead letter"
		if dl := ind.DeadLetter; dl != nil {
			v.DeadLetter = &DeadLetter{Seq: dl.Seq, ID: dl.ID, Revoke: dl.Revoke, Message: dl.Message,
				RejectedAt: dl.RejectedAt, Object: RawJSON(dl.Object)}
		}
	case ind.Revoked && !ind.ValidUntil.IsZero() && ind.ValidUntil.Before(now):
		v.State = "expired"
	case ind.Revoked && ind.Accepted:
		v.State = "revoked"
	case ind.Revoked:
		v.State = "revoked, revocation not accepted"
	case ind.Accepted:
		v.State = "accepted"
	default:
		v.State = "not sent"
	}
	if v.State == "accepted" && !ind.ValidUntil.IsZero() && ind.ValidUntil.Before(now) {
		v.State = "accepted, expired"
	}
	return v
}

// sinkReadBack is the read-back of a sink's workspace through the client its read_back block
// configures (nil for a sink without one, or whose client could not be built).
func (d *Daemon) sinkReadBack(sink string) ReadBack {
	for _, s := range d.sinks {
		if s.name == sink && s.reader != nil {
			return SentinelReadBack(s.reader, s.sourceName)
		}
	}
	return nil
}

// SentinelLookup is the part of a workspace read-back client (sentinel.Reader) trace uses.
type SentinelLookup interface {
	Lookup(ctx context.Context, id string, sourceSystems ...string) ([]sentinel.HeldObject, error)
}

// SentinelReadBack adapts a workspace's read-back client to ReadBack: the copy of the
// indicator the sink uploaded (its source system), the most recently modified when Sentinel
// holds several.
func SentinelReadBack(r SentinelLookup, sourceSystem string) ReadBack {
	return sentinelReadBack{r: r, sourceSystem: sourceSystem}
}

type sentinelReadBack struct {
	r            SentinelLookup
	sourceSystem string
}

func (s sentinelReadBack) ReadIndicator(ctx context.Context, id string) (HeldIndicator, bool, error) {
	held, err := s.r.Lookup(ctx, id, s.sourceSystem)
	if err != nil {
		return HeldIndicator{}, false, err
	}
	var best *sentinel.HeldObject
	for i := range held {
		if best == nil || held[i].Modified.After(best.Modified) {
			best = &held[i]
		}
	}
	if best == nil {
		return HeldIndicator{}, false, nil
	}
	return HeldIndicator{ID: best.ID, Modified: best.Modified, ValidUntil: best.ValidUntil, Revoked: best.Revoked, Pattern: best.Pattern}, true, nil
}
