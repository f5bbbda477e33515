package misp

import "slices"

// windowKeys are the events/restSearch parameters that bound a search in time: the event's
// last modification (timestamp, event_timestamp), its publication (publish_timestamp and its
// synonym last), its date (from, to, date, date_from, date_to) and the attribute-scope
// attribute_timestamp. spec/misp-interfaces.md §3.2 lists their formats.
//
// A time bound says which events a run fetches, never which events belong in a sink: an event
// that ages out of "publish_timestamp: 14d" is still an event MISP flags, and misp2sentinel left
// its indicators live until their valid_until.
var windowKeys = []string{
	"timestamp", "event_timestamp", "attribute_timestamp",
	"publish_timestamp", "last",
	"from", "to", "date", "date_from", "date_to",
}

// IsWindowKey reports whether the restSearch parameter k is a time bound.
func IsWindowKey(k string) bool { return slices.Contains(windowKeys, k) }

// WindowKeys returns the time-bound keys present in filters, sorted.
func WindowKeys(filters map[string]any) []string {
	var keys []string
	for k := range filters {
		if IsWindowKey(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// MembershipFilters returns a copy of filters without their time bounds: the filters that
// decide whether an event belongs in a sink at all (tags, org, published, ...).
func MembershipFilters(filters map[string]any) map[string]any {
	out := make(map[string]any, len(filters))
	for k, v := range filters {
		if !IsWindowKey(k) {
			out[k] = v
		}
	}
	return out
}
