package defender

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/mispsentinel/listener/pusher"
	"github.com/mispsentinel/listener/sentinel"
)

// operation is the kind of call: each has its own rate limit and its own reading of 404.
type operation int

const (
	opImport operation = iota // POST /api/indicators/import
	opDelete                  // POST /api/indicators/BatchDelete
	opList                    // GET /api/indicators
)

func (op operation) String() string {
	return [...]string{"import", "batch delete", "list"}[op]
}

// exchange is everything one call produced: a token error, a transport error, or a response.
type exchange struct {
	op       operation
	batchLen int
	tokenErr error
	sendErr  error
	status   int
	header   http.Header
	body     []byte
	// refreshed is true when the request carried a token fetched after a 401.
	refreshed bool
	now       time.Time
}

type action int

const (
	actDone         action = iota // verdict.items / verdict.err are final
	actBisect                     // the call was refused whole without naming the item: split it
	actRefreshToken               // 401: fetch a new token once and call again
)

type verdict struct {
	action action
	// items are the per-item outcomes of an import or delete, indexed into the call's batch.
	items []ItemResult
	err   error
}

// capMessage recognises MDE refusing an indicator or a call because the tenant is full. The
// wording is undocumented (spec §9), so any failure naming a limit of indicators counts.
var capMessage = regexp.MustCompile(`(?i)(15[,.]?000|(limit|maximum|cap|quota)\b.*\bindicators?|indicators?\b.*\b(limit|maximum|cap|quota))`)

// IsCapReason reports whether a failure reason from MDE says the tenant's cap is reached.
func IsCapReason(reason string) bool { return capMessage.MatchString(reason) }

// classify is the one place that decides what an outcome of the indicator API means. The
// client carries the decision out: it refreshes the token, bisects, adds jitter to throttling
// waits and maps indices back to the caller's batch.
func (c *Client) classify(x exchange) verdict {
	if x.tokenErr != nil {
		return verdict{err: c.classifyTokenError(x.tokenErr)}
	}
	if x.sendErr != nil {
		if errors.Is(x.sendErr, context.DeadlineExceeded) {
			return verdict{err: &pusher.RetryError{Reason: pusher.RetryNetwork, Err: fmt.Errorf("%s at %s timed out after %s: %w", x.op, c.host, c.cfg.RequestTimeout, x.sendErr)}}
		}
		return verdict{err: &pusher.RetryError{Reason: pusher.RetryNetwork, Err: fmt.Errorf("%s at %s: %w", x.op, c.host, x.sendErr)}}
	}
	msg := errorMessage(x.body)
	switch s := x.status; {
	case s >= 200 && s < 300:
		switch x.op {
		case opImport:
			items, ok := parseImportResults(x.body)
			if !ok {
				return verdict{err: &pusher.RetryError{Reason: pusher.RetryOther, Status: s, Err: fmt.Errorf("unreadable HTTP %d answer to %s from %s: %q", s, x.op, c.host, snippet(x.body))}}
			}
			return verdict{items: items}
		case opDelete:
			return verdict{items: make([]ItemResult, x.batchLen)}
		}
		return verdict{}

	case s == http.StatusBadRequest:
		if x.op != opList && IsCapReason(msg) {
			return verdict{err: &CapError{Message: msg}}
		}
		switch {
		case x.op == opList:
			return verdict{err: &pusher.FatalError{Status: s, Cause: CauseUnexpectedStatus, Err: fmt.Errorf("%s refused the indicator query (%s)", c.host, msg)}}
		case x.batchLen > 1:
			return verdict{action: actBisect}
		default:
			return verdict{items: []ItemResult{{Failed: true, Reason: fmt.Sprintf("HTTP 400: %s", msg)}}}
		}

	case s == http.StatusUnauthorized:
		if !x.refreshed {
			return verdict{action: actRefreshToken}
		}
		return verdict{err: &pusher.FatalError{Status: s, Cause: CauseCredential, Err: fmt.Errorf(
			"%s refused a freshly issued token for %s (%s): check that the tenant, the token scope %s and the API host belong to the same cloud",
			c.host, c.identity, msg, c.cfg.Endpoints.Scope)}}

	case s == http.StatusForbidden:
		return verdict{err: &pusher.FatalError{Status: s, Cause: CausePermission, Err: fmt.Errorf(
			"identity %s may not %s indicators at %s (%s): grant the application permission Ti.ReadWrite.All of the WindowsDefenderATP API with admin consent, and use the token scope %s",
			c.identity, x.op, c.host, msg, legacyScope)}}

	case s == http.StatusNotFound:
		if x.op == opDelete {
			if x.batchLen > 1 {
				// Some id is unknown; whether the others were deleted is undocumented. Deleting
				// one by one settles each: a single unknown id is already gone.
				return verdict{action: actBisect}
			}
			return verdict{items: []ItemResult{{Gone: true}}}
		}
		return verdict{err: &pusher.FatalError{Status: s, Cause: CauseHostOrPath, Err: fmt.Errorf(
			"%s answered not found to %s (%s): check the API host of the cloud", c.host, x.op, msg)}}

	case s == http.StatusTooManyRequests:
		return verdict{err: &pusher.RetryError{Reason: pusher.RetryThrottled, Status: s, After: sentinel.ThrottleWait(x.header, nil, x.now), Err: fmt.Errorf("%s throttled by %s: %s", x.op, c.host, msg)}}

	case s == http.StatusRequestTimeout || s >= 500:
		return verdict{err: &pusher.RetryError{Reason: pusher.RetryServerError, Status: s, Err: fmt.Errorf("%s at %s answered HTTP %d: %s", x.op, c.host, s, msg)}}

	default:
		return verdict{err: &pusher.FatalError{Status: s, Cause: CauseUnexpectedStatus, Err: fmt.Errorf(
			"%s at %s answered HTTP %d (%s): check the API host", x.op, c.host, s, msg)}}
	}
}

// classifyTokenError separates credentials Entra refused (fatal) from Entra being
// unreachable or failing (retryable).
func (c *Client) classifyTokenError(err error) error {
	if sentinel.CredentialRefused(err) {
		return &pusher.FatalError{Cause: CauseCredential, Err: fmt.Errorf("entra refused the credential of %s: %w", c.identity, err)}
	}
	return &pusher.RetryError{Reason: pusher.RetryNetwork, Err: fmt.Errorf("acquire token for %s: %w", c.identity, err)}
}

// importResult is one entry of an import answer.
type importResult struct {
	ID            json.RawMessage `json:"id"`
	Indicator     string          `json:"indicator"`
	IsFailed      bool            `json:"isFailed"`
	FailureReason *string         `json:"failureReason"`
}

// parseImportResults reads {"value":[...]}; the results are paired with the batch by the
// caller. ok is false when the body is not such an object.
func parseImportResults(body []byte) (items []ItemResult, ok bool) {
	var answer struct {
		Value []importResult `json:"value"`
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' || json.Unmarshal(body, &answer) != nil || answer.Value == nil {
		return nil, false
	}
	items = make([]ItemResult, len(answer.Value))
	for i, r := range answer.Value {
		id := strings.Trim(string(r.ID), `"`)
		if id == "null" {
			id = ""
		}
		items[i] = ItemResult{ID: id, value: r.Indicator, Failed: r.IsFailed}
		if r.IsFailed {
			items[i].Reason = "rejected by Defender without a reason"
			if r.FailureReason != nil && strings.TrimSpace(*r.FailureReason) != "" {
				items[i].Reason = snippet([]byte(*r.FailureReason))
			}
			items[i].CapReached = IsCapReason(items[i].Reason)
		}
	}
	return items, true
}

// errorMessage returns "code: message" of MDE's error body, or a snippet of the body.
func errorMessage(body []byte) string {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && (e.Error.Code != "" || e.Error.Message != "") {
		return snippet([]byte(strings.TrimPrefix(e.Error.Code+": "+e.Error.Message, ": ")))
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
