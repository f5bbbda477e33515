package sentinel

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/mispsentinel/listener/internal/version"
	"github.com/mispsentinel/listener/pusher"
)

// maxResponseBytes bounds how much of an answer is read.
const maxResponseBytes = 1 << 20

// Client uploads to one workspace through one upload API: it is the pusher.Sink of a
// Sentinel sink. It is safe for concurrent use.
type Client struct {
	cfg      Config
	endpoint string
	arrayKey string
	identity Identity
	http     *http.Client
	now      func() time.Time

	mu     sync.Mutex
	tokens *tokenSource
}

var _ pusher.Sink = (*Client)(nil)

// New validates cfg, builds its azidentity credential and returns a Client.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sentinel config: %w", err)
	}
	cred, err := NewCredential(cfg)
	if err != nil {
		return nil, err
	}
	return newClient(cfg, cred, cfg.Credential.Identity())
}

// NewWithCredential is New with a credential built by the caller (for example a stub in
// tests); cfg.Credential is ignored except for naming the identity.
func NewWithCredential(cfg Config, cred azcore.TokenCredential, identity Identity) (*Client, error) {
	if err := cfg.validate(false); err != nil {
		return nil, fmt.Errorf("sentinel config: %w", err)
	}
	if cred == nil {
		return nil, errors.New("sentinel: nil credential")
	}
	return newClient(cfg, cred, identity)
}

func newClient(cfg Config, cred azcore.TokenCredential, identity Identity) (*Client, error) {
	endpoint, err := uploadURL(cfg)
	if err != nil {
		return nil, err
	}
	arrayKey := "stixobjects"
	if cfg.API == APILegacy {
		arrayKey = "value"
	}
	return &Client{
		cfg:      cfg,
		endpoint: endpoint,
		arrayKey: arrayKey,
		identity: identity,
		http: &http.Client{
			Transport: transportFor(cfg),
			// A redirect of an authenticated upload means a wrong host; classify it.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		tokens: &tokenSource{cred: cred, scope: cfg.Scope, now: time.Now},
		now:    time.Now,
	}, nil
}

func uploadURL(cfg Config) (string, error) {
	base, err := url.Parse(cfg.APIURL)
	if err != nil {
		return "", fmt.Errorf("sentinel: api url: %w", err)
	}
	ws := url.PathEscape(cfg.WorkspaceID)
	if cfg.API == APILegacy {
		base = base.JoinPath(ws, "threatintelligence:upload-indicators")
	} else {
		base = base.JoinPath("workspaces", ws, "threat-intelligence-stix-objects:upload")
	}
	base.RawQuery = url.Values{"api-version": {cfg.APIVersion}}.Encode()
	return base.String(), nil
}

func transportFor(cfg Config) http.RoundTripper {
	if cfg.Transport != nil {
		return cfg.Transport
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: cfg.TLSRootCAs}
	t.MaxIdleConnsPerHost = 16
	return t
}

// SetCredential replaces the client's credential (and drops its cached token): the daemon
// calls it when it healed a failing sink with a secret resolved again.
func (c *Client) SetCredential(cred azcore.TokenCredential) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tokens = &tokenSource{cred: cred, scope: c.cfg.Scope, now: time.Now}
}

func (c *Client) tokenSource() *tokenSource {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tokens
}

// Identity returns the Entra identity the client authenticates as.
func (c *Client) Identity() Identity { return c.identity }

// Limits implements pusher.Sink: batches of up to BatchSize objects, revocations mixed with
// upserts (a revocation is an upsert with "revoked": true), and one quota per Entra identity
// (Sentinel's limit applies per identity, so every workspace the identity uploads to
// shares it).
func (c *Client) Limits() pusher.Limits {
	return pusher.Limits{
		MaxBatch: c.cfg.BatchSize,
		Upserts:  []pusher.Quota{{Key: "sentinel:" + c.identity.String(), Requests: c.cfg.RequestsPerMinute, Per: c.cfg.QuotaMinute}},
	}
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

func (c *Client) host() string {
	if u, err := url.Parse(c.endpoint); err == nil {
		return u.Host
	}
	return c.cfg.APIURL
}

// Send implements pusher.Sink: it uploads one batch once (plus the single token refresh on
// 401 and the splitting of a batch Sentinel refuses whole), calling pace before every
// request. An object that is not valid JSON is rejected without being sent: it would make
// Sentinel refuse the whole request.
func (c *Client) Send(ctx context.Context, batch []pusher.Object, pace pusher.Pace) ([]pusher.Rejection, error) {
	if len(batch) > c.cfg.BatchSize {
		return nil, fmt.Errorf("sentinel upload: batch of %d objects exceeds the batch size %d", len(batch), c.cfg.BatchSize)
	}
	var rejected []pusher.Rejection
	send := make([]int, 0, len(batch))
	for i, o := range batch {
		if !json.Valid(o.Body) {
			rejected = append(rejected, pusher.Rejection{Index: i, Message: "not valid JSON; not sent"})
			continue
		}
		if c.cfg.API == APILegacy && !isIndicator(o.Body) {
			// The legacy API takes indicators only and refuses anything else (the creator
			// identity, relationships): nothing of it can live there, so it is settled
			// without being sent instead of becoming a permanent dead letter.
			continue
		}
		send = append(send, i)
	}
	if len(send) > 0 {
		u := &upload{c: c, batch: batch, pace: pace}
		r, err := u.split(ctx, send)
		if err != nil {
			return nil, err
		}
		rejected = append(rejected, r...)
	}
	slices.SortFunc(rejected, func(a, b pusher.Rejection) int { return a.Index - b.Index })
	return rejected, nil
}

// isIndicator reports whether a STIX object is an indicator.
func isIndicator(body []byte) bool {
	var o struct {
		Type string `json:"type"`
	}
	return json.Unmarshal(body, &o) == nil && o.Type == "indicator"
}

// upload is one Send: the batch, the pacing of its requests, and what bisection learned.
type upload struct {
	c     *Client
	batch []pusher.Object
	pace  pusher.Pace
}

// split sends batch[idx...] and returns rejections indexed into the batch. A 400 that does
// not say which records are wrong is split. Single records are probed first (the first, the
// last and the middle one): when each fails alone with the message the whole request got,
// the fault is the request's, not the records' (a wrong source system, an API change), and
// the sink is misconfigured: a FatalError costing 4 requests, instead of a batch of dead
// letters bought with 2n-1. Otherwise each half is sent on its own until the records
// Sentinel refuses alone are found, so one bad record never costs the other 99; the halves
// go in batch order, so the last version of an id sent is the batch's last. A retryable
// error part-way through discards what was already accepted; sending it again with the
// whole batch is an idempotent upsert.
func (u *upload) split(ctx context.Context, idx []int) ([]pusher.Rejection, error) {
	v, err := u.request(ctx, idx)
	if err != nil || v.action != actBisect {
		return v.rejected, err
	}
	probed := map[int]bool{}
	for _, k := range []int{0, len(idx) - 1, len(idx) / 2} {
		if probed[k] {
			continue
		}
		probed[k] = true
		p, err := u.request(ctx, idx[k:k+1])
		if err != nil {
			return nil, err
		}
		if len(p.rejected) == 0 || p.rejected[0].Message != v.message {
			return u.bisect(ctx, idx)
		}
	}
	return nil, &pusher.FatalError{Status: v.status, Cause: CauseWholeRequest, Err: fmt.Errorf(
		"%s refused a request of %d objects, and each object alone, with the same message (%s): the request, not the data, is wrong; check source_system, api and api_version",
		u.c.host(), len(idx), v.message)}
}

// bisect sends the two halves of batch[idx...] on their own.
func (u *upload) bisect(ctx context.Context, idx []int) ([]pusher.Rejection, error) {
	mid := len(idx) / 2
	left, err := u.halves(ctx, idx[:mid])
	if err != nil {
		return nil, err
	}
	right, err := u.halves(ctx, idx[mid:])
	if err != nil {
		return nil, err
	}
	return append(left, right...), nil
}

// halves sends batch[idx...], splitting it in two halves as long as Sentinel refuses it
// whole.
func (u *upload) halves(ctx context.Context, idx []int) ([]pusher.Rejection, error) {
	v, err := u.request(ctx, idx)
	if err != nil || v.action != actBisect {
		return v.rejected, err
	}
	return u.bisect(ctx, idx)
}

// answer is one request's classified outcome, rejections indexed into the batch.
type answer struct {
	action   action // actDone or actBisect
	rejected []pusher.Rejection
	status   int
	message  string // the whole-request message of a bisect answer (or a lone record's)
}

// request sends batch[idx...] once (again with a fresh token after a 401) and classifies
// the answer.
func (u *upload) request(ctx context.Context, idx []int) (answer, error) {
	c := u.c
	body, err := c.encode(u.batch, idx)
	if err != nil {
		return answer{}, err
	}
	var rejectedToken string
	for {
		if err := u.pace(ctx); err != nil {
			return answer{}, fmt.Errorf("sentinel upload: %w", err)
		}
		start := c.now()
		x, token, err := c.send(ctx, body, rejectedToken)
		if err != nil {
			return answer{}, err
		}
		if ctx.Err() != nil {
			return answer{}, fmt.Errorf("sentinel upload: %w", context.Cause(ctx))
		}
		x.batchLen = len(idx)
		x.refreshed = rejectedToken != ""
		v := c.classify(x)
		report := pusher.Request{Objects: len(idx), Status: x.status, Duration: c.now().Sub(start), RequestID: requestID(x.header)}
		if v.action == actDone && v.err == nil {
			report.Rejected = len(v.rejected)
			report.Accepted = len(idx) - report.Rejected
		}
		pusher.ReportRequest(ctx, report)
		switch {
		case v.action == actRefreshToken:
			rejectedToken = token
			continue
		case v.action == actBisect:
			return answer{action: actBisect, status: x.status, message: wholeRequestMessage(x.status, x.body)}, nil
		case v.err != nil:
			return answer{}, v.err
		}
		out := make([]pusher.Rejection, len(v.rejected))
		for i, r := range v.rejected {
			out[i] = pusher.Rejection{Index: idx[r.Index], Message: r.Message}
		}
		return answer{rejected: out, status: x.status}, nil
	}
}

// requestIDHeaders are the headers Microsoft's APIs name a request by, most specific first.
var requestIDHeaders = []string{"x-ms-request-id", "request-id", "x-ms-correlation-request-id", "apim-request-id"}

// requestID returns the id the API gave a request, "" when its answer names none.
func requestID(h http.Header) string {
	for _, k := range requestIDHeaders {
		if v := h.Get(k); v != "" {
			return v
		}
	}
	return ""
}

func (c *Client) encode(batch []pusher.Object, idx []int) ([]byte, error) {
	var buf bytes.Buffer
	ss, err := json.Marshal(c.cfg.SourceSystem)
	if err != nil {
		return nil, fmt.Errorf("sentinel upload: encode sourcesystem: %w", err)
	}
	buf.WriteString(`{"sourcesystem":`)
	buf.Write(ss)
	buf.WriteString(`,"` + c.arrayKey + `":[`)
	for n, i := range idx {
		if n > 0 {
			buf.WriteByte(',')
		}
		buf.Write(batch[i].Body)
	}
	buf.WriteString("]}")
	return buf.Bytes(), nil
}

// send posts body once. The returned error is set only when ctx ended; every other failure
// is in the exchange for classify. token is the token the request carried.
func (c *Client) send(ctx context.Context, body []byte, rejectedToken string) (x exchange, token string, err error) {
	tokenCtx, cancelToken := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	token, err = c.tokenSource().token(tokenCtx, rejectedToken)
	cancelToken()
	if err != nil {
		if ctx.Err() != nil {
			return exchange{}, "", fmt.Errorf("sentinel upload: %w", context.Cause(ctx))
		}
		return exchange{tokenErr: err}, "", nil
	}
	reqCtx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(reqCtx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return exchange{}, "", fmt.Errorf("sentinel upload: build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", version.UserAgent(c.cfg.UserAgent))
	resp, err := c.http.Do(req)
	if err != nil {
		return exchange{sendErr: err}, token, nil
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return exchange{sendErr: fmt.Errorf("read answer: %w", err)}, token, nil
	}
	return exchange{status: resp.StatusCode, header: resp.Header, body: respBody, now: c.now()}, token, nil
}
