package sentinel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/mispsentinel/listener/pusher"
)

// maxThrottleWait is the longest wait a 429 can name here (about 31.7 years); the pusher
// caps what it obeys far lower (pusher.max_retry_after). It only keeps huge values from
// overflowing a Duration.
const maxThrottleWait = 1e9 * time.Second

// minThrottleWait is the shortest wait after a 429.
const minThrottleWait = time.Second

// exchange is everything one upload request produced: a token error, a transport error, or a
// response.
type exchange struct {
	batchLen int
	// tokenErr is set when no token could be acquired (nothing was sent).
	tokenErr error
	// sendErr is set when no complete response arrived (timeout, refused, reset).
	sendErr error
	status  int
	header  http.Header
	body    []byte
	// refreshed is true when the request already carried a token fetched after a 401.
	refreshed bool
	// now is when the response arrived (for HTTP-date Retry-After values).
	now time.Time
}

type action int

const (
	actDone         action = iota // verdict.result / verdict.err are final for this request
	actBisect                     // the whole batch was refused without saying which record: split it
	actRefreshToken               // 401: fetch a new token once and send again
)

type verdict struct {
	action action
	// rejected holds rejections indexed into the request's batch.
	rejected []pusher.Rejection
	err      error
}

// classify is the one place that decides what an upload outcome means. Send carries the
// decision out: it refreshes the token, bisects and maps indices back to the caller's batch;
// the pusher carries out the waits.
func (c *Client) classify(x exchange) verdict {
	if x.tokenErr != nil {
		return verdict{err: c.classifyTokenError(x.tokenErr)}
	}
	if x.sendErr != nil {
		if errors.Is(x.sendErr, context.DeadlineExceeded) {
			return verdict{err: &pusher.RetryError{Reason: pusher.RetryNetwork, Err: fmt.Errorf("upload to %s timed out after %s: %w", c.host(), c.cfg.RequestTimeout, x.sendErr)}}
		}
		return verdict{err: &pusher.RetryError{Reason: pusher.RetryNetwork, Err: fmt.Errorf("upload to %s: %w", c.host(), x.sendErr)}}
	}

	switch s := x.status; {
	case s >= 200 && s < 300:
		rejected, ok := parseRecordErrors(x.body, x.batchLen)
		if !ok {
			return verdict{err: &pusher.RetryError{Reason: pusher.RetryOther, Status: s, Err: fmt.Errorf("unreadable HTTP %d answer from %s: %q", s, c.host(), snippet(x.body))}}
		}
		return verdict{rejected: rejected}

	case s == http.StatusBadRequest || s == http.StatusRequestEntityTooLarge:
		if rejected, ok := parseRecordErrors(x.body, x.batchLen); ok && len(rejected) == x.batchLen {
			return verdict{rejected: rejected}
		}
		if x.batchLen == 1 {
			return verdict{rejected: []pusher.Rejection{{Index: 0, Message: wholeRequestMessage(s, x.body)}}}
		}
		return verdict{action: actBisect}

	case s == http.StatusUnauthorized:
		if !x.refreshed {
			return verdict{action: actRefreshToken}
		}
		return verdict{err: &pusher.FatalError{Status: s, Cause: CauseCredential, Err: fmt.Errorf(
			"%s refused a freshly issued token for %s (%s): check that the tenant, the token scope %s and the API host belong to the same cloud",
			c.host(), c.identity, errorMessage(x.body), c.cfg.Scope)}}

	case s == http.StatusForbidden:
		return verdict{err: &pusher.FatalError{Status: s, Cause: CauseRole, Err: fmt.Errorf(
			"identity %s may not upload to workspace %s (%s): grant it the Microsoft Sentinel Contributor role on the workspace",
			c.identity, c.cfg.WorkspaceID, errorMessage(x.body))}}

	case s == http.StatusNotFound:
		return verdict{err: &pusher.FatalError{Status: s, Cause: CauseWorkspaceOrPath, Err: fmt.Errorf(
			"%s answered not found (%s): check that %s is the Log Analytics workspace ID (a GUID, not the name), that the API host belongs to cloud %s and that api-version %s exists",
			c.host(), errorMessage(x.body), c.cfg.WorkspaceID, c.cloud(), c.cfg.APIVersion)}}

	case s == http.StatusTooManyRequests:
		wait := throttleWait(x.header, x.body, x.now)
		return verdict{err: &pusher.RetryError{Reason: pusher.RetryThrottled, Status: s, After: wait, Err: fmt.Errorf("throttled by %s: %s", c.host(), errorMessage(x.body))}}

	case s >= 500:
		return verdict{err: &pusher.RetryError{Reason: pusher.RetryServerError, Status: s, Err: fmt.Errorf("%s answered HTTP %d: %s", c.host(), s, errorMessage(x.body))}}

	case s == http.StatusRequestTimeout:
		return verdict{err: &pusher.RetryError{Reason: pusher.RetryOther, Status: s, Err: fmt.Errorf("%s answered HTTP %d: %s", c.host(), s, errorMessage(x.body))}}

	default:
		return verdict{err: &pusher.FatalError{Status: s, Cause: CauseUnexpectedStatus, Err: fmt.Errorf(
			"%s answered HTTP %d (%s): check the API host and upload API settings", c.host(), s, errorMessage(x.body))}}
	}
}

// classifyTokenError separates credentials Entra refused (fatal) from Entra being
// unreachable or failing (retryable).
func (c *Client) classifyTokenError(err error) error {
	if CredentialRefused(err) {
		return &pusher.FatalError{Cause: CauseCredential, Err: fmt.Errorf("entra refused the credential of %s: %w", c.identity, err)}
	}
	return &pusher.RetryError{Reason: pusher.RetryNetwork, Err: fmt.Errorf("acquire token for %s: %w", c.identity, err)}
}

// CredentialRefused reports whether a token error means Entra refused the credential (a 4xx
// other than 408 and 429: fatal) rather than being unreachable or failing (retryable). Every
// client of an Entra-protected API classifies token errors with it.
func CredentialRefused(err error) bool {
	var authErr *azidentity.AuthenticationFailedError
	if errors.As(err, &authErr) && authErr.RawResponse != nil {
		s := authErr.RawResponse.StatusCode
		return s >= 400 && s < 500 && s != http.StatusRequestTimeout && s != http.StatusTooManyRequests
	}
	return false
}

// recordErrors is the documented partial-failure body.
type recordErrors struct {
	Errors []struct {
		RecordIndex   *int     `json:"recordIndex"`
		ErrorMessages []string `json:"errorMessages"`
	} `json:"errors"`
}

// parseRecordErrors reads a success body leniently: empty, null, {} and a body without
// errors mean everything was accepted. Entries whose index is missing or outside the batch
// name no record we sent and are ignored. ok is false when the body is not a JSON object.
func parseRecordErrors(body []byte, batchLen int) (rejected []pusher.Rejection, ok bool) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || bytes.Equal(body, []byte("null")) {
		return nil, true
	}
	var re recordErrors
	if body[0] != '{' || json.Unmarshal(body, &re) != nil {
		return nil, false
	}
	messages := make(map[int][]string)
	for _, e := range re.Errors {
		if e.RecordIndex == nil || *e.RecordIndex < 0 || *e.RecordIndex >= batchLen {
			continue
		}
		messages[*e.RecordIndex] = append(messages[*e.RecordIndex], e.ErrorMessages...)
	}
	for i, msgs := range messages {
		msg := strings.Join(msgs, "; ")
		if msg == "" {
			msg = "rejected by Sentinel without a message"
		}
		rejected = append(rejected, pusher.Rejection{Index: i, Message: msg})
	}
	slices.SortFunc(rejected, func(a, b pusher.Rejection) int { return a.Index - b.Index })
	return rejected, true
}

var tryAgainIn = regexp.MustCompile(`(?i)try again in (\d+(?:\.\d+)?) seconds?`)

// throttleWait is the longer of the Retry-After header (seconds or HTTP date) and the
// seconds in the body's message ("Rate limit is exceeded. Try again in 17 seconds."), at
// least one second, and zero when neither says anything (the pusher then waits out the
// quota's window).
func throttleWait(h http.Header, body []byte, now time.Time) time.Duration {
	var wait time.Duration
	found := false
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseFloat(v, 64); err == nil && secs >= 0 {
			wait, found = seconds(secs), true
		} else if t, err := http.ParseTime(v); err == nil {
			wait, found = max(0, t.Sub(now)), true
		}
	}
	if m := tryAgainIn.FindSubmatch([]byte(errorMessage(body))); m != nil {
		if secs, err := strconv.ParseFloat(string(m[1]), 64); err == nil {
			wait, found = max(wait, seconds(secs)), true
		}
	}
	if !found {
		return 0
	}
	return max(wait, minThrottleWait)
}

// seconds converts a non-negative number of seconds to a Duration, saturating instead of
// overflowing (a Retry-After of 9223372036 seconds is longer than a Duration can hold).
func seconds(secs float64) time.Duration {
	if math.IsNaN(secs) || secs <= 0 {
		return 0
	}
	if secs >= maxThrottleWait.Seconds() {
		return maxThrottleWait
	}
	// secs < 1e9: secs * 1e9 nanoseconds stays far below the int64 limit.
	return time.Duration(secs * float64(time.Second))
}

// wholeRequestMessage is the dead-letter message of a record refused alone without per-record
// errors.
func wholeRequestMessage(status int, body []byte) string {
	return fmt.Sprintf("HTTP %d: %s", status, errorMessage(body))
}

// errorMessage returns the "message" of an APIM-style error body, or a snippet of the body.
func errorMessage(body []byte) string {
	var apim struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &apim) == nil && apim.Message != "" {
		return snippet([]byte(apim.Message))
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return "empty body"
	}
	return snippet(body)
}

func snippet(b []byte) string {
	const n = 512
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		s = s[:n] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

// ThrottleWait is throttleWait for other Microsoft API clients (package defender): the
// longer of the Retry-After header and the seconds a 429's message names, at least one
// second, zero when neither says anything.
func ThrottleWait(h http.Header, body []byte, now time.Time) time.Duration {
	return throttleWait(h, body, now)
}

// cloud names the sink's cloud for messages.
func (c *Client) cloud() string {
	if c.cfg.Cloud == "" {
		return "of the token scope"
	}
	return c.cfg.Cloud
}
