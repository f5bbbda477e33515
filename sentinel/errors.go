package sentinel

import (
	"fmt"
	"time"
)

// RetryableError means Sentinel accepted nothing from the batch and the same batch should be
// uploaded again after After (zero: the caller chooses its own backoff). Re-uploading objects
// that may have been stored already is safe: an upload of the same id and modified is an
// idempotent upsert.
type RetryableError struct {
	// Status is the HTTP status, or 0 when no response arrived (timeout, connection error).
	Status int
	// After is the wait Sentinel asked for (429), jitter included.
	After time.Duration
	Err   error
}

func (e *RetryableError) Error() string {
	if e.After > 0 {
		return fmt.Sprintf("sentinel upload failed, retry after %s: %v", e.After.Round(time.Millisecond), e.Err)
	}
	return fmt.Sprintf("sentinel upload failed, retry: %v", e.Err)
}

func (e *RetryableError) Unwrap() error { return e.Err }

// Cause values of FatalError: a bounded set, usable as a metric label.
const (
	CauseCredential       = "credential"        // Entra refused the credential, or Sentinel refused a fresh token
	CauseRole             = "role"              // 403: the identity lacks Microsoft Sentinel Contributor
	CauseWorkspaceOrPath  = "workspace_or_path" // 404: workspace id, API host, path or api-version wrong
	CauseUnexpectedStatus = "unexpected_status" // another status no retry can fix (3xx, 405, ...)
)

// FatalError means the sink is misconfigured: retrying cannot help, a human must fix the
// configuration named by Cause and Err.
type FatalError struct {
	// Status is the HTTP status (0 when the credential failed before any upload).
	Status int
	// Cause is one of the Cause* constants.
	Cause string
	Err   error
}

func (e *FatalError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("sentinel sink misconfigured (%s): %v", e.Cause, e.Err)
	}
	return fmt.Sprintf("sentinel sink misconfigured (%s, HTTP %d): %v", e.Cause, e.Status, e.Err)
}

func (e *FatalError) Unwrap() error { return e.Err }
