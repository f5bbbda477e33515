package stix

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/mispsentinel/listener/misp"
)

// ContextMode selects which MISP galaxy clusters a sink exports as STIX context objects
// (attack-pattern, threat-actor) with the relationships from its indicators to them.
type ContextMode string

const (
	// ContextNone exports indicators (and the creator identity) only; "" means the same.
	ContextNone ContextMode = "none"
	// ContextAttackPatterns exports the ATT&CK technique clusters as attack-pattern objects.
	ContextAttackPatterns ContextMode = "attack-patterns"
	// ContextAll exports attack patterns and threat actors (threat-actor and intrusion-set
	// clusters).
	ContextAll ContextMode = "all"
)

// ContextModes lists the valid ContextMode values.
var ContextModes = []ContextMode{ContextNone, ContextAttackPatterns, ContextAll}

// ContextLevels selects whose galaxies an indicator is linked to.
type ContextLevels string

const (
	// ContextLevelsBoth links an indicator to its attribute's clusters and to its event's;
	// "" means the same.
	ContextLevelsBoth ContextLevels = "both"
	// ContextLevelsAttribute links an indicator to its attribute's clusters only.
	ContextLevelsAttribute ContextLevels = "attribute"
)

// ContextSkipReason says why a galaxy cluster did not become a context object.
type ContextSkipReason string

// Context skip reasons.
const (
	// ContextUnsupportedGalaxy: Sentinel has no object type for the cluster's galaxy (malware,
	// tool, sector, country, ...); its tag stays a label candidate on the indicators.
	ContextUnsupportedGalaxy ContextSkipReason = "unsupported_galaxy"
	// ContextExcludedByMode: the sink's context setting does not export this kind.
	ContextExcludedByMode ContextSkipReason = "context_mode"
	// ContextEventLevelOff: an event-level cluster while context_levels is "attribute".
	ContextEventLevelOff ContextSkipReason = "event_level_off"
	// ContextNoIndicator: no exported indicator carries the cluster (its attributes were all
	// skipped, filtered or above the TLP ceiling), so nothing would reference it.
	ContextNoIndicator ContextSkipReason = "no_indicator"
	// ContextInvalidCluster: the cluster has no value to name the object with.
	ContextInvalidCluster ContextSkipReason = "invalid_cluster"
)

// ContextDecision records what happened to one galaxy cluster of an event (one entry per
// distinct cluster, in first-seen order).
type ContextDecision struct {
	// Galaxy is the cluster's galaxy type ("mitre-attack-pattern", "threat-actor", ...).
	Galaxy string
	Value  string
	// Level is "attribute" when some attribute carries the cluster, else "event".
	Level string
	// ID and Type are the exported object's; empty when Reason is set.
	ID   string
	Type string
	// Relationships is how many indicates relationships point at the object.
	Relationships int
	Reason        ContextSkipReason
	Detail        string
	// Relations are the relations MISP gives between this cluster (their source) and another
	// cluster of the event, in first-seen order.
	Relations []RelationDecision
}

// RelationDecision records what happened to one relation between two galaxy clusters of an
// event ("uses", "attributed-to", ...).
type RelationDecision struct {
	// Type is MISP's relation type, the relationship_type when exported.
	Type string
	// Target is the target cluster's galaxy type and value.
	TargetGalaxy, Target string
	// ID is the exported relationship's; empty when Reason is set.
	ID     string
	Reason ContextSkipReason
	Detail string
}

// Relation skip reasons.
const (
	// RelationEndNotExported: the source or the target cluster is not exported to the sink
	// (see its own decision), so the relationship would name an object the sink was not sent.
	RelationEndNotExported ContextSkipReason = "end_not_exported"
	// RelationTypeNotExported: the relation type is not one exported between the two STIX
	// types (see ClusterRelationTypes).
	RelationTypeNotExported ContextSkipReason = "relation_type"
)

// contextCreated is the fixed created (and modified before stamping) time of context objects
// and relationships: they are shared across events and re-converted every time, so nothing
// time-dependent may enter their content.
var contextCreated = identityCreated

// galaxySTIXType maps the galaxy types misp-stix converts into attack-pattern or threat-actor
// (intrusion sets become threat actors: Sentinel has no intrusion-set type).
var galaxySTIXType = map[string]string{}

// galaxyOtherType names the misp-stix object type of galaxies Sentinel cannot store, for the
// explanation.
var galaxyOtherType = map[string]string{}

func init() {
	for _, t := range []string{"mitre-attack-pattern", "mitre-enterprise-attack-attack-pattern",
		"mitre-mobile-attack-attack-pattern", "mitre-pre-attack-attack-pattern", "mitre-ics-techniques",
		"cmtmf-attack-pattern", "stix-2.0-attack-pattern", "stix-2.1-attack-pattern"} {
		galaxySTIXType[t] = "attack-pattern"
	}
	for _, t := range []string{"threat-actor", "360net-threat-actor", "microsoft-activity-group",
		"mitre-ics-groups", "stix-2.0-threat-actor", "stix-2.1-threat-actor",
		"mitre-intrusion-set", "mitre-enterprise-attack-intrusion-set", "mitre-mobile-attack-intrusion-set",
		"mitre-pre-attack-intrusion-set", "stix-2.0-intrusion-set", "stix-2.1-intrusion-set"} {
		galaxySTIXType[t] = "threat-actor"
	}
	other := map[string][]string{
		"course-of-action": {"mitre-course-of-action", "mitre-enterprise-attack-course-of-action",
			"mitre-mobile-attack-course-of-action", "stix-2.0-course-of-action", "stix-2.1-course-of-action"},
		"malware": {"malpedia", "android", "backdoor", "banker", "cryptominers", "ransomware", "stealer",
			"mitre-malware", "mitre-enterprise-attack-malware", "mitre-mobile-attack-malware",
			"mitre-ics-software", "stix-2.0-malware", "stix-2.1-malware"},
		"tool": {"tool", "botnet", "rat", "exploit-kit", "tds", "mitre-tool", "mitre-enterprise-attack-tool",
			"mitre-mobile-attack-tool", "stix-2.0-tool", "stix-2.1-tool"},
		"vulnerability": {"branded-vulnerability", "stix-2.0-vulnerability", "stix-2.1-vulnerability"},
		"campaign":      {"stix-2.0-campaign", "stix-2.1-campaign"},
		"location":      {"country", "region", "stix-2.1-location"},
		"identity":      {"sector"},
	}
	for typ, galaxies := range other {
		for _, g := range galaxies {
			galaxyOtherType[g] = typ
		}
	}
}

// ContextGalaxyTypes returns the galaxy types that become context objects, with the STIX type
// each becomes, and the other galaxy types misp-stix knows with the type it would emit (for
// the mapping documentation).
func ContextGalaxyTypes() (exported, other map[string]string) {
	exported = make(map[string]string, len(galaxySTIXType))
	for k, v := range galaxySTIXType {
		exported[k] = v
	}
	other = make(map[string]string, len(galaxyOtherType))
	for k, v := range galaxyOtherType {
		other[k] = v
	}
	return exported, other
}

// attackIDPattern matches ATT&CK ids (T1566, T1566.001, G0023, S0002, M1017, TA0001, ...).
var attackIDPattern = regexp.MustCompile(`^(T|TA|G|S|M|C|DS)\d{4}(\.\d{3})?$`)

// citationPattern matches ATT&CK's "(Citation: ...)" markers.
var citationPattern = regexp.MustCompile(`\s*\(Citation:[^)]*\)`)

// maxContextDescription is the longest description of a context object, in characters: the
// first paragraph of the cluster's description, cut at a word boundary.
const maxContextDescription = 500

// contextTarget is one cluster resolved for a conversion.
type contextTarget struct {
	decision ContextDecision
	// exportable: the cluster maps to a type the sink's mode exports.
	exportable bool
	obj        Object
	built      bool
	cluster    *misp.GalaxyCluster
	galaxy     *misp.Galaxy
	// indicates holds the fragments of the indicates relationships to the object.
	indicates *relationshipFragments
}

// contextState is the context part of one conversion.
type contextState struct {
	mode      ContextMode
	attrLevel bool // only attribute-level clusters
	byKey     map[clusterKey]*contextTarget
	order     []*contextTarget
	event     []*contextTarget // exportable event-level targets
	scratch   []*contextTarget
	ids       idHasher
	arena     []byte // relationship bodies are cut from it
	// attributes is the event's attribute count, to size the arena's chunks.
	attributes int
	// fragments holds the constant parts of the relationship bodies of one type to one
	// target: every indicator linked to a cluster gets the same bytes but for its id and
	// source_ref, so they are encoded once per event and cluster.
	fragments map[relationshipKey]*relationshipFragments
}

// clusterKey identifies a galaxy cluster within a conversion.
type clusterKey struct{ galaxyType, uuid, value string }

type relationshipKey struct{ typ, target string }

// relationshipFragments are the JSON around the id and the source_ref of a relationship body.
type relationshipFragments struct {
	// middle runs from after the id to the opening of source_ref's value, tail from after
	// source_ref's value to the end.
	middle, tail []byte
}

func newContextState(ev *misp.Event, opts *Options) *contextState {
	if opts.Context == "" || opts.Context == ContextNone {
		return nil
	}
	cs := &contextState{
		mode: opts.Context, attrLevel: opts.ContextLevels == ContextLevelsAttribute,
		byKey: make(map[clusterKey]*contextTarget),
	}
	for gi := range ev.Galaxies {
		g := &ev.Galaxies[gi]
		for ci := range g.Clusters {
			t := cs.target(g, &g.Clusters[ci], "event")
			if t.exportable && !cs.attrLevel {
				cs.event = appendTarget(cs.event, t)
			}
		}
	}
	return cs
}

func appendTarget(list []*contextTarget, t *contextTarget) []*contextTarget {
	for _, x := range list {
		if x == t {
			return list
		}
	}
	return append(list, t)
}

// objectCapacity bounds how many objects beyond the indicators the event's context adds
// (when every attribute yields one indicator): a relationship per indicator and event-level
// cluster, and per attribute-level cluster a relationship and at most one object, so that
// Convert sizes its object list once.
func (cs *contextState) objectCapacity(ev *misp.Event) int {
	n := ev.AttributeCount()
	attrClusters := 0
	ev.AllAttributes(func(_ *misp.Object, attr *misp.Attribute) bool {
		for gi := range attr.Galaxies {
			attrClusters += len(attr.Galaxies[gi].Clusters)
		}
		return true
	})
	return n*len(cs.event) + len(cs.event) + 2*attrClusters
}

// target resolves one cluster, once per conversion.
func (cs *contextState) target(g *misp.Galaxy, cl *misp.GalaxyCluster, level string) *contextTarget {
	typ := cl.Type
	if typ == "" {
		typ = g.Type
	}
	key := clusterKey{typ, cl.UUID, cl.Value}
	if t, ok := cs.byKey[key]; ok {
		if level == "attribute" {
			t.decision.Level = level
		}
		return t
	}
	t := &contextTarget{decision: ContextDecision{Galaxy: typ, Value: cl.Value, Level: level}, cluster: cl, galaxy: g}
	cs.byKey[key] = t
	cs.order = append(cs.order, t)
	stixType, ok := galaxySTIXType[typ]
	switch {
	case !ok:
		t.decision.Reason = ContextUnsupportedGalaxy
		if other, known := galaxyOtherType[typ]; known {
			t.decision.Detail = fmt.Sprintf("galaxy %s maps to STIX %s, which Sentinel does not store; it stays a tag on the indicators", typ, other)
		} else {
			t.decision.Detail = fmt.Sprintf("galaxy %s has no STIX type Sentinel stores; it stays a tag on the indicators", typ)
		}
	case strings.TrimSpace(cl.Value) == "":
		t.decision.Reason = ContextInvalidCluster
		t.decision.Detail = "the cluster has no value to name the object with"
	case cs.mode == ContextAttackPatterns && stixType != "attack-pattern":
		t.decision.Reason = ContextExcludedByMode
		t.decision.Detail = "context: attack-patterns exports attack patterns only"
	default:
		t.exportable = true
		t.decision.Type = stixType
		t.decision.ID = contextID(stixType, typ, cl)
	}
	return t
}

// contextID is the object's id: the cluster uuid when it is a valid UUID (as misp-stix does),
// otherwise a UUIDv5 of the project namespace and the cluster's galaxy type and value.
func contextID(stixType, galaxyType string, cl *misp.GalaxyCluster) string {
	if u, err := uuid.Parse(cl.UUID); err == nil && u != uuid.Nil {
		return stixType + "--" + u.String()
	}
	return stixType + "--" + uuid.NewSHA1(Namespace, []byte("galaxy-cluster/"+galaxyType+"/"+cl.Value)).String()
}

// link appends to res the relationships from the indicators ids of attr to its clusters
// (and the event's), each context object just before the first relationship that references
// it, so that every relationship comes after both its objects.
func (cs *contextState) link(res *Result, ev *misp.Event, attr *misp.Attribute, ids []string) {
	targets := cs.scratch[:0]
	for gi := range attr.Galaxies {
		g := &attr.Galaxies[gi]
		for ci := range g.Clusters {
			if t := cs.target(g, &g.Clusters[ci], "attribute"); t.exportable {
				targets = appendTarget(targets, t)
			}
		}
	}
	for _, t := range cs.event {
		targets = appendTarget(targets, t)
	}
	cs.scratch = targets
	if len(ids) == 0 || len(targets) == 0 {
		return
	}
	for _, id := range ids {
		for _, t := range targets {
			if !t.built {
				t.built = true
				res.Objects = append(res.Objects, contextObject(t))
			}
			if t.indicates == nil {
				t.indicates = cs.relationshipFragments("indicates", t.decision.ID)
			}
			res.Objects = append(res.Objects, cs.relationshipWith(t.indicates, ev.UUID, id, "indicates", t.decision.ID))
			t.decision.Relationships++
		}
	}
}

// finish records the decision of every cluster in res, after the relationships between
// exported clusters that the clusters' relations give.
func (cs *contextState) finish(res *Result) {
	cs.relate(res)
	for _, t := range cs.order {
		if t.exportable && t.decision.Relationships == 0 {
			if t.decision.Level == "event" && cs.attrLevel {
				t.decision.Reason = ContextEventLevelOff
				t.decision.Detail = "event-level galaxies are not linked (context_levels: attribute)"
			} else {
				t.decision.Reason = ContextNoIndicator
				t.decision.Detail = "no exported indicator carries it (skipped, filtered or above the sink's TLP ceiling), so nothing would reference it"
			}
			t.decision.ID, t.decision.Type = "", ""
		}
		res.Context = append(res.Context, t.decision)
	}
}

// clusterRelationTypes lists the relation types between galaxy clusters that become
// relationships, each with the STIX types of its source and target (STIX 2.1's
// relationship summary, intrusion sets being threat actors here; subtechnique-of is ATT&CK's).
var clusterRelationTypes = map[string][][2]string{
	"uses":            {{"threat-actor", "attack-pattern"}},
	"attributed-to":   {{"threat-actor", "threat-actor"}},
	"subtechnique-of": {{"attack-pattern", "attack-pattern"}},
	"related-to": {{"threat-actor", "threat-actor"}, {"threat-actor", "attack-pattern"},
		{"attack-pattern", "threat-actor"}, {"attack-pattern", "attack-pattern"}},
}

// ClusterRelationTypes returns the relation types between galaxy clusters that become
// relationships, each with the "source -> target" STIX types it is exported between (for
// the mapping documentation).
func ClusterRelationTypes() map[string][]string {
	out := make(map[string][]string, len(clusterRelationTypes))
	for typ, pairs := range clusterRelationTypes {
		for _, p := range pairs {
			out[typ] = append(out[typ], p[0]+" -> "+p[1])
		}
	}
	return out
}

func clusterRelationExported(typ, source, target string) bool {
	for _, p := range clusterRelationTypes[typ] {
		if p[0] == source && p[1] == target {
			return true
		}
	}
	return false
}

// relate appends the relationships MISP's cluster relations give between two clusters of
// the event that both became objects of this conversion, after every other object (so both
// ends come before each), and records a decision for every relation between two clusters of
// the event. Such a relationship is Shared: every event holding both clusters yields the same
// one (its id is a UUIDv5 of source, type and target), and the store keeps it live while one
// of them does.
func (cs *contextState) relate(res *Result) {
	byUUID := make(map[string]*contextTarget, len(cs.order))
	for _, t := range cs.order {
		if u, err := uuid.Parse(t.cluster.UUID); err == nil {
			if _, dup := byUUID[u.String()]; !dup {
				byUUID[u.String()] = t
			}
		}
	}
	seen := map[[3]string]bool{}
	for _, t := range cs.order {
		for _, r := range t.cluster.Relations {
			src, ok1 := byUUID[normUUID(r.Source)]
			dst, ok2 := byUUID[normUUID(r.Target)]
			key := [3]string{normUUID(r.Source), r.Type, normUUID(r.Target)}
			if !ok1 || !ok2 || src == dst || seen[key] {
				continue // not between two clusters of the event
			}
			seen[key] = true
			d := RelationDecision{Type: r.Type, TargetGalaxy: dst.decision.Galaxy, Target: dst.decision.Value}
			switch {
			case !src.built || !dst.built:
				d.Reason = RelationEndNotExported
				d.Detail = "the source or the target cluster is not exported to this sink, so the relationship would name an object it was not sent"
			case !clusterRelationExported(r.Type, src.decision.Type, dst.decision.Type):
				d.Reason = RelationTypeNotExported
				d.Detail = fmt.Sprintf("a %s relation from %s to %s is not exported", r.Type, src.decision.Type, dst.decision.Type)
			default:
				rel := cs.relationship("", src.decision.ID, r.Type, dst.decision.ID)
				rel.Shared = true
				res.Objects = append(res.Objects, rel)
				d.ID = rel.ID
			}
			src.decision.Relations = append(src.decision.Relations, d)
		}
	}
}

// normUUID is u in canonical form, or u itself when it is not a UUID.
func normUUID(u string) string {
	if p, err := uuid.Parse(u); err == nil {
		return p.String()
	}
	return u
}

// relationshipHash is the content hash of every relationship: its content is fixed by its id
// (source, type and target), so it never changes.
const relationshipHash = "relationship/1"

// RelationshipID is the deterministic id of the relationship of type typ from source to
// target: a UUIDv5 of the project namespace and the three.
func RelationshipID(source, typ, target string) string {
	var h idHasher
	return h.relationshipID(source, typ, target)
}

// idHasher computes UUIDv5 ids into one reusable buffer (uuid.NewSHA1 allocates a hash state
// and the text of each id, which dominates when every indicator gets several relationships).
type idHasher struct {
	buf []byte
}

func (x *idHasher) relationshipID(source, typ, target string) string {
	return x.v5("relationship--", source, "/", typ, "/", target)
}

// v5 returns prefix followed by the UUIDv5 of the project namespace and the concatenated
// name parts, as prefix + uuid.NewSHA1(Namespace, []byte(name)).String() does.
func (x *idHasher) v5(prefix string, name ...string) string {
	b := append(x.buf[:0], Namespace[:]...)
	for _, part := range name {
		b = append(b, part...)
	}
	sum := sha1.Sum(b)
	var u uuid.UUID
	copy(u[:], sum[:])
	u[6] = (u[6] & 0x0f) | 0x50 // version 5
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 4122 variant
	b = appendUUID(append(b[:0], prefix...), u)
	x.buf = b
	return string(b)
}

// appendUUID appends u in its canonical text form (as u.String() writes it).
func appendUUID(b []byte, u uuid.UUID) []byte {
	var text [36]byte
	hex.Encode(text[0:8], u[0:4])
	text[8] = '-'
	hex.Encode(text[9:13], u[4:6])
	text[13] = '-'
	hex.Encode(text[14:18], u[6:8])
	text[18] = '-'
	hex.Encode(text[19:23], u[8:10])
	text[23] = '-'
	hex.Encode(text[24:], u[10:])
	return append(b, text[:]...)
}

// contextCreatedText is contextCreated as written.
var contextCreatedText = FormatTime(contextCreated)

// relationshipSize bounds the body of a relationship between two ids of at most 64 bytes.
const relationshipSize = 400

// relationship builds the relationship of type typ from source to target. Its body is cut
// from cs.arena; the JSON around its id and source_ref comes from cs.fragments.
func (cs *contextState) relationship(event, source, typ, target string) Object {
	return cs.relationshipWith(cs.relationshipFragments(typ, target), event, source, typ, target)
}

// relationshipWith is relationship with the fragments of typ and target at hand.
func (cs *contextState) relationshipWith(f *relationshipFragments, event, source, typ, target string) Object {
	id := cs.ids.relationshipID(source, typ, target)
	need := len(id) + len(source) + len(f.middle) + len(f.tail) + relationshipSize
	if cap(cs.arena)-len(cs.arena) < need {
		// At most 64 KiB, about what a small event needs.
		cs.arena = make([]byte, 0, max(need, min(64<<10, need*cs.attributes)))
	}
	start := len(cs.arena)
	b := append(cs.arena, `{"type":"relationship","spec_version":"2.1","id":`...)
	b = appendString(b, id)
	b = append(b, f.middle...)
	b = appendString(b, source)
	b = append(b, f.tail...)
	cs.arena = b
	return Object{ID: id, Type: "relationship", EventUUID: event, Hash: relationshipHash, Body: b[start:len(b):len(b)], SourceRef: source, TargetRef: target}
}

// relationshipFragments returns the JSON of a relationship body of type typ to target around
// its id and source_ref, encoding it on first use: the body is, in this order, type,
// spec_version, id, created, relationship_type, source_ref, target_ref and modified.
func (cs *contextState) relationshipFragments(typ, target string) *relationshipFragments {
	key := relationshipKey{typ, target}
	if f, ok := cs.fragments[key]; ok {
		return f
	}
	var middle []byte
	middle = appendField(middle, "created", contextCreatedText)
	middle = appendField(middle, "relationship_type", typ)
	middle = append(middle, `,"source_ref":`...)
	var tail []byte
	tail = appendField(tail, "target_ref", target)
	tail = appendField(tail, "modified", contextCreatedText)
	tail = append(tail, '}')
	f := &relationshipFragments{middle: middle, tail: tail}
	if cs.fragments == nil {
		cs.fragments = make(map[relationshipKey]*relationshipFragments)
	}
	cs.fragments[key] = f
	return f
}

// contextObject builds the attack-pattern or threat-actor object of a cluster.
func contextObject(t *contextTarget) Object {
	cl, d := t.cluster, &t.decision
	meta := clusterMeta(cl.Meta)
	name, suffixID := splitClusterValue(cl.Value)
	b := make([]byte, 0, 512+len(cl.Description))
	b = append(b, `{"type":`...)
	b = appendString(b, d.Type)
	b = append(b, `,"spec_version":"2.1"`...)
	b = appendField(b, "id", d.ID)
	b = appendField(b, "created", FormatTime(contextCreated))
	b = appendField(b, "name", name)
	if desc := shortDescription(cl.Description); desc != "" {
		b = appendField(b, "description", desc)
	}
	if d.Type == "threat-actor" {
		if types := meta.strings("threat_actor_types"); len(types) > 0 {
			b = appendRawField(b, "threat_actor_types", appendStrings(nil, types))
		}
	}
	var aliases []string
	for _, s := range meta.strings("synonyms") {
		if s = strings.TrimSpace(s); s != "" && s != name && s != cl.Value {
			aliases = appendUnique(aliases, s)
		}
	}
	if len(aliases) > 0 {
		b = appendRawField(b, "aliases", appendStrings(nil, aliases))
	}
	if d.Type == "attack-pattern" {
		if kc := killChain(meta.strings("kill_chain")); kc != nil {
			b = appendRawField(b, "kill_chain_phases", kc)
		}
	}
	if refs := contextReferences(d.Type, meta, suffixID); refs != nil {
		b = appendRawField(b, "external_references", refs)
	}
	hash := contentHash(b)
	b = appendField(b, "modified", FormatTime(contextCreated))
	b = append(b, '}')
	return Object{ID: d.ID, Type: d.Type, Hash: hash, Shared: true, Body: b}
}

// splitClusterValue splits "Spearphishing Attachment - T1566.001" into the name and the
// ATT&CK id; a value without such a suffix is the name.
func splitClusterValue(value string) (name, id string) {
	value = strings.TrimSpace(value)
	if i := strings.LastIndex(value, " - "); i > 0 {
		if suffix := strings.TrimSpace(value[i+3:]); attackIDPattern.MatchString(suffix) {
			return strings.TrimSpace(value[:i]), suffix
		}
	}
	return value, ""
}

// shortDescription is the first paragraph of s without ATT&CK citation markers, at most
// maxContextDescription characters, cut at a word boundary.
func shortDescription(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, "\n\n"); i > 0 {
		s = s[:i]
	}
	s = strings.TrimSpace(citationPattern.ReplaceAllString(s, ""))
	if utf8.RuneCountInString(s) <= maxContextDescription {
		return s
	}
	cut := 0
	for i := range s {
		if utf8.RuneCountInString(s[:i]) >= maxContextDescription-1 {
			break
		}
		cut = i
	}
	if sp := strings.LastIndexByte(s[:cut], ' '); sp > maxContextDescription/2 {
		cut = sp
	}
	return strings.TrimSpace(s[:cut]) + "…"
}

// metaFields is a cluster's decoded meta object.
type metaFields map[string]json.RawMessage

func clusterMeta(raw json.RawMessage) metaFields {
	var m metaFields
	if len(raw) == 0 || json.Unmarshal(raw, &m) != nil {
		return nil
	}
	return m
}

// strings reads a meta value that is a string or a list of strings.
func (m metaFields) strings(key string) []string {
	raw, ok := m[key]
	if !ok {
		return nil
	}
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return list
	}
	var one string
	if json.Unmarshal(raw, &one) == nil && one != "" {
		return []string{one}
	}
	return nil
}

// killChain turns "mitre-attack:initial-access" values into kill_chain_phases.
func killChain(values []string) []byte {
	var b []byte
	seen := map[string]bool{}
	for _, v := range values {
		chain, phase, ok := strings.Cut(strings.TrimSpace(v), ":")
		if i := strings.LastIndexByte(phase, ':'); i >= 0 {
			phase = phase[i+1:] // "mitre-attack:enterprise-attack:initial-access"
		}
		if !ok || chain == "" || phase == "" || seen[chain+":"+phase] {
			continue
		}
		seen[chain+":"+phase] = true
		if b == nil {
			b = append(b, '[')
		} else {
			b = append(b, ',')
		}
		b = append(b, `{"kill_chain_name":`...)
		b = appendString(b, chain)
		b = append(b, `,"phase_name":`...)
		b = appendString(b, phase)
		b = append(b, '}')
	}
	if b == nil {
		return nil
	}
	return append(b, ']')
}

// contextReferences builds external_references: the ATT&CK (or CAPEC) id with its URL, then
// no other reference (the cluster's refs are sources, not identifiers).
func contextReferences(stixType string, meta metaFields, suffixID string) []byte {
	var id string
	for _, v := range meta.strings("external_id") {
		if v = strings.TrimSpace(v); v != "" {
			id = v
			break
		}
	}
	if id == "" {
		id = suffixID
	}
	if id == "" {
		return nil
	}
	source := "mitre-attack"
	var url string
	switch {
	case strings.HasPrefix(strings.ToUpper(id), "CAPEC-"):
		source = "capec"
		url = "https://capec.mitre.org/data/definitions/" + strings.TrimPrefix(strings.ToUpper(id), "CAPEC-") + ".html"
	case attackIDPattern.MatchString(id):
		url = attackURL(id)
		for _, r := range meta.strings("refs") {
			if strings.HasPrefix(r, "https://attack.mitre.org/") && strings.Contains(r, strings.ReplaceAll(id, ".", "/")) {
				url = r
				break
			}
		}
	default:
		source = "misp-galaxy"
	}
	b := []byte(`[{"source_name":`)
	b = appendString(b, source)
	b = append(b, `,"external_id":`...)
	b = appendString(b, id)
	if url != "" {
		b = append(b, `,"url":`...)
		b = appendString(b, url)
	}
	return append(b, '}', ']')
}

// attackURL is the attack.mitre.org page of an ATT&CK id.
func attackURL(id string) string {
	path := strings.ReplaceAll(id, ".", "/")
	switch {
	case strings.HasPrefix(id, "TA"):
		return "https://attack.mitre.org/tactics/" + path
	case strings.HasPrefix(id, "T"):
		return "https://attack.mitre.org/techniques/" + path
	case strings.HasPrefix(id, "G"):
		return "https://attack.mitre.org/groups/" + path
	case strings.HasPrefix(id, "S"):
		return "https://attack.mitre.org/software/" + path
	case strings.HasPrefix(id, "M"):
		return "https://attack.mitre.org/mitigations/" + path
	case strings.HasPrefix(id, "C"):
		return "https://attack.mitre.org/campaigns/" + path
	}
	return "https://attack.mitre.org/datasources/" + path
}

// RelationshipRefs returns the source_ref and target_ref of a relationship body.
func RelationshipRefs(body []byte) (source, target string, err error) {
	var r struct {
		Source string `json:"source_ref"`
		Target string `json:"target_ref"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return "", "", fmt.Errorf("read relationship refs: %w", err)
	}
	if r.Source == "" || r.Target == "" {
		return "", "", fmt.Errorf("read relationship refs: source_ref %q, target_ref %q", r.Source, r.Target)
	}
	return r.Source, r.Target, nil
}

// IsRelationship reports whether id is a relationship's.
func IsRelationship(id string) bool { return strings.HasPrefix(id, "relationship--") }

// StampRefs is Stamp for a relationship whose source_ref and target_ref must name the current
// generation of their objects: resolve maps the generation-0 id in the body to the id to write.
func StampRefs(body []byte, id string, modified time.Time, revoked bool, resolve func(ref string) (string, error)) ([]byte, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, fmt.Errorf("stamp %s: decode object: %w", id, err)
	}
	for _, key := range []string{"source_ref", "target_ref"} {
		raw, ok := fields[key]
		if !ok {
			continue
		}
		var ref string
		if err := json.Unmarshal(raw, &ref); err != nil {
			return nil, fmt.Errorf("stamp %s: %s: %w", id, key, err)
		}
		to, err := resolve(ref)
		if err != nil {
			return nil, fmt.Errorf("stamp %s: %s: %w", id, key, err)
		}
		if to != ref {
			fields[key] = appendString(nil, to)
		}
	}
	out, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("stamp %s: encode object: %w", id, err)
	}
	return Stamp(out, id, modified, revoked)
}
