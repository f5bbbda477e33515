package misp

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

// FilterTag is the tag most generated events carry: the workflow tag misp2sentinel's default
// filter selects on.
const FilterTag = `workflow:state="complete"`

// DefaultWarninglist holds values the generator sometimes uses and that a warninglist would
// flag (public resolvers, well-known domains). Pass it as Options.Warninglist to exercise
// enforceWarninglist.
var DefaultWarninglist = []string{"8.8.8.8", "1.1.1.1", "9.9.9.9", "google.com", "microsoft.com", "www.wikipedia.org"}

// GenerationEpoch is the base of generated timestamps, so that output depends on the seed
// only: the i-th generated event (from 0) is last modified within 10 minutes after
// GenerationEpoch + (i+1)×10 minutes, and published a minute later. Relative time filters
// (publish_timestamp "14d") are resolved with the simulator's clock, so a simulator that must
// select generated events that way needs an Options.Now shortly after these times.
func GenerationEpoch() time.Time { return time.Unix(generationEpoch, 0).UTC() }

// generationEpoch is 2026-01-01T00:00:00Z.
const generationEpoch = 1767225600

var (
	tlpTags        = []string{"tlp:clear", "tlp:white", "tlp:green", "tlp:amber", "tlp:amber+strict", "tlp:red"}
	confidenceTags = []string{`misp:confidence-level="completely-confident"`, `misp:confidence-level="usually-confident"`, `misp:confidence-level="fairly-confident"`, `misp:confidence-level="rarely-confident"`}
	attributeTags  = []string{`kill-chain:Delivery`, `kill-chain:Command and Control`, `misp-galaxy:mitre-attack-pattern="Phishing - T1566"`, `osint:source-type="blog-post"`}
	tldList        = []string{"com", "net", "org", "info", "ru", "cn", "io", "xyz", "top"}
	words          = []string{"secure", "update", "login", "cdn", "mail", "portal", "cloud", "files", "api", "account", "verify", "office", "drive", "support", "pay"}

	// generatedTypes is the attribute type mix, weighted roughly like real feeds.
	generatedTypes = []struct {
		typ, category string
		weight        int
	}{
		{"ip-dst", "Network activity", 18}, {"domain", "Network activity", 16}, {"url", "Network activity", 12},
		{"md5", "Payload delivery", 10}, {"sha256", "Payload delivery", 12}, {"sha1", "Payload delivery", 4},
		{"filename|sha256", "Payload delivery", 6}, {"domain|ip", "Network activity", 5},
		{"email-src", "Payload delivery", 5}, {"hostname", "Network activity", 6}, {"ip-dst|port", "Network activity", 4},
		{"ip-src", "Network activity", 2},
	}
	typeWeightTotal = func() int {
		n := 0
		for _, t := range generatedTypes {
			n += t.weight
		}
		return n
	}()
)

// generatedTags interns every tag the generator uses: all generated events point at the same
// few tag values. It is built once and only read afterwards.
var generatedTags = func() map[string]*tag {
	m := map[string]*tag{FilterTag: newTag(FilterTag)}
	for _, list := range [][]string{tlpTags, confidenceTags, attributeTags} {
		for _, name := range list {
			m[name] = newTag(name)
		}
	}
	return m
}()

// generator draws realistic values from one deterministic random stream.
type generator struct {
	rng *rand.Rand
}

// eventGenerator and attributeGenerator give each generated event two independent streams
// derived from the seed and the event's index, so that any event's attributes can be
// regenerated on their own, without the events before it.
func eventGenerator(seed uint64, index int64) *generator {
	return &generator{rng: rand.New(rand.NewPCG(seed, uint64(index)*2+1))}
}

func attributeGenerator(seed uint64, index int64) *generator {
	return &generator{rng: rand.New(rand.NewPCG(seed^0x9e3779b97f4a7c15, uint64(index)*2+2))}
}

// lazyAttributes describes generated top-level attributes that are not stored: they are
// regenerated whenever they are read, so a simulator holding a million generated attributes
// costs a few megabytes. The first edit of the event materializes them.
type lazyAttributes struct {
	seed      uint64
	index     int64
	count     int
	firstID   int64
	timestamp int64
}

func (l *lazyAttributes) build() []*attribute {
	g := attributeGenerator(l.seed, l.index)
	attrs := make([]*attribute, l.count)
	for i := range attrs {
		attrs[i] = g.attribute(l.timestamp)
		attrs[i].id = l.firstID + int64(i)
	}
	return attrs
}

// uuid4 returns a random (version 4) UUID drawn from the generator.
func (g *generator) uuid4() string {
	var b [16]byte
	for i := 0; i < 16; i += 8 {
		v := g.rng.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

func (g *generator) hexString(n int) string {
	b := make([]byte, n/2)
	for i := range b {
		b[i] = byte(g.rng.Uint32())
	}
	return hex.EncodeToString(b)
}

func (g *generator) ip() string {
	if g.rng.IntN(50) == 0 {
		return DefaultWarninglist[g.rng.IntN(3)]
	}
	v := g.rng.Uint32()
	return fmt.Sprintf("%d.%d.%d.%d", 1+byte(v>>24)%223, byte(v>>16), byte(v>>8), 1+byte(v)%254)
}

func (g *generator) domain() string {
	if g.rng.IntN(50) == 0 {
		return DefaultWarninglist[3+g.rng.IntN(3)]
	}
	return fmt.Sprintf("%s-%s%d.%s", words[g.rng.IntN(len(words))], words[g.rng.IntN(len(words))], g.rng.IntN(10000), tldList[g.rng.IntN(len(tldList))])
}

func (g *generator) value(typ string) string {
	switch typ {
	case "ip-dst", "ip-src":
		return g.ip()
	case "domain", "hostname":
		d := g.domain()
		if typ == "hostname" {
			d = words[g.rng.IntN(len(words))] + "." + d
		}
		return d
	case "url":
		return fmt.Sprintf("https://%s/%s/%s.php?id=%d", g.domain(), words[g.rng.IntN(len(words))], words[g.rng.IntN(len(words))], g.rng.IntN(1e6))
	case "md5":
		return g.hexString(32)
	case "sha1":
		return g.hexString(40)
	case "sha256":
		return g.hexString(64)
	case "filename|sha256":
		return fmt.Sprintf("%s_%d.exe|%s", words[g.rng.IntN(len(words))], g.rng.IntN(1000), g.hexString(64))
	case "domain|ip":
		return g.domain() + "|" + g.ip()
	case "email-src":
		return fmt.Sprintf("%s%d@%s", words[g.rng.IntN(len(words))], g.rng.IntN(1000), g.domain())
	case "ip-dst|port":
		return fmt.Sprintf("%s|%d", g.ip(), []int{80, 443, 8080, 4444, 53, 8443}[g.rng.IntN(6)])
	}
	return g.hexString(16)
}

func (g *generator) attribute(ts int64) *attribute {
	pick := g.rng.IntN(typeWeightTotal)
	i := 0
	for ; pick >= generatedTypes[i].weight; i++ {
		pick -= generatedTypes[i].weight
	}
	t := generatedTypes[i]
	a := &attribute{
		uuid: g.uuid4(), typ: t.typ, category: t.category, value: g.value(t.typ),
		distribution: "5", sharingGroupID: "0",
		toIDs:     g.rng.IntN(10) != 0, // 90 % exported
		timestamp: ts - int64(g.rng.IntN(3600)),
	}
	if g.rng.IntN(20) == 0 {
		a.tags = []*tag{generatedTags[attributeTags[g.rng.IntN(len(attributeTags))]]}
	}
	return a
}

var (
	generatedOrg  = json.RawMessage(`{"id":"1","name":"ORGNAME","uuid":"5c6983c8-3af8-4304-869c-4800d6c1883c","local":true}`)
	generatedOrgc = json.RawMessage(`{"id":"2","name":"CIRCL","uuid":"55f6ea5e-2c60-40e5-964f-47a8950d210f","local":false}`)
)

// generatedEventExtra holds the event keys the simulator does not model, the same for every
// generated event. It is shared and never modified.
var generatedEventExtra = map[string]json.RawMessage{
	"proposal_email_lock": json.RawMessage("false"), "locked": json.RawMessage("false"),
	"disable_correlation": json.RawMessage("false"), "extends_uuid": json.RawMessage(`""`),
	"protected": json.RawMessage("null"), "Org": generatedOrg, "Orgc": generatedOrgc,
	"Galaxy": emptyArray, "ShadowAttribute": emptyArray, "RelatedEvent": emptyArray,
	"EventReport": emptyArray, "CryptographicKey": emptyArray,
}

// generateEvent returns the index-th event of the seed's sequence with the given ids; its
// attributes stay lazy.
func generateEvent(seed uint64, index, id int64, attrs int, firstAttrID int64) *event {
	g := eventGenerator(seed, index)
	ts := generationEpoch + (index+1)*600 + int64(g.rng.IntN(600))
	published := g.rng.IntN(10) != 0
	ev := &event{
		id: id, uuid: g.uuid4(),
		info:  fmt.Sprintf("Simulated campaign %d: %s %s infrastructure", index+1, words[g.rng.IntN(len(words))], words[g.rng.IntN(len(words))]),
		date:  time.Unix(ts, 0).UTC().Format(time.DateOnly),
		orgID: "1", orgcID: "2",
		threatLevelID: strconv.Itoa(1 + g.rng.IntN(4)), analysis: strconv.Itoa(g.rng.IntN(3)),
		distribution: strconv.Itoa(g.rng.IntN(4)), sharingGroupID: "0",
		published: published, timestamp: ts,
		extra: generatedEventExtra,
		gen:   &lazyAttributes{seed: seed, index: index, count: attrs, firstID: firstAttrID, timestamp: ts},
	}
	if published {
		ev.publishTimestamp = ts + 60
	}
	ev.tags = append(ev.tags, generatedTags[tlpTags[g.rng.IntN(len(tlpTags))]])
	if g.rng.IntN(4) != 0 {
		ev.tags = append(ev.tags, generatedTags[confidenceTags[g.rng.IntN(len(confidenceTags))]])
	}
	if g.rng.IntN(5) != 0 {
		ev.tags = append(ev.tags, generatedTags[FilterTag])
	}
	return ev
}

// Generate adds n generated events with attrsPerEvent attributes each and returns their uuids
// in id order. The same seed yields the same events (uuids, values, tags, timestamps). About
// 90 % of attributes have to_ids set, 80 % of events carry FilterTag, 90 % are published, and
// about 2 % of values are on DefaultWarninglist.
func (m *MISP) Generate(n, attrsPerEvent int, seed uint64) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	uuids := make([]string, 0, n)
	for i := range n {
		ev := generateEvent(seed, int64(i), m.nextEventID, attrsPerEvent, m.nextAttrID)
		m.nextAttrID += int64(attrsPerEvent)
		m.insert(ev)
		uuids = append(uuids, ev.uuid)
	}
	return uuids
}

// GenerateEvents returns n generated events, each as {"Event": {...}} JSON, with the same
// content a fresh simulator's Generate(n, attrsPerEvent, seed) stores.
func GenerateEvents(n, attrsPerEvent int, seed uint64) [][]byte {
	out := make([][]byte, 0, n)
	for i := range n {
		ev := generateEvent(seed, int64(i), int64(i+1), attrsPerEvent, int64(i*attrsPerEvent+1))
		body, err := wrapEvent(ev, encodeOptions{})
		if err != nil {
			panic(fmt.Sprintf("generated event does not encode: %v", err)) // a generator bug
		}
		out = append(out, body)
	}
	return out
}
