package stix

import (
	"strings"

	"github.com/mispsentinel/listener/misp"
)

// tlpLevel is one TLP level: rank orders them from least (clear) to most (red) restrictive.
type tlpLevel struct {
	name string // canonical TLP 2.0 name: clear, green, amber, amber+strict, red
	rank int
	// sentinelID is the TLP 1.0 marking Sentinel understands; mispStixID the marking misp-stix
	// uses (TLP 2.0 for clear and amber+strict).
	sentinelID, mispStixID string
}

const (
	tlpWhiteID       = "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"
	tlpGreenID       = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"
	tlpAmberID       = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"
	tlpRedID         = "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed"
	tlpClearID       = "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487"
	tlpAmberStrictID = "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"
)

var tlpLevels = map[string]tlpLevel{
	"white":        {"clear", 0, tlpWhiteID, tlpWhiteID},
	"clear":        {"clear", 0, tlpWhiteID, tlpClearID},
	"green":        {"green", 1, tlpGreenID, tlpGreenID},
	"amber":        {"amber", 2, tlpAmberID, tlpAmberID},
	"amber+strict": {"amber+strict", 3, tlpAmberID, tlpAmberStrictID},
	"red":          {"red", 4, tlpRedID, tlpRedID},
}

// parseTLP recognises a TLP 1.0 or 2.0 tag ("tlp:amber+strict", "TLP:RED"), case-insensitively.
func parseTLP(tag string) (tlpLevel, bool) {
	if len(tag) < 5 || !strings.EqualFold(tag[:4], "tlp:") {
		return tlpLevel{}, false
	}
	l, ok := tlpLevels[strings.ToLower(strings.TrimSpace(tag[4:]))]
	return l, ok
}

var confidenceLevels = map[string]int{
	"completely-confident": 100, "usually-confident": 75, "fairly-confident": 50,
	"rarely-confident": 25, "unconfident": 0,
}

// tagValue returns the value of a "namespace:predicate" or namespace:predicate="value" tag
// whose prefix (the text up to and including the separator) equals prefix, ignoring case,
// with surrounding quotes removed.
func tagValue(tag, prefix string) (string, bool) {
	if len(tag) <= len(prefix) || !strings.EqualFold(tag[:len(prefix)], prefix) {
		return "", false
	}
	return strings.Trim(strings.TrimSpace(tag[len(prefix):]), `"`), true
}

// killChainPhases maps the kill-chain taxonomy's predicates (Lockheed Martin) to STIX phase names.
var killChainPhases = map[string]string{
	"reconnaissance": "reconnaissance", "weaponization": "weaponization", "delivery": "delivery",
	"exploitation": "exploitation", "installation": "installation",
	"command and control": "command-and-control", "command-and-control": "command-and-control",
	"actions on objectives": "actions-on-objectives", "actions-on-objectives": "actions-on-objectives",
}

// matchesTaxonomy reports whether tag falls under entry by exact taxonomy prefix: the tag
// equals entry, or starts with it followed by ':' or '=' (or entry itself ends with one).
// "tlp" matches "tlp:red" but not "tlpx:red"; "misp:confidence-level" matches
// misp:confidence-level="usually-confident".
func matchesTaxonomy(tag, entry string) bool {
	if entry == "" || len(tag) < len(entry) || !strings.EqualFold(tag[:len(entry)], entry) {
		return false
	}
	if len(tag) == len(entry) {
		return true
	}
	last := entry[len(entry)-1]
	return last == ':' || last == '=' || tag[len(entry)] == ':' || tag[len(entry)] == '='
}

func matchesAny(tag string, entries []string) bool {
	for _, e := range entries {
		if matchesTaxonomy(tag, e) {
			return true
		}
	}
	return false
}

// tagFacts is what one list of tags (an attribute's or an event's) says.
type tagFacts struct {
	tlp           tlpLevel
	hasTLP        bool
	confidence    int
	hasConfidence bool
	threatTypes   []string
	killChain     []string // STIX phase names, in order, no duplicates
	labels        []string // candidate labels (TLP tags excluded), in order
}

// readTags extracts TLP (most restrictive wins), confidence (the lowest wins), threat types,
// kill chain phases and label candidates. Local tags are ignored unless includeLocal.
func readTags(tags []misp.Tag, includeLocal bool) tagFacts {
	var f tagFacts
	for i := range tags {
		t := &tags[i]
		if t.Local && !includeLocal {
			continue
		}
		name := strings.TrimSpace(t.Name)
		if name == "" {
			continue
		}
		if l, ok := parseTLP(name); ok {
			if !f.hasTLP || l.rank > f.tlp.rank {
				f.tlp, f.hasTLP = l, true
			}
			continue
		}
		f.labels = append(f.labels, name)
		if v, ok := tagValue(name, "misp:confidence-level="); ok {
			if c, ok := confidenceLevels[strings.ToLower(v)]; ok && (!f.hasConfidence || c < f.confidence) {
				f.confidence, f.hasConfidence = c, true
			}
			continue
		}
		if v, ok := tagValue(name, "sentinel-threattype:"); ok && v != "" {
			f.threatTypes = appendUnique(f.threatTypes, v)
			continue
		}
		if v, ok := tagValue(name, "kill-chain:"); ok {
			if p, ok := killChainPhases[strings.ToLower(v)]; ok {
				f.killChain = appendUnique(f.killChain, p)
			}
		}
	}
	return f
}

func appendUnique(list []string, v string) []string {
	for _, x := range list {
		if x == v {
			return list
		}
	}
	return append(list, v)
}

// filterLabels applies the deny and allow lists to candidate labels, dropping duplicates.
func filterLabels(candidates []string, opts *Options) []string {
	var out []string
	for _, l := range candidates {
		if matchesAny(l, opts.LabelDenyList) {
			continue
		}
		if len(opts.LabelAllowList) > 0 && !matchesAny(l, opts.LabelAllowList) {
			continue
		}
		out = appendUnique(out, l)
	}
	return out
}

// anyTagMatches reports whether a tag of either list falls under one of the entries.
func anyTagMatches(attrTags, eventTags []misp.Tag, entries []string) bool {
	for _, list := range [][]misp.Tag{attrTags, eventTags} {
		for i := range list {
			if matchesAny(strings.TrimSpace(list[i].Name), entries) {
				return true
			}
		}
	}
	return false
}
