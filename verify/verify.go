// Package verify compares what a Sentinel sink should hold (the store's desired state, which
// the reconciler keeps equal to MISP) with what the workspace holds (read back through
// sentinel.Reader), and reports every difference by kind with counts and examples: missing,
// stale, live-but-revoked-here and foreign. With Repair it re-queues the missing and stale
// objects and the lost revocations through the store's outbox; the pusher delivers them.
//
// It never uploads, converts or decides what a sink should hold: the store says that.
package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/mispsentinel/listener/sentinel"
	"github.com/mispsentinel/listener/store"
)

// Kinds of difference.
const (
	// KindMissing: the store says the indicator should be live; the workspace does not
	// hold it live (absent, revoked or expired there).
	KindMissing = "missing"
	// KindStale: the workspace holds it live with an older modified or other content.
	KindStale = "stale"
	// KindLiveRevoked: revoked here, live there (a revocation that never took effect).
	KindLiveRevoked = "live_revoked"
	// KindForeign: the same observable live under another source system.
	KindForeign = "foreign"
)

// Kinds lists every kind, in report order.
var Kinds = []string{KindMissing, KindStale, KindLiveRevoked, KindForeign}

// Store is what the comparison reads from and repairs through (*store.Store).
type Store interface {
	Indicators(sink string, fn func(store.Indicator) error) error
	SentObject(sink, base string) ([]byte, error)
	Resend(sink string, bases []string, now time.Time) (int, error)
}

// Reader lists what a workspace holds (*sentinel.Reader).
type Reader interface {
	Each(ctx context.Context, q sentinel.Query, fn func(sentinel.HeldObject) error) error
}

// Options configure one comparison.
type Options struct {
	// Sink is the sink's name in the store; SourceSystem the sourcesystem it uploads under.
	Sink         string
	SourceSystem string
	// Lag: objects queued within it are not judged (Microsoft's query side is eventually
	// consistent).
	Lag time.Duration
	// Examples is the number of examples kept per kind.
	Examples int
	// Repair re-queues missing and stale objects and lost revocations.
	Repair bool
	// Now is the time of the comparison.
	Now time.Time
}

// Difference is one object that differs.
type Difference struct {
	Kind string `json:"kind"`
	// ID is the STIX id in the workspace (the other source system's id for foreign).
	ID string `json:"id"`
	// SourceSystem is set for foreign copies.
	SourceSystem string `json:"sourcesystem,omitempty"`
	// Detail says what differs.
	Detail string `json:"detail"`
}

// Report is the outcome of one comparison of a sink.
type Report struct {
	Sink string `json:"sink"`
	// Judged counts the store's indicators compared; NotJudged those left out (queued
	// within the lag, a version still queued, dead-lettered, never accepted).
	Judged    int `json:"judged"`
	NotJudged int `json:"not_judged"`
	// Held counts the live indicators the workspace holds under the sink's source system;
	// Unknown those of them the store has no state for (another listener's store, a lost
	// store): reported, never repaired.
	Held    int `json:"held"`
	Unknown int `json:"unknown"`
	// Counts and Examples per kind.
	Counts   map[string]int          `json:"counts"`
	Examples map[string][]Difference `json:"examples"`
	// Requeued counts the objects Repair queued again.
	Requeued int `json:"requeued"`
}

// Differences is the number of differing objects, all kinds.
func (r *Report) Differences() int {
	n := 0
	for _, c := range r.Counts {
		n += c
	}
	return n
}

// Summary is a one-line summary of the report.
func (r *Report) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: judged=%d not_judged=%d held=%d", r.Sink, r.Judged, r.NotJudged, r.Held)
	for _, k := range Kinds {
		fmt.Fprintf(&b, " %s=%d", k, r.Counts[k])
	}
	if r.Unknown > 0 {
		fmt.Fprintf(&b, " unknown=%d", r.Unknown)
	}
	if r.Requeued > 0 {
		fmt.Fprintf(&b, " requeued=%d", r.Requeued)
	}
	return b.String()
}

func (r *Report) add(o Options, d Difference) {
	r.Counts[d.Kind]++
	if len(r.Examples[d.Kind]) < o.Examples {
		r.Examples[d.Kind] = append(r.Examples[d.Kind], d)
	}
}

// Compare reads the workspace through rd and compares it with the sink's state in st.
func Compare(ctx context.Context, st Store, rd Reader, o Options) (*Report, error) {
	rep := &Report{Sink: o.Sink, Counts: map[string]int{}, Examples: map[string][]Difference{}}
	for _, k := range Kinds {
		rep.Counts[k] = 0
	}
	own := map[string]sentinel.HeldObject{} // STIX id -> our copy (live or not)
	var others []sentinel.HeldObject        // live copies of other source systems
	err := rd.Each(ctx, sentinel.Query{IncludeRevoked: true}, func(h sentinel.HeldObject) error {
		switch {
		case h.SourceSystem == o.SourceSystem:
			if prev, dup := own[h.ID]; !dup || h.Modified.After(prev.Modified) {
				own[h.ID] = h
			}
		case h.Live(o.Now):
			others = append(others, h)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("verify sink %s: %w", o.Sink, err)
	}
	for _, h := range own {
		if h.Live(o.Now) {
			rep.Held++
		}
	}

	known := map[string]bool{}
	ownLive := map[string]string{} // observable key -> our id
	var repair []string
	err = st.Indicators(o.Sink, func(ind store.Indicator) error {
		if !strings.HasPrefix(ind.ID, "indicator--") {
			return nil // the read-back APIs list indicators only
		}
		known[ind.ID] = true
		wantLive := !ind.Revoked && (ind.ValidUntil.IsZero() || ind.ValidUntil.After(o.Now))
		if !settled(ind) || (o.Lag > 0 && o.Now.Sub(ind.Modified) < o.Lag) {
			rep.NotJudged++
			if wantLive {
				// A copy of a just-queued observable elsewhere is still foreign.
				want, err := st.SentObject(o.Sink, ind.Base)
				if err != nil {
					return err
				}
				noteObservables(want, ind, ownLive)
			}
			return nil
		}
		rep.Judged++
		h, held := own[ind.ID]
		switch {
		case !wantLive:
			if held && h.Live(o.Now) {
				rep.add(o, Difference{Kind: KindLiveRevoked, ID: ind.ID, Detail: "revoked here, live in Sentinel"})
				repair = append(repair, ind.Base)
			}
			return nil
		case !held:
			rep.add(o, Difference{Kind: KindMissing, ID: ind.ID, Detail: "absent"})
			repair = append(repair, ind.Base)
		case h.Revoked:
			rep.add(o, Difference{Kind: KindMissing, ID: ind.ID, Detail: "revoked in Sentinel"})
			repair = append(repair, ind.Base)
		case !h.Live(o.Now):
			rep.add(o, Difference{Kind: KindMissing, ID: ind.ID, Detail: "expired in Sentinel (valid_until " + h.ValidUntil.Format(time.RFC3339) + ")"})
			repair = append(repair, ind.Base)
		}
		want, err := st.SentObject(o.Sink, ind.Base)
		if err != nil {
			return err
		}
		if held && h.Live(o.Now) {
			if detail := staleness(want, ind, h); detail != "" {
				rep.add(o, Difference{Kind: KindStale, ID: ind.ID, Detail: detail})
				repair = append(repair, ind.Base)
			}
		}
		noteObservables(want, ind, ownLive)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("verify sink %s: %w", o.Sink, err)
	}
	for id, h := range own {
		if !known[id] && h.Live(o.Now) {
			rep.Unknown++
		}
	}
	slices.SortFunc(others, func(a, b sentinel.HeldObject) int {
		return strings.Compare(a.SourceSystem+"/"+a.ID, b.SourceSystem+"/"+b.ID)
	})
	for _, h := range others {
		for _, ob := range h.Observables {
			if ours, ok := ownLive[ob.Key()]; ok {
				rep.add(o, Difference{Kind: KindForeign, ID: h.ID, SourceSystem: h.SourceSystem,
					Detail: fmt.Sprintf("%s %s is live here as %s", ob.Type, ob.Value, ours)})
				break
			}
		}
	}
	if o.Repair && len(repair) > 0 {
		n, err := st.Resend(o.Sink, repair, o.Now)
		rep.Requeued = n
		if err != nil {
			return rep, fmt.Errorf("verify sink %s: repair: %w", o.Sink, err)
		}
	}
	return rep, nil
}

// settled reports whether the sink holds the indicator's last version: accepted, nothing
// newer queued, not dead-lettered.
func settled(ind store.Indicator) bool { return ind.Accepted && !ind.Queued && !ind.Rejected }

// noteObservables records the observables of a live indicator of the store (want is the
// object as sent).
func noteObservables(want []byte, ind store.Indicator, ownLive map[string]string) {
	var f struct {
		Pattern string `json:"pattern"`
	}
	if json.Unmarshal(want, &f) != nil {
		return
	}
	for _, ob := range sentinel.PatternObservables(f.Pattern) {
		if _, seen := ownLive[ob.Key()]; !seen {
			ownLive[ob.Key()] = ind.ID
		}
	}
}

// staleness says how the held copy h differs from want (the object as last sent), or "".
// With the STIX-object view the whole stored object is compared (less modified, compared on
// its own, and the extension Sentinel adds); with queryIndicators the fields it returns as
// they were sent: pattern, valid_from, valid_until, confidence.
func staleness(want []byte, ind store.Indicator, h sentinel.HeldObject) string {
	if !h.Modified.IsZero() && h.Modified.Before(ind.Modified.Truncate(time.Millisecond)) {
		return fmt.Sprintf("older modified %s (sent %s)", h.Modified.Format(time.RFC3339Nano), ind.Modified.Format(time.RFC3339Nano))
	}
	var w map[string]any
	if err := json.Unmarshal(want, &w); err != nil {
		return ""
	}
	if h.Data != nil {
		var got map[string]any
		if err := json.Unmarshal(h.Data, &got); err != nil {
			return "stored object is not JSON"
		}
		return diffFields(comparable(w), comparable(got))
	}
	got := map[string]any{"pattern": h.Pattern}
	sub := map[string]any{"pattern": w["pattern"]}
	for _, f := range []struct {
		key string
		t   time.Time
	}{{"valid_from", h.ValidFrom}, {"valid_until", h.ValidUntil}} {
		if s, ok := w[f.key].(string); ok {
			t, err := time.Parse(time.RFC3339Nano, s)
			sub[f.key] = err == nil && t.Equal(f.t)
			got[f.key] = true
		}
	}
	if c, ok := w["confidence"].(float64); ok {
		sub["confidence"], got["confidence"] = c, float64(h.Confidence)
	}
	return diffFields(sub, got)
}

// comparable drops what may legitimately differ: modified (compared on its own) and the
// extension Sentinel adds to stored objects; timestamps are compared as instants, so that a
// store that rewrites "…00.000Z" as "…00Z" is not reported (UNVERIFIED whether Sentinel does).
func comparable(m map[string]any) map[string]any {
	m = maps.Clone(m)
	delete(m, "modified")
	for k, v := range m {
		if s, ok := v.(string); ok {
			if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
				m[k] = t.UTC().Format(time.RFC3339Nano)
			}
		}
	}
	if ext, ok := m["extensions"].(map[string]any); ok {
		ext = maps.Clone(ext)
		delete(ext, "sentinel-ext")
		if len(ext) == 0 {
			delete(m, "extensions")
		} else {
			m["extensions"] = ext
		}
	}
	return m
}

// diffFields names the top-level fields whose values differ, or "".
func diffFields(want, got map[string]any) string {
	var fields []string
	for k := range want {
		if !reflect.DeepEqual(want[k], got[k]) {
			fields = append(fields, k)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			fields = append(fields, k)
		}
	}
	if len(fields) == 0 {
		return ""
	}
	slices.Sort(fields)
	return "different " + strings.Join(fields, ", ")
}
