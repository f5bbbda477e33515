package listener

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mispsentinel/listener/pipeline"
)

const testEventUUID = "5f1c7f7e-2b7a-4d8e-9a51-0c3f4b6e9d21"

func TestDecodeFrames(t *testing.T) {
	at := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		frames     [][]byte
		wantReason string // malformed reason, "" when valid
		wantKind   pipeline.NoticeKind
		wantUUID   string
		heartbeat  bool
		ignored    string
	}{
		{
			name:     "publish with published false still means published",
			frames:   [][]byte{[]byte(`misp_json {"Event":{"uuid":"` + testEventUUID + `","published":false,"info":"x","Attribute":[]}}`)},
			wantKind: pipeline.Published, wantUUID: testEventUUID,
		},
		{
			name:     "publish with upper-case uuid is canonicalised",
			frames:   [][]byte{[]byte(`misp_json {"Event":{"uuid":"5F1C7F7E-2B7A-4D8E-9A51-0C3F4B6E9D21"}}`)},
			wantKind: pipeline.Published, wantUUID: testEventUUID,
		},
		{
			name:     "event delete",
			frames:   [][]byte{[]byte(`misp_json_event {"Event":{"id":"12","uuid":"` + testEventUUID + `"},"action":"delete"}`)},
			wantKind: pipeline.Deleted, wantUUID: testEventUUID,
		},
		{
			name:    "event edit is ignored",
			frames:  [][]byte{[]byte(`misp_json_event {"Event":{"uuid":"` + testEventUUID + `"},"Orgc":{},"EventTag":[],"action":"edit"}`)},
			ignored: ignoredEventAction,
		},
		{
			name:    "add from connected server carries an id, not an object, and is ignored",
			frames:  [][]byte{[]byte(`misp_json_event {"Event":"12","Server":"3","action":"add_from_connected_server"}`)},
			ignored: ignoredEventAction,
		},
		{
			name:      "heartbeat with python spacing",
			frames:    [][]byte{[]byte(`misp_json_self {"status": "I'm still alive.", "uptime": 20}`)},
			heartbeat: true,
		},
		{
			name:    "other topic",
			frames:  [][]byte{[]byte(`misp_json_attribute {"Attribute":{},"action":"add"}`)},
			ignored: ignoredOtherTopic,
		},
		{name: "multipart", frames: [][]byte{[]byte("misp_json"), []byte(`{"Event":{}}`)}, wantReason: ReasonMultipart},
		{name: "no frames", frames: nil, wantReason: ReasonMultipart},
		{name: "no separator", frames: [][]byte{[]byte(`misp_json{"Event":{}}`)}, wantReason: ReasonNoSeparator},
		{name: "empty frame", frames: [][]byte{{}}, wantReason: ReasonNoSeparator},
		{name: "empty payload", frames: [][]byte{[]byte(`misp_json `)}, wantReason: ReasonInvalidJSON},
		{name: "truncated json", frames: [][]byte{[]byte(`misp_json {"Event":{"uuid":"` + testEventUUID)}, wantReason: ReasonInvalidJSON},
		{name: "event is an array", frames: [][]byte{[]byte(`misp_json {"Event":[1,2]}`)}, wantReason: ReasonInvalidJSON},
		// misp.DecodeEvent itself rejects an event without uuid.
		{name: "event without uuid", frames: [][]byte{[]byte(`misp_json {"Event":{"info":"x"}}`)}, wantReason: ReasonInvalidJSON},
		{name: "event with bad uuid", frames: [][]byte{[]byte(`misp_json {"Event":{"uuid":"5f1c7f7e-2b7a-4d8e-9a51-0c3f4b6e9dZZ"}}`)}, wantReason: ReasonInvalidUUID},
		{name: "event with urn uuid", frames: [][]byte{[]byte(`misp_json {"Event":{"uuid":"urn:uuid:` + testEventUUID + `"}}`)}, wantReason: ReasonInvalidUUID},
		{name: "delete without event", frames: [][]byte{[]byte(`misp_json_event {"action":"delete"}`)}, wantReason: ReasonInvalidJSON},
		{name: "delete with event id only", frames: [][]byte{[]byte(`misp_json_event {"Event":"12","action":"delete"}`)}, wantReason: ReasonInvalidJSON},
		{name: "delete without uuid", frames: [][]byte{[]byte(`misp_json_event {"Event":{"id":"12"},"action":"delete"}`)}, wantReason: ReasonInvalidUUID},
		{name: "event topic not json", frames: [][]byte{[]byte(`misp_json_event delete`)}, wantReason: ReasonInvalidJSON},
		{name: "heartbeat not json", frames: [][]byte{[]byte(`misp_json_self alive`)}, wantReason: ReasonInvalidJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := decodeFrames(tt.frames, at)
			if tt.wantReason != "" {
				var bad *MalformedError
				if !errors.As(err, &bad) || bad.Reason != tt.wantReason {
					t.Fatalf("err = %v, want a MalformedError with reason %q", err, tt.wantReason)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if out.heartbeat != tt.heartbeat || out.ignored != tt.ignored {
				t.Fatalf("outcome = %+v, want heartbeat=%v ignored=%q", out, tt.heartbeat, tt.ignored)
			}
			if tt.wantKind == 0 {
				if out.notice != nil {
					t.Fatalf("unexpected notice %+v", out.notice)
				}
				return
			}
			n := out.notice
			if n == nil || n.Kind != tt.wantKind || n.EventUUID != tt.wantUUID || n.Source != SourceZeroMQ || !n.ReceivedAt.Equal(at) {
				t.Fatalf("notice = %+v, want kind %v uuid %s", n, tt.wantKind, tt.wantUUID)
			}
			if (n.Kind == pipeline.Published) != (n.Event != nil) {
				t.Fatalf("Event = %v for kind %v", n.Event, n.Kind)
			}
		})
	}
}

func TestMalformedErrorMessage(t *testing.T) {
	err := malformed(ReasonNoSeparator, nil)
	if got, want := err.Error(), "malformed no separator"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}

// BenchmarkDecodeFramesPublish measures decoding one misp_json frame (the testdata workflow
// event, compacted) into a notice.
func BenchmarkDecodeFramesPublish(b *testing.B) {
	body, err := os.ReadFile(filepath.Join("testdata", "workflow_event_publish.json"))
	if err != nil {
		b.Fatal(err)
	}
	frame := append([]byte("misp_json "), body...)
	at := time.Now()
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeFrames([][]byte{frame}, at); err != nil {
			b.Fatal(err)
		}
	}
}
