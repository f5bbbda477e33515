package sentinel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/uuid"
)

// namedTypes are the supported types whose records Sentinel files under a name
// (ThreatIntelObjects shows it); an object of these types without one is refused.
var namedTypes = map[string]bool{"attack-pattern": true, "threat-actor": true, "identity": true}

// validateContext checks what the STIX objects API requires of the types other than
// indicator: a name on attack-pattern, threat-actor and identity, and on relationships a
// relationship_type and source_ref/target_ref that are STIX identifiers of supported types.
func validateContext(obj map[string]json.RawMessage, typ string) []string {
	var msgs []string
	str := func(name string) (string, bool) {
		v, ok := obj[name]
		if !ok || bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			msgs = append(msgs, fmt.Sprintf("Error for Property=%s: Required property is missing. Actual value: NULL.", name))
			return "", false
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			msgs = append(msgs, fmt.Sprintf("Error for Property=%s: Value must be a string. Actual value: %s.", name, truncate(string(v), 64)))
			return "", false
		}
		if strings.TrimSpace(s) == "" {
			msgs = append(msgs, fmt.Sprintf("Error for Property=%s: Required property is empty. Actual value: %s.", name, s))
			return "", false
		}
		return s, true
	}
	switch {
	case namedTypes[typ]:
		str("name")
	case typ == "relationship":
		str("relationship_type")
		for _, ref := range []string{"source_ref", "target_ref"} {
			if v, ok := str(ref); ok {
				prefix, u, found := strings.Cut(v, "--")
				if _, err := uuid.Parse(u); !found || err != nil || !supportedTypes[prefix] {
					msgs = append(msgs, fmt.Sprintf("Error for Property=%s: Invalid STIX identifier. Actual value: %s.", ref, truncate(v, 80)))
				}
			}
		}
	}
	return msgs
}

// ValidateObject returns the per-record error messages the STIX objects API gives for one
// object (none when it is valid), so that converter tests hold the same rules as the
// simulator.
func ValidateObject(raw json.RawMessage) []string {
	_, msgs := validate(raw, apiSTIX)
	return msgs
}

// refsOf returns a relationship's source_ref and target_ref ("" for other objects).
func refsOf(raw json.RawMessage) (source, target string) {
	var r struct {
		Type   string `json:"type"`
		Source string `json:"source_ref"`
		Target string `json:"target_ref"`
	}
	if json.Unmarshal(raw, &r) != nil || r.Type != "relationship" {
		return "", ""
	}
	return r.Source, r.Target
}
