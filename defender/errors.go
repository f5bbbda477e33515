package defender

import (
	"fmt"
	"time"
)

// RetryableError means MDE took nothing from the call and the same call should be made again
// after After (zero: the caller chooses its own backoff). Re-importing is an idempotent
// upsert and re-deleting a deleted id is treated as done, so repeating a call whose answer
// was lost is safe.
type RetryableError struct {
	// Status is the HTTP status, or 0 when no response arrived.
	Status int
	// After is the wait MDE asked for (429), jitter included.
	After time.Duration
	Err   error
}

func (e *RetryableError) Error() string {
	if e.After > 0 {
		return fmt.Sprintf("defender call failed, retry after %s: %v", e.After.Round(time.Millisecond), e.Err)
	}
	return fmt.Sprintf("defender call failed, retry: %v", e.Err)
}

func (e *RetryableError) Unwrap() error { return e.Err }

// Cause values of FatalError: a bounded set, usable as a metric label.
const (
	CauseCredential       = "credential"        // Entra refused the credential, or MDE refused a fresh token
	CausePermission       = "permission"        // 403: Ti.ReadWrite.All missing, or a token for the wrong audience
	CauseHostOrPath       = "host_or_path"      // 404 on import or list: API host or path wrong
	CauseUnexpectedStatus = "unexpected_status" // another status no retry can fix
)

// FatalError means the sink is misconfigured: retrying cannot help until a human fixes what
// Cause and Err name.
type FatalError struct {
	Status int
	Cause  string
	Err    error
}

func (e *FatalError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("defender sink misconfigured (%s): %v", e.Cause, e.Err)
	}
	return fmt.Sprintf("defender sink misconfigured (%s, HTTP %d): %v", e.Cause, e.Status, e.Err)
}

func (e *FatalError) Unwrap() error { return e.Err }

// CapError means MDE refused a whole import because the tenant holds its 15,000 active
// indicators (one of the two behaviours the spec leaves open, §9). Nothing was stored; the
// budget must shrink before new indicators are imported again. Updates and deletes still work.
type CapError struct {
	Message string
}

func (e *CapError) Error() string {
	return "defender tenant indicator cap reached: " + e.Message
}
