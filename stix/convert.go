package stix

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/mispsentinel/listener/misp"
)

// identityCreated is the fixed "created" time of identity objects. Identities are shared by
// every event of an organisation, so nothing event-specific may enter their content.
var identityCreated = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// Convert builds the STIX objects ev should yield under opts, and a decision for each of its
// attributes. It is pure: now is the only time it uses, for expiry and for attributes
// without any timestamp. opts should have passed Validate; unknown values fall back to the
// zero-value behaviour.
func Convert(ev *misp.Event, opts Options, now time.Time) Result {
	c := newConverter(ev, &opts, now.UTC())
	n := ev.AttributeCount()
	objects := n + 1
	if c.context != nil {
		objects += c.context.objectCapacity(ev)
	}
	res := Result{Decisions: make([]Decision, 0, n), Objects: make([]Object, 0, objects)}
	if c.identity != nil {
		res.Objects = append(res.Objects, *c.identity)
	}
	ev.AllAttributes(func(obj *misp.Object, attr *misp.Attribute) bool {
		c.attribute(&res, obj, attr)
		if c.context != nil {
			c.context.link(&res, c.ev, attr, res.Decisions[len(res.Decisions)-1].Exported)
		}
		return true
	})
	if c.context != nil {
		c.context.finish(&res)
	}
	return res
}

// converter holds what is common to all attributes of one event, JSON fragments included, so
// that each attribute costs only its own fields.
type converter struct {
	ev      *misp.Event
	opts    *Options
	now     time.Time
	profile Profile

	event       tagFacts
	eventLabels []string
	identity    *Object
	identityID  string
	summary     string
	summaryJSON []byte        // summary as a JSON string
	infoJSON    []byte        // event info as a JSON string
	extRefs     []byte        // JSON array
	seen        *idSet        // the indicator ids exported so far
	context     *contextState // nil when the sink exports no context

	// fragments for attributes without tags of their own
	defaultFacts resolvedFacts

	// tails caches the shared indicator fields (see eventTail).
	tails [4]commonFields

	// timeCache remembers the last formatted times: an event's attributes share a few.
	timeCache [4]cachedTime
	timeNext  int

	// arena holds the indicator bodies, cut from chunks sized for the event (one allocation
	// per few hundred indicators instead of one each); exported holds the Decision.Exported
	// lists the same way. ids computes the UUIDv5 ids.
	arena      []byte
	exported   []string
	attributes int // the event's attribute count, to size the chunks
	ids        idHasher
}

type cachedTime struct {
	t time.Time
	s string
}

// formatTime is FormatTime with a small cache of recent results.
func (c *converter) formatTime(t time.Time) string {
	for i := range c.timeCache {
		if e := &c.timeCache[i]; e.s != "" && e.t.Equal(t) {
			return e.s
		}
	}
	s := FormatTime(t)
	c.timeCache[c.timeNext] = cachedTime{t, s}
	c.timeNext = (c.timeNext + 1) % len(c.timeCache)
	return s
}

// resolvedFacts are the tag-derived fields of one indicator.
type resolvedFacts struct {
	tlp           tlpLevel
	hasTLP        bool
	confidence    int
	hasConfidence bool
	threatTypes   []string
	killChain     []string
	labels        []string
	// JSON fragments, built once per distinct fact set
	labelsJSON, threatJSON, killJSON []byte
}

func newConverter(ev *misp.Event, opts *Options, now time.Time) *converter {
	c := &converter{ev: ev, opts: opts, now: now, profile: opts.Profile, seen: newIDSet(ev.AttributeCount())}
	if c.profile == "" {
		c.profile = ProfileSentinel
	}
	c.event = readTags(ev.Tags, opts.IncludeLocalTags)
	c.eventLabels = filterLabels(c.event.labels, opts)
	c.summary = eventSummary(ev)
	c.summaryJSON = appendString(nil, c.summary)
	if ev.Info != "" {
		c.infoJSON = appendString(nil, ev.Info)
	}
	c.extRefs = externalReferences(ev, opts.MISPURL)
	c.identity = identityObject(ev)
	if c.identity != nil {
		c.identityID = c.identity.ID
	}
	c.defaultFacts = c.resolve(tagFacts{}, nil)
	c.context = newContextState(ev, opts)
	c.attributes = ev.AttributeCount()
	c.exported = make([]string, 0, c.attributes)
	if c.context != nil {
		c.context.attributes = c.attributes
	}
	return c
}

func eventSummary(ev *misp.Event) string {
	var b strings.Builder
	b.WriteString("MISP event")
	if ev.ID != "" {
		b.WriteString(" " + ev.ID)
	}
	b.WriteString(" " + ev.UUID)
	if ev.Info != "" {
		b.WriteString(" \"" + ev.Info + "\"")
	}
	if ev.Orgc.Name != "" {
		b.WriteString(" by " + ev.Orgc.Name)
	}
	if ev.Date != "" {
		b.WriteString(" on " + ev.Date)
	}
	return b.String()
}

func externalReferences(ev *misp.Event, mispURL string) []byte {
	b := []byte(`[{"source_name":"MISP"`)
	desc := "MISP event"
	if ev.Info != "" {
		desc += ": " + ev.Info
	}
	b = appendField(b, "description", desc)
	b = appendField(b, "external_id", ev.UUID)
	if mispURL != "" {
		b = appendField(b, "url", strings.TrimRight(mispURL, "/")+"/events/view/"+ev.UUID)
	}
	return append(b, '}', ']')
}

// identityObject builds the identity of the event's creator organisation, or nil when the
// event names none.
func identityObject(ev *misp.Event) *Object {
	org := ev.Orgc
	var id string
	if u, err := uuid.Parse(org.UUID); err == nil {
		id = "identity--" + u.String()
	} else if org.Name != "" {
		id = "identity--" + uuid.NewSHA1(Namespace, []byte("identity/"+org.Name)).String()
	} else {
		return nil
	}
	name := org.Name
	if name == "" {
		name = org.UUID
	}
	b := make([]byte, 0, 256)
	b = append(b, `{"type":"identity","spec_version":"2.1"`...)
	b = appendField(b, "id", id)
	b = appendField(b, "created", FormatTime(identityCreated))
	b = appendField(b, "name", name)
	b = appendField(b, "identity_class", "organization")
	hash := contentHash(b)
	b = appendField(b, "modified", FormatTime(identityCreated))
	b = append(b, '}')
	return &Object{ID: id, Type: "identity", Hash: hash, Shared: true, Body: b}
}

// contentHash identifies the content written so far (every field but modified and
// valid_until, which Convert always writes last).
func contentHash(prefix []byte) string {
	sum := sha256.Sum256(prefix)
	return hex.EncodeToString(sum[:16])
}

// resolve combines an attribute's tags with the event's: the attribute wins for TLP,
// confidence and threat types; kill chain phases and labels are merged.
func (c *converter) resolve(attr tagFacts, attrLabels []string) resolvedFacts {
	r := resolvedFacts{}
	switch {
	case attr.hasTLP:
		r.tlp, r.hasTLP = attr.tlp, true
	case c.event.hasTLP:
		r.tlp, r.hasTLP = c.event.tlp, true
	case c.opts.DefaultTLP != "":
		r.tlp, r.hasTLP = parseTLP(c.opts.DefaultTLP)
	}
	switch {
	case attr.hasConfidence:
		r.confidence, r.hasConfidence = attr.confidence, true
	case c.event.hasConfidence:
		r.confidence, r.hasConfidence = c.event.confidence, true
	case c.opts.DefaultConfidence > 0:
		r.confidence, r.hasConfidence = c.opts.DefaultConfidence, true
	}
	switch {
	case len(attr.threatTypes) > 0:
		r.threatTypes = attr.threatTypes
	case len(c.event.threatTypes) > 0:
		r.threatTypes = c.event.threatTypes
	case c.opts.DefaultThreatType != "":
		r.threatTypes = []string{c.opts.DefaultThreatType}
	}
	r.killChain = attr.killChain
	for _, p := range c.event.killChain {
		r.killChain = appendUnique(r.killChain, p)
	}
	r.labels = attrLabels
	for _, l := range c.eventLabels {
		r.labels = appendUnique(r.labels, l)
	}
	if len(r.labels) > 0 {
		r.labelsJSON = appendStrings(nil, r.labels)
	}
	if len(r.threatTypes) > 0 {
		r.threatJSON = appendStrings(nil, r.threatTypes)
	}
	r.killJSON = c.killChainJSON(r.killChain)
	return r
}

func (c *converter) killChainJSON(phases []string) []byte {
	if len(phases) == 0 {
		return nil
	}
	b := []byte{'['}
	for i, p := range phases {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"kill_chain_name":"lockheed-martin-cyber-kill-chain","phase_name":`...)
		b = appendString(b, p)
		b = append(b, '}')
	}
	return append(b, ']')
}

// indicatorID returns the generation-0 id of an attribute's indicator (component "" for an
// attribute that yields one indicator).
func (c *converter) indicatorID(attr *misp.Attribute, obj *misp.Object, componentName string) string {
	key := attr.UUID
	if key == "" {
		// No uuid: derive one from what identifies the attribute within its event.
		objUUID := ""
		if obj != nil {
			objUUID = obj.UUID
		}
		key = "event/" + c.ev.UUID + "/object/" + objUUID + "/" + attr.ObjectRelation + "/" + attr.Type + "/" + attr.Value
	}
	if componentName == "" {
		if isCanonicalUUIDv4(key) {
			return "indicator--" + key // what the parse below writes back, without parsing
		}
		if u, err := uuid.Parse(key); err == nil && u.Version() == 4 && u.Variant() == uuid.RFC4122 {
			return "indicator--" + u.String()
		}
		return c.ids.v5("indicator--", key)
	}
	return c.ids.v5("indicator--", key, "/", componentName)
}

// isCanonicalUUIDv4 reports whether s is a version-4, RFC 4122 variant UUID in the canonical
// lowercase form uuid.UUID.String writes.
func isCanonicalUUIDv4(s string) bool {
	if len(s) != 36 || s[14] != '4' || !strings.ContainsRune("89ab", rune(s[19])) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// attribute decides about one attribute and appends its decision and indicators.
func (c *converter) attribute(res *Result, obj *misp.Object, attr *misp.Attribute) {
	d := Decision{AttributeUUID: attr.UUID, Type: attr.Type, Value: attr.Value}
	if obj != nil {
		d.ObjectUUID, d.ObjectName = obj.UUID, obj.Name
	}
	skip := func(r SkipReason, detail string) {
		d.Reason, d.Detail = r, detail
		res.Decisions = append(res.Decisions, d)
	}
	spec, reason, detail := c.screen(obj, attr)
	if reason != "" {
		skip(reason, detail)
		return
	}
	decay, decayed := c.decay(attr)
	if decayed != "" {
		skip(SkipDecayed, decayed)
		return
	}
	var own resolvedFacts // storage for facts of the attribute's own, kept on the stack
	facts := c.attributeFacts(attr, decay, &own)
	if reason, detail := c.screenFacts(facts); reason != "" {
		skip(reason, detail)
		return
	}
	comps, partial, err := buildComponents(spec, attr.Type, attr.Value, attr.Data, c.profile, compositeMode(spec, attr.Type, c.profile, c.opts.Composite))
	if err != nil {
		skip(SkipInvalidValue, err.Error())
		return
	}
	expired, decayedComps, details := c.exportComponents(res, &d, obj, attr, comps, partial, facts, decay)
	if len(d.Exported) == 0 {
		reason := SkipDuplicate
		switch {
		case decayedComps > 0:
			reason = SkipDecayed
		case expired > 0:
			reason = SkipExpired
		}
		skip(reason, strings.Join(details, "; "))
		return
	}
	d.Detail = strings.Join(details, "; ")
	res.Decisions = append(res.Decisions, d)
}

// screen applies the checks that need only the attribute and the sink's options, in the order
// of the SkipReasons: soft deletion, to_ids, the type table, the type, pattern-language and
// tag filters. It returns the attribute's type spec, or the reason it is skipped.
func (c *converter) screen(obj *misp.Object, attr *misp.Attribute) (typeSpec, SkipReason, string) {
	opts := c.opts
	switch {
	case attr.Deleted:
		return typeSpec{}, SkipDeleted, "attribute is soft-deleted"
	case obj != nil && obj.Deleted:
		return typeSpec{}, SkipDeleted, "its object is soft-deleted"
	case !attr.ToIDS:
		return typeSpec{}, SkipNotIDS, "to_ids is off"
	}
	spec, ok := typeTable[attr.Type]
	if !ok {
		return spec, SkipUnsupportedType, fmt.Sprintf("type %q yields no indicator", attr.Type)
	}
	if (len(opts.Filter.IncludeTypes) > 0 && !slices.Contains(opts.Filter.IncludeTypes, attr.Type)) ||
		slices.Contains(opts.Filter.ExcludeTypes, attr.Type) {
		return spec, SkipFilteredType, fmt.Sprintf("type %q is filtered out for this sink", attr.Type)
	}
	if spec.kind == kindPatternLang && !slices.Contains(opts.ExportPatternLanguages, attr.Type) {
		return spec, SkipPatternLanguage, fmt.Sprintf("%s rules are not exported (export_pattern_languages)", attr.Type)
	}
	if len(opts.Filter.IncludeTags) > 0 && !anyTagMatches(attr.Tags, c.ev.Tags, opts.Filter.IncludeTags) {
		return spec, SkipFilteredTag, "carries none of the sink's include tags"
	}
	if len(opts.Filter.ExcludeTags) > 0 && anyTagMatches(attr.Tags, c.ev.Tags, opts.Filter.ExcludeTags) {
		return spec, SkipFilteredTag, "carries one of the sink's exclude tags"
	}
	return spec, "", ""
}

// attributeFacts returns what the attribute's tags (over the event's) say: confidence, TLP,
// labels and the rest, with the confidence taken from the decay score when the sink asks for
// that. Facts of the attribute's own are built in own; attributes without tags of their own
// and without a score-based confidence share the event's.
func (c *converter) attributeFacts(attr *misp.Attribute, decay decayVerdict, own *resolvedFacts) *resolvedFacts {
	facts := &c.defaultFacts
	if len(attr.Tags) > 0 {
		at := readTags(attr.Tags, c.opts.IncludeLocalTags)
		*own = c.resolve(at, filterLabels(at.labels, c.opts))
		facts = own
	}
	if decay.judged && c.opts.Decay.ConfidenceFromScore {
		*own = *facts
		own.confidence, own.hasConfidence = scoreConfidence(decay.score), true
		facts = own
	}
	return facts
}

// screenFacts applies the sink's confidence minimum and TLP ceiling.
func (c *converter) screenFacts(facts *resolvedFacts) (SkipReason, string) {
	f := c.opts.Filter
	if f.MinConfidence > 0 && facts.confidence < f.MinConfidence {
		return SkipBelowConfidence, fmt.Sprintf("confidence %d is below the sink's minimum %d", facts.confidence, f.MinConfidence)
	}
	if f.MaxTLP != "" && facts.hasTLP {
		if ceiling, _ := parseTLP(f.MaxTLP); facts.tlp.rank > ceiling.rank {
			return SkipAboveTLP, fmt.Sprintf("TLP:%s is above the sink's ceiling TLP:%s", strings.ToUpper(facts.tlp.name), strings.ToUpper(ceiling.name))
		}
	}
	return "", ""
}

// exportComponents builds the indicator of every component that is neither decayed, expired
// nor already exported by another attribute, appending it to res and its id to d.Exported. It
// returns how many components had decayed or expired and the details of those not exported.
func (c *converter) exportComponents(res *Result, d *Decision, obj *misp.Object, attr *misp.Attribute, comps []component, partial []componentError, facts *resolvedFacts, decay decayVerdict) (expired, decayed int, details []string) {
	ts, validFrom, lastSeen := c.attributeTimes(obj, attr)
	exported := 0
	for _, p := range partial {
		details = append(details, fmt.Sprintf("component %s skipped (%s): %v", p.name, SkipInvalidValue, p.err))
	}
	for _, comp := range comps {
		// A named component is one part of a split attribute, with an id of its own.
		id := c.indicatorID(attr, obj, comp.name)
		validUntil := c.validUntil(comp.observable, validFrom, lastSeen)
		if !decay.until.IsZero() && (validUntil.IsZero() || decay.until.Before(validUntil)) {
			// The decaying model ends the indicator before its lifetime does.
			validUntil = decay.until
			if !validUntil.After(c.now) {
				decayed++
				details = append(details, fmt.Sprintf("%s decayed below the sink's min_score at %s", componentLabel(comp, id), c.formatTime(validUntil)))
				continue
			}
		}
		if !validUntil.IsZero() && !validUntil.After(c.now) {
			expired++
			details = append(details, fmt.Sprintf("%s expired at %s", componentLabel(comp, id), c.formatTime(validUntil)))
			continue
		}
		if !c.seen.add(id) {
			details = append(details, fmt.Sprintf("%s already exported by another attribute of the event", componentLabel(comp, id)))
			continue
		}
		res.Objects = append(res.Objects, c.indicator(id, attr, obj, comp, facts, ts, validFrom, validUntil))
		c.exported = append(c.exported, id)
		exported++
	}
	if exported > 0 {
		end := len(c.exported)
		d.Exported = c.exported[end-exported : end : end]
	}
	return expired, decayed, details
}

// attributeTimes returns the attribute's timestamp (falling back to its object's, the
// event's, then now), the start of its validity (first_seen, else the timestamp) and its
// last_seen; an object attribute inherits the object's first and last seen.
func (c *converter) attributeTimes(obj *misp.Object, attr *misp.Attribute) (ts, validFrom time.Time, lastSeen *time.Time) {
	ts = firstNonZero(attr.Timestamp, objTimestamp(obj), c.ev.Timestamp, c.now)
	firstSeen, lastSeen := attr.FirstSeen, attr.LastSeen
	if obj != nil {
		if firstSeen == nil {
			firstSeen = obj.FirstSeen
		}
		if lastSeen == nil {
			lastSeen = obj.LastSeen
		}
	}
	validFrom = ts
	if firstSeen != nil {
		validFrom = *firstSeen
	}
	return ts, validFrom, lastSeen
}

func componentLabel(comp component, id string) string {
	if comp.name != "" {
		return "component " + comp.name + " (" + id + ")"
	}
	return id
}

func objTimestamp(obj *misp.Object) time.Time {
	if obj == nil {
		return time.Time{}
	}
	return obj.Timestamp
}

func firstNonZero(ts ...time.Time) time.Time {
	for _, t := range ts {
		if !t.IsZero() {
			return t.UTC()
		}
	}
	return time.Time{}
}

// validUntil returns the indicator's expiry: last_seen when it is after valid_from and not
// ignored, else the configured lifetime from the configured start, never before valid_from;
// zero when the lifetime is 0.
func (c *converter) validUntil(observable string, validFrom time.Time, lastSeen *time.Time) time.Time {
	if lastSeen != nil && !c.opts.IgnoreLastSeen && lastSeen.After(validFrom) {
		return lastSeen.UTC()
	}
	days, ok := c.opts.DaysToExpireByType[observable]
	if !ok {
		days = c.opts.DaysToExpire
	}
	if days <= 0 {
		return time.Time{}
	}
	lifetime := time.Duration(days) * 24 * time.Hour
	start := c.now
	if c.opts.ExpiryStart == ExpiryFromValidFrom {
		start = validFrom
	}
	until := start.Add(lifetime)
	if !until.After(validFrom) {
		until = validFrom.Add(lifetime)
	}
	return until
}

// indicator writes one indicator object. Fields are written in a fixed order with modified
// and valid_until last, so that the hash covers everything else.
func (c *converter) indicator(id string, attr *misp.Attribute, obj *misp.Object, comp component, f *resolvedFacts, ts, validFrom, validUntil time.Time) Object {
	nameJSON := c.infoJSON
	if comp.fileName != "" {
		nameJSON = appendString(nil, strings.TrimSpace(c.ev.Info+" ("+comp.fileName+")"))
	} else if nameJSON == nil {
		nameJSON = appendString(nil, attr.Type)
	}
	descJSON := c.summaryJSON
	if desc := c.description(attr, obj, comp); desc != c.summary {
		descJSON = appendString(nil, desc)
	}
	size := 420 + len(id) + len(c.identityID) + len(nameJSON) + len(descJSON) + len(comp.pattern) +
		len(f.threatJSON) + len(f.labelsJSON) + len(f.killJSON) + len(c.extRefs)
	size += size / 8
	if cap(c.arena)-len(c.arena) < size {
		// A chunk for the next indicators of the event, at most 256 KiB: a small event
		// allocates about what it needs.
		c.arena = make([]byte, 0, max(size, min(256<<10, size*c.attributes)))
	}
	room := c.arena[len(c.arena):cap(c.arena)]
	b := room[:0]
	b = append(b, `{"type":"indicator","spec_version":"2.1"`...)
	b = appendField(b, "id", id)
	b = appendField(b, "created", c.formatTime(ts))
	if !bytes.Equal(nameJSON, c.infoJSON) {
		b = appendRawField(b, "name", nameJSON)
	}
	if !bytes.Equal(descJSON, c.summaryJSON) {
		b = appendRawField(b, "description", descJSON)
	}
	if f.threatJSON != nil {
		b = appendRawField(b, "indicator_types", f.threatJSON)
	}
	b = appendField(b, "pattern", comp.pattern)
	b = appendField(b, "pattern_type", comp.patternType)
	b = appendField(b, "pattern_version", "2.1")
	b = appendField(b, "valid_from", c.formatTime(validFrom))
	if f.hasConfidence {
		b = appendIntField(b, "confidence", f.confidence)
	}
	if f.labelsJSON != nil {
		b = appendRawField(b, "labels", f.labelsJSON)
	}
	if c.profile == ProfileMISPSTIX && attr.Category != "" {
		b = append(b, `,"kill_chain_phases":[{"kill_chain_name":"misp-category","phase_name":`...)
		b = appendString(b, attr.Category)
		b = append(b, '}')
		if f.killJSON != nil {
			b = append(b, ',')
			b = append(b, f.killJSON[1:]...)
		} else {
			b = append(b, ']')
		}
	} else if f.killJSON != nil {
		b = appendRawField(b, "kill_chain_phases", f.killJSON)
	}
	if f.hasTLP {
		marking := f.tlp.sentinelID
		if c.profile == ProfileMISPSTIX {
			marking = f.tlp.mispStixID
		}
		b = append(b, `,"object_marking_refs":["`...)
		b = append(b, marking...)
		b = append(b, '"', ']')
	}
	// The fields common to all indicators of the event come last; their digest is computed
	// once per event and stands for them in the hash.
	tail := c.eventTail(bytes.Equal(nameJSON, c.infoJSON), bytes.Equal(descJSON, c.summaryJSON))
	variable := len(b)
	b = append(b, tail.digest[:]...)
	hash := contentHash(b)
	b = append(b[:variable], tail.fields...)
	b = appendField(b, "modified", c.formatTime(ts))
	if !validUntil.IsZero() {
		b = appendField(b, "valid_until", c.formatTime(validUntil))
	}
	b = append(b, '}')
	if len(b) <= len(room) && &b[0] == &room[0] {
		c.arena = c.arena[:len(c.arena)+len(b)] // else size was short and b has its own array
	}
	return Object{ID: id, Type: "indicator", EventUUID: c.ev.UUID, Hash: hash, ValidUntil: validUntil, Body: b[:len(b):len(b)]}
}

// commonFields is the JSON of the indicator fields shared by the indicators of an event, and
// its digest.
type commonFields struct {
	fields []byte
	digest [sha256.Size]byte
	built  bool
}

// eventTail returns the shared fields: created_by_ref and external_references, plus the
// event-level name and description when the indicator uses them.
func (c *converter) eventTail(withName, withDescription bool) *commonFields {
	i := 0
	if withName {
		i |= 1
	}
	if withDescription {
		i |= 2
	}
	t := &c.tails[i]
	if t.built {
		return t
	}
	var b []byte
	if c.identityID != "" {
		b = appendField(b, "created_by_ref", c.identityID)
	}
	if withName && c.infoJSON != nil {
		b = appendRawField(b, "name", c.infoJSON)
	}
	if withDescription {
		b = appendRawField(b, "description", c.summaryJSON)
	}
	b = appendRawField(b, "external_references", c.extRefs)
	*t = commonFields{fields: b, digest: sha256.Sum256(b), built: true}
	return t
}

// description is the attribute comment, the object it belongs to, the part of a composite
// value left out of the pattern, and the event summary.
func (c *converter) description(attr *misp.Attribute, obj *misp.Object, comp component) string {
	if obj == nil && comp.context == "" && strings.TrimSpace(attr.Comment) == "" {
		return c.summary
	}
	parts := make([]string, 0, 4)
	if s := strings.TrimSpace(attr.Comment); s != "" {
		parts = append(parts, s)
	}
	if obj != nil {
		o := "part of MISP object " + obj.Name
		if attr.ObjectRelation != "" {
			o += " (" + attr.ObjectRelation + ")"
		}
		parts = append(parts, o)
	}
	if comp.context != "" {
		parts = append(parts, attr.Type+" "+comp.context)
	}
	parts = append(parts, c.summary)
	return strings.Join(parts, " - ")
}
