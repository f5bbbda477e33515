package pipeline

import (
	"context"
	"time"

	"github.com/mispsentinel/listener/misp"
)

// NoticeKind says what happened to an event.
type NoticeKind int

const (
	// Published means the notice carries the event's full current content.
	Published NoticeKind = iota + 1
	// Deleted means the event is gone from MISP; the notice carries only its UUID.
	Deleted
)

// String returns the kind's lower-case name, used as a metric label value.
func (k NoticeKind) String() string {
	switch k {
	case Published:
		return "published"
	case Deleted:
		return "deleted"
	default:
		return "unknown"
	}
}

// Notice is one thing a source learned about one MISP event: what every real-time source hands
// the funnel. The sources (package listener) produce notices; the pipeline handles them.
type Notice struct {
	// Source names the source that received it (a metric label value).
	Source string
	Kind   NoticeKind
	// EventUUID is the event's UUID in MISP's canonical lower-case form.
	EventUUID string
	// Event is the full event for Published and nil for Deleted. MISP's publish payload may still
	// say published=false (it is fetched before the flag is saved): receiving it means published.
	Event *misp.Event
	// ReceivedAt is the local time the source received the message.
	ReceivedAt time.Time
}

// Handler is the sink of notices; *Pipeline is the daemon's.
//
// HandleNotice returns only after the notice's consequences are durable: the webhook answers
// 202 only after it returned nil, and an error makes the webhook answer 503 so the sender may
// retry. The ZeroMQ source, which cannot acknowledge anything, logs and counts the error and
// reports a gap so the reconciler catches up. HandleNotice must be safe for concurrent use; it
// should honour ctx.
type Handler interface {
	HandleNotice(ctx context.Context, n Notice) error
}

// HandlerFunc adapts a function to the Handler interface.
type HandlerFunc func(ctx context.Context, n Notice) error

// HandleNotice calls f(ctx, n).
func (f HandlerFunc) HandleNotice(ctx context.Context, n Notice) error { return f(ctx, n) }

// GapFunc reports a period in which ZeroMQ messages may have been missed, starting at since (a
// local wall-clock instant; the reconciler should widen it by its own safety margin for clock
// skew and MISP's queueing), so the reconciler can catch up. reason is one of the GapReason
// constants. It is called from the subscriber's receive loop and must return quickly: it should
// schedule the catch-up, not run it.
type GapFunc func(ctx context.Context, since time.Time, reason string)

// Reasons passed to GapFunc, also used as metric label values.
const (
	// GapReasonStart: the first connection; anything published before it was not seen.
	GapReasonStart = "start"
	// GapReasonReceiveError: the connection failed (publisher restart, network error).
	GapReasonReceiveError = "receive_error"
	// GapReasonHeartbeatTimeout: nothing, not even a heartbeat, arrived within the timeout.
	GapReasonHeartbeatTimeout = "heartbeat_timeout"
	// GapReasonHandlerError: a notice was received but the Handler failed to make it durable.
	GapReasonHandlerError = "handler_error"
)
