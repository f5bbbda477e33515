package pusher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Sink is one destination the pusher delivers to: a Sentinel workspace, a Defender for
// Endpoint tenant, ... It speaks one API's wire format and nothing else: the pusher owns the
// loop around it (batching, pacing, retries, acknowledgement).
//
// Lifecycle contract:
//
//   - Limits is called once, when the pusher is created; the answer must not change.
//   - Send is called with at most Limits().MaxBatch objects. It may be called again before
//     an earlier call returned (several batches in flight), never with two versions of one
//     id in flight at once. It is called again with the same objects after a RetryError,
//     and not after a FatalError until a human (or the pusher's failing-state backoff)
//     tries again.
//   - Send delivers the batch once: no retry loop, no sleeping of its own. It calls pace
//     before every request it makes, the first included; pace blocks until the quotas of
//     the batch have room and counts the request. It may make more than one request when
//     that is part of the API's protocol (one token refresh after a 401, splitting a batch
//     the API refuses whole). If pace returns an error (ctx ended), Send returns it.
//   - Send's answer is exactly one of: a nil error with the rejected objects (every other
//     object was accepted); a *RetryError (nothing settled; send the same batch again after
//     After, or after the pusher's backoff when After is zero); a *FatalError (the sink is
//     misconfigured: a human must act, the objects stay queued); or any other error, which
//     the pusher treats like a FatalError (sending the same batch again would fail the same
//     way). When ctx ends, Send returns promptly; the pusher keeps the batch queued.
//   - Send must be safe for concurrent use.
type Sink interface {
	Limits() Limits
	Send(ctx context.Context, batch []Object, pace Pace) ([]Rejection, error)
}

// Request is one HTTP request a sink made for a batch, as the sink reports it through
// ReportRequest for the pusher's debug line.
type Request struct {
	// Objects is how many objects the request carried; Accepted and Rejected how many the
	// API accepted and refused (both 0 when the request settled nothing).
	Objects, Accepted, Rejected int
	// Status is the HTTP status, 0 when no answer arrived.
	Status int
	// Duration is how long the request took, token included.
	Duration time.Duration
	// RequestID is the id the API gave the request (x-ms-request-id and kin), "" when none.
	RequestID string
}

type requestReporterKey struct{}

// ReportRequest tells the pusher delivering through ctx about one request a sink made; Send
// calls it once per HTTP request. Outside a pusher's delivery it does nothing.
func ReportRequest(ctx context.Context, r Request) {
	if f, ok := ctx.Value(requestReporterKey{}).(func(Request)); ok {
		f(r)
	}
}

// withRequestReporter returns ctx carrying f for ReportRequest.
func withRequestReporter(ctx context.Context, f func(Request)) context.Context {
	return context.WithValue(ctx, requestReporterKey{}, f)
}

// Pace blocks until the quotas a batch counts against have room for one more request, and
// counts it; it returns an error only when ctx ends first.
type Pace func(ctx context.Context) error

// Object is one queued upsert or revocation.
type Object struct {
	// ID is the object's stable id (STIX id with generation applied).
	ID string
	// Revoke is true for a revocation. A sink whose API revokes by deletion (Defender) sends
	// a delete for it; a sink whose API revokes by upsert (Sentinel) sends Body, which then
	// carries "revoked": true.
	Revoke bool
	// Body is the stamped STIX JSON.
	Body json.RawMessage
}

// Rejection is one object the sink's API refused for good; the pusher dead-letters it with
// Message.
type Rejection struct {
	// Index is the object's position in the batch passed to Send.
	Index int
	// Message is the API's reason, as it said it.
	Message string
}

// Limits is what a sink tells the pusher about its API's limits.
type Limits struct {
	// MaxBatch is the most objects one Send takes (≥ 1).
	MaxBatch int
	// Upserts are the quotas every Send of upserts counts against (all must have room).
	Upserts []Quota
	// Revocations are the quotas of a Send of revocations. Nil means revocations travel in
	// the same calls as upserts (Sentinel: a revocation is an upsert with "revoked": true)
	// and batches mix both; otherwise each batch holds one kind only (Defender: revocations
	// are BatchDelete calls with their own quota).
	Revocations []Quota
}

// Quota is a limit of at most Requests calls in any sliding window of Per.
type Quota struct {
	// Key names whose quota it is: every sink reporting the same Key shares it. Sentinel
	// uses its Entra identity; an API with per-call-type limits appends the call type.
	Key string
	// Requests is the documented limit; the pacer leaves a headroom below it.
	Requests int
	// Per is the window length (time.Minute for Sentinel's 100 requests per minute).
	Per time.Duration
}

// Reasons of a RetryError, a bounded set used as the reason label of
// listener_upload_retries_total.
const (
	RetryThrottled   = "throttled"    // the API asked to wait (HTTP 429)
	RetryServerError = "server_error" // HTTP 5xx
	RetryNetwork     = "network"      // no answer: connection error or timeout, or no token yet
	RetryOther       = "other"        // another retryable answer (e.g. an unreadable body)
)

// RetryError means the API settled nothing of the batch and the same batch should be sent
// again. Sending objects the API may have stored already must be harmless (an upsert by id
// and modified).
type RetryError struct {
	// Reason is one of the Retry* constants.
	Reason string
	// After is the wait the API asked for. Zero: the pusher backs off exponentially, or,
	// with Reason RetryThrottled, waits out the longest window of the batch's quotas. With
	// Reason RetryThrottled the wait pauses every sink sharing the batch's quotas.
	After time.Duration
	// Status is the HTTP status, 0 when no answer arrived.
	Status int
	Err    error
}

func (e *RetryError) Error() string {
	if e.After > 0 {
		return fmt.Sprintf("upload failed (%s), retry after %s: %v", e.Reason, e.After.Round(time.Millisecond), e.Err)
	}
	return fmt.Sprintf("upload failed (%s), retry: %v", e.Reason, e.Err)
}

func (e *RetryError) Unwrap() error { return e.Err }

// FatalError means the sink is misconfigured: sending again cannot help until a human fixes
// what Cause and Err name (a credential, a role, a workspace id).
type FatalError struct {
	// Cause is a short bounded name, usable as a metric label ("credential", "role", ...).
	Cause string
	// Status is the HTTP status, 0 when the failure came before any upload.
	Status int
	Err    error
}

func (e *FatalError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("sink misconfigured (%s): %v", e.Cause, e.Err)
	}
	return fmt.Sprintf("sink misconfigured (%s, HTTP %d): %v", e.Cause, e.Status, e.Err)
}

func (e *FatalError) Unwrap() error { return e.Err }

// retryReason returns the reason of a retryable error, or "" when err is not retryable.
func retryReason(err error) string {
	var re *RetryError
	if !errors.As(err, &re) {
		return ""
	}
	switch re.Reason {
	case RetryThrottled, RetryServerError, RetryNetwork:
		return re.Reason
	}
	return RetryOther
}
