package listener

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/mispsentinel/listener/misp"
	"github.com/mispsentinel/listener/pipeline"
)

// ZeroMQ topics the subscriber consumes (spec/misp-interfaces.md §1.4). Subscriptions are byte
// prefixes, so the subscriber subscribes to "misp_json " with its trailing space: "misp_json"
// alone would match every MISP topic.
const (
	topicPublish   = "misp_json"
	topicEvent     = "misp_json_event"
	topicHeartbeat = "misp_json_self"
)

// subscriptions are the prefixes the SUB socket subscribes to.
var subscriptions = []string{topicPublish + " ", topicEvent + " ", topicHeartbeat}

// Reasons a frame or body is malformed, used in errors and as metric label values.
const (
	ReasonMultipart      = "multipart"       // a multipart message; MISP sends one frame
	ReasonNoSeparator    = "no_separator"    // no space between topic and payload
	ReasonInvalidJSON    = "invalid_json"    // the payload is not JSON of the expected shape
	ReasonInvalidUUID    = "invalid_uuid"    // the event has no UUID or not a canonical one
	ReasonBodyTooLarge   = "body_too_large"  // the webhook body exceeds the limit
	ReasonBodyUnreadable = "body_unreadable" // the webhook body could not be read
	ReasonContentType    = "content_type"    // the webhook body is not JSON
)

// MalformedError says why a ZeroMQ frame or webhook body was rejected.
type MalformedError struct {
	Reason string // one of the Reason constants
	Err    error
}

func (e *MalformedError) Error() string {
	if e.Err == nil {
		return "malformed " + strings.ReplaceAll(e.Reason, "_", " ")
	}
	return fmt.Sprintf("malformed %s: %v", strings.ReplaceAll(e.Reason, "_", " "), e.Err)
}

func (e *MalformedError) Unwrap() error { return e.Err }

func malformed(reason string, err error) error { return &MalformedError{Reason: reason, Err: err} }

// frameOutcome is what one ZeroMQ message amounts to.
type frameOutcome struct {
	notice    *pipeline.Notice // set for a published or deleted event
	heartbeat bool
	ignored   string // set, as a metric reason, for a well-formed message with nothing for us
}

// Reasons a well-formed ZeroMQ message is ignored.
const (
	ignoredOtherTopic  = "other_topic"
	ignoredEventAction = "event_action_not_delete"
)

// decodeFrames interprets one ZeroMQ message as MISP's publisher sends it: a single frame
// "topic SPACE json". It returns a *MalformedError for anything else.
func decodeFrames(frames [][]byte, receivedAt time.Time) (frameOutcome, error) {
	if len(frames) != 1 {
		return frameOutcome{}, malformed(ReasonMultipart, fmt.Errorf("%d frames", len(frames)))
	}
	topic, payload, ok := bytes.Cut(frames[0], []byte{' '})
	if !ok {
		return frameOutcome{}, malformed(ReasonNoSeparator, nil)
	}
	switch string(topic) {
	case topicHeartbeat:
		if !json.Valid(payload) {
			return frameOutcome{}, malformed(ReasonInvalidJSON, errors.New("heartbeat is not JSON"))
		}
		return frameOutcome{heartbeat: true}, nil
	case topicPublish:
		n, err := decodePublished(payload, SourceZeroMQ, receivedAt)
		if err != nil {
			return frameOutcome{}, err
		}
		return frameOutcome{notice: n}, nil
	case topicEvent:
		return decodeEventTopic(payload, receivedAt)
	default:
		return frameOutcome{ignored: ignoredOtherTopic}, nil
	}
}

// decodePublished turns a full event ({"Event": ...}, a bare event or MISP core format) into a
// Published notice.
func decodePublished(payload []byte, source string, receivedAt time.Time) (*pipeline.Notice, error) {
	ev, err := misp.DecodeEvent(payload)
	if err != nil {
		return nil, malformed(ReasonInvalidJSON, err)
	}
	id, err := canonicalUUID(ev.UUID)
	if err != nil {
		return nil, err
	}
	return &pipeline.Notice{Source: source, Kind: pipeline.Published, EventUUID: id, Event: ev, ReceivedAt: receivedAt}, nil
}

// decodeEventTopic handles misp_json_event: only "delete" matters here; add and edit do not
// publish anything (an edit unpublishes the event; its next publish arrives on misp_json).
func decodeEventTopic(payload []byte, receivedAt time.Time) (frameOutcome, error) {
	var envelope struct {
		Action string          `json:"action"`
		Event  json.RawMessage `json:"Event"`
	}
	if err := json.Unmarshal(payload, &envelope); err != nil {
		return frameOutcome{}, malformed(ReasonInvalidJSON, err)
	}
	if envelope.Action != "delete" {
		return frameOutcome{ignored: ignoredEventAction}, nil
	}
	var row struct {
		UUID string `json:"uuid"`
	}
	if len(envelope.Event) == 0 {
		return frameOutcome{}, malformed(ReasonInvalidJSON, errors.New("delete notification without Event"))
	}
	if err := json.Unmarshal(envelope.Event, &row); err != nil {
		return frameOutcome{}, malformed(ReasonInvalidJSON, fmt.Errorf("delete notification Event: %w", err))
	}
	id, err := canonicalUUID(row.UUID)
	if err != nil {
		return frameOutcome{}, err
	}
	return frameOutcome{notice: &pipeline.Notice{Source: SourceZeroMQ, Kind: pipeline.Deleted, EventUUID: id, ReceivedAt: receivedAt}}, nil
}

// canonicalUUID accepts the 36-character hyphenated form MISP uses, in either case, and returns
// it in lower case.
func canonicalUUID(s string) (string, error) {
	if s == "" {
		return "", malformed(ReasonInvalidUUID, errors.New("event has no uuid"))
	}
	if len(s) != 36 {
		return "", malformed(ReasonInvalidUUID, fmt.Errorf("event uuid %.40q is not in the 8-4-4-4-12 form", s))
	}
	id, err := uuid.Parse(s)
	if err != nil {
		return "", malformed(ReasonInvalidUUID, fmt.Errorf("event uuid %q: %w", s, err))
	}
	return id.String(), nil
}
