package misp

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unsafe"
)

// ErrNoEvent is returned when the input holds no MISP event.
var ErrNoEvent = errors.New("no MISP event in input")

// DecodeEvent decodes one MISP event in any of the layouts MISP emits: {"Event": {...}} (REST
// view, ZeroMQ misp_json, workflow webhooks), a bare event object, or a restSearch reply
// {"response": [{"Event": {...}}]} holding exactly one event. Unknown keys (webhook extras such
// as _AttributeFlattened and _allTags included) are ignored. Errors name the offending field.
//
// DecodeEvent takes ownership of data: the event's strings point into it rather than into a
// copy (a 30 MiB webhook body is not held twice), so the caller must not modify data
// afterwards, and an event keeps its whole input alive.
func DecodeEvent(data []byte) (*Event, error) {
	events, err := decode(data)
	if err != nil {
		return nil, err
	}
	switch len(events) {
	case 0:
		return nil, fmt.Errorf("decode MISP event: %w", ErrNoEvent)
	case 1:
		return events[0], nil
	default:
		return nil, fmt.Errorf("decode MISP event: input holds %d events, want 1", len(events))
	}
}

// DecodeEvents decodes a list of MISP events: a restSearch reply {"response": [...]} (which
// may be empty), a JSON array of events (wrapped or bare), or a single event in any layout
// DecodeEvent accepts. Like DecodeEvent, it takes ownership of data.
func DecodeEvents(data []byte) ([]*Event, error) {
	return decode(data)
}

func decode(data []byte) ([]*Event, error) {
	// The decoded strings are substrings of src; data is the caller's to give away, so src
	// shares its memory instead of copying it.
	p := &parser{data: data, src: unsafe.String(unsafe.SliceData(data), len(data))}
	var events []*Event
	var err error
	if p.ws(); p.pos == len(p.data) {
		return nil, errors.New("decode MISP JSON: empty input")
	}
	switch p.peek() {
	case '[':
		events, err = p.eventList()
	case '{':
		events, err = p.envelope()
	default:
		return nil, errors.New("decode MISP JSON: input is not a JSON object or array")
	}
	if p.ws(); err == nil && p.pos < len(p.data) {
		err = errTrailingData
	}
	if err != nil {
		return nil, fmt.Errorf("decode MISP event: %w", err)
	}
	return events, nil
}

// envelope reads a top-level object: a wrapped event ({"Event": ...}, possibly with Orgc
// beside it as in misp_json_event), a restSearch reply ({"response": [...]}) or a bare event.
func (p *parser) envelope() ([]*Event, error) {
	var (
		h      eventHolder
		list   []*Event
		isList bool
	)
	err := p.object(func(key string) error {
		if key == "response" {
			isList = true
			var err error
			list, err = p.eventList()
			return err
		}
		return h.field(p, key)
	})
	if err != nil {
		return nil, err
	}
	if isList {
		return list, nil
	}
	ev, err := h.event(p)
	if err == nil && ev == nil {
		err = fmt.Errorf("%w (expected {\"Event\": {...}}, a bare event or {\"response\": [...]})", ErrNoEvent)
	}
	if err != nil {
		return nil, err
	}
	return []*Event{ev}, nil
}

// eventList reads an array whose elements are wrapped or bare events.
func (p *parser) eventList() ([]*Event, error) {
	var events []*Event
	err := p.array(func(int) error {
		var h eventHolder
		if err := p.object(func(key string) error { return h.field(p, key) }); err != nil {
			return err
		}
		ev, err := h.event(p)
		if err == nil && ev == nil {
			err = p.fail("%v", ErrNoEvent)
		}
		if err != nil {
			return err
		}
		events = append(events, ev)
		return nil
	})
	return events, err
}

// eventHolder collects the keys of an object that holds one event: wrapped ({"Event": {...}},
// possibly with the creator Orgc beside it) or bare (the event's own fields).
type eventHolder struct {
	bare     Event
	bareSeen bool
	wrapped  *Event
}

// field reads the value of key in the holding object.
func (h *eventHolder) field(p *parser, key string) error {
	if key == "Event" {
		h.wrapped = &Event{}
		return p.event(h.wrapped)
	}
	handled, err := p.eventField(&h.bare, key)
	h.bareSeen = h.bareSeen || (handled && key != "Orgc")
	return err
}

// event returns the event the object held: the wrapped one (with the Orgc beside it when it
// has none of its own), else the bare one, which must have a uuid; nil when it held neither.
func (h *eventHolder) event(p *parser) (*Event, error) {
	switch {
	case h.wrapped != nil:
		if h.wrapped.Orgc == (Org{}) {
			h.wrapped.Orgc = h.bare.Orgc
		}
		return h.wrapped, nil
	case h.bareSeen:
		if h.bare.UUID == "" {
			return nil, p.missingUUID()
		}
		return &h.bare, nil
	}
	return nil, nil
}

// missingUUID reports an event without uuid: such an event cannot be tracked.
func (p *parser) missingUUID() error {
	path := p.pathString()
	if path == "" {
		path = "Event"
	}
	return &fieldError{path: path + ".uuid", msg: "missing (an event without uuid cannot be tracked)"}
}

// event reads an event object.
func (p *parser) event(ev *Event) error {
	if err := p.object(func(key string) error {
		_, err := p.eventField(ev, key)
		return err
	}); err != nil {
		return err
	}
	if ev.UUID == "" {
		return p.missingUUID()
	}
	return nil
}

// eventField reads the value of one event key; handled reports whether the key is an event
// field (unknown keys are skipped).
func (p *parser) eventField(ev *Event, key string) (handled bool, err error) {
	handled = true
	switch key {
	case "id":
		ev.ID, err = p.text()
	case "uuid":
		ev.UUID, err = p.text()
	case "info":
		ev.Info, err = p.text()
	case "date":
		ev.Date, err = p.text()
	case "org_id":
		ev.OrgID, err = p.text()
	case "orgc_id":
		ev.OrgcID, err = p.text()
	case "threat_level_id":
		ev.ThreatLevelID, err = p.text()
	case "analysis":
		ev.Analysis, err = p.text()
	case "distribution":
		ev.Distribution, err = p.text()
	case "sharing_group_id":
		ev.SharingGroupID, err = p.text()
	case "extends_uuid":
		ev.ExtendsUUID, err = p.text()
	case "published":
		ev.Published, err = p.flag()
	case "timestamp":
		ev.Timestamp, err = p.timestamp()
	case "publish_timestamp":
		ev.PublishTimestamp, err = p.timestamp()
	case "Org":
		err = p.org(&ev.Org)
	case "Orgc":
		err = p.org(&ev.Orgc)
	case "Tag":
		ev.Tags, err = appendEach(p, ev.Tags, p.tag)
	case "EventTag":
		err = p.array(func(int) error {
			var t Tag
			var local bool
			seen := false
			err := p.object(func(key string) error {
				switch key {
				case "Tag":
					seen = true
					return p.tag(&t)
				case "local":
					var err error
					local, err = p.flag()
					return err
				}
				return p.skip()
			})
			if seen {
				t.Local = t.Local || local
				ev.Tags = append(ev.Tags, t)
			}
			return err
		})
	case "Galaxy":
		ev.Galaxies, err = p.galaxies()
	case "Attribute":
		if ev.Attributes == nil {
			ev.Attributes = make([]Attribute, 0, p.estimateCount())
		}
		ev.Attributes, err = appendEach(p, ev.Attributes, p.attribute)
		if n := len(ev.Attributes); cap(ev.Attributes) > n+n/4+16 {
			// The estimate counted object attributes too: do not keep the spare room.
			ev.Attributes = append([]Attribute(nil), ev.Attributes...)
		}
	case "Object":
		ev.Objects, err = appendEach(p, ev.Objects, p.mispObject)
	default:
		handled = false
		err = p.skip()
	}
	return handled, err
}

// mispObject reads a MISP object (a template instance grouping attributes).
func (p *parser) mispObject(o *Object) error {
	return p.object(func(key string) (err error) {
		switch key {
		case "id":
			o.ID, err = p.text()
		case "uuid":
			o.UUID, err = p.text()
		case "name":
			o.Name, err = p.text()
		case "meta-category":
			o.MetaCategory, err = p.text()
		case "description":
			o.Description, err = p.text()
		case "comment":
			o.Comment, err = p.text()
		case "template_uuid":
			o.TemplateUUID, err = p.text()
		case "template_version":
			o.TemplateVersion, err = p.text()
		case "distribution":
			o.Distribution, err = p.text()
		case "deleted":
			o.Deleted, err = p.flag()
		case "timestamp":
			o.Timestamp, err = p.timestamp()
		case "first_seen":
			o.FirstSeen, err = p.seenTime()
		case "last_seen":
			o.LastSeen, err = p.seenTime()
		case "Attribute":
			o.Attributes, err = appendEach(p, o.Attributes, p.attribute)
		default:
			err = p.skip()
		}
		return err
	})
}

// appendEach reads an array of objects, appending each to list as read reads it in place.
func appendEach[T any](p *parser, list []T, read func(*T) error) ([]T, error) {
	var zero T
	err := p.array(func(int) error {
		list = append(list, zero)
		return read(&list[len(list)-1])
	})
	return list, err
}

func (p *parser) attribute(a *Attribute) error {
	var value1, value2 string
	var hasValue bool
	err := p.object(func(key string) (err error) {
		switch key {
		case "id":
			a.ID, err = p.text()
		case "uuid":
			a.UUID, err = p.text()
		case "event_id":
			a.EventID, err = p.text()
		case "object_id":
			a.ObjectID, err = p.text()
		case "object_relation":
			a.ObjectRelation, err = p.text()
		case "type":
			a.Type, err = p.text()
		case "category":
			a.Category, err = p.text()
		case "value":
			hasValue = true
			a.Value, err = p.text()
		case "value1":
			value1, err = p.text()
		case "value2":
			value2, err = p.text()
		case "comment":
			a.Comment, err = p.text()
		case "data":
			a.Data, err = p.text()
		case "distribution":
			a.Distribution, err = p.text()
		case "sharing_group_id":
			a.SharingGroupID, err = p.text()
		case "to_ids":
			a.ToIDS, err = p.flag()
		case "deleted":
			a.Deleted, err = p.flag()
		case "disable_correlation":
			a.DisableCorrelation, err = p.flag()
		case "timestamp":
			a.Timestamp, err = p.timestamp()
		case "first_seen":
			a.FirstSeen, err = p.seenTime()
		case "last_seen":
			a.LastSeen, err = p.seenTime()
		case "Tag":
			a.Tags, err = appendEach(p, a.Tags, p.tag)
		case "Galaxy":
			a.Galaxies, err = p.galaxies()
		case "decay_score":
			a.DecayScores, err = p.decayScores()
		default:
			err = p.skip()
		}
		return err
	})
	if !hasValue && value1 != "" {
		// Raw database rows (hard deletes) carry value1/value2 but no value.
		a.Value = value1
		if value2 != "" {
			a.Value += "|" + value2
		}
	}
	return err
}

// decayScores reads an attribute's decay_score list (null or absent means none).
func (p *parser) decayScores() ([]DecayScore, error) {
	if p.peek() == 'n' {
		return nil, p.literal("null")
	}
	return appendEach(p, nil, p.decayScore)
}

func (p *parser) decayScore(s *DecayScore) error {
	return p.object(func(key string) (err error) {
		switch key {
		case "score":
			s.Score, err = p.float()
		case "base_score":
			s.BaseScore, err = p.float()
		case "decayed":
			s.Decayed, err = p.flag()
		case "DecayingModel":
			err = p.object(func(key string) (err error) {
				switch key {
				case "id":
					s.ModelID, err = p.text()
				case "name":
					s.ModelName, err = p.text()
				default:
					err = p.skip()
				}
				return err
			})
		default:
			err = p.skip()
		}
		return err
	})
}

func (p *parser) org(o *Org) error {
	if p.peek() == 'n' {
		return p.literal("null")
	}
	return p.object(func(key string) (err error) {
		switch key {
		case "id":
			o.ID, err = p.text()
		case "uuid":
			o.UUID, err = p.text()
		case "name":
			o.Name, err = p.text()
		case "local":
			o.Local, err = p.flag()
		default:
			err = p.skip()
		}
		return err
	})
}

func (p *parser) tag(t *Tag) error {
	t.Exportable = true
	return p.object(func(key string) (err error) {
		switch key {
		case "id":
			t.ID, err = p.text()
		case "name":
			t.Name, err = p.text()
		case "colour":
			t.Colour, err = p.text()
		case "exportable":
			t.Exportable, err = p.flag()
		case "local", "local_only":
			var v bool
			v, err = p.flag()
			t.Local = t.Local || v
		case "inherited":
			t.Inherited, err = p.flag()
		case "is_galaxy":
			t.IsGalaxy, err = p.flag()
		default:
			err = p.skip()
		}
		return err
	})
}

func (p *parser) galaxies() ([]Galaxy, error) {
	var gs []Galaxy
	err := p.array(func(int) error {
		var g Galaxy
		err := p.object(func(key string) (err error) {
			switch key {
			case "id":
				g.ID, err = p.text()
			case "uuid":
				g.UUID, err = p.text()
			case "name":
				g.Name, err = p.text()
			case "type":
				g.Type, err = p.text()
			case "namespace":
				g.Namespace, err = p.text()
			case "description":
				g.Description, err = p.text()
			case "GalaxyCluster":
				err = p.array(func(int) error {
					var c GalaxyCluster
					var from, to []ClusterRelation
					err := p.object(func(key string) (err error) {
						switch key {
						case "id":
							c.ID, err = p.text()
						case "uuid":
							c.UUID, err = p.text()
						case "type":
							c.Type, err = p.text()
						case "value":
							c.Value, err = p.text()
						case "tag_name":
							c.TagName, err = p.text()
						case "description":
							c.Description, err = p.text()
						case "meta":
							c.Meta, err = p.raw()
						case "GalaxyClusterRelation":
							from, err = p.clusterRelations(from)
						case "TargetingClusterRelation":
							to, err = p.clusterRelations(to)
						default:
							err = p.skip()
						}
						return err
					})
					c.addRelations(from, to)
					g.Clusters = append(g.Clusters, c)
					return err
				})
			default:
				err = p.skip()
			}
			return err
		})
		gs = append(gs, g)
		return err
	})
	return gs, err
}

// clusterRelations appends to list the relations of a cluster's GalaxyClusterRelation
// (relations from the cluster) or TargetingClusterRelation list (relations to it).
func (p *parser) clusterRelations(list []ClusterRelation) ([]ClusterRelation, error) {
	err := p.array(func(int) error {
		var r ClusterRelation
		err := p.object(func(key string) (err error) {
			switch key {
			case "galaxy_cluster_uuid":
				r.Source, err = p.text()
			case "referenced_galaxy_cluster_uuid":
				r.Target, err = p.text()
			case "referenced_galaxy_cluster_type":
				r.Type, err = p.text()
			default:
				err = p.skip()
			}
			return err
		})
		list = append(list, r)
		return err
	})
	return list, err
}

// addRelations records the cluster's relations: from are its own (their source is the
// cluster), to those that reference it (their target is the cluster). A relation without a
// type or without its other end is dropped.
func (c *GalaxyCluster) addRelations(from, to []ClusterRelation) {
	for _, r := range from {
		if r.Source == "" {
			r.Source = c.UUID
		}
		if r.Type != "" && r.Source != "" && r.Target != "" {
			c.Relations = append(c.Relations, r)
		}
	}
	for _, r := range to {
		if r.Target == "" {
			r.Target = c.UUID
		}
		if r.Type != "" && r.Source != "" && r.Target != "" {
			c.Relations = append(c.Relations, r)
		}
	}
}

// estimateCount guesses how many attributes the array at the current position holds, so that
// large events fill their slice without regrowing it: its elements, counted by a scan that
// follows only strings and brackets (the parse that follows validates), bounded by the
// array's size. It stops at the array's end: counting to the end of the input instead would
// make decoding a page quadratic in its events.
func (p *parser) estimateCount() int {
	d := p.data
	i := p.pos
	for i < len(d) && (d[i] == ' ' || d[i] == '\t' || d[i] == '\n' || d[i] == '\r') {
		i++
	}
	if i == len(d) || d[i] != '[' {
		return 0
	}
	start := i
	depth, commas, empty := 0, 0, true
	for i < len(d) {
		switch d[i] {
		case '"':
			end := stringEnd(d, i+1)
			if end < 0 {
				return 0
			}
			i, empty = end, false
		case '[', '{':
			if depth > 0 {
				empty = false
			}
			depth++
		case ']', '}':
			if depth--; depth == 0 {
				n := 0
				if !empty {
					n = commas + 1
				}
				return min(n, (i-start)/128+1, 1<<20)
			}
		case ',':
			if depth == 1 {
				commas++
			}
		case ' ', '\t', '\n', '\r':
		default:
			empty = false
		}
		i++
	}
	return 0
}

// stringEnd returns the index of the quote closing the JSON string whose text starts at i,
// or -1 when it is not terminated.
func stringEnd(d []byte, i int) int {
	for {
		q := bytes.IndexByte(d[i:], '"')
		if q < 0 {
			return -1
		}
		q += i
		backslashes := 0
		for j := q - 1; j >= i && d[j] == '\\'; j-- {
			backslashes++
		}
		if backslashes%2 == 0 {
			return q
		}
		i = q + 1
	}
}

// timestamp reads a Unix timestamp field; 0 or none is the zero time.
func (p *parser) timestamp() (time.Time, error) {
	s, err := p.unixTime()
	return s.time(), err
}

// unixSeconds is a decoded Unix timestamp; 0 is "none".
type unixSeconds int64

func (s unixSeconds) time() time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(int64(s), 0).UTC()
}

var seenLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02",
}

// seenTime reads a first_seen/last_seen value: an ISO-8601 string (MISP writes
// 2020-10-25T16:22:00.000000+00:00), a number of microseconds since the epoch (the database
// form), or null/"" for none.
func (p *parser) seenTime() (*time.Time, error) {
	kind, s, err := p.scalar()
	if err != nil || s == "" {
		return nil, err
	}
	switch kind {
	case kindNumber:
		micros, err := strconv.ParseInt(s, 10, 64)
		if err != nil || micros < 0 || micros > 253402300799_000000 {
			return nil, p.fail("cannot use %s as a time", quoteShort(s))
		}
		t := time.UnixMicro(micros).UTC()
		return &t, nil
	case kindString:
		for _, layout := range seenLayouts {
			if t, err := time.Parse(layout, s); err == nil {
				t = t.UTC()
				return &t, nil
			}
		}
	}
	return nil, p.fail("cannot use %s as a time", quoteShort(s))
}
