package sentinel

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
	"slices"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/mispsentinel/listener/internal/version"
)

// Rejection is one object Sentinel refused, with its reasons.
type Rejection struct {
	// Index is the object's position in the batch passed to Upload.
	Index int
	// Message is Sentinel's error messages for the object, joined by "; ".
	Message string
}

// UploadResult is the outcome of a batch Sentinel answered: every index not listed in
// Rejected was accepted.
type UploadResult struct {
	Rejected []Rejection
}

// Uploader uploads batches of STIX objects to one Sentinel workspace.
type Uploader interface {
	// Upload sends one batch (≤ 100 objects) once (plus the single token refresh on 401 and
	// the bisection of a whole-batch 400). A nil error means every object was accepted or is
	// listed in Rejected. A *RetryableError means nothing was accepted; try the same batch
	// again after err.After (429: longer of Retry-After and the seconds in the body's
	// message, plus jitter; 5xx/timeouts/connection errors: zero, the caller backs off). A
	// *FatalError means the sink is misconfigured (401 after refresh, 403, 404): stop the
	// sink loudly. Any other error (ctx ended, batch larger than the limit) is returned as is.
	Upload(ctx context.Context, objects []json.RawMessage) (UploadResult, error)
}

// maxResponseBytes bounds how much of an answer is read.
const maxResponseBytes = 1 << 20

// Client uploads to one workspace through one upload API. It is safe for concurrent use;
// all Clients of one Entra identity should share a Limiters registry.
type Client struct {
	cfg      Config
	endpoint string
	arrayKey string
	identity Identity
	http     *http.Client
	tokens   *tokenSource
	limit    *IdentityLimit
	now      func() time.Time
	// jitter returns the random extra wait added to a throttling wait.
	jitter func(time.Duration) time.Duration
}

var _ Uploader = (*Client)(nil)

// New validates cfg, builds its azidentity credential and returns a Client. limiters is the
// registry shared by every sink; nil gives the Client a limiter of its own.
func New(cfg Config, limiters *Limiters) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sentinel config: %w", err)
	}
	cred, err := NewCredential(cfg)
	if err != nil {
		return nil, err
	}
	return newClient(cfg, cred, cfg.Credential.Identity(), limiters)
}

// NewWithCredential is New with a credential built by the caller (for example a stub in
// tests); cfg.Credential is ignored except for naming the identity.
func NewWithCredential(cfg Config, cred azcore.TokenCredential, identity Identity, limiters *Limiters) (*Client, error) {
	if err := cfg.validate(false); err != nil {
		return nil, fmt.Errorf("sentinel config: %w", err)
	}
	if cred == nil {
		return nil, errors.New("sentinel: nil credential")
	}
	return newClient(cfg, cred, identity, limiters)
}

func newClient(cfg Config, cred azcore.TokenCredential, identity Identity, limiters *Limiters) (*Client, error) {
	cfg = cfg.WithDefaults()
	if limiters == nil {
		limiters = NewLimiters(LimiterOptions{})
	}
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
		limit:  limiters.For(identity),
		now:    time.Now,
		jitter: func(d time.Duration) time.Duration { return rand.N(d/10 + 1) },
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

// Identity returns the Entra identity the client authenticates as.
func (c *Client) Identity() Identity { return c.identity }

// BatchSize returns the largest batch Upload accepts.
func (c *Client) BatchSize() int { return c.cfg.BatchSize }

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

func (c *Client) host() string {
	if u, err := url.Parse(c.endpoint); err == nil {
		return u.Host
	}
	return c.cfg.APIURL
}

// Upload implements Uploader.
func (c *Client) Upload(ctx context.Context, objects []json.RawMessage) (UploadResult, error) {
	if len(objects) > c.cfg.BatchSize {
		return UploadResult{}, fmt.Errorf("sentinel upload: batch of %d objects exceeds the batch size %d", len(objects), c.cfg.BatchSize)
	}
	var rejected []Rejection
	send := make([]int, 0, len(objects))
	for i, o := range objects {
		if !json.Valid(o) {
			// Sending it would make Sentinel refuse the whole request.
			rejected = append(rejected, Rejection{Index: i, Message: "not valid JSON; not sent"})
			continue
		}
		send = append(send, i)
	}
	if len(send) > 0 {
		r, err := c.upload(ctx, objects, send)
		if err != nil {
			return UploadResult{}, err
		}
		rejected = append(rejected, r...)
	}
	slices.SortFunc(rejected, func(a, b Rejection) int { return a.Index - b.Index })
	return UploadResult{Rejected: rejected}, nil
}

// upload sends objects[idx...] and returns rejections indexed into objects. A 400 that does
// not say which records are wrong is bisected: each half is sent on its own until the
// records Sentinel refuses alone are found, so one bad record never costs the other 99. A
// retryable error part-way through discards the halves already accepted; re-sending them
// with the whole batch is an idempotent upsert.
func (c *Client) upload(ctx context.Context, objects []json.RawMessage, idx []int) ([]Rejection, error) {
	body, err := c.encode(objects, idx)
	if err != nil {
		return nil, err
	}
	var rejectedToken string
	for {
		x, token, err := c.send(ctx, body, rejectedToken)
		if err != nil {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("sentinel upload: %w", context.Cause(ctx))
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
			left, err := c.upload(ctx, objects, idx[:mid])
			if err != nil {
				return nil, err
			}
			right, err := c.upload(ctx, objects, idx[mid:])
			if err != nil {
				return nil, err
			}
			return append(left, right...), nil
		}
		if v.err != nil {
			var re *RetryableError
			if errors.As(v.err, &re) && re.After > 0 {
				re.After += c.jitter(re.After)
				c.limit.Pause(c.now().Add(re.After))
			}
			return nil, v.err
		}
		out := make([]Rejection, len(v.result.Rejected))
		for i, r := range v.result.Rejected {
			out[i] = Rejection{Index: idx[r.Index], Message: r.Message}
		}
		return out, nil
	}
}

func (c *Client) encode(objects []json.RawMessage, idx []int) ([]byte, error) {
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
		buf.Write(objects[i])
	}
	buf.WriteString("]}")
	return buf.Bytes(), nil
}

// send waits for the identity's rate limit and posts body once. The returned error is set
// only when ctx ended or the limiter cannot be satisfied before ctx's deadline; every other
// failure is in the exchange for classify. token is the token the request carried.
func (c *Client) send(ctx context.Context, body []byte, rejectedToken string) (x exchange, token string, err error) {
	tokenCtx, cancelToken := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	token, err = c.tokens.token(tokenCtx, rejectedToken)
	cancelToken()
	if err != nil {
		if ctx.Err() != nil {
			return exchange{}, "", fmt.Errorf("sentinel upload: %w", context.Cause(ctx))
		}
		return exchange{tokenErr: err}, "", nil
	}
	if err := c.limit.Wait(ctx); err != nil {
		return exchange{}, "", fmt.Errorf("sentinel upload: %w", err)
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
