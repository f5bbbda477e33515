package misp

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/mispsentinel/listener/internal/version"
)

// searchOrder is the stable order SearchEvents pages in: Event.id is immutable and unique, so
// an event edited during a scan cannot move to a page already read (MISP's allowed order
// fields are id, info, analysis, threat_level_id, distribution, timestamp, publish_timestamp).
const searchOrder = "Event.id asc"

// ErrEventNotFound is returned (wrapped) when MISP has no event with the requested uuid, or
// the key's user may not see it: MISP answers both with 404 "Invalid event".
var ErrEventNotFound = errors.New("misp event not found")

// ErrAuth matches (errors.Is) every *AuthError.
var ErrAuth = errors.New("misp rejected the api key")

// AuthError reports that MISP refused the API key (401/403): a wrong, expired or disabled key,
// or a user whose role lacks API access. Retrying does not help.
type AuthError struct {
	StatusCode int
	// Message is MISP's error message (never the key).
	Message string
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("misp rejected the api key (status %d): %s", e.StatusCode, e.Message)
}

// Is makes errors.Is(err, ErrAuth) true for every AuthError.
func (e *AuthError) Is(target error) bool { return target == ErrAuth }

// StatusError is an unexpected HTTP status from MISP.
type StatusError struct {
	StatusCode int
	// Message is MISP's error message, or the start of the body when it is not MISP's
	// JSON error layout.
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("misp answered status %d: %s", e.StatusCode, e.Message)
}

// Temporary reports whether the request may succeed when retried (5xx and 429).
func (e *StatusError) Temporary() bool {
	return e.StatusCode >= 500 || e.StatusCode == http.StatusTooManyRequests
}

// ClientConfig configures a Client. It has no defaults: the daemon fills every field from the
// configuration (config.Default and config/defaults.go hold the values), and NewClient rejects
// an incomplete one.
type ClientConfig struct {
	// URL is MISP's base URL, for example https://misp.example.org.
	URL string
	// Key is the API key, sent raw in the Authorization header. It is never logged or
	// included in errors.
	Key string
	// CAFile is a PEM file of CA certificates trusted in addition to the system pool.
	CAFile string
	// InsecureSkipVerify disables TLS verification. Verification is on by default.
	InsecureSkipVerify bool
	// Timeout bounds each request, reading the body included. Required unless HTTPClient is set.
	Timeout time.Duration
	// UserAgent is sent with every request.
	UserAgent string
	// HTTPClient, when set, is used as is: CAFile, InsecureSkipVerify and Timeout are ignored.
	HTTPClient *http.Client
	// MaxPageAttempts is how often SearchEvents tries one page (the first try included)
	// before it gives up on a 5xx, a broken body or a network error.
	MaxPageAttempts int
	// RetryInterval is the first pause between attempts; it grows exponentially.
	RetryInterval time.Duration
	// MaxResponseBytes bounds one response body (one page of events).
	MaxResponseBytes int64
}

// Client talks to MISP's REST API. It is safe for concurrent use.
type Client struct {
	base     *url.URL
	key      string
	ua       string
	http     *http.Client
	attempts int
	interval time.Duration
	maxBody  int64
}

var apiKeyShape = regexp.MustCompile(`^[a-zA-Z0-9]{40}$`)

// NewClient validates cfg and builds a Client. It does no I/O apart from reading CAFile.
func NewClient(cfg ClientConfig) (*Client, error) {
	base, err := url.Parse(strings.TrimRight(cfg.URL, "/"))
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" {
		return nil, fmt.Errorf("misp client: url %q is not an absolute http(s) url", cfg.URL)
	}
	if !apiKeyShape.MatchString(cfg.Key) {
		return nil, errors.New("misp client: api key must be 40 letters or digits (MISP rejects any other shape)")
	}
	if err := cfg.checkComplete(); err != nil {
		return nil, fmt.Errorf("misp client: %w", err)
	}
	c := &Client{
		base: base, key: cfg.Key, ua: cfg.UserAgent, http: cfg.HTTPClient,
		attempts: cfg.MaxPageAttempts, interval: cfg.RetryInterval, maxBody: cfg.MaxResponseBytes,
	}
	c.ua = version.UserAgent(c.ua)
	if c.http == nil {
		tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.InsecureSkipVerify} //nolint:gosec // opt-in, documented
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("misp client: read ca file: %w", err)
			}
			pool, err := x509.SystemCertPool()
			if err != nil || pool == nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("misp client: ca file %s holds no PEM certificate", cfg.CAFile)
			}
			tlsConf.RootCAs = pool
		}
		transport := http.DefaultTransport.(*http.Transport).Clone()
		transport.TLSClientConfig = tlsConf
		c.http = &http.Client{Transport: transport, Timeout: cfg.Timeout}
	}
	hc := *c.http // a copy: a client passed in may be shared
	hc.CheckRedirect = sameOriginRedirect
	c.http = &hc
	return c, nil
}

// checkComplete reports the fields a caller left unset.
func (cfg ClientConfig) checkComplete() error {
	var errs []error
	if cfg.UserAgent == "" {
		errs = append(errs, errors.New("user agent: required"))
	}
	if cfg.HTTPClient == nil && cfg.Timeout <= 0 {
		errs = append(errs, errors.New("timeout: must be positive"))
	}
	if cfg.MaxPageAttempts < 1 {
		errs = append(errs, errors.New("max page attempts: must be at least 1"))
	}
	if cfg.RetryInterval <= 0 {
		errs = append(errs, errors.New("retry interval: must be positive"))
	}
	if cfg.MaxResponseBytes <= 0 {
		errs = append(errs, errors.New("max response bytes: must be positive"))
	}
	return errors.Join(errs...)
}

// errRedirectRefused is returned for a redirect that would carry the API key elsewhere.
var errRedirectRefused = errors.New("redirect refused: it downgrades the scheme or changes the host, and would carry the API key there; set misp.url to the final address")

// sameOriginRedirect follows a redirect only within the scheme and host of the first request.
// Go strips Authorization on a host change only, so https → http on the same host would send
// the key in clear.
func sameOriginRedirect(req *http.Request, via []*http.Request) error {
	first := via[0].URL
	if req.URL.Scheme != first.Scheme || !strings.EqualFold(req.URL.Host, first.Host) {
		return fmt.Errorf("%w (%s://%s → %s://%s)", errRedirectRefused, first.Scheme, first.Host, req.URL.Scheme, req.URL.Host)
	}
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	return nil
}

// SearchStats describes a finished (or failed) SearchEvents or StreamEvents run.
type SearchStats struct {
	// Pages is the number of pages read that held events.
	Pages int
	// Events is the number of events delivered.
	Events int
	// Undecodable is the number of events skipped because they could not be decoded.
	Undecodable int
	// Total is MISP's X-Result-Count (matching events overall), or -1 when it sent none.
	Total int
	// Retries counts page attempts that failed and were retried.
	Retries int
	// Shrunk counts the times a response over MaxResponseBytes made the search halve its page
	// size; PageSize is the size it ended with.
	Shrunk   int
	PageSize int
}

// SearchEvents runs POST /events/restSearch with filters passed through verbatim, adding
// page, limit, returnFormat json and, unless filters set one, a stable order by event id. It
// delivers the events page by page to fn and stops after a short page or an empty page
// (X-Result-Count never ends a search on its own). It is StreamEvents gathering each page:
// an event that cannot be decoded is skipped and counted in SearchStats.Undecodable, and a
// response over the size limit is asked again with smaller pages.
//
// A page that fails with a 5xx, a broken body or a network error is tried MaxPageAttempts
// times with exponential backoff; then SearchEvents returns an error naming the page. Pages
// already delivered to fn stay delivered. An error from fn stops the search and is returned
// wrapped. filters must not set page or limit (SearchEvents pages itself).
//
// Paging by id is stable against edits, but an event deleted during the scan shifts later
// events back by one, so one of them can be missed: callers that need completeness keep a
// timestamp watermark with an overlap (spec misp-interfaces §3.2).
func (c *Client) SearchEvents(ctx context.Context, filters map[string]any, pageSize int, fn func(page []*Event) error) (SearchStats, error) {
	var page []*Event
	return c.StreamEvents(ctx, filters, pageSize, Visitor{
		Request: func() { page = nil },
		Event: func(ev *Event) error {
			page = append(page, ev)
			return nil
		},
		PageEnd: func() error {
			if len(page) == 0 {
				return nil
			}
			p := page
			page = nil
			return fn(p)
		},
	})
}

type searchTotalKey struct{}

// WithSearchTotal returns a context under which SearchEvents calls report with MISP's
// X-Result-Count as each page carries it, before the page is handled (for progress displays;
// the way net/http/httptrace hooks into a request).
func WithSearchTotal(ctx context.Context, report func(total int)) context.Context {
	return context.WithValue(ctx, searchTotalKey{}, report)
}

// SearchEvent runs restSearch for the one event uuid with filters (for example a sink's
// enforceWarninglist), so that MISP applies its server-side filters to it. It returns false
// when the filters exclude the event (or it does not exist). Failures are retried as a
// SearchEvents page is. An event MISP returns that cannot be decoded is an error matching
// UndecodableEvent (errors.As) that names the failing field.
func (c *Client) SearchEvent(ctx context.Context, uuid string, filters map[string]any) (*Event, bool, error) {
	if err := checkEventRef(uuid); err != nil {
		return nil, false, fmt.Errorf("search event: %w", err)
	}
	body, err := searchBody(filters)
	if err != nil {
		return nil, false, fmt.Errorf("search event %s: %w", uuid, err)
	}
	delete(body, "page")
	delete(body, "limit")
	body["uuid"] = uuid
	var (
		found *Event
		bad   *UndecodableEvent
	)
	_, _, err = c.searchWithRetry(ctx, body, pageVisitor{
		attempt: func() { found, bad = nil, nil },
		event: func(ev *Event) error {
			if strings.EqualFold(ev.UUID, uuid) {
				found = ev
			}
			return nil
		},
		undecodable: func(u UndecodableEvent, _ []byte) {
			if u.UUID == "" || strings.EqualFold(u.UUID, uuid) {
				bad = &u
			}
		},
	})
	switch {
	case err != nil:
		return nil, false, fmt.Errorf("search event %s: %w", uuid, err)
	case found != nil:
		return found, true, nil
	case bad != nil:
		return nil, false, fmt.Errorf("search event %s: %w", uuid, *bad)
	}
	return nil, false, nil
}

// ViewEvent fetches one event with GET /events/view/{uuid}. It returns an error matching
// ErrEventNotFound when MISP does not have it (or the key's user may not see it).
func (c *Client) ViewEvent(ctx context.Context, uuid string) (*Event, error) {
	if err := checkEventRef(uuid); err != nil {
		return nil, fmt.Errorf("view event: %w", err)
	}
	data, _, err := c.do(ctx, http.MethodGet, "/events/view/"+url.PathEscape(uuid), nil)
	if err != nil {
		var se *StatusError
		if errors.As(err, &se) && (se.StatusCode == http.StatusNotFound || isNotFoundMessage(se)) {
			return nil, fmt.Errorf("view event %s: %w (%s)", uuid, ErrEventNotFound, se.Message)
		}
		return nil, fmt.Errorf("view event %s: %w", uuid, err)
	}
	ev, err := DecodeEvent(data)
	if err != nil {
		return nil, fmt.Errorf("view event %s: %w", uuid, err)
	}
	return ev, nil
}

// Version returns MISP's version from GET /servers/getVersion. It is the cheapest
// authenticated call: a bad key yields an error matching ErrAuth (an *AuthError).
func (c *Client) Version(ctx context.Context) (string, error) {
	data, _, err := c.do(ctx, http.MethodGet, "/servers/getVersion", nil)
	if err != nil {
		return "", fmt.Errorf("get misp version: %w", err)
	}
	var v struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return "", fmt.Errorf("get misp version: decode: %w", err)
	}
	if v.Version == "" {
		return "", errors.New("get misp version: answer has no version")
	}
	return v.Version, nil
}

// searchBody copies filters and sets returnFormat json, refusing any other format.
func searchBody(filters map[string]any) (map[string]any, error) {
	body := maps.Clone(filters)
	if body == nil {
		body = map[string]any{}
	}
	if f, ok := body["returnFormat"]; ok && f != "json" {
		return nil, fmt.Errorf("returnFormat %v is not supported, only json", f)
	}
	body["returnFormat"] = "json"
	return body, nil
}

// eventRef is what an event uuid (or numeric id) may contain.
var eventRef = regexp.MustCompile(`^[0-9A-Za-z-]{1,64}$`)

func checkEventRef(uuid string) error {
	if !eventRef.MatchString(uuid) {
		return fmt.Errorf("%q is not an event uuid", uuid)
	}
	return nil
}

// transientError marks failures worth retrying that are not a StatusError: broken bodies and
// network errors.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// retryable says whether a failed request may succeed when repeated.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var se *StatusError
	if errors.As(err, &se) {
		return se.Temporary()
	}
	var te *transientError
	return errors.As(err, &te)
}

// do sends one request and returns the body of a 2xx answer, read whole (at most
// MaxResponseBytes). Every other outcome becomes an error, as in send.
func (c *Client) do(ctx context.Context, method, path string, payload []byte) ([]byte, http.Header, error) {
	resp, err := c.send(ctx, method, path, payload)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := readSmall(resp.Body, c.maxBody)
	switch {
	case errors.Is(err, errTooLarge):
		return nil, nil, err
	case err != nil && ctx.Err() != nil:
		return nil, nil, ctx.Err()
	case err != nil:
		return nil, nil, &transientError{fmt.Errorf("read response: %w", err)}
	}
	return data, resp.Header, nil
}

// errorBodyBytes bounds what is read of an error answer (its message is all that is used).
const errorBodyBytes = 64 << 10

// send sends one request and returns a 2xx response, whose body the caller reads and closes.
// Every other outcome becomes an error here: *AuthError for 401/403 on authentication,
// *StatusError for other statuses, *transientError for network failures.
func (c *Client) send(ctx context.Context, method, path string, payload []byte) (*http.Response, error) {
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", c.key)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", c.ua)
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, errRedirectRefused) {
			return nil, fmt.Errorf("%s %s: %w", method, path, unwrapURLError(err))
		}
		return nil, &transientError{fmt.Errorf("%s %s: %w", method, path, unwrapURLError(err))}
	}
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyBytes))
	return nil, classify(resp.StatusCode, data)
}

// unwrapURLError drops the url.Error wrapper, whose text repeats the method and URL the
// caller already names.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// classify turns an HTTP status and body into nil (2xx) or the error the callers act on.
// It is the only place that interprets MISP's statuses.
func classify(status int, body []byte) error {
	if status >= 200 && status <= 299 {
		return nil
	}
	msg := errorMessage(body)
	switch {
	case status == http.StatusUnauthorized:
		return &AuthError{StatusCode: status, Message: msg}
	case status == http.StatusForbidden && !strings.Contains(strings.ToLower(msg), "invalid event"):
		// MISP answers 403 for a missing or wrong key ("Authentication failed. ...") and for
		// a role without the needed permission; both need an operator.
		return &AuthError{StatusCode: status, Message: msg}
	}
	return &StatusError{StatusCode: status, Message: msg}
}

func isNotFoundMessage(se *StatusError) bool {
	return se.StatusCode == http.StatusForbidden && strings.Contains(strings.ToLower(se.Message), "invalid event")
}

// errorMessage extracts MISP's exception message ({"name", "message", "url"}) or, failing
// that, a bounded, single-line start of the body.
func errorMessage(body []byte) string {
	var e struct {
		Message string `json:"message"`
		Name    string `json:"name"`
		Errors  any    `json:"errors"`
	}
	if json.Unmarshal(body, &e) == nil {
		switch {
		case e.Message != "":
			return truncate(e.Message, 300)
		case e.Name != "":
			return truncate(e.Name, 300)
		}
	}
	s := strings.Join(strings.Fields(string(body)), " ")
	if s == "" {
		return "empty body"
	}
	return truncate(s, 200)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
