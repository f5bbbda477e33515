package defender

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/mispsentinel/listener/sentinel"
)

// Documented limits of the indicator API (shared/spec/defender-api.md §3 and §8).
const (
	// MaxImportBatch is the most indicators one import call takes.
	MaxImportBatch = 500
	// MaxDeleteBatch is the most ids one BatchDelete call takes.
	MaxDeleteBatch = 500
	// MaxListPage is the largest $top the list call accepts.
	MaxListPage = 10000
	// TenantCap is the number of active indicators a tenant may hold, shared by every source.
	TenantCap = 15000
)

// Endpoints are the Entra authority, API base URL and token scope of one tenant's cloud
// (the table of clouds is config's defenderCloudPresets).
type Endpoints struct {
	AuthorityHost string
	APIURL        string
	Scope         string
}

// legacyScope is the token audience Microsoft says some MDE APIs still require even on the
// new host (a token for another audience is answered 403).
const legacyScope = "https://api.securitycenter.microsoft.com/.default"

// RateLimits are the per-identity limits of each call type, in calls per Minute. Each is
// the tighter of the documented per-minute and per-hour limits, less headroom.
type RateLimits struct {
	ImportPerMinute float64
	DeletePerMinute float64
	ListPerMinute   float64
	// Minute is the length of a minute (shortened by simulators with a time scale).
	Minute time.Duration
}

// SpecRateLimits are the documented limits less headroom: import 30/min (25, as
// misp2defender and the spec's §14 recommend), BatchDelete 30/min and 1,500/h (25/min),
// list 100/min and 1,500/h (25/min).
var SpecRateLimits = RateLimits{ImportPerMinute: 25, DeletePerMinute: 24, ListPerMinute: 24, Minute: time.Minute}

// Config configures one Defender client. Every field is required unless marked optional;
// the daemon fills them from config/defaults.go.
type Config struct {
	// Endpoints are the authority, API base URL and scope (CloudEndpoints, possibly overridden).
	Endpoints Endpoints
	// Credential is the Entra credential, exactly as for a Sentinel sink.
	Credential sentinel.Credential
	// Application is the "application" shown in MDE's block notifications.
	Application string
	// UserAgent is sent with every request.
	UserAgent string
	// RequestTimeout bounds each HTTP request.
	RequestTimeout time.Duration
	// BatchSize is the most indicators per import and ids per BatchDelete (1..500).
	BatchSize int

	// TLSRootCAs (optional) replaces the system roots (simulators); Transport (optional)
	// carries every request instead.
	TLSRootCAs *x509.CertPool
	Transport  http.RoundTripper
}

// Validate reports every problem of c with the field it concerns. It does no I/O.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	for _, u := range []struct{ field, value string }{{"authority_host", c.Endpoints.AuthorityHost}, {"api_url", c.Endpoints.APIURL}} {
		if err := sentinel.CheckHTTPSURL(u.value); err != nil {
			bad(u.field, "%v", err)
		}
	}
	if !strings.HasSuffix(c.Endpoints.Scope, "/.default") {
		bad("scope", "%q must end in /.default", c.Endpoints.Scope)
	}
	if strings.ContainsAny(c.UserAgent, "\r\n") {
		bad("user_agent", "must be a single line")
	}
	if c.RequestTimeout <= 0 {
		bad("request_timeout", "%s must be positive", c.RequestTimeout)
	}
	if c.BatchSize < 1 || c.BatchSize > MaxImportBatch {
		bad("batch_size", "%d must be within 1..%d", c.BatchSize, MaxImportBatch)
	}
	return errors.Join(errs...)
}
