// Package adopt plans the clean-up of the indicators another tool (misp2sentinel) left in a
// Sentinel workspace: it matches each one to a MISP attribute by observable and event
// reference and decides, per indicator, superseded (the listener holds a live copy of the
// observable: revoke the old one, every duplicate of it), gone (MISP no longer flags it:
// revoke) or unmatched (report only). It builds the revocations (the old object re-uploaded
// under its own source system and id with revoked: true) but never uploads, reads the
// workspace or the store itself: the daemon feeds it and delivers through the store's outbox
// and the pusher.
package adopt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mispsentinel/listener/misp"
	"github.com/mispsentinel/listener/sentinel"
	"github.com/mispsentinel/listener/stix"
)

// FromMISP2Sentinel is the tool `listener adopt --from` knows.
const FromMISP2Sentinel = "misp2sentinel"

// Kind is the verdict on one foreign indicator.
type Kind string

const (
	// Superseded: the listener holds a live copy of the observable under its own id; the old
	// copy is revoked.
	Superseded Kind = "superseded"
	// Gone: MISP no longer flags the attribute (the event is deleted or outside the filters,
	// the attribute is deleted or lost to_ids); the old copy is revoked.
	Gone Kind = "gone"
	// Unmatched: no decision can be made (no MISP event reference, or MISP still flags the
	// attribute but the listener holds no live copy yet); reported only.
	Unmatched Kind = "unmatched"
)

// Kinds lists the verdicts in report order.
var Kinds = []Kind{Superseded, Gone, Unmatched}

// Entry is the verdict on one indicator the workspace holds.
type Entry struct {
	Kind Kind `json:"kind"`
	// ID and SourceSystem are the indicator's identity in Sentinel.
	ID           string `json:"id"`
	SourceSystem string `json:"sourcesystem"`
	Pattern      string `json:"pattern"`
	// Event is the MISP event uuid the indicator refers to ("" when none).
	Event string `json:"event,omitempty"`
	// Owner is, for superseded, the listener's indicator holding the observable.
	Owner string `json:"owner,omitempty"`
	// Reason says why, in words.
	Reason string `json:"reason"`

	held sentinel.HeldObject
}

// Held returns the indicator as the workspace holds it.
func (e Entry) Held() sentinel.HeldObject { return e.held }

// Plan is the verdict on every foreign indicator of one sink's workspace.
type Plan struct {
	Sink         string  `json:"sink"`
	SourceSystem string  `json:"sourcesystem"`
	Entries      []Entry `json:"entries"`
}

// Count returns how many entries have kind k.
func (p *Plan) Count(k Kind) int {
	n := 0
	for _, e := range p.Entries {
		if e.Kind == k {
			n++
		}
	}
	return n
}

// Revocations returns the entries to revoke: superseded and gone.
func (p *Plan) Revocations() []Entry {
	var out []Entry
	for _, e := range p.Entries {
		if e.Kind != Unmatched {
			out = append(out, e)
		}
	}
	return out
}

// Summary is a one-line account of the plan.
func (p *Plan) Summary() string {
	return fmt.Sprintf("%s: %d indicators of sourcesystem %q: superseded=%d gone=%d unmatched=%d",
		p.Sink, len(p.Entries), p.SourceSystem, p.Count(Superseded), p.Count(Gone), p.Count(Unmatched))
}

// Own is what the listener itself holds in the sink's workspace.
type Own struct {
	// SourceSystem is the sink's source system.
	SourceSystem string
	// IDs are the ids of every object the listener holds under it (revoked ones included):
	// when the other tool used the same source system, those objects are the listener's.
	IDs map[string]bool
	// Observables maps the observable key (Keys) of each live indicator whose last version
	// Sentinel accepted to its id.
	Observables map[string]string
}

// Verdict is what MISP says about one event.
type Verdict struct {
	// Found: the event exists and passes the sink's filters (time windows left out: they
	// never decide).
	Found bool
	// Flagged are the observable keys the listener exports from the event.
	Flagged map[string]bool
}

// Classify decides about each held indicator. held are the live indicators of the other
// tool's source system; events holds a verdict for every event reference among them
// (EventRef); a missing one leaves the indicator unmatched.
func Classify(sink, sourceSystem string, held []sentinel.HeldObject, own Own, events map[string]Verdict) *Plan {
	p := &Plan{Sink: sink, SourceSystem: sourceSystem}
	for _, h := range held {
		if h.SourceSystem == own.SourceSystem && own.IDs[h.ID] {
			continue // the listener's own object
		}
		e := Entry{ID: h.ID, SourceSystem: h.SourceSystem, Pattern: h.Pattern, Event: EventRef(h), held: h}
		keys := Keys(h)
		switch owner := ownerOf(keys, own.Observables); {
		case owner != "":
			e.Kind, e.Owner = Superseded, owner
			e.Reason = "the listener holds this observable as " + owner
		case len(keys) == 0:
			e.Kind, e.Reason = Unmatched, "its pattern names no observable"
		case e.Event == "":
			e.Kind, e.Reason = Unmatched, "it names no MISP event"
		default:
			v, ok := events[e.Event]
			switch {
			case !ok:
				e.Kind, e.Reason = Unmatched, "MISP event "+e.Event+" was not looked up"
			case !v.Found:
				e.Kind, e.Reason = Gone, "MISP event "+e.Event+" is deleted or outside the filters"
			case anyKey(keys, v.Flagged):
				e.Kind, e.Reason = Unmatched, "MISP event "+e.Event+" still flags it but the listener holds no live copy yet (run adopt again once it has uploaded)"
			default:
				e.Kind, e.Reason = Gone, "MISP event "+e.Event+" no longer flags it"
			}
		}
		p.Entries = append(p.Entries, e)
	}
	sort.SliceStable(p.Entries, func(i, j int) bool {
		a, b := p.Entries[i], p.Entries[j]
		if a.Kind != b.Kind {
			return slices.Index(Kinds, a.Kind) < slices.Index(Kinds, b.Kind)
		}
		return a.ID < b.ID
	})
	return p
}

func ownerOf(keys []string, owned map[string]string) string {
	for _, k := range keys {
		if id, ok := owned[k]; ok {
			return id
		}
	}
	return ""
}

func anyKey(keys []string, set map[string]bool) bool {
	for _, k := range keys {
		if set[k] {
			return true
		}
	}
	return false
}

// Keys returns the observable keys of a held indicator: one per value its pattern compares
// (sentinel.Observable.Key), with misp-stix's network-traffic references counted as the IP
// they name, so that a compound copy of misp2sentinel's misp-stix era matches a simple one.
func Keys(h sentinel.HeldObject) []string {
	obs := sentinel.PatternObservables(h.Pattern)
	if len(obs) == 0 {
		obs = h.Observables
	}
	return observableKeys(obs)
}

// PatternKeys returns the observable keys of a STIX pattern, as Keys does.
func PatternKeys(pattern string) []string {
	return observableKeys(sentinel.PatternObservables(pattern))
}

func observableKeys(obs []sentinel.Observable) []string {
	var out []string
	for _, o := range obs {
		if o.Type == "network-traffic" {
			a, err := netip.ParseAddr(o.Value)
			if err != nil {
				p, perr := netip.ParsePrefix(o.Value)
				if perr != nil {
					continue // a port or a type name
				}
				a = p.Addr()
			}
			o.Type = "ipv4-addr"
			if a.Is6() && !a.Is4In6() {
				o.Type = "ipv6-addr"
			}
		}
		if k := o.Key(); !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// summaryRef finds misp2sentinel's event summary "(<event id>-<event uuid>)" in a
// description.
var summaryRef = regexp.MustCompile(`\(\d+-([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\)`)

// EventRef returns the MISP event uuid an indicator refers to: the external_id of its
// external reference with source_name MISP (misp2sentinel and the listener both write one),
// else the "(<id>-<uuid>)" of misp2sentinel's description; "" when it names none.
func EventRef(h sentinel.HeldObject) string {
	for _, r := range h.ExternalReferences {
		if strings.EqualFold(r.SourceName, "MISP") && r.ExternalID != "" {
			return strings.ToLower(r.ExternalID)
		}
	}
	if m := summaryRef.FindStringSubmatch(h.Description); m != nil {
		return strings.ToLower(m[1])
	}
	return ""
}

// Workspace lists what a workspace holds (sentinel.Reader).
type Workspace interface {
	List(ctx context.Context, q sentinel.Query) ([]sentinel.HeldObject, error)
}

// MISP looks one event up with the filters (misp.Client).
type MISP interface {
	SearchEvent(ctx context.Context, uuid string, filters map[string]any) (*misp.Event, bool, error)
}

// Options configure Build.
type Options struct {
	Sink string
	// SourceSystem is the other tool's source system (misp2sentinel's sourcesystem).
	SourceSystem string
	Own          Own
	// Filters are the sink's MISP event filters without time windows.
	Filters map[string]any
	// Convert returns the objects the sink exports from an event.
	Convert func(ev *misp.Event) []stix.Object
}

// Build lists the live indicators of o.SourceSystem in the workspace, looks up in MISP every
// event they refer to (once each) and classifies them. A MISP error fails the plan: nothing
// is judged gone on a failed lookup.
func Build(ctx context.Context, ws Workspace, m MISP, o Options) (*Plan, error) {
	if o.SourceSystem == "" {
		return nil, errors.New("adopt: empty source system")
	}
	held, err := ws.List(ctx, sentinel.Query{SourceSystems: []string{o.SourceSystem}})
	if err != nil {
		return nil, fmt.Errorf("adopt: list the indicators of sourcesystem %q: %w", o.SourceSystem, err)
	}
	events := map[string]Verdict{}
	for _, h := range held {
		if h.SourceSystem == o.Own.SourceSystem && o.Own.IDs[h.ID] {
			continue
		}
		ev := EventRef(h)
		if _, done := events[ev]; done || ev == "" || ownerOf(Keys(h), o.Own.Observables) != "" {
			continue
		}
		found, ok, err := m.SearchEvent(ctx, ev, o.Filters)
		if err != nil {
			return nil, fmt.Errorf("adopt: look up MISP event %s: %w", ev, err)
		}
		v := Verdict{Found: ok, Flagged: map[string]bool{}}
		if ok {
			for _, obj := range o.Convert(found) {
				for _, k := range PatternKeys(objectPattern(obj.Body)) {
					v.Flagged[k] = true
				}
			}
		}
		events[ev] = v
	}
	return Classify(o.Sink, o.SourceSystem, held, o.Own, events), nil
}

// objectPattern returns the pattern of a STIX object body ("" for objects without one).
func objectPattern(body []byte) string {
	var f struct {
		Pattern string `json:"pattern"`
	}
	_ = json.Unmarshal(body, &f) // a body without a pattern has no observable
	return f.Pattern
}

// Revocation returns the object that revokes h when uploaded under h's source system: the
// object as stored with revoked: true when the workspace returned it (the STIX-objects read
// API), else a minimal indicator with h's id, created, pattern and validity (as misp2sentinel's
// own revocation builds it). The store stamps modified when it queues it. Its EventUUID is
// the id itself, so that each revocation is an event of its own in the store and a later plan
// without it never revokes it again.
func Revocation(h sentinel.HeldObject) (stix.Object, error) {
	fields := map[string]any{}
	if len(h.Data) > 0 {
		if err := json.Unmarshal(h.Data, &fields); err != nil {
			return stix.Object{}, fmt.Errorf("adopt: %s: decode the stored object: %w", h.ID, err)
		}
	}
	if len(fields) == 0 {
		created := h.Created
		if created.IsZero() {
			created = h.ValidFrom
		}
		validFrom := h.ValidFrom
		if validFrom.IsZero() {
			validFrom = created
		}
		fields = map[string]any{
			"type": "indicator", "spec_version": "2.1", "id": h.ID,
			"created": stix.FormatTime(created), "pattern": h.Pattern, "pattern_type": "stix",
			"valid_from": stix.FormatTime(validFrom),
		}
		if h.ValidUntil.After(validFrom) {
			fields["valid_until"] = stix.FormatTime(h.ValidUntil)
		}
		if created.IsZero() {
			return stix.Object{}, fmt.Errorf("adopt: %s: the workspace gave neither created nor valid_from", h.ID)
		}
	}
	fields["id"] = h.ID
	fields["revoked"] = true
	fields["modified"] = stix.FormatTime(time.Unix(0, 0)) // stamped when queued
	body, err := json.Marshal(fields)
	if err != nil {
		return stix.Object{}, fmt.Errorf("adopt: %s: encode: %w", h.ID, err)
	}
	typ, _ := fields["type"].(string)
	if typ == "" {
		typ = "indicator"
	}
	return stix.Object{ID: h.ID, Type: typ, EventUUID: h.ID, Hash: "adopt-revoke:" + h.SourceSystem + ":" + h.ID, Body: body}, nil
}
