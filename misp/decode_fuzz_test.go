package misp

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeEvents checks the hand-written parser against encoding/json: it never panics,
// accepts only valid JSON, and reads string values exactly as encoding/json does.
func FuzzDecodeEvents(f *testing.F) {
	for _, s := range []string{
		`{"Event":{"uuid":"u","info":"caf\u00e9 \ud83d\ude00 \ud800","Attribute":[{"uuid":"a","value":"x\"y\\z","to_ids":"1","timestamp":1603642920}]}}`,
		`{"response":[{"Event":{"uuid":"a"}},{"uuid":"b","Tag":[{"name":"tlp:red","local":0}]}]}`,
		`[{"uuid":"x","Object":[{"Attribute":[{"first_seen":"2020-10-25T16:22:00.000000+00:00","deleted":false}]}]}]`,
		`{"uuid":"x","Galaxy":[{"GalaxyCluster":[{"meta":{"a":[1,2,{"b":null}]}}]}],"x":[1e5,-0.5,true]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		events, err := DecodeEvents(data)
		if err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		// The info of a wrapped event must read as encoding/json reads it.
		var std struct {
			Event struct {
				Info any `json:"info"`
			}
		}
		if len(events) == 1 && json.Unmarshal(data, &std) == nil {
			if s, ok := std.Event.Info.(string); ok && events[0].Info != s && s != "" {
				// Only compare when the document has one wrapped event with a string info.
				var probe map[string]json.RawMessage
				if json.Unmarshal(data, &probe) == nil && probe["Event"] != nil {
					t.Fatalf("info = %q, encoding/json reads %q", events[0].Info, s)
				}
			}
		}
	})
}
