package pipeline

import (
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mispsentinel/listener/misp"
	"github.com/mispsentinel/listener/stix"
)

// applied is what one call of the funnel did to an event, for its log line.
type applied struct {
	action string      // ActionApplied, ActionRemoved, ...
	event  *misp.Event // the content applied; nil for a removal
	stats  Stats
}

// add sums what another call did to the same event.
func (a *applied) add(st Stats) {
	if a.stats == nil {
		a.stats = Stats{}
	}
	for sink, d := range st {
		sum := a.stats[sink]
		sum.New += d.New
		sum.Changed += d.Changed
		sum.Unchanged += d.Unchanged
		sum.Refreshed += d.Refreshed
		sum.Revoked += d.Revoked
		sum.Expired += d.Expired
		a.stats[sink] = sum
	}
}

// Actions named by the "action" field of an event's log line.
const (
	ActionApplied        = "applied"         // the event's content was applied
	ActionAppliedAged    = "applied_aged"    // applied without refresh: outside the time window only
	ActionDeleted        = "deleted"         // MISP said the event is gone: everything revoked
	ActionOutsideFilters = "outside_filters" // the re-fetch or a reconcile found it filtered out or gone
	ActionSuperseded     = "superseded"      // a reconcile read older than a real-time action: left alone
)

// Sources of an event's log line besides the real-time sources' own names.
const (
	SourceReconcile = "reconcile" // a reconcile read
	SourcePending   = "pending"   // a notice the last shutdown left pending
)

// maxLoggedValue bounds an attribute value in a debug line.
const maxLoggedValue = 256

// logApplied writes the one line of an event the funnel acted on: its source, the event's
// uuid and id, what happened, per sink what changed, and how long it took. A real-time
// action (alwaysInfo) is logged at info; a reconcile read at info only when it changed
// something, at debug otherwise (a full run reads every event again).
func (p *Pipeline) logApplied(source, uuid string, a applied, took time.Duration, alwaysInfo bool) {
	changed := false
	for _, st := range a.stats {
		if st.New+st.Changed+st.Refreshed+st.Revoked+st.Expired > 0 {
			changed = true
		}
	}
	level := logrus.InfoLevel
	if !alwaysInfo && !changed {
		level = logrus.DebugLevel
	}
	if !p.cfg.Log.IsLevelEnabled(level) {
		return
	}
	fields := logrus.Fields{
		"source": source, "event_uuid": uuid, "action": a.action,
		"duration": took.Round(time.Millisecond).String(),
	}
	if a.event != nil && a.event.ID != "" {
		fields["event_id"] = a.event.ID
	}
	for _, sink := range p.cfg.Sinks {
		if st, ok := a.stats[sink.Name]; ok {
			fields["sink_"+sink.Name] = fmt.Sprintf("new=%d changed=%d revoked=%d unchanged=%d refreshed=%d expired=%d",
				st.New, st.Changed, st.Revoked, st.Unchanged, st.Refreshed, st.Expired)
		}
	}
	p.cfg.Log.WithFields(fields).Log(level, actionMessages[a.action])
}

// actionMessages are the messages of an event's line, per action.
var actionMessages = map[string]string{
	ActionApplied:        "event applied",
	ActionAppliedAged:    "event applied (outside the time window: nothing refreshed)",
	ActionDeleted:        "event deleted",
	ActionOutsideFilters: "event outside the filters or gone",
	ActionSuperseded:     "event read before a real-time action on it: left as that action left it",
}

// logDecisions writes, at debug, one line per attribute of ev: what the conversion for sink
// decided (the indicator ids exported, or the skip reason).
func (p *Pipeline) logDecisions(sink string, ev *misp.Event, res stix.Result) {
	if !p.cfg.Log.IsLevelEnabled(logrus.DebugLevel) {
		return
	}
	for _, d := range res.Decisions {
		value := d.Value
		if len(value) > maxLoggedValue {
			value = value[:maxLoggedValue] + "…"
		}
		e := p.cfg.Log.WithFields(logrus.Fields{
			"sink": sink, "event_uuid": ev.UUID, "event_id": ev.ID,
			"attribute_uuid": d.AttributeUUID, "type": d.Type, "value": value,
		})
		if d.ObjectUUID != "" {
			e = e.WithFields(logrus.Fields{"object_uuid": d.ObjectUUID, "object_name": d.ObjectName})
		}
		if d.Detail != "" {
			e = e.WithField("detail", d.Detail)
		}
		if len(d.Exported) > 0 {
			e.WithField("indicators", d.Exported).Debug("attribute exported")
			continue
		}
		e.WithField("reason", string(d.Reason)).Debug("attribute skipped")
	}
}
