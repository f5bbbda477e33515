package lab

import (
	"fmt"

	"github.com/google/uuid"

	"github.com/mispsentinel/listener/stix"
)

// RejectedIndicator returns an indicator whose valid_until precedes its valid_from, which the
// Sentinel simulator (like Sentinel) rejects: tests queue it to produce a dead letter.
func RejectedIndicator() stix.Object {
	id := "indicator--" + uuid.NewString()
	body := fmt.Appendf(nil, `{"type":"indicator","spec_version":"2.1","id":%q,`+
		`"created":"2026-01-01T00:00:00.000Z","modified":"2026-01-01T00:00:00.000Z",`+
		`"name":"rejected on purpose","pattern":"[domain-name:value = 'rejected.example']","pattern_type":"stix",`+
		`"valid_from":"2026-01-02T00:00:00.000Z","valid_until":"2026-01-01T00:00:00.000Z"}`, id)
	return stix.Object{ID: id, Type: "indicator", EventUUID: uuid.NewString(), Hash: "bad-" + id, Body: body}
}
