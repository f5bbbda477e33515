package defender

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/mispsentinel/listener/pusher"
	"github.com/mispsentinel/listener/sentinel"
)

// ItemResult is the outcome of one indicator of an import, or one id of a BatchDelete.
type ItemResult struct {
	// ID is the indicator's MDE id (import successes).
	ID string
	// Failed is set when MDE refused the item; Reason is MDE's failureReason. Never retry a
	// failed item unchanged.
	Failed bool
	Reason string
	// CapReached is set when Reason says the tenant is full (the item is not invalid).
	CapReached bool
	// Gone is set for a deleted id MDE did not know (already deleted or expired).
	Gone bool
	// Unanswered is set when a 200 import answer held no result for the item: send it again.
	Unanswered bool

	value string
}

// maxResponseBytes bounds how much of an answer is read (a list page of 10,000 indicators
// is about 10 MB).
const maxResponseBytes = 64 << 20

// Client calls the indicator API of one tenant as one identity. It is safe for concurrent
// use; every Client of a daemon should share one Limiters registry.
type Client struct {
	cfg      Config
	base     *url.URL
	host     string
	identity sentinel.Identity
	http     *http.Client
	tokens   *sentinel.TokenSource
	limits   identityLimits
	now      func() time.Time
	jitter   func(time.Duration) time.Duration
}

// New validates cfg, builds the azidentity credential exactly as a Sentinel sink does and
// returns a Client. limiters nil gives the client limits of its own (SpecRateLimits).
func New(cfg Config, limiters *Limiters) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("defender config: %w", err)
	}
	cred, err := sentinel.NewCredential(sentinel.Config{
		AuthorityHost: cfg.Endpoints.AuthorityHost,
		Credential:    cfg.Credential,
		TLSRootCAs:    cfg.TLSRootCAs,
		Transport:     cfg.Transport,
	})
	if err != nil {
		return nil, fmt.Errorf("defender: %w", err)
	}
	return NewWithCredential(cfg, cred, cfg.Credential.Identity(), limiters)
}

// NewWithCredential is New with a credential built by the caller.
func NewWithCredential(cfg Config, cred azcore.TokenCredential, identity sentinel.Identity, limiters *Limiters) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("defender config: %w", err)
	}
	if cred == nil {
		return nil, errors.New("defender: nil credential")
	}
	base, err := url.Parse(cfg.Endpoints.APIURL)
	if err != nil {
		return nil, fmt.Errorf("defender: api url: %w", err)
	}
	if limiters == nil {
		limiters = NewLimiters(SpecRateLimits)
	}
	transport := cfg.Transport
	if transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: cfg.TLSRootCAs}
		transport = t
	}
	return &Client{
		cfg:      cfg,
		base:     base,
		host:     base.Host,
		identity: identity,
		http: &http.Client{
			Transport:     transport,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		tokens: sentinel.NewTokenSource(cred, cfg.Endpoints.Scope),
		limits: limiters.forIdentity(identity),
		now:    time.Now,
		jitter: func(d time.Duration) time.Duration { return rand.N(d/10 + 1) },
	}, nil
}

// Identity returns the Entra identity the client authenticates as.
func (c *Client) Identity() sentinel.Identity { return c.identity }

// BatchSize returns the most indicators per Import and ids per BatchDelete.
func (c *Client) BatchSize() int { return c.cfg.BatchSize }

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Import submits or updates indicators (at most BatchSize) in one import call, plus the one
// token refresh after a 401 and the bisection of a call refused whole. It returns one
// ItemResult per indicator, or a *pusher.RetryError (nothing stored; call again), a
// *CapError (the tenant is full; nothing stored), a *pusher.FatalError (misconfiguration)
// or the context's error.
func (c *Client) Import(ctx context.Context, indicators []Indicator) ([]ItemResult, error) {
	if len(indicators) > c.cfg.BatchSize {
		return nil, fmt.Errorf("defender import: batch of %d indicators exceeds the batch size %d", len(indicators), c.cfg.BatchSize)
	}
	idx := make([]int, len(indicators))
	for i := range idx {
		idx[i] = i
	}
	out := make([]ItemResult, len(indicators))
	if len(idx) == 0 {
		return out, nil
	}
	err := c.call(ctx, opImport, idx, func(part []int) ([]byte, error) {
		body := struct {
			Indicators []Indicator `json:"Indicators"`
		}{make([]Indicator, len(part))}
		for n, i := range part {
			body.Indicators[n] = indicators[i].request()
		}
		return json.Marshal(body)
	}, func(part []int, items []ItemResult) {
		sent := make([]Indicator, len(part))
		for n, i := range part {
			sent[n] = indicators[i]
		}
		for n, r := range pairResults(sent, items) {
			out[part[n]] = r
		}
	})
	return out, err
}

// pairResults matches import results to the indicators sent. Microsoft does not document
// their order (spec §3.1): a result is taken in order when its indicator value matches, and
// otherwise looked up by value; an indicator without a result is marked Unanswered.
func pairResults(sent []Indicator, items []ItemResult) []ItemResult {
	out := make([]ItemResult, len(sent))
	used := make([]bool, len(items))
	byValue := make(map[string][]int)
	for i, r := range items {
		byValue[strings.ToLower(r.value)] = append(byValue[strings.ToLower(r.value)], i)
	}
	take := func(n, i int) {
		used[i] = true
		out[n] = items[i]
		out[n].value = ""
	}
	for n, ind := range sent {
		if n < len(items) && !used[n] && (items[n].value == "" || strings.EqualFold(items[n].value, ind.IndicatorValue)) {
			take(n, n)
			continue
		}
		out[n].Unanswered = true
		for _, i := range byValue[strings.ToLower(ind.IndicatorValue)] {
			if !used[i] {
				out[n].Unanswered = false
				take(n, i)
				break
			}
		}
	}
	return out
}

// BatchDelete deletes indicators by id (at most BatchSize) with BatchDelete calls. Ids MDE
// does not know are reported Gone. Errors as for Import.
func (c *Client) BatchDelete(ctx context.Context, ids []string) ([]ItemResult, error) {
	if len(ids) > c.cfg.BatchSize {
		return nil, fmt.Errorf("defender batch delete: %d ids exceed the batch size %d", len(ids), c.cfg.BatchSize)
	}
	out := make([]ItemResult, len(ids))
	var idx []int
	for i, id := range ids {
		if _, err := strconv.ParseUint(id, 10, 64); err != nil {
			out[i] = ItemResult{Failed: true, Reason: fmt.Sprintf("%q is not an MDE indicator id; not sent", id)}
			continue
		}
		idx = append(idx, i)
	}
	if len(idx) == 0 {
		return out, nil
	}
	err := c.call(ctx, opDelete, idx, func(part []int) ([]byte, error) {
		body := struct {
			IndicatorIds []string `json:"IndicatorIds"`
		}{make([]string, len(part))}
		for n, i := range part {
			body.IndicatorIds[n] = ids[i]
		}
		return json.Marshal(body)
	}, func(part []int, items []ItemResult) {
		for n, i := range part {
			if n < len(items) {
				out[i] = items[n]
			}
		}
	})
	return out, err
}

// List returns every active indicator matching the OData filter ("" for all), paging with
// $top/$skip until a short page and following @odata.nextLink when MDE sends one.
func (c *Client) List(ctx context.Context, filter string, pageSize int) ([]Indicator, error) {
	if pageSize <= 0 || pageSize > MaxListPage {
		pageSize = MaxListPage
	}
	var all []Indicator
	next := ""
	for skip := 0; ; {
		page, nextLink, err := c.listPage(ctx, filter, pageSize, skip, next)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		switch {
		case nextLink != "":
			next = nextLink
		case len(page) < pageSize:
			return all, nil
		default:
			next = ""
			skip = len(all)
		}
	}
}

// Check makes one read-only call (the first indicator) to prove that the token, the audience
// and the permission work. It returns nil, or the classified error.
func (c *Client) Check(ctx context.Context) error {
	_, _, err := c.listPage(ctx, "", 1, 0, "")
	return err
}

// OwnFilter is the OData filter selecting the indicators an application created.
func OwnFilter(clientID string) string {
	return "createdBy eq '" + strings.ReplaceAll(clientID, "'", "''") + "'"
}

func (c *Client) listPage(ctx context.Context, filter string, top, skip int, nextLink string) ([]Indicator, string, error) {
	target := nextLink
	if target == "" {
		u := c.base.JoinPath("api", "indicators")
		q := url.Values{}
		if filter != "" {
			q.Set("$filter", filter)
		}
		q.Set("$top", strconv.Itoa(top))
		if skip > 0 {
			q.Set("$skip", strconv.Itoa(skip))
		}
		u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
		target = u.String()
	} else if u, err := url.Parse(nextLink); err != nil || u.Host != c.host {
		return nil, "", &pusher.FatalError{Cause: CauseUnexpectedStatus, Err: fmt.Errorf("list: nextLink %q leaves %s", nextLink, c.host)}
	}
	var page struct {
		Value    []Indicator `json:"value"`
		NextLink string      `json:"@odata.nextLink"`
	}
	var rejectedToken string
	for {
		x, token, err := c.send(ctx, opList, http.MethodGet, target, nil, rejectedToken)
		if err != nil {
			return nil, "", err
		}
		x.refreshed = rejectedToken != ""
		v := c.classify(x)
		if v.action == actRefreshToken {
			rejectedToken = token
			continue
		}
		if v.err != nil {
			return nil, "", c.pauseOn(opList, v.err)
		}
		if err := json.Unmarshal(x.body, &page); err != nil {
			return nil, "", &pusher.RetryError{Reason: pusher.RetryOther, Status: x.status, Err: fmt.Errorf("unreadable list answer from %s: %w", c.host, err)}
		}
		return page.Value, page.NextLink, nil
	}
}

// call runs one write call over batch positions idx: encode builds the body of a part,
// settle records the per-item results of a part. A call refused whole is bisected so that
// one bad item never costs the others.
func (c *Client) call(ctx context.Context, op operation, idx []int, encode func([]int) ([]byte, error), settle func([]int, []ItemResult)) error {
	body, err := encode(idx)
	if err != nil {
		return fmt.Errorf("defender %s: encode: %w", op, err)
	}
	path := "import"
	if op == opDelete {
		path = "BatchDelete"
	}
	target := c.base.JoinPath("api", "indicators", path).String()
	var rejectedToken string
	for {
		x, token, err := c.send(ctx, op, http.MethodPost, target, body, rejectedToken)
		if err != nil {
			return err
		}
		x.batchLen = len(idx)
		x.refreshed = rejectedToken != ""
		v := c.classify(x)
		switch v.action {
		case actRefreshToken:
			rejectedToken = token
			continue
		case actBisect:
			mid := len(idx) / 2
			if err := c.call(ctx, op, idx[:mid], encode, settle); err != nil {
				return err
			}
			return c.call(ctx, op, idx[mid:], encode, settle)
		}
		if v.err != nil {
			return c.pauseOn(op, v.err)
		}
		settle(idx, v.items)
		return nil
	}
}

// pauseOn adds jitter to a throttling wait and holds every call of that type of the
// identity until it has passed.
func (c *Client) pauseOn(op operation, err error) error {
	var re *pusher.RetryError
	if errors.As(err, &re) && re.After > 0 {
		re.After += c.jitter(re.After)
		c.limits.of(op).Pause(c.now().Add(re.After))
	}
	return err
}

// send waits for the identity's limit of op and makes one request. The returned error is
// set only when ctx ended; every other failure is in the exchange for classify.
func (c *Client) send(ctx context.Context, op operation, method, target string, body []byte, rejectedToken string) (x exchange, token string, err error) {
	x.op = op
	tokenCtx, cancelToken := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	token, err = c.tokens.Token(tokenCtx, rejectedToken)
	cancelToken()
	if err != nil {
		if ctx.Err() != nil {
			return x, "", fmt.Errorf("defender %s: %w", op, context.Cause(ctx))
		}
		x.tokenErr = err
		return x, "", nil
	}
	if err := c.limits.of(op).Wait(ctx); err != nil {
		return x, "", fmt.Errorf("defender %s: %w", op, err)
	}
	reqCtx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(reqCtx, method, target, rd)
	if err != nil {
		return x, "", fmt.Errorf("defender %s: build request: %w", op, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return x, "", fmt.Errorf("defender %s: %w", op, context.Cause(ctx))
		}
		x.sendErr = err
		return x, token, nil
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		x.sendErr = fmt.Errorf("read answer: %w", err)
		return x, token, nil
	}
	x.status, x.header, x.body, x.now = resp.StatusCode, resp.Header, respBody, c.now()
	return x, token, nil
}
