package sentinel

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/mispsentinel/listener/internal/version"
	"github.com/mispsentinel/listener/pusher"
)

// This file is the read-back client: it reads what a workspace's threat-intelligence store
// holds through the management (ARM) API (shared/spec/sentinel-api.md §5.1, §5.2). It is
// separate from the upload client's delivery path: no pusher drives it, so it waits for the
// quota, honours 429 and retries a page itself.

// ReadAPI selects the management API a Reader reads through.
type ReadAPI string

const (
	// ReadIndicators is the stable queryIndicators API (…/threatIntelligence/main/
	// queryIndicators): indicators with Sentinel's own property names.
	ReadIndicators ReadAPI = "indicators"
	// ReadSTIXObjects is the preview STIX-object query (…/threatIntelligence/main/query):
	// every object with the STIX object as stored (properties.data).
	ReadSTIXObjects ReadAPI = "stix-objects"
)

// ReaderConfig configures a read-back client of one workspace. Every field is required
// (except the TLS overrides): the daemon fills it from the sink's read_back block, whose
// defaults live in config/defaults.go. NewReader validates, it never fills in.
type ReaderConfig struct {
	API        ReadAPI
	APIVersion string
	// Cloud names the workspace's cloud in error messages.
	Cloud string
	// AuthorityHost (Entra), ManagementURL (ARM, e.g. https://management.azure.com) and
	// Scope (the token scope) must belong to the same cloud.
	AuthorityHost string
	ManagementURL string
	Scope         string

	// SubscriptionID, ResourceGroup and WorkspaceName locate the workspace for ARM (the
	// upload API's workspace GUID does not).
	SubscriptionID string
	ResourceGroup  string
	WorkspaceName  string

	UserAgent string
	// RequestTimeout bounds each HTTP request.
	RequestTimeout time.Duration
	// PageSize is the number of objects asked for per page; MaxPages bounds one listing.
	PageSize int
	MaxPages int
	// RequestsPerMinute is the read quota of the identity on ARM (shared by every Reader of
	// the identity through the Pacers), per QuotaMinute.
	RequestsPerMinute int
	QuotaMinute       time.Duration
	// MaxRetryAfter caps a wait a 429 asks for; MaxAttempts bounds the tries of one page
	// (429, 5xx, network errors); RetryInitial is the first pause after a 5xx or network
	// error without Retry-After (it doubles).
	MaxRetryAfter time.Duration
	MaxAttempts   int
	RetryInitial  time.Duration

	Credential Credential

	TLSRootCAs *x509.CertPool
	Transport  http.RoundTripper
}

// Validate reports every problem of c with the field it concerns. It does no I/O.
func (c ReaderConfig) Validate() error { return c.validate(true) }

var armNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.()-]{0,89}$`)

func (c ReaderConfig) validate(withCredential bool) error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	switch c.API {
	case ReadIndicators, ReadSTIXObjects:
	default:
		bad("api", "unknown read-back API %q (want %q or %q)", c.API, ReadIndicators, ReadSTIXObjects)
	}
	if strings.TrimSpace(c.APIVersion) == "" || strings.ContainsAny(c.APIVersion, "&?#/ ") {
		bad("api_version", "invalid api-version %q", c.APIVersion)
	}
	for _, u := range []struct{ field, value string }{{"authority_host", c.AuthorityHost}, {"management_url", c.ManagementURL}} {
		if err := checkHTTPSURL(u.value); err != nil {
			bad(u.field, "%v", err)
		}
	}
	if !strings.HasSuffix(c.Scope, "/.default") {
		bad("scope", "%q must end in /.default", c.Scope)
	}
	if !guidLike.MatchString(c.SubscriptionID) {
		bad("subscription_id", "%q is not a GUID", c.SubscriptionID)
	}
	if !armNamePattern.MatchString(c.ResourceGroup) {
		bad("resource_group", "%q is not a resource group name", c.ResourceGroup)
	}
	if !armNamePattern.MatchString(c.WorkspaceName) {
		bad("workspace_name", "%q is not a workspace name (the name, not the workspace ID)", c.WorkspaceName)
	}
	if c.UserAgent == "" || strings.ContainsAny(c.UserAgent, "\r\n") {
		bad("user_agent", "must be a single, non-empty line")
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"request_timeout", c.RequestTimeout}, {"quota_minute", c.QuotaMinute}, {"max_retry_after", c.MaxRetryAfter}, {"retry_initial", c.RetryInitial}} {
		if d.v <= 0 {
			bad(d.field, "%s must be positive", d.v)
		}
	}
	for _, n := range []struct {
		field string
		v     int
	}{{"page_size", c.PageSize}, {"max_pages", c.MaxPages}, {"requests_per_minute", c.RequestsPerMinute}, {"max_attempts", c.MaxAttempts}} {
		if n.v <= 0 {
			bad(n.field, "%d must be positive", n.v)
		}
	}
	if withCredential {
		if err := c.Credential.validate(); err != nil {
			errs = append(errs, fmt.Errorf("credential.%w", err))
		}
	}
	return errors.Join(errs...)
}

var guidLike = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// Reader reads back the threat-intelligence objects of one workspace. It is safe for
// concurrent use.
type Reader struct {
	cfg      ReaderConfig
	base     *url.URL // …/providers/Microsoft.SecurityInsights/threatIntelligence/main
	identity Identity
	http     *http.Client
	tokens   *tokenSource
	pacers   *pusher.Pacers
	quota    pusher.Quota
	now      func() time.Time
}

// NewReader validates cfg, builds its credential and returns a Reader whose requests count
// against the identity's read quota in pacers (share one Pacers between the Readers of a
// process, so that Readers of one identity share it).
func NewReader(cfg ReaderConfig, pacers *pusher.Pacers) (*Reader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sentinel read-back config: %w", err)
	}
	cred, err := NewCredential(Config{AuthorityHost: cfg.AuthorityHost, Credential: cfg.Credential, TLSRootCAs: cfg.TLSRootCAs, Transport: cfg.Transport})
	if err != nil {
		return nil, err
	}
	return newReader(cfg, cred, cfg.Credential.Identity(), pacers)
}

// NewReaderWithCredential is NewReader with a credential built by the caller.
func NewReaderWithCredential(cfg ReaderConfig, cred azcore.TokenCredential, identity Identity, pacers *pusher.Pacers) (*Reader, error) {
	if err := cfg.validate(false); err != nil {
		return nil, fmt.Errorf("sentinel read-back config: %w", err)
	}
	if cred == nil {
		return nil, errors.New("sentinel read-back: nil credential")
	}
	return newReader(cfg, cred, identity, pacers)
}

func newReader(cfg ReaderConfig, cred azcore.TokenCredential, identity Identity, pacers *pusher.Pacers) (*Reader, error) {
	if pacers == nil {
		return nil, errors.New("sentinel read-back: nil pacers")
	}
	base, err := url.Parse(cfg.ManagementURL)
	if err != nil {
		return nil, fmt.Errorf("sentinel read-back: management url: %w", err)
	}
	base = base.JoinPath("subscriptions", cfg.SubscriptionID, "resourceGroups", cfg.ResourceGroup,
		"providers", "Microsoft.OperationalInsights", "workspaces", cfg.WorkspaceName,
		"providers", "Microsoft.SecurityInsights", "threatIntelligence", "main")
	return &Reader{
		cfg:      cfg,
		base:     base,
		identity: identity,
		http: &http.Client{
			Transport:     transportFor(Config{TLSRootCAs: cfg.TLSRootCAs, Transport: cfg.Transport}),
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		tokens: &tokenSource{cred: cred, scope: cfg.Scope, now: time.Now},
		pacers: pacers,
		quota:  ReadQuota(identity, cfg.RequestsPerMinute, cfg.QuotaMinute),
		now:    time.Now,
	}, nil
}

// ReadQuota is the management read quota of an identity: every Reader of the identity shares
// it (it is separate from the upload quota: ARM counts its own requests).
func ReadQuota(identity Identity, requests int, per time.Duration) pusher.Quota {
	return pusher.Quota{Key: "sentinel-arm-read:" + identity.String(), Requests: requests, Per: per}
}

// Identity returns the Entra identity the Reader authenticates as.
func (r *Reader) Identity() Identity { return r.identity }

// API returns the management API the Reader reads through.
func (r *Reader) API() ReadAPI { return r.cfg.API }

// Close releases idle connections.
func (r *Reader) Close() { r.http.CloseIdleConnections() }

// Query selects what a listing returns. The zero value lists every live indicator of every
// source system.
type Query struct {
	// SourceSystems keeps the objects uploaded under one of these source systems; empty
	// keeps all.
	SourceSystems []string
	// IDs keeps the objects with one of these STIX ids; empty keeps all.
	IDs []string
	// Keywords keeps the indicators whose pattern (or, with the indicators API, name)
	// contains one of these, case-insensitively; empty keeps all.
	Keywords []string
	// IncludeRevoked lists revoked and expired indicators too (queryIndicators'
	// includeDisabled; the preview query always lists them and the Reader drops them).
	IncludeRevoked bool
}

// Observable is one comparison of a simple STIX pattern: the object type (file hashes as
// "file:hashes.'SHA-256'") and the value.
type Observable struct {
	Type  string
	Value string
}

// Key is the observable's identity for matching copies across source systems: the type and
// the value, case-folded except for URLs.
func (o Observable) Key() string {
	v := o.Value
	if o.Type != "url" {
		v = strings.ToLower(v)
	}
	return strings.ToLower(o.Type) + "|" + v
}

var patternComparison = regexp.MustCompile(`([a-z0-9-]+):([A-Za-z0-9_.'\-]+)\s*=\s*'((?:[^'\\]|\\.)*)'`)

// PatternObservables returns the comparisons of a STIX pattern ([ipv4-addr:value = '…'],
// [file:hashes.'SHA-256' = '…'], compound patterns give one per comparison).
func PatternObservables(pattern string) []Observable {
	var out []Observable
	for _, m := range patternComparison.FindAllStringSubmatch(pattern, -1) {
		typ := m[1]
		if typ == "file" {
			typ = "file:" + m[2]
		}
		value := strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(m[3])
		out = append(out, Observable{Type: typ, Value: value})
	}
	return out
}

// HeldObject is one indicator as the workspace holds it.
type HeldObject struct {
	// SourceSystem and ID (the STIX id) are Sentinel's identity of the object.
	SourceSystem string
	ID           string
	// Name is the ARM name (a GUID for queryIndicators, base64(source)---id for the
	// preview query); ResourceID the full ARM id.
	Name       string
	ResourceID string
	Pattern    string
	// Observables are the pattern's comparisons.
	Observables []Observable
	Created     time.Time
	Modified    time.Time
	ValidFrom   time.Time
	ValidUntil  time.Time
	// LastUpdated is when Sentinel last ingested or changed it.
	LastUpdated time.Time
	Revoked     bool
	// Confidence is -1 when the object has none.
	Confidence int
	Labels     []string
	// Description and ExternalReferences name where the indicator came from (a MISP event's
	// summary and back-link, for misp2sentinel's and the listener's).
	Description        string
	ExternalReferences []ExternalReference
	// Data is the STIX object as stored (the preview query only; nil with queryIndicators).
	Data json.RawMessage
}

// ExternalReference is one STIX external reference of a held indicator.
type ExternalReference struct {
	SourceName string `json:"source_name"`
	ExternalID string `json:"external_id"`
	URL        string `json:"url"`
}

// Live reports whether Sentinel matches the indicator at now: not revoked, not expired.
func (h HeldObject) Live(now time.Time) bool {
	return !h.Revoked && (h.ValidUntil.IsZero() || h.ValidUntil.After(now))
}

// ReadError is an answer of the management API that retrying cannot change.
type ReadError struct {
	Status  int
	Code    string
	Message string
	Hint    string
}

func (e *ReadError) Error() string {
	s := fmt.Sprintf("read-back: HTTP %d", e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

// List returns every object q selects.
func (r *Reader) List(ctx context.Context, q Query) ([]HeldObject, error) {
	var out []HeldObject
	err := r.Each(ctx, q, func(h HeldObject) error {
		out = append(out, h)
		return nil
	})
	return out, err
}

// Lookup returns the copies of one STIX id the workspace holds (every source system unless
// sourceSystems names some), revoked and expired ones included: `listener trace` shows them.
func (r *Reader) Lookup(ctx context.Context, id string, sourceSystems ...string) ([]HeldObject, error) {
	return r.List(ctx, Query{IDs: []string{id}, SourceSystems: sourceSystems, IncludeRevoked: true})
}

// LookupValue returns the indicators with an observable whose value is value (case-folded as
// Observable.Key does), revoked and expired ones included.
func (r *Reader) LookupValue(ctx context.Context, value string, sourceSystems ...string) ([]HeldObject, error) {
	var out []HeldObject
	err := r.Each(ctx, Query{Keywords: []string{value}, SourceSystems: sourceSystems, IncludeRevoked: true}, func(h HeldObject) error {
		for _, o := range h.Observables {
			if o.Value == value || (o.Type != "url" && strings.EqualFold(o.Value, value)) {
				out = append(out, h)
				break
			}
		}
		return nil
	})
	return out, err
}

// Each calls fn for every indicator q selects, page by page, in the API's order. An error of
// fn stops the listing and is returned.
func (r *Reader) Each(ctx context.Context, q Query, fn func(HeldObject) error) error {
	if r.cfg.API == ReadSTIXObjects {
		return r.eachObject(ctx, q, fn)
	}
	return r.eachIndicator(ctx, q, fn)
}

// keep applies what the API may not have filtered itself.
func keep(q Query, h HeldObject, now time.Time) bool {
	if !q.IncludeRevoked && !h.Live(now) {
		return false
	}
	if len(q.SourceSystems) > 0 && !containsString(q.SourceSystems, h.SourceSystem) {
		return false
	}
	if len(q.IDs) > 0 && !containsString(q.IDs, h.ID) {
		return false
	}
	if len(q.Keywords) > 0 {
		found := false
		for _, k := range q.Keywords {
			if strings.Contains(strings.ToLower(h.Pattern), strings.ToLower(k)) {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// indicatorsPage is a queryIndicators answer.
type indicatorsPage struct {
	Value []struct {
		ID         string `json:"id"`
		Name       string `json:"name"`
		Kind       string `json:"kind"`
		Properties struct {
			Source                 string                 `json:"source"`
			DisplayName            string                 `json:"displayName"`
			ExternalID             string                 `json:"externalId"`
			Pattern                string                 `json:"pattern"`
			ParsedPattern          []parsedPattern        `json:"parsedPattern"`
			Created                string                 `json:"created"`
			Modified               string                 `json:"modified"`
			ValidFrom              string                 `json:"validFrom"`
			ValidUntil             string                 `json:"validUntil"`
			LastUpdatedTimeUtc     string                 `json:"lastUpdatedTimeUtc"`
			Revoked                bool                   `json:"revoked"`
			Confidence             *int                   `json:"confidence"`
			Labels                 []string               `json:"labels"`
			ThreatIntelligenceTags []string               `json:"threatIntelligenceTags"`
			Description            string                 `json:"description"`
			ExternalReferences     []armExternalReference `json:"externalReferences"`
		} `json:"properties"`
	} `json:"value"`
	NextLink string `json:"nextLink"`
}

// armExternalReference is an external reference in queryIndicators' properties: the spec
// names its fields in camel case (sourceName, externalId); STIX's snake case is accepted too.
type armExternalReference struct {
	SourceName     string `json:"sourceName"`
	ExternalID     string `json:"externalId"`
	SourceNameSTIX string `json:"source_name"`
	ExternalIDSTIX string `json:"external_id"`
	URL            string `json:"url"`
}

func (r armExternalReference) reference() ExternalReference {
	out := ExternalReference{SourceName: r.SourceName, ExternalID: r.ExternalID, URL: r.URL}
	if out.SourceName == "" {
		out.SourceName = r.SourceNameSTIX
	}
	if out.ExternalID == "" {
		out.ExternalID = r.ExternalIDSTIX
	}
	return out
}

type parsedPattern struct {
	PatternTypeKey    string `json:"patternTypeKey"`
	PatternTypeValues []struct {
		ValueType string `json:"valueType"`
		Value     string `json:"value"`
	} `json:"patternTypeValues"`
}

func (r *Reader) eachIndicator(ctx context.Context, q Query, fn func(HeldObject) error) error {
	body := map[string]any{"pageSize": r.cfg.PageSize, "includeDisabled": q.IncludeRevoked}
	if len(q.SourceSystems) > 0 {
		body["sources"] = q.SourceSystems
	}
	if len(q.IDs) > 0 {
		// UNVERIFIED whether ids takes the ARM names or the STIX ids (the simulator takes
		// both); the answer is filtered by STIX id below either way.
		body["ids"] = q.IDs
	}
	if len(q.Keywords) > 0 {
		body["keywords"] = q.Keywords
	}
	endpoint := r.base.JoinPath("queryIndicators")
	endpoint.RawQuery = url.Values{"api-version": {r.cfg.APIVersion}}.Encode()
	seen := map[string]bool{}
	for page := 1; ; page++ {
		if page > r.cfg.MaxPages {
			return fmt.Errorf("read-back: more than %d pages: raise read_back.max_pages", r.cfg.MaxPages)
		}
		raw, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("read-back: encode query: %w", err)
		}
		answer, err := r.do(ctx, http.MethodPost, endpoint.String(), raw)
		if err != nil {
			return err
		}
		var p indicatorsPage
		if err := json.Unmarshal(answer, &p); err != nil {
			return fmt.Errorf("read-back: decode queryIndicators page %d: %w", page, err)
		}
		now := r.now()
		for _, v := range p.Value {
			pr := v.Properties
			h := HeldObject{
				SourceSystem: pr.Source, ID: pr.ExternalID, Name: v.Name, ResourceID: v.ID,
				Pattern: pr.Pattern, Revoked: pr.Revoked, Confidence: -1,
				Created: parseTime(pr.Created), Modified: parseTime(pr.Modified), ValidFrom: parseTime(pr.ValidFrom),
				ValidUntil: parseTime(pr.ValidUntil), LastUpdated: parseTime(pr.LastUpdatedTimeUtc),
				Labels: pr.Labels,
			}
			if len(h.Labels) == 0 {
				h.Labels = pr.ThreatIntelligenceTags
			}
			if pr.Confidence != nil {
				h.Confidence = *pr.Confidence
			}
			h.Description = pr.Description
			for _, r := range pr.ExternalReferences {
				h.ExternalReferences = append(h.ExternalReferences, r.reference())
			}
			h.Observables = PatternObservables(pr.Pattern)
			if len(h.Observables) == 0 {
				for _, pp := range pr.ParsedPattern {
					for _, pv := range pp.PatternTypeValues {
						h.Observables = append(h.Observables, Observable{Type: pp.PatternTypeKey, Value: pv.Value})
					}
				}
			}
			if !keep(q, h, now) {
				continue
			}
			if err := fn(h); err != nil {
				return err
			}
		}
		if p.NextLink == "" {
			return nil
		}
		token, err := skipTokenOf(p.NextLink)
		if err != nil {
			return err
		}
		if seen[token] {
			return fmt.Errorf("read-back: queryIndicators repeated a skip token on page %d", page)
		}
		seen[token] = true
		body["skipToken"] = token
	}
}

// skipTokenOf takes the skip token out of a nextLink ($skipToken or skipToken).
func skipTokenOf(link string) (string, error) {
	u, err := url.Parse(link)
	if err != nil {
		return "", fmt.Errorf("read-back: bad nextLink: %w", err)
	}
	for _, k := range []string{"$skipToken", "$skiptoken", "skipToken"} {
		if t := u.Query().Get(k); t != "" {
			return t, nil
		}
	}
	return "", fmt.Errorf("read-back: nextLink %q carries no skip token", truncateString(link, 120))
}

// objectsPage is a preview query answer.
type objectsPage struct {
	Value []struct {
		ID         string `json:"id"`
		Name       string `json:"name"`
		Kind       string `json:"kind"`
		Properties struct {
			Data                   json.RawMessage `json:"data"`
			Source                 string          `json:"source"`
			LastUpdatedDateTimeUtc string          `json:"lastUpdatedDateTimeUtc"`
		} `json:"properties"`
	} `json:"value"`
	NextLink string `json:"nextLink"`
}

// stixFields are the fields of a stored STIX object the Reader reads.
type stixFields struct {
	ID         string   `json:"id"`
	Type       string   `json:"type"`
	Pattern    string   `json:"pattern"`
	Created    string   `json:"created"`
	Modified   string   `json:"modified"`
	ValidFrom  string   `json:"valid_from"`
	ValidUntil string   `json:"valid_until"`
	Revoked    bool     `json:"revoked"`
	Confidence *int     `json:"confidence"`
	Labels     []string `json:"labels"`
	// Description and ExternalReferences: see HeldObject.
	Description        string              `json:"description"`
	ExternalReferences []ExternalReference `json:"external_references"`
}

func (r *Reader) eachObject(ctx context.Context, q Query, fn func(HeldObject) error) error {
	var clauses []map[string]any
	if len(q.SourceSystems) > 0 {
		clauses = append(clauses, map[string]any{"field": "source", "operator": "Equals", "values": q.SourceSystems})
	}
	if len(q.IDs) > 0 {
		clauses = append(clauses, map[string]any{"field": "id", "operator": "Equals", "values": q.IDs})
	}
	if len(clauses) == 0 {
		// clauses are required: one that every object meets.
		clauses = append(clauses, map[string]any{"field": "lastUpdatedTimeUtc", "operator": "OnOrAfterAbsolute", "values": []string{"1970-01-01T00:00:00Z"}})
	}
	raw, err := json.Marshal(map[string]any{
		"condition":   map[string]any{"stixObjectType": "indicator", "clauses": clauses, "conditionConnective": "And"},
		"sortBy":      map[string]any{"field": "lastUpdatedTimeUtc", "direction": "DESC"},
		"maxPageSize": r.cfg.PageSize,
	})
	if err != nil {
		return fmt.Errorf("read-back: encode query: %w", err)
	}
	endpoint := r.base.JoinPath("query")
	endpoint.RawQuery = url.Values{"api-version": {r.cfg.APIVersion}}.Encode()
	method, link, body := http.MethodPost, endpoint.String(), raw
	seen := map[string]bool{}
	for page := 1; ; page++ {
		if page > r.cfg.MaxPages {
			return fmt.Errorf("read-back: more than %d pages: raise read_back.max_pages", r.cfg.MaxPages)
		}
		answer, err := r.do(ctx, method, link, body)
		if err != nil {
			return err
		}
		var p objectsPage
		if err := json.Unmarshal(answer, &p); err != nil {
			return fmt.Errorf("read-back: decode query page %d: %w", page, err)
		}
		now := r.now()
		for _, v := range p.Value {
			var f stixFields
			if err := json.Unmarshal(v.Properties.Data, &f); err != nil {
				return fmt.Errorf("read-back: object %s: decode data: %w", truncateString(v.Name, 80), err)
			}
			h := HeldObject{
				SourceSystem: v.Properties.Source, ID: f.ID, Name: v.Name, ResourceID: v.ID,
				Pattern: f.Pattern, Observables: PatternObservables(f.Pattern), Revoked: f.Revoked, Confidence: -1,
				Created: parseTime(f.Created), Modified: parseTime(f.Modified), ValidFrom: parseTime(f.ValidFrom),
				ValidUntil: parseTime(f.ValidUntil), LastUpdated: parseTime(v.Properties.LastUpdatedDateTimeUtc),
				Labels: f.Labels, Description: f.Description, ExternalReferences: f.ExternalReferences,
				Data: bytes.Clone(v.Properties.Data),
			}
			if f.Confidence != nil {
				h.Confidence = *f.Confidence
			}
			if !keep(q, h, now) {
				continue
			}
			if err := fn(h); err != nil {
				return err
			}
		}
		if p.NextLink == "" {
			return nil
		}
		next, err := r.sameHost(p.NextLink)
		if err != nil {
			return err
		}
		if seen[next] {
			return fmt.Errorf("read-back: query repeated its nextLink on page %d", page)
		}
		seen[next] = true
		method, link, body = http.MethodGet, next, nil
	}
}

// sameHost checks that a nextLink points at the management host (the token is sent to it)
// and adds the api-version when it is missing.
func (r *Reader) sameHost(link string) (string, error) {
	u, err := url.Parse(link)
	if err != nil {
		return "", fmt.Errorf("read-back: bad nextLink: %w", err)
	}
	if u.Scheme != "https" || !strings.EqualFold(u.Host, r.base.Host) {
		return "", fmt.Errorf("read-back: nextLink points at %s://%s, not at the management host %s", u.Scheme, u.Host, r.base.Host)
	}
	if u.Query().Get("api-version") == "" {
		q := u.Query()
		q.Set("api-version", r.cfg.APIVersion)
		u.RawQuery = q.Encode()
	}
	return u.String(), nil
}

// Delete deletes an object through the management API (DELETE on its resource id); 404 counts
// as deleted. Microsoft's behaviour for objects of the upload API is disputed
// (shared/spec/sentinel-api.md §6.5): revoking by upload is the reliable removal.
func (r *Reader) Delete(ctx context.Context, h HeldObject) error {
	if h.ResourceID == "" {
		return errors.New("read-back: delete: object without a resource id")
	}
	var target *url.URL
	if r.cfg.API == ReadIndicators {
		// The indicator's ARM id is …/ThreatIntelligence/{name}; its delete operation is
		// …/threatIntelligence/main/indicators/{name}.
		target = r.base.JoinPath("indicators", h.Name)
	} else {
		u := *r.base
		u.Path, u.RawPath = "", ""
		var err error
		if target, err = url.Parse(u.String() + h.ResourceID); err != nil {
			return fmt.Errorf("read-back: delete %s: %w", h.ID, err)
		}
	}
	target.RawQuery = url.Values{"api-version": {r.cfg.APIVersion}}.Encode()
	_, err := r.do(ctx, http.MethodDelete, target.String(), nil)
	var re *ReadError
	if errors.As(err, &re) && re.Status == http.StatusNotFound {
		return nil
	}
	return err
}

// do sends one request until it gets an answer to keep: it reserves the read quota before
// every try, takes one new token after a 401, pauses the identity's read quota for the wait
// a 429 asks (capped at MaxRetryAfter) and backs off after 5xx and network errors, up to
// MaxAttempts tries.
func (r *Reader) do(ctx context.Context, method, target string, body []byte) ([]byte, error) {
	quotas := []pusher.Quota{r.quota}
	var rejected string
	backoff := r.cfg.RetryInitial
	var last error
	for attempt := 1; attempt <= r.cfg.MaxAttempts; attempt++ {
		if err := r.pacers.Reserve(ctx, quotas); err != nil {
			return nil, fmt.Errorf("read-back: %w", err)
		}
		status, header, answer, token, err := r.send(ctx, method, target, body, rejected)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("read-back: %w", context.Cause(ctx))
		}
		switch {
		case err != nil:
			last = err
		case status >= 200 && status < 300:
			return answer, nil
		case status == http.StatusUnauthorized && rejected == "":
			rejected = token
			continue
		case status == http.StatusTooManyRequests:
			wait := min(retryAfter(header, backoff), r.cfg.MaxRetryAfter)
			r.pacers.Pause(quotas, r.now().Add(wait))
			last = armError(status, answer, r.cfg)
			continue
		case status >= 500:
			last = armError(status, answer, r.cfg)
		default:
			return nil, armError(status, answer, r.cfg)
		}
		if attempt == r.cfg.MaxAttempts {
			break
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("read-back: %w", context.Cause(ctx))
		case <-t.C:
		}
		backoff = min(backoff*2, r.cfg.MaxRetryAfter)
	}
	return nil, fmt.Errorf("read-back: gave up after %d tries: %w", r.cfg.MaxAttempts, last)
}

// retryAfter is the wait a 429 asks for in seconds (Retry-After), or fallback.
func retryAfter(h http.Header, fallback time.Duration) time.Duration {
	if n, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After"))); err == nil && n >= 0 {
		return max(time.Duration(n)*time.Second, time.Second)
	}
	if t, err := http.ParseTime(h.Get("Retry-After")); err == nil {
		return max(time.Until(t), time.Second)
	}
	return fallback
}

func (r *Reader) send(ctx context.Context, method, target string, body []byte, rejected string) (int, http.Header, []byte, string, error) {
	tokenCtx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	token, err := r.tokens.token(tokenCtx, rejected)
	cancel()
	if err != nil {
		return 0, nil, nil, "", err
	}
	reqCtx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(reqCtx, method, target, rd)
	if err != nil {
		return 0, nil, nil, "", fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", version.UserAgent(r.cfg.UserAgent))
	resp, err := r.http.Do(req)
	if err != nil {
		return 0, nil, nil, token, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, nil, nil, token, fmt.Errorf("read answer: %w", err)
	}
	return resp.StatusCode, resp.Header, answer, token, nil
}

// armError turns an ARM error answer ({"error":{"code","message"}}) into a ReadError with a
// hint for the usual misconfigurations.
func armError(status int, body []byte, cfg ReaderConfig) *ReadError {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	re := &ReadError{Status: status}
	if json.Unmarshal(body, &e) == nil {
		re.Code, re.Message = e.Error.Code, truncateString(e.Error.Message, 300)
	} else {
		re.Message = truncateString(strings.TrimSpace(string(body)), 200)
	}
	switch status {
	case http.StatusUnauthorized:
		re.Hint = fmt.Sprintf("the token was refused: check the identity and that scope, authority and management host all belong to the %s cloud", cfg.Cloud)
	case http.StatusForbidden:
		re.Hint = "grant the identity Microsoft Sentinel Reader or Contributor on the workspace"
	case http.StatusNotFound:
		re.Hint = fmt.Sprintf("check read_back.subscription_id %s, resource_group %s and workspace_name %s", cfg.SubscriptionID, cfg.ResourceGroup, cfg.WorkspaceName)
	case http.StatusBadRequest:
		re.Hint = fmt.Sprintf("check read_back.api %s and api_version %s", cfg.API, cfg.APIVersion)
	}
	return re
}

// parseTime reads the timestamps ARM and STIX use (RFC 3339, or ARM's 7-digit fraction
// without a zone, which is UTC); unreadable ones are zero.
func parseTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC()
	}
	if t, err := time.Parse("2006-01-02T15:04:05.9999999", s); err == nil {
		return t.UTC()
	}
	return time.Time{}
}

func truncateString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
