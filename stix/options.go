package stix

import (
	"fmt"
	"slices"
	"strings"
)

// Profile selects how patterns are written.
type Profile string

const (
	// ProfileSentinel (the default) writes one comparison per pattern wherever that keeps the
	// analyst's meaning, because Sentinel only indexes simple patterns; composite attributes
	// are split into one indicator per matchable component.
	ProfileSentinel Profile = "sentinel"
	// ProfileMISPSTIX writes, for each attribute, the pattern misp-stix 2026.6.30 produces,
	// compound patterns included, byte for byte.
	ProfileMISPSTIX Profile = "misp-stix"
)

// ExpiryStart selects the instant days_to_expire counts from.
type ExpiryStart string

const (
	// ExpiryFromNow counts the lifetime from the conversion time, so an indicator stays valid
	// while MISP keeps exporting it (the store refreshes valid_until before it passes).
	ExpiryFromNow ExpiryStart = "now"
	// ExpiryFromValidFrom counts the lifetime from valid_from (first_seen or the attribute
	// timestamp), as misp2sentinel's days_to_expire_start "valid_from" does.
	ExpiryFromValidFrom ExpiryStart = "valid_from"
)

// Composite says how an attribute of a composite MISP type (CompositeTypes: domain|ip,
// filename|<hash>, malware-sample, ip-src|port, ip-dst|port, hostname|port) becomes indicators.
type Composite string

const (
	// CompositeAll exports every component that identifies something on its own, each as its
	// own single-comparison indicator: domain|ip gives a domain and an IP indicator (ids per
	// component), filename|<hash> and malware-sample the hash (the file name goes into the
	// indicator's name), ip|port the IP and hostname|port the host (the port goes into the
	// description). It is what the sentinel profile does by default.
	CompositeAll Composite = "all"
	// CompositeFirst exports the first component only, under the attribute's own id, as
	// misp2sentinel's remove_pipe_from_misp_attribute does: domain|ip gives the domain,
	// filename|<hash> and malware-sample the file name (the hash is not exported), ip|port the
	// IP and hostname|port the host.
	CompositeFirst Composite = "first"
	// CompositeCompound keeps misp-stix's compound pattern (one AND-ed indicator), which
	// Sentinel stores but does not index by observable. It is what the misp-stix profile does
	// by default.
	CompositeCompound Composite = "compound"
)

// CompositeModes lists the Composite values.
var CompositeModes = []Composite{CompositeAll, CompositeFirst, CompositeCompound}

// PatternLanguages are the non-STIX pattern languages MISP has attribute types for.
var PatternLanguages = []string{"sigma", "snort", "suricata", "yara"}

// ObservableTypes are the keys DaysToExpireByType accepts: the STIX observable type each
// exported indicator is about (see the type table in docs/MAPPING.md), plus the pattern
// languages.
var ObservableTypes = []string{
	"autonomous-system", "domain-name", "email-addr", "email-message", "file", "ipv4-addr",
	"ipv6-addr", "mac-addr", "mutex", "network-traffic", "url", "user-account",
	"windows-registry-key", "x509-certificate", "sigma", "snort", "suricata", "yara",
}

// Options configure one conversion. Each sink converts with its own Options, so Filter holds
// the per-sink selection.
//
// The zero value is valid and means: sentinel profile, no expiry (no valid_until unless
// last_seen gives one), no default confidence, TLP or threat type, local tags dropped, no label
// lists, no pattern languages, no filter. Defaults returns the recommended settings.
type Options struct {
	// Profile selects the pattern style; "" means ProfileSentinel.
	Profile Profile

	// DaysToExpire is the indicator lifetime in days; 0 means indicators get no valid_until
	// (unless LastSeen applies).
	DaysToExpire int
	// DaysToExpireByType overrides DaysToExpire per observable type, keyed exactly by
	// ObservableTypes ("ipv4-addr", "domain-name", "url", "file", ...).
	DaysToExpireByType map[string]int
	// ExpiryStart is where the lifetime starts; "" means ExpiryFromNow.
	ExpiryStart ExpiryStart
	// IgnoreLastSeen makes the attribute's last_seen never set valid_until.
	IgnoreLastSeen bool

	// DefaultConfidence (1-100) is used when neither the attribute nor the event carries a
	// misp:confidence-level tag; 0 leaves confidence out.
	DefaultConfidence int
	// DefaultTLP ("tlp:clear", "tlp:green", ...) marks indicators without any TLP tag; ""
	// leaves them unmarked.
	DefaultTLP string
	// DefaultThreatType is the indicator_types value used when no sentinel-threattype tag is
	// present; "" leaves indicator_types out.
	DefaultThreatType string

	// IncludeLocalTags makes local tags count for labels, TLP, confidence, threat types and
	// kill chain; by default they are ignored there (filters always see them).
	IncludeLocalTags bool
	// LabelDenyList drops tags from labels by exact taxonomy prefix: "admiralty-scale" drops
	// "admiralty-scale:source-reliability=\"a\"" but never "my-admiralty-scale:x". TLP tags
	// are never labels: they become markings.
	LabelDenyList []string
	// LabelAllowList, when not empty, keeps only the tags whose taxonomy prefix is listed.
	LabelAllowList []string

	// ExportPatternLanguages lists the non-STIX pattern languages (PatternLanguages) whose
	// attributes are exported; the others are skipped with SkipPatternLanguage.
	ExportPatternLanguages []string

	// MISPURL is the MISP base URL for the external reference back to the event
	// ("https://misp.example.org"); "" leaves the url out.
	MISPURL string

	// Composite says, per composite MISP type (CompositeTypes), how its attributes become
	// indicators. A composite type missing from the map is written as the profile writes it:
	// CompositeAll for the sentinel profile, CompositeCompound for misp-stix.
	Composite map[string]Composite

	// Filter is the per-sink selection.
	Filter Filter

	// Decay filters and ages indicators by MISP's decaying-model scores (off when zero).
	Decay Decay

	// Context selects the galaxy clusters exported as attack-pattern and threat-actor
	// objects with indicates relationships from the indicators (see context.go); "" means
	// ContextNone.
	Context ContextMode
	// ContextLevels selects whether an indicator is linked to its event's clusters too; ""
	// means ContextLevelsBoth.
	ContextLevels ContextLevels
}

// Filter selects which attributes a sink exports. Tags match by exact taxonomy prefix like
// LabelDenyList and are looked up on the attribute and on its event.
type Filter struct {
	// IncludeTags, when not empty, exports only attributes carrying at least one of them.
	IncludeTags []string
	// ExcludeTags skips attributes carrying any of them.
	ExcludeTags []string
	// IncludeTypes, when not empty, exports only these MISP attribute types.
	IncludeTypes []string
	// ExcludeTypes skips these MISP attribute types.
	ExcludeTypes []string
	// MinConfidence skips indicators whose confidence is below it (0: no minimum). An
	// indicator without confidence counts as 0.
	MinConfidence int
	// MaxTLP skips indicators marked above it ("tlp:green" lets clear and green through);
	// "" means no ceiling. Unmarked indicators always pass: set DefaultTLP to rank them.
	MaxTLP string
}

// Validate reports the first invalid setting, naming its field.
func (o *Options) Validate() error {
	switch o.Profile {
	case "", ProfileSentinel, ProfileMISPSTIX:
	default:
		return fmt.Errorf("profile: unknown profile %q (want %q or %q)", o.Profile, ProfileSentinel, ProfileMISPSTIX)
	}
	if o.DaysToExpire < 0 {
		return fmt.Errorf("days_to_expire: %d is negative", o.DaysToExpire)
	}
	for k, v := range o.DaysToExpireByType {
		if !slices.Contains(ObservableTypes, k) {
			return fmt.Errorf("days_to_expire_by_type: unknown observable type %q (want one of %s)", k, strings.Join(ObservableTypes, ", "))
		}
		if v < 0 {
			return fmt.Errorf("days_to_expire_by_type.%s: %d is negative", k, v)
		}
	}
	switch o.ExpiryStart {
	case "", ExpiryFromNow, ExpiryFromValidFrom:
	default:
		return fmt.Errorf("expiry_start: unknown value %q (want %q or %q)", o.ExpiryStart, ExpiryFromNow, ExpiryFromValidFrom)
	}
	if o.DefaultConfidence < 0 || o.DefaultConfidence > 100 {
		return fmt.Errorf("default_confidence: %d is outside 0-100", o.DefaultConfidence)
	}
	if o.DefaultTLP != "" {
		if _, ok := parseTLP(o.DefaultTLP); !ok {
			return fmt.Errorf("default_tlp: unknown TLP %q", o.DefaultTLP)
		}
	}
	for typ, mode := range o.Composite {
		if !IsCompositeType(typ) {
			return fmt.Errorf("composite: %q is not a composite MISP type (want one of %s)", typ, strings.Join(CompositeTypes(), ", "))
		}
		if !slices.Contains(CompositeModes, mode) {
			return fmt.Errorf("composite.%s: unknown mode %q (want %q, %q or %q)", typ, mode, CompositeAll, CompositeFirst, CompositeCompound)
		}
	}
	for _, l := range o.ExportPatternLanguages {
		if !slices.Contains(PatternLanguages, l) {
			return fmt.Errorf("export_pattern_languages: unknown language %q (want one of %s)", l, strings.Join(PatternLanguages, ", "))
		}
	}
	if o.Decay.Enabled {
		if o.Decay.Model == "" {
			return fmt.Errorf("decay.model: empty (want a model id, a model name or %q)", DecayAnyModel)
		}
		if o.Decay.MinScore < 0 || o.Decay.MinScore > 100 {
			return fmt.Errorf("decay.min_score: %g is outside 0-100", o.Decay.MinScore)
		}
		if p := o.Decay.Parameters; p != nil && !p.Decays() {
			return fmt.Errorf("decay.parameters: lifetime and decay speed must be positive")
		}
	}
	switch o.Context {
	case "", ContextNone, ContextAttackPatterns, ContextAll:
	default:
		return fmt.Errorf("context: unknown value %q (want %q, %q or %q)", o.Context, ContextNone, ContextAttackPatterns, ContextAll)
	}
	switch o.ContextLevels {
	case "", ContextLevelsBoth, ContextLevelsAttribute:
	default:
		return fmt.Errorf("context_levels: unknown value %q (want %q or %q)", o.ContextLevels, ContextLevelsBoth, ContextLevelsAttribute)
	}
	if o.Filter.MinConfidence < 0 || o.Filter.MinConfidence > 100 {
		return fmt.Errorf("filter.min_confidence: %d is outside 0-100", o.Filter.MinConfidence)
	}
	if o.Filter.MaxTLP != "" {
		if _, ok := parseTLP(o.Filter.MaxTLP); !ok {
			return fmt.Errorf("filter.max_tlp: unknown TLP %q", o.Filter.MaxTLP)
		}
	}
	return nil
}

// SkipReason says why an attribute (or one component of it) was not exported.
type SkipReason string

// Skip reasons, in the order Convert checks them.
const (
	SkipDeleted         SkipReason = "deleted"          // attribute or its object soft-deleted
	SkipNotIDS          SkipReason = "not_ids"          // to_ids false or absent
	SkipUnsupportedType SkipReason = "unsupported_type" // the type yields no indicator
	SkipFilteredType    SkipReason = "filtered_type"    // the sink's type filter
	SkipPatternLanguage SkipReason = "pattern_language" // yara/sigma/snort/suricata not enabled
	SkipFilteredTag     SkipReason = "filtered_tag"     // the sink's tag filter
	SkipDecayed         SkipReason = "decayed"          // decay score below the sink's min_score, or decayed
	SkipBelowConfidence SkipReason = "below_confidence" // confidence under the sink's minimum
	SkipAboveTLP        SkipReason = "above_tlp"        // TLP above the sink's ceiling
	SkipInvalidValue    SkipReason = "invalid_value"    // value fails MISP's validation
	SkipExpired         SkipReason = "expired"          // valid_until not after now
	SkipDuplicate       SkipReason = "duplicate"        // another attribute already gave this id
	// SkipUnsupportedBySink is decided after conversion by a sink whose API cannot express
	// the indicator (Defender for Endpoint: CIDR, e-mail, file names, other hashes, ...).
	SkipUnsupportedBySink SkipReason = "unsupported_by_sink"
)

// SkipReasons lists every SkipReason, for metrics label sets.
var SkipReasons = []SkipReason{
	SkipDeleted, SkipNotIDS, SkipUnsupportedType, SkipFilteredType, SkipPatternLanguage,
	SkipFilteredTag, SkipDecayed, SkipBelowConfidence, SkipAboveTLP, SkipInvalidValue, SkipExpired, SkipDuplicate,
	SkipUnsupportedBySink,
}

// Decision records what happened to one attribute.
type Decision struct {
	AttributeUUID string
	// ObjectUUID and ObjectName are set for attributes of a MISP object.
	ObjectUUID string
	ObjectName string
	Type       string
	Value      string
	// Exported holds the ids of the indicators built from the attribute (several when a
	// composite attribute is split).
	Exported []string
	// Reason is set when nothing was exported; when some components were exported and others
	// not, Reason is empty and Detail names the skipped components.
	Reason SkipReason
	// Detail explains Reason in words (for --explain).
	Detail string
}

// Result is the outcome of converting one event.
type Result struct {
	// Objects are the desired STIX objects: the creator identity first (when the event has
	// one), then the indicators in attribute order, each followed by its relationships,
	// each context object just before the first relationship that references it. Every
	// relationship's source and target are among the objects before it.
	Objects []Object
	// Decisions holds one entry per attribute, object attributes included, in event order.
	Decisions []Decision
	// Context holds one entry per distinct galaxy cluster of the event when the sink exports
	// context (Options.Context), in first-seen order: event clusters, then attribute ones.
	Context []ContextDecision
}
