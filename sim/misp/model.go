package misp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	mispmodel "github.com/mispsentinel/listener/misp"
)

// The simulator keeps events in a compact typed form (so that a million attributes stay
// affordable) and writes them back in MISP's JSONConverter layout: ids, timestamps and enums as
// JSON strings, to_ids/deleted/published as booleans. Keys it does not model (Galaxy, Org,
// RelatedEvent, ...) are kept verbatim in extra and written back unchanged.

// tag is an event or attribute tag. Tags never change in place, so raw is its JSON as written.
type tag struct {
	name string
	raw  json.RawMessage
}

type attribute struct {
	id             int64
	uuid           string
	typ            string
	category       string
	value          string
	comment        string
	distribution   string
	sharingGroupID string
	objectRelation *string
	firstSeen      *string
	lastSeen       *string
	toIDs          bool
	deleted        bool
	disableCorr    bool
	timestamp      int64
	tags           []*tag
	sightings      []sighting
	extra          map[string]json.RawMessage
}

type object struct {
	id        int64
	uuid      string
	name      string
	timestamp int64
	deleted   bool
	attrs     []*attribute
	extra     map[string]json.RawMessage
}

type event struct {
	id               int64
	uuid             string
	info             string
	date             string
	orgID            string
	orgcID           string
	threatLevelID    string
	analysis         string
	distribution     string
	sharingGroupID   string
	published        bool
	timestamp        int64
	publishTimestamp int64
	tags             []*tag
	attrs            []*attribute
	objects          []*object
	// extra holds keys not modelled, verbatim. It may be shared between events: never
	// modify it in place.
	extra map[string]json.RawMessage
	// gen, when set, stands for generated top-level attributes not stored in attrs.
	gen *lazyAttributes
}

// topAttributes returns the attributes outside objects. Generated ones are rebuilt on each
// call and are not stored: changes to them are lost unless the event was materialized.
func (e *event) topAttributes() []*attribute {
	if e.gen != nil {
		return e.gen.build()
	}
	return e.attrs
}

// materialize stores generated attributes so that they can be edited.
func (e *event) materialize() {
	if e.gen != nil {
		e.attrs = e.gen.build()
		e.gen = nil
	}
}

// attributeCount counts all attributes, soft-deleted ones included.
func (e *event) attributeCount() int {
	n := len(e.attrs)
	if e.gen != nil {
		n = e.gen.count
	}
	for _, o := range e.objects {
		n += len(o.attrs)
	}
	return n
}

// eachAttribute calls fn for every attribute, top-level first, then object attributes.
func (e *event) eachAttribute(fn func(a *attribute)) {
	for _, a := range e.topAttributes() {
		fn(a)
	}
	for _, o := range e.objects {
		for _, a := range o.attrs {
			fn(a)
		}
	}
}

func (e *event) findAttribute(uuid string) *attribute {
	var found *attribute
	e.eachAttribute(func(a *attribute) {
		if found == nil && a.uuid == uuid {
			found = a
		}
	})
	return found
}

func (e *event) clone() *event {
	c := *e
	c.tags = slices.Clone(e.tags)
	c.attrs = make([]*attribute, len(e.attrs))
	for i, a := range e.attrs {
		ac := *a
		ac.tags = slices.Clone(a.tags)
		c.attrs[i] = &ac
	}
	c.objects = make([]*object, len(e.objects))
	for i, o := range e.objects {
		oc := *o
		oc.attrs = make([]*attribute, len(o.attrs))
		for j, a := range o.attrs {
			ac := *a
			ac.tags = slices.Clone(a.tags)
			oc.attrs[j] = &ac
		}
		c.objects[i] = &oc
	}
	return &c
}

// ---- decoding ----

// parseEvent reads an event as {"Event": {...}} or as a bare event object.
func parseEvent(data []byte) (*event, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, fmt.Errorf("decode event: %w", err)
	}
	if inner, ok := fields["Event"]; ok && len(inner) > 0 && inner[0] == '{' {
		fields = nil
		if err := json.Unmarshal(inner, &fields); err != nil {
			return nil, fmt.Errorf("decode event: %w", err)
		}
	}
	ev := &event{extra: map[string]json.RawMessage{}}
	var err error
	for k, v := range fields {
		switch k {
		case "id":
			ev.id, err = flexInt(v)
		case "uuid":
			ev.uuid, err = flexString(v)
		case "info":
			ev.info, err = flexString(v)
		case "date":
			ev.date, err = flexString(v)
		case "org_id":
			ev.orgID, err = flexString(v)
		case "orgc_id":
			ev.orgcID, err = flexString(v)
		case "threat_level_id":
			ev.threatLevelID, err = flexString(v)
		case "analysis":
			ev.analysis, err = flexString(v)
		case "distribution":
			ev.distribution, err = flexString(v)
		case "sharing_group_id":
			ev.sharingGroupID, err = flexString(v)
		case "published":
			ev.published, err = flexBool(v)
		case "timestamp":
			ev.timestamp, err = flexInt(v)
		case "publish_timestamp":
			ev.publishTimestamp, err = flexInt(v)
		case "attribute_count":
			// Recomputed on output.
		case "Tag":
			ev.tags, err = parseTags(v)
		case "Attribute":
			ev.attrs, err = parseAttributes(v)
		case "Object":
			ev.objects, err = parseObjects(v)
		default:
			ev.extra[k], err = compact(v)
		}
		if err != nil {
			return nil, fmt.Errorf("decode event field %q: %w", k, err)
		}
	}
	if ev.uuid == "" {
		return nil, errors.New("decode event: no uuid")
	}
	return ev, nil
}

func parseTags(data json.RawMessage) ([]*tag, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		return nil, err
	}
	tags := make([]*tag, 0, len(raws))
	for _, r := range raws {
		var t struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(r, &t); err != nil {
			return nil, err
		}
		c, err := compact(r)
		if err != nil {
			return nil, err
		}
		tags = append(tags, &tag{name: t.Name, raw: c})
	}
	return tags, nil
}

func parseAttributes(data json.RawMessage) ([]*attribute, error) {
	var raws []map[string]json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		return nil, err
	}
	attrs := make([]*attribute, 0, len(raws))
	for i, fields := range raws {
		a, err := parseAttribute(fields)
		if err != nil {
			return nil, fmt.Errorf("attribute %d: %w", i, err)
		}
		attrs = append(attrs, a)
	}
	return attrs, nil
}

func parseAttribute(fields map[string]json.RawMessage) (*attribute, error) {
	a := &attribute{distribution: "5", sharingGroupID: "0"}
	var err error
	for k, v := range fields {
		switch k {
		case "id":
			a.id, err = flexInt(v)
		case "uuid":
			a.uuid, err = flexString(v)
		case "type":
			a.typ, err = flexString(v)
		case "category":
			a.category, err = flexString(v)
		case "value":
			a.value, err = flexString(v)
		case "comment":
			a.comment, err = flexString(v)
		case "distribution":
			a.distribution, err = flexString(v)
		case "sharing_group_id":
			a.sharingGroupID, err = flexString(v)
		case "object_relation":
			a.objectRelation, err = nullableString(v)
		case "first_seen":
			a.firstSeen, err = nullableString(v)
		case "last_seen":
			a.lastSeen, err = nullableString(v)
		case "to_ids":
			a.toIDs, err = flexBool(v)
		case "deleted":
			a.deleted, err = flexBool(v)
		case "disable_correlation":
			a.disableCorr, err = flexBool(v)
		case "timestamp":
			a.timestamp, err = flexInt(v)
		case "Tag":
			a.tags, err = parseTags(v)
		case "event_id", "object_id", "value1", "value2":
			// Derived from the enclosing event and object on output.
		default:
			if a.extra == nil {
				a.extra = map[string]json.RawMessage{}
			}
			a.extra[k], err = compact(v)
		}
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", k, err)
		}
	}
	if a.uuid == "" {
		return nil, errors.New("no uuid")
	}
	return a, nil
}

func parseObjects(data json.RawMessage) ([]*object, error) {
	var raws []map[string]json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		return nil, err
	}
	objs := make([]*object, 0, len(raws))
	for i, fields := range raws {
		o := &object{extra: map[string]json.RawMessage{}}
		var err error
		for k, v := range fields {
			switch k {
			case "id":
				o.id, err = flexInt(v)
			case "uuid":
				o.uuid, err = flexString(v)
			case "name":
				o.name, err = flexString(v)
			case "timestamp":
				o.timestamp, err = flexInt(v)
			case "deleted":
				o.deleted, err = flexBool(v)
			case "Attribute":
				o.attrs, err = parseAttributes(v)
			case "event_id":
			default:
				o.extra[k], err = compact(v)
			}
			if err != nil {
				return nil, fmt.Errorf("object %d field %q: %w", i, k, err)
			}
		}
		objs = append(objs, o)
	}
	return objs, nil
}

// marshalPHP encodes v as PHP's JsonTool::encode does: compact, with slashes, unicode and
// HTML characters (&, <, >) unescaped.
func marshalPHP(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// compact returns v without insignificant whitespace, as PHP's JSON encoder writes it.
func compact(v json.RawMessage) (json.RawMessage, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func flexString(v json.RawMessage) (string, error) {
	if len(v) == 0 || string(v) == "null" {
		return "", nil
	}
	if v[0] == '"' {
		var s string
		err := json.Unmarshal(v, &s)
		return s, err
	}
	if _, err := strconv.ParseFloat(string(v), 64); err != nil {
		return "", fmt.Errorf("want string or number, got %.40s", v)
	}
	return string(v), nil
}

func nullableString(v json.RawMessage) (*string, error) {
	if string(v) == "null" {
		return nil, nil
	}
	s, err := flexString(v)
	return &s, err
}

func flexInt(v json.RawMessage) (int64, error) {
	s, err := flexString(v)
	if err != nil || s == "" {
		return 0, err
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("want integer, got %.40q", s)
	}
	return n, nil
}

func flexBool(v json.RawMessage) (bool, error) {
	switch strings.Trim(string(v), `"`) {
	case "true", "1":
		return true, nil
	case "false", "0", "", "null":
		return false, nil
	}
	return false, fmt.Errorf("want boolean, got %.40s", v)
}

// ---- encoding ----

// wireAttribute is an attribute in JSONConverter layout, key order as MISP writes it.
type wireAttribute struct {
	ID                 string            `json:"id"`
	Type               string            `json:"type"`
	Category           string            `json:"category"`
	ToIDs              bool              `json:"to_ids"`
	UUID               string            `json:"uuid"`
	EventID            string            `json:"event_id"`
	Distribution       string            `json:"distribution"`
	Timestamp          string            `json:"timestamp"`
	Comment            string            `json:"comment"`
	SharingGroupID     string            `json:"sharing_group_id"`
	Deleted            bool              `json:"deleted"`
	DisableCorrelation bool              `json:"disable_correlation"`
	ObjectID           string            `json:"object_id"`
	ObjectRelation     *string           `json:"object_relation"`
	FirstSeen          *string           `json:"first_seen"`
	LastSeen           *string           `json:"last_seen"`
	Value              string            `json:"value"`
	Tag                []json.RawMessage `json:"Tag,omitempty"`
	AllTags            []json.RawMessage `json:"_allTags,omitempty"`
}

var emptyArray = json.RawMessage("[]")

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func tagsJSON(tags []*tag) []json.RawMessage {
	if len(tags) == 0 {
		return nil
	}
	out := make([]json.RawMessage, len(tags))
	for i, t := range tags {
		out[i] = t.raw
	}
	return out
}

// appendJSON appends a in JSONConverter layout, shaped by sh. allTags, when non-nil, is
// written as the workflow core format's _allTags.
func (a *attribute) appendJSON(buf []byte, eventID, objectID int64, allTags []json.RawMessage, sh shape) ([]byte, error) {
	w := wireAttribute{
		ID: itoa(a.id), Type: a.typ, Category: a.category, ToIDs: a.toIDs, UUID: a.uuid,
		EventID: itoa(eventID), Distribution: a.distribution, Timestamp: itoa(a.timestamp),
		Comment: a.comment, SharingGroupID: a.sharingGroupID, Deleted: a.deleted,
		DisableCorrelation: a.disableCorr, ObjectID: itoa(objectID), ObjectRelation: a.objectRelation,
		FirstSeen: a.firstSeen, LastSeen: a.lastSeen, Value: a.value, Tag: tagsJSON(sh.tags(a.tags)),
		AllTags: allTags,
	}
	body, err := marshalPHP(&w)
	if err != nil {
		return buf, err
	}
	if a.extra == nil {
		// The common case (generated attributes): only MISP's empty relation arrays to add.
		buf = append(buf, body[:len(body)-1]...)
		return append(buf, `,"Galaxy":[],"ShadowAttribute":[]}`...), nil
	}
	extra := sh.extra(a.extra)
	if extra["Galaxy"] == nil || extra["ShadowAttribute"] == nil {
		extra = withDefaults(extra, "Galaxy", "ShadowAttribute")
	}
	return appendWithExtra(buf, body, extra)
}

func withDefaults(extra map[string]json.RawMessage, keys ...string) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(extra)+len(keys))
	for k, v := range extra {
		out[k] = v
	}
	for _, k := range keys {
		if out[k] == nil {
			out[k] = emptyArray
		}
	}
	return out
}

// appendWithExtra appends body (a JSON object) with the extra keys spliced in before its
// closing brace, in sorted order so output is deterministic.
func appendWithExtra(buf, body []byte, extra map[string]json.RawMessage) ([]byte, error) {
	if len(extra) == 0 {
		return append(buf, body...), nil
	}
	buf = append(buf, body[:len(body)-1]...)
	first := len(body) == 2
	for _, k := range slices.Sorted(mapsKeys(extra)) {
		if !first {
			buf = append(buf, ',')
		}
		first = false
		key, err := marshalPHP(k)
		if err != nil {
			return buf, err
		}
		buf = append(buf, key...)
		buf = append(buf, ':')
		buf = append(buf, extra[k]...)
	}
	return append(buf, '}'), nil
}

func mapsKeys(m map[string]json.RawMessage) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

type wireObject struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	EventID   string `json:"event_id"`
	UUID      string `json:"uuid"`
	Timestamp string `json:"timestamp"`
	Deleted   bool   `json:"deleted"`
}

type wireEvent struct {
	ID               string `json:"id"`
	OrgcID           string `json:"orgc_id"`
	OrgID            string `json:"org_id"`
	Date             string `json:"date"`
	ThreatLevelID    string `json:"threat_level_id"`
	Info             string `json:"info"`
	Published        bool   `json:"published"`
	UUID             string `json:"uuid"`
	AttributeCount   string `json:"attribute_count"`
	Analysis         string `json:"analysis"`
	Timestamp        string `json:"timestamp"`
	Distribution     string `json:"distribution"`
	PublishTimestamp string `json:"publish_timestamp"`
	SharingGroupID   string `json:"sharing_group_id"`
}

// encodeOptions select what appendEventJSON writes.
type encodeOptions struct {
	metadata bool // no attributes or objects (restSearch metadata)
	shape
	keep  func(a *attribute) bool // attribute filter; nil keeps all
	core  bool                    // workflow core format: _AttributeFlattened and _allTags
	decay *decayScorer            // attach decay_score lists (includeDecayScore)
}

// shape holds the events/restSearch parameters that leave parts of the answer out without
// changing which events or attributes it holds (Event::fetchEvent options).
type shape struct {
	excludeGalaxy    bool // Galaxy lists are empty (__attachGalaxies still sets them)
	sgReferenceOnly  bool // no SharingGroup objects, only sharing_group_id
	excludeLocalTags bool // local tags are left out (EventTag/AttributeTag local = 0)
}

// tags returns the tags the answer carries.
func (sh shape) tags(tags []*tag) []*tag {
	if !sh.excludeLocalTags {
		return tags
	}
	out := make([]*tag, 0, len(tags))
	for _, t := range tags {
		if !t.isLocal() {
			out = append(out, t)
		}
	}
	return out
}

// extra returns the unmodelled keys of an event, object or attribute as the answer writes
// them: without drop, with Galaxy emptied under excludeGalaxy and SharingGroup left out under
// sgReferenceOnly. extra itself is never modified.
func (sh shape) extra(extra map[string]json.RawMessage, drop ...string) map[string]json.RawMessage {
	if len(drop) == 0 && !sh.excludeGalaxy && !sh.sgReferenceOnly {
		return extra
	}
	change := func(k string) bool {
		return slices.Contains(drop, k) || (k == "Galaxy" && sh.excludeGalaxy) || (k == "SharingGroup" && sh.sgReferenceOnly)
	}
	if !slices.ContainsFunc(slices.Collect(mapsKeys(extra)), change) {
		return extra
	}
	out := make(map[string]json.RawMessage, len(extra))
	for k, v := range extra {
		switch {
		case k == "Galaxy" && sh.excludeGalaxy && !slices.Contains(drop, k):
			out[k] = emptyArray
		case change(k):
		default:
			out[k] = v
		}
	}
	return out
}

// isLocal reports whether the tag is attached locally (its "local" is true or 1).
func (t *tag) isLocal() bool {
	var f struct {
		Local json.RawMessage `json:"local"`
	}
	if json.Unmarshal(t.raw, &f) != nil || f.Local == nil {
		return false
	}
	local, _ := flexBool(f.Local)
	return local
}

// metadataLeavesOut are the event keys a metadata answer has not: Event::fetchEvent drops the
// Attribute, ShadowAttribute, Object and EventReport contains.
var metadataLeavesOut = []string{"ShadowAttribute", "EventReport"}

// appendJSON appends the event object (without the {"Event": } wrapper).
func (e *event) appendJSON(buf []byte, opt encodeOptions) ([]byte, error) {
	keep := opt.keep
	if keep == nil {
		keep = func(*attribute) bool { return true }
	}
	var top []*attribute
	count := 0
	if opt.metadata {
		// MISP reads attribute_count from the events table (Event::fetchEvent leaves the
		// Attribute and Object contains out, not the column): the event's live attributes.
		// Generated attributes not materialized were never edited, so none is deleted.
		stored := e.attrs
		if e.gen != nil {
			stored, count = nil, e.gen.count
		}
		for _, a := range stored {
			if !a.deleted {
				count++
			}
		}
		for _, o := range e.objects {
			for _, a := range o.attrs {
				if !a.deleted {
					count++
				}
			}
		}
	} else {
		top = e.topAttributes()
		for _, a := range top {
			if keep(a) {
				count++
			}
		}
		for _, o := range e.objects {
			for _, a := range o.attrs {
				if keep(a) {
					count++
				}
			}
		}
	}
	w := wireEvent{
		ID: itoa(e.id), OrgcID: e.orgcID, OrgID: e.orgID, Date: e.date, ThreatLevelID: e.threatLevelID,
		Info: e.info, Published: e.published, UUID: e.uuid, AttributeCount: strconv.Itoa(count),
		Analysis: e.analysis, Timestamp: itoa(e.timestamp), Distribution: e.distribution,
		PublishTimestamp: itoa(e.publishTimestamp), SharingGroupID: e.sharingGroupID,
	}
	body, err := marshalPHP(&w)
	if err != nil {
		return buf, err
	}
	buf = append(buf, body[:len(body)-1]...)

	var eventTags []json.RawMessage
	if opt.core {
		for _, t := range e.tags {
			eventTags = append(eventTags, withField(t.raw, "inherited", true))
		}
	}
	allTags := func(a *attribute) []json.RawMessage {
		if !opt.core {
			return nil
		}
		out := slices.Clone(eventTags)
		for _, t := range a.tags {
			out = append(out, withField(t.raw, "inherited", false))
		}
		if out == nil {
			out = []json.RawMessage{}
		}
		return out
	}
	scores := func(*attribute) json.RawMessage { return nil }
	if opt.decay != nil {
		scores = func(a *attribute) json.RawMessage { return opt.decay.scores(e, a) }
	}
	if !opt.metadata {
		buf = append(buf, `,"Attribute":[`...)
		if buf, err = appendAttributes(buf, top, keep, e.id, 0, allTags, scores, false, opt.shape); err != nil {
			return buf, err
		}
		buf = append(buf, `],"Object":[`...)
		first := true
		for _, o := range e.objects {
			if !slices.ContainsFunc(o.attrs, keep) {
				continue // JSONConverterTool drops objects left without attributes
			}
			if !first {
				buf = append(buf, ',')
			}
			first = false
			ob, err := marshalPHP(wireObject{ID: itoa(o.id), Name: o.name, EventID: itoa(e.id), UUID: o.uuid, Timestamp: itoa(o.timestamp), Deleted: o.deleted})
			if err != nil {
				return buf, err
			}
			buf = append(buf, ob[:len(ob)-1]...)
			buf = append(buf, `,"Attribute":[`...)
			if buf, err = appendAttributes(buf, o.attrs, keep, e.id, o.id, allTags, scores, false, opt.shape); err != nil {
				return buf, err
			}
			buf = append(buf, ']')
			if buf, err = appendExtra(buf, opt.shape.extra(o.extra)); err != nil {
				return buf, err
			}
			buf = append(buf, '}')
		}
		buf = append(buf, ']')
		if opt.core {
			buf = append(buf, `,"_AttributeFlattened":[`...)
			if buf, err = appendAttributes(buf, top, keep, e.id, 0, allTags, scores, false, opt.shape); err != nil {
				return buf, err
			}
			for _, o := range e.objects {
				if buf, err = appendAttributes(buf, o.attrs, keep, e.id, o.id, allTags, scores, buf[len(buf)-1] != '[', opt.shape); err != nil {
					return buf, err
				}
			}
			buf = append(buf, ']')
		}
	}
	buf = append(buf, `,"Tag":[`...)
	for i, t := range opt.shape.tags(e.tags) {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, t.raw...)
	}
	buf = append(buf, ']')
	var drop []string
	if opt.metadata {
		drop = metadataLeavesOut
	}
	if buf, err = appendExtra(buf, opt.shape.extra(e.extra, drop...)); err != nil {
		return buf, err
	}
	return append(buf, '}'), nil
}

// appendAttributes appends the kept attributes of attrs, comma-separated (with a leading
// comma when comma is set and something is written).
func appendAttributes(buf []byte, attrs []*attribute, keep func(*attribute) bool, eventID, objectID int64, allTags func(*attribute) []json.RawMessage, scores func(*attribute) json.RawMessage, comma bool, sh shape) ([]byte, error) {
	var err error
	for _, a := range attrs {
		if !keep(a) {
			continue
		}
		if comma {
			buf = append(buf, ',')
		}
		comma = true
		if buf, err = a.appendJSON(buf, eventID, objectID, allTags(a), sh); err != nil {
			return buf, err
		}
		if ds := scores(a); ds != nil {
			buf = append(buf[:len(buf)-1], `,"decay_score":`...)
			buf = append(append(buf, ds...), '}')
		}
	}
	return buf, nil
}

// writtenKeys are written by appendJSON itself and skipped when they also appear in extra.
var writtenKeys = map[string]bool{"Attribute": true, "Object": true, "Tag": true, "_AttributeFlattened": true}

// appendExtra appends ,"key":value for the extra keys in sorted order.
func appendExtra(buf []byte, extra map[string]json.RawMessage) ([]byte, error) {
	for _, k := range slices.Sorted(mapsKeys(extra)) {
		if writtenKeys[k] {
			continue
		}
		key, err := marshalPHP(k)
		if err != nil {
			return buf, err
		}
		buf = append(buf, ',')
		buf = append(buf, key...)
		buf = append(buf, ':')
		buf = append(buf, extra[k]...)
	}
	return buf, nil
}

// withField returns the JSON object raw with key set to v.
func withField(raw json.RawMessage, key string, v any) json.RawMessage {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return raw
	}
	b, _ := marshalPHP(v)
	m[key] = b
	out, _ := marshalPHP(m)
	return out
}

// fromModel converts a decoded event to the simulator's form.
func fromModel(e *mispmodel.Event) *event {
	ev := &event{
		uuid: e.UUID, info: e.Info, date: e.Date, orgID: e.OrgID, orgcID: e.OrgcID,
		threatLevelID: e.ThreatLevelID, analysis: e.Analysis, distribution: e.Distribution,
		sharingGroupID: e.SharingGroupID, published: e.Published,
		timestamp: unix(e.Timestamp), publishTimestamp: unix(e.PublishTimestamp),
		extra: map[string]json.RawMessage{},
	}
	ev.id, _ = strconv.ParseInt(e.ID, 10, 64)
	if org, err := marshalPHP(map[string]any{"id": e.Org.ID, "uuid": e.Org.UUID, "name": e.Org.Name, "local": e.Org.Local}); err == nil {
		ev.extra["Org"] = org
	}
	if org, err := marshalPHP(map[string]any{"id": e.Orgc.ID, "uuid": e.Orgc.UUID, "name": e.Orgc.Name, "local": e.Orgc.Local}); err == nil {
		ev.extra["Orgc"] = org
	}
	ev.extra["extends_uuid"] = jsonString(e.ExtendsUUID)
	ev.tags = tagsFromModel(e.Tags)
	for i := range e.Attributes {
		ev.attrs = append(ev.attrs, attributeFromModel(&e.Attributes[i]))
	}
	for i := range e.Objects {
		mo := &e.Objects[i]
		o := &object{uuid: mo.UUID, name: mo.Name, timestamp: unix(mo.Timestamp), deleted: mo.Deleted, extra: map[string]json.RawMessage{
			"meta-category": jsonString(mo.MetaCategory), "description": jsonString(mo.Description),
			"comment": jsonString(mo.Comment), "template_uuid": jsonString(mo.TemplateUUID),
			"template_version": jsonString(mo.TemplateVersion), "distribution": jsonString(mo.Distribution),
		}}
		o.id, _ = strconv.ParseInt(mo.ID, 10, 64)
		for j := range mo.Attributes {
			o.attrs = append(o.attrs, attributeFromModel(&mo.Attributes[j]))
		}
		ev.objects = append(ev.objects, o)
	}
	return ev
}

func attributeFromModel(ma *mispmodel.Attribute) *attribute {
	a := &attribute{
		uuid: ma.UUID, typ: ma.Type, category: ma.Category, value: ma.Value, comment: ma.Comment,
		distribution: ma.Distribution, sharingGroupID: ma.SharingGroupID, toIDs: ma.ToIDS,
		deleted: ma.Deleted, disableCorr: ma.DisableCorrelation, timestamp: unix(ma.Timestamp),
		tags: tagsFromModel(ma.Tags), firstSeen: seen(ma.FirstSeen), lastSeen: seen(ma.LastSeen),
	}
	if ma.ObjectRelation != "" {
		rel := ma.ObjectRelation
		a.objectRelation = &rel
	}
	a.id, _ = strconv.ParseInt(ma.ID, 10, 64)
	return a
}

func tagsFromModel(tags []mispmodel.Tag) []*tag {
	out := make([]*tag, 0, len(tags))
	for _, t := range tags {
		nt := newTag(t.Name)
		nt.raw = withField(withField(withField(nt.raw, "local", t.Local), "exportable", t.Exportable), "is_galaxy", t.IsGalaxy)
		if t.ID != "" {
			nt.raw = withField(nt.raw, "id", t.ID)
		}
		if t.Colour != "" {
			nt.raw = withField(nt.raw, "colour", t.Colour)
		}
		out = append(out, nt)
	}
	return out
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// seen formats first_seen/last_seen as MISP does: microseconds and a numeric offset.
func seen(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := t.UTC().Format("2006-01-02T15:04:05.000000-07:00")
	return &s
}

func jsonString(s string) json.RawMessage {
	b, _ := marshalPHP(s)
	return b
}
