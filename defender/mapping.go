package defender

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/mispsentinel/listener/misp"
	"github.com/mispsentinel/listener/stix"
)

// MapOptions are a Defender sink's settings for turning converted indicators into MDE
// indicators. The daemon fills every field from the sink's configuration.
type MapOptions struct {
	// Action is the action of every indicator whose type has no entry in ActionByType.
	Action Action
	// ActionByType overrides Action per indicator type (BlockAndRemediate for files and
	// certificates, Block for network indicators, ...).
	ActionByType map[Type]Action
	// Severity, when set, is every indicator's severity; empty derives it from the MISP
	// event's threat level (1 High, 2 Medium, 3 Low, 4 or none Informational).
	Severity Severity
	// GenerateAlert raises an alert when the indicator matches; always true for Audit.
	GenerateAlert bool
	// RbacGroupNames scope the indicators to device groups (empty: all devices).
	RbacGroupNames []string
	// RecommendedActions is the alert's recommended actions; the link to the MISP event is
	// appended when MISPURL is set.
	RecommendedActions string
	// Application is shown in block notifications.
	Application string
	// MISPURL is the MISP base URL for the link back to the event.
	MISPURL string
}

// ActionFor returns the action of indicators of type t.
func (o MapOptions) ActionFor(t Type) Action {
	if a, ok := o.ActionByType[t]; ok {
		return a
	}
	return o.Action
}

// RankInputs are what the budget's score is computed from (see Score).
type RankInputs struct {
	// Confidence is the indicator's STIX confidence 0..100, or -1 when it has none.
	Confidence int `json:"confidence"`
	// ThreatLevel is the MISP event's threat level 1 (high) .. 4 (undefined); 0 when unknown.
	ThreatLevel int `json:"threat_level"`
	// Seen is when MISP last changed the attribute (the indicator's created time).
	Seen time.Time `json:"seen"`
	// Decay is MISP's decay score 0..100 when the sink uses a decaying model; nil otherwise.
	Decay *float64 `json:"decay,omitempty"`
	Type  Type     `json:"type"`
}

// Candidate is one converted indicator as a Defender sink wants it held in MDE.
type Candidate struct {
	// Object carries the candidate through the store: ID is the STIX id, Hash changes when
	// anything MDE stores changes (but expiry alone), Body is the JSON of Envelope.
	Object    stix.Object
	Indicator Indicator
	Rank      RankInputs
}

// Envelope is the body a Defender candidate has in the store and the outbox.
type Envelope struct {
	Indicator Indicator  `json:"indicator"`
	Rank      RankInputs `json:"rank"`
}

// DecodeEnvelope reads a candidate body back (as stamped by the store: its id, modified and
// revoked fields are read too).
func DecodeEnvelope(body []byte) (env Envelope, id string, revoked bool, err error) {
	var wire struct {
		Envelope
		ID      string `json:"id"`
		Revoked bool   `json:"revoked"`
	}
	if err := json.Unmarshal(body, &wire); err != nil {
		return Envelope{}, "", false, fmt.Errorf("decode defender candidate: %w", err)
	}
	return wire.Envelope, wire.ID, wire.Revoked, nil
}

// Skip is an exported attribute (component) the sink cannot express.
type Skip struct {
	Decision stix.Decision
	// ObjectID is the STIX id that was not mapped.
	ObjectID string
	Reason   stix.SkipReason
	Detail   string
}

// mispTypes maps the MISP attribute types Defender can express to the indicator type.
// Composite types take the matching component; domain|ip yields a domain and an IP.
var mispTypes = map[string]Type{
	"md5": TypeFileMd5, "filename|md5": TypeFileMd5, "malware-sample": TypeFileMd5,
	"sha1": TypeFileSha1, "filename|sha1": TypeFileSha1,
	"sha256": TypeFileSha256, "filename|sha256": TypeFileSha256,
	"x509-fingerprint-sha1": TypeCertificateThumbprint, "x509-fingerprint-sha256": TypeCertificateThumbprint,
	"ip-src": TypeIPAddress, "ip-dst": TypeIPAddress, "ip-src|port": TypeIPAddress, "ip-dst|port": TypeIPAddress,
	"domain": TypeDomainName, "hostname": TypeDomainName, "hostname|port": TypeDomainName, "domain|ip": TypeDomainName,
	"url": TypeURL, "link": TypeURL,
}

// MappedMISPTypes returns the MISP types Defender can express, sorted (for docs/MAPPING.md).
func MappedMISPTypes() map[string]Type { return mispTypes }

// patternPaths are the STIX pattern paths that carry the value of each indicator type.
var patternPaths = map[Type][]string{
	TypeFileMd5:               {"file:hashes.MD5"},
	TypeFileSha1:              {"file:hashes.'SHA-1'"},
	TypeFileSha256:            {"file:hashes.'SHA-256'"},
	TypeCertificateThumbprint: {"x509-certificate:hashes.'SHA-1'", "x509-certificate:hashes.'SHA-256'"},
	TypeIPAddress: {"ipv4-addr:value", "ipv6-addr:value", "network-traffic:src_ref.value", "network-traffic:dst_ref.value",
		"domain-name:resolves_to_refs[*].value"},
	TypeDomainName: {"domain-name:value"},
	TypeURL:        {"url:value"},
}

// comparison matches one "path = 'literal'" of a STIX pattern; the literal escapes only \ and '.
var comparison = regexp.MustCompile(`([a-z0-9-]+:[^\s=\[\]]+(?:\[\*\])?[^\s=]*)\s*=\s*'((?:[^'\\]|\\.)*)'`)

// patternValues returns the literal of each path in pattern.
func patternValues(pattern string) map[string]string {
	out := make(map[string]string)
	for _, m := range comparison.FindAllStringSubmatch(pattern, -1) {
		v := strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(m[2])
		if _, dup := out[m[1]]; !dup {
			out[m[1]] = v
		}
	}
	return out
}

// Map turns the converted indicators of ev into the candidates of a Defender sink. Every
// exported indicator either becomes one candidate or one Skip with reason
// unsupported_by_sink: Defender has no type for it (e-mail, file name, ssdeep, SHA-512, ...),
// or its value is a CIDR range or an internal IP address. The type comes from the MISP
// attribute type, not the pattern (misp-stix writes a SHA-512/256 digest as 'SHA-256').
func Map(ev *misp.Event, res stix.Result, opts MapOptions) ([]Candidate, []Skip) {
	objects := make(map[string]*stix.Object, len(res.Objects))
	for i := range res.Objects {
		objects[res.Objects[i].ID] = &res.Objects[i]
	}
	threat, _ := strconv.Atoi(ev.ThreatLevelID)
	decay := decayScores(ev)
	var cands []Candidate
	var skips []Skip
	for _, d := range res.Decisions {
		for _, id := range d.Exported {
			obj := objects[id]
			if obj == nil {
				continue
			}
			c, detail := mapOne(ev, d, obj, threat, opts)
			if detail == "" {
				if score, ok := decay[d.AttributeUUID]; ok {
					c = withDecay(c, score)
				}
			}
			if detail != "" {
				skips = append(skips, Skip{Decision: d, ObjectID: id, Reason: stix.SkipUnsupportedBySink, Detail: detail})
				continue
			}
			cands = append(cands, c)
		}
	}
	return cands, skips
}

// stixIndicator is what Map reads of a converted indicator.
type stixIndicator struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Pattern     string `json:"pattern"`
	Created     string `json:"created"`
	Confidence  *int   `json:"confidence"`
}

// maxTextLen bounds title, description and recommended actions (MDE's limits are
// undocumented; clients cut far shorter, spec §4).
const maxTextLen = 1000

func mapOne(ev *misp.Event, d stix.Decision, obj *stix.Object, threat int, opts MapOptions) (Candidate, string) {
	typ, ok := mispTypes[d.Type]
	if !ok {
		return Candidate{}, fmt.Sprintf("Defender for Endpoint has no indicator type for MISP type %s", d.Type)
	}
	var si stixIndicator
	if err := json.Unmarshal(obj.Body, &si); err != nil {
		return Candidate{}, fmt.Sprintf("unreadable converted indicator: %v", err)
	}
	values := patternValues(si.Pattern)
	if d.Type == "domain|ip" {
		// The sentinel profile splits it into a domain and an IP indicator; the misp-stix
		// profile keeps one pattern, mapped to its domain.
		if _, hasDomain := values["domain-name:value"]; !hasDomain {
			typ = TypeIPAddress
		}
	}
	value := ""
	for _, p := range patternPaths[typ] {
		if v, ok := values[p]; ok {
			value = v
			break
		}
	}
	if value == "" {
		return Candidate{}, fmt.Sprintf("no %s value in pattern %s", typ, si.Pattern)
	}
	value, why := normaliseValue(typ, value)
	if why != "" {
		return Candidate{}, why
	}
	action := opts.ActionFor(typ)
	if !CanTake(typ, action) {
		return Candidate{}, fmt.Sprintf("%s indicators cannot take the sink's action %s", typ, action)
	}
	link := ""
	if opts.MISPURL != "" {
		link = strings.TrimSuffix(opts.MISPURL, "/") + "/events/view/" + ev.UUID
	}
	title := si.Name
	if title == "" {
		title = ev.Info
	}
	if title == "" {
		title = d.Type + " " + value
	}
	title = "MISP: " + title
	desc := si.Description
	if desc == "" {
		desc = "MISP event " + ev.UUID
	}
	rec := opts.RecommendedActions
	if link != "" {
		desc += " " + link
		rec = strings.TrimSpace(rec + " MISP event: " + link)
	}
	ind := Indicator{
		IndicatorValue: value, IndicatorType: typ, Action: action,
		Title: truncate(title), Description: truncate(desc), RecommendedActions: truncate(rec),
		Severity: opts.Severity, GenerateAlert: opts.GenerateAlert || action == ActionAudit,
		Application: opts.Application, RbacGroupNames: opts.RbacGroupNames, ExternalID: obj.ID,
	}
	if ind.Severity == "" {
		ind.Severity = severityOf(threat)
	}
	if !obj.ValidUntil.IsZero() {
		ind.ExpirationTime = obj.ValidUntil.UTC().Format("2006-01-02T15:04:05Z")
	}
	rank := RankInputs{Confidence: -1, ThreatLevel: threat, Type: typ}
	if si.Confidence != nil {
		rank.Confidence = *si.Confidence
	}
	if t, err := time.Parse(time.RFC3339, si.Created); err == nil {
		rank.Seen = t.UTC()
	}
	body, hash, err := encodeEnvelope(Envelope{Indicator: ind, Rank: rank})
	if err != nil {
		return Candidate{}, err.Error()
	}
	o := stix.Object{ID: obj.ID, Type: "defender-indicator", EventUUID: obj.EventUUID, Hash: hash, ValidUntil: obj.ValidUntil, Body: body}
	return Candidate{Object: o, Indicator: ind, Rank: rank}, ""
}

// encodeEnvelope returns the body and the content hash, which leaves expirationTime out (a
// refresh of expiry alone is not a change, as valid_until is not for Sentinel).
func encodeEnvelope(env Envelope) ([]byte, string, error) {
	body, err := json.Marshal(env)
	if err != nil {
		return nil, "", fmt.Errorf("encode defender candidate: %w", err)
	}
	env.Indicator.ExpirationTime = ""
	forHash, err := json.Marshal(env)
	if err != nil {
		return nil, "", fmt.Errorf("encode defender candidate: %w", err)
	}
	sum := sha256.Sum256(forHash)
	return body, hex.EncodeToString(sum[:16]), nil
}

func severityOf(threatLevel int) Severity {
	switch threatLevel {
	case 1:
		return SeverityHigh
	case 2:
		return SeverityMedium
	case 3:
		return SeverityLow
	}
	return SeverityInformational
}

func truncate(s string) string {
	if len(s) <= maxTextLen {
		return s
	}
	cut := maxTextLen - 3
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// normaliseValue applies MDE's value rules (spec §5, §11): lower-case hashes and domains, no
// trailing dot, single external IPs in full form. A non-empty reason means MDE cannot take
// the value.
func normaliseValue(t Type, v string) (string, string) {
	v = strings.TrimSpace(v)
	switch t {
	case TypeFileMd5, TypeFileSha1, TypeFileSha256, TypeCertificateThumbprint:
		return strings.ToLower(v), ""
	case TypeDomainName:
		return strings.TrimSuffix(strings.ToLower(v), "."), ""
	case TypeIPAddress:
		if strings.Contains(v, "/") {
			p, err := netip.ParsePrefix(v)
			if err != nil || !p.IsSingleIP() {
				return "", fmt.Sprintf("Defender for Endpoint takes single IP addresses, not the CIDR range %s", v)
			}
			v = p.Addr().String()
		}
		ip, err := netip.ParseAddr(v)
		if err != nil {
			return "", fmt.Sprintf("%q is not an IP address", v)
		}
		if ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() || ip.IsMulticast() {
			return "", fmt.Sprintf("Defender for Endpoint takes only external IP addresses, not the internal %s", v)
		}
		if ip.Is6() && !ip.Is4In6() {
			return fullIPv6(ip), ""
		}
		return ip.Unmap().String(), ""
	}
	return v, ""
}

// fullIPv6 writes all eight groups, as the MDE documentation asks.
func fullIPv6(ip netip.Addr) string {
	b := ip.As16()
	groups := make([]string, 8)
	for i := range groups {
		groups[i] = strconv.FormatUint(uint64(b[2*i])<<8|uint64(b[2*i+1]), 16)
	}
	return strings.Join(groups, ":")
}

// decayScores returns, per attribute uuid, the highest decay score MISP attached (rounded to
// a whole point, so that a score drifting by fractions does not make a new version).
func decayScores(ev *misp.Event) map[string]float64 {
	var out map[string]float64
	ev.AllAttributes(func(_ *misp.Object, a *misp.Attribute) bool {
		for _, d := range a.DecayScores {
			if out == nil {
				out = map[string]float64{}
			}
			if cur, ok := out[a.UUID]; !ok || d.Score > cur {
				out[a.UUID] = math.Round(d.Score)
			}
		}
		return true
	})
	return out
}

// withDecay sets the candidate's decay score and re-encodes its body.
func withDecay(c Candidate, score float64) Candidate {
	c.Rank.Decay = &score
	body, hash, err := encodeEnvelope(Envelope{Indicator: c.Indicator, Rank: c.Rank})
	if err != nil {
		return c
	}
	c.Object.Body, c.Object.Hash = body, hash
	return c
}
