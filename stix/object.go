package stix

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Object is one STIX 2.1 object the converter wants present in a Sentinel workspace: an
// indicator for an exported attribute (or attribute component), the identity object of the
// organisation that created the event, an attack-pattern or threat-actor for a galaxy cluster
// (Shared, see context.go) or an indicates relationship from an indicator to one of those.
//
// Object is the contract between conversion and the store: the store diffs desired Objects
// against what it sent before, by ID and Hash, and stamps the final id, modified and revoked
// fields with Stamp when it queues a version for upload.
type Object struct {
	// ID is the object's STIX id for generation 0 (see GenerationID).
	ID string
	// Type is the STIX type: "indicator", "identity", "attack-pattern", "threat-actor" or
	// "relationship".
	Type string
	// EventUUID is the MISP event the object came from ("" for shared identities).
	EventUUID string
	// Hash identifies the content: it is stable across runs and changes exactly when a field
	// other than "modified" and "valid_until" changes.
	Hash string
	// ValidUntil is the indicator's expiry; zero for objects that do not expire.
	ValidUntil time.Time
	// Shared marks objects referenced by many events (identities): they are upserted when
	// their content changes and never revoked when one event stops yielding them.
	Shared bool
	// Body is the complete STIX 2.1 JSON object.
	Body []byte
	// SourceRef and TargetRef are a relationship's generation-0 source_ref and target_ref
	// (empty for other types). The store writes the current generation of each when it stamps
	// the relationship (StampRefs), delivers the relationship only once both were sent, and
	// counts the live relationships that reference each Shared target.
	SourceRef, TargetRef string
}

// Namespace is the project's fixed UUIDv5 namespace for ids that cannot be taken from MISP
// directly (attribute uuids that are not UUIDv4, components of split attributes, later
// generations of a revoked id). Changing it changes every derived id: never change it.
var Namespace = uuid.MustParse("6f1c9f2e-3d4b-4a51-9c7e-2b8d5e0a7c13")

// GenerationID returns the id to use for generation gen of the object whose generation-0 id
// is id. Generation 0 is id itself; later generations (an indicator re-activated after it was
// revoked) get a UUIDv5 so that a revoked id is never reused.
func GenerationID(id string, gen uint32) string {
	if gen == 0 {
		return id
	}
	typ, _, ok := strings.Cut(id, "--")
	if !ok {
		typ = "indicator"
	}
	return typ + "--" + uuid.NewSHA1(Namespace, fmt.Appendf(nil, "%s/generation/%d", id, gen)).String()
}

// Stamp returns body with its "id" and "modified" fields set and, when revoked is true,
// "revoked": true. modified is written in STIX's UTC millisecond form.
func Stamp(body []byte, id string, modified time.Time, revoked bool) ([]byte, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, fmt.Errorf("stamp %s: decode object: %w", id, err)
	}
	idJSON, err := json.Marshal(id)
	if err != nil {
		return nil, fmt.Errorf("stamp %s: %w", id, err)
	}
	fields["id"] = idJSON
	fields["modified"] = json.RawMessage(`"` + FormatTime(modified) + `"`)
	if revoked {
		fields["revoked"] = json.RawMessage("true")
	}
	out, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("stamp %s: encode object: %w", id, err)
	}
	return out, nil
}

// FormatTime formats t as a STIX 2.1 timestamp in UTC with millisecond precision.
func FormatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}
