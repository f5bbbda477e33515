package sentinel

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
)

// API selects the upload API a sink uses.
type API string

const (
	// APISTIXObjects is the STIX objects upload API (threat-intelligence-stix-objects:upload).
	APISTIXObjects API = "stix-objects"
	// APILegacy is the legacy upload-indicators API (threatintelligence:upload-indicators),
	// which takes only indicators and is "no longer recommended" by Microsoft.
	APILegacy API = "legacy"
)

// ReservedSourceSystem is the sourcesystem value Sentinel reserves for itself.
const ReservedSourceSystem = "Microsoft Sentinel"

// MaxBatchSize is the most objects Sentinel takes in one upload request.
const MaxBatchSize = 100

// Config configures one sink's upload client. Every field is required (except the TLS
// overrides): the daemon fills it from the configuration, whose defaults (cloud presets,
// api-versions, timeouts, quotas) live in config/defaults.go. New validates, it never fills
// in.
type Config struct {
	// API selects the upload API.
	API API
	// APIVersion is the api-version query parameter.
	APIVersion string
	// Cloud names the sink's cloud in error messages.
	Cloud string
	// AuthorityHost (Entra), APIURL (the upload API's base URL) and Scope (the token scope)
	// must belong to the same cloud.
	AuthorityHost string
	APIURL        string
	Scope         string

	// WorkspaceID is the Log Analytics workspace ID (a GUID, not the workspace name).
	WorkspaceID string
	// SourceSystem is the source name Sentinel stores with every object. Keep it constant:
	// it is part of every object's identity in Sentinel. "Microsoft Sentinel" is reserved.
	SourceSystem string
	// UserAgent is sent with every upload.
	UserAgent string
	// RequestTimeout bounds each HTTP request (not the wait for the quota).
	RequestTimeout time.Duration
	// BatchSize is the largest batch Send accepts (1..MaxBatchSize).
	BatchSize int
	// RequestsPerMinute is the upload quota of the sink's Entra identity (Sentinel's is
	// 100); sinks of one identity share it.
	RequestsPerMinute int
	// QuotaMinute is the length of a quota minute: time.Minute, shorter only for simulators
	// with a time scale.
	QuotaMinute time.Duration

	// Credential selects and configures the Entra credential.
	Credential Credential

	// TLSRootCAs replaces the system roots for both Entra and upload requests (simulators).
	TLSRootCAs *x509.CertPool
	// Transport, when set, carries every request (Entra and uploads) instead of a transport
	// built from TLSRootCAs.
	Transport http.RoundTripper
}

// Validate reports every problem of c with the field it concerns. It does no I/O.
func (c Config) Validate() error { return c.validate(true) }

func (c Config) validate(withCredential bool) error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	switch c.API {
	case APISTIXObjects, APILegacy:
	default:
		bad("api", "unknown upload API %q (want %q or %q)", c.API, APISTIXObjects, APILegacy)
	}
	for _, u := range []struct{ field, value string }{{"authority_host", c.AuthorityHost}, {"api_url", c.APIURL}} {
		if err := checkHTTPSURL(u.value); err != nil {
			bad(u.field, "%v", err)
		}
	}
	if !strings.HasSuffix(c.Scope, "/.default") {
		bad("scope", "%q must end in /.default", c.Scope)
	}
	if strings.TrimSpace(c.APIVersion) == "" || strings.ContainsAny(c.APIVersion, "&?#/ ") {
		bad("api_version", "invalid api-version %q", c.APIVersion)
	}
	if _, err := uuid.Parse(c.WorkspaceID); err != nil {
		bad("workspace_id", "%q is not a GUID: use the Log Analytics workspace ID, not its name", c.WorkspaceID)
	}
	switch ss := strings.TrimSpace(c.SourceSystem); {
	case ss == "":
		bad("source_system", "must not be empty")
	case strings.EqualFold(ss, ReservedSourceSystem):
		bad("source_system", "%q is reserved by Microsoft Sentinel", c.SourceSystem)
	case ss != c.SourceSystem:
		bad("source_system", "%q has leading or trailing spaces", c.SourceSystem)
	}
	if c.UserAgent == "" || strings.ContainsAny(c.UserAgent, "\r\n") {
		bad("user_agent", "must be a single, non-empty line")
	}
	if c.RequestTimeout <= 0 {
		bad("request_timeout", "%s must be positive", c.RequestTimeout)
	}
	if c.RequestsPerMinute <= 0 {
		bad("requests_per_minute", "%d must be positive", c.RequestsPerMinute)
	}
	if c.QuotaMinute <= 0 {
		bad("quota_minute", "%s must be positive", c.QuotaMinute)
	}
	if c.BatchSize < 1 || c.BatchSize > MaxBatchSize {
		bad("batch_size", "%d must be within 1..%d", c.BatchSize, MaxBatchSize)
	}
	if withCredential {
		if err := c.Credential.validate(); err != nil {
			errs = append(errs, fmt.Errorf("credential.%w", err))
		}
	}
	return errors.Join(errs...)
}

func checkHTTPSURL(raw string) error {
	if raw == "" {
		return errors.New("must not be empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("invalid URL: %w", err)
	}
	if u.Scheme != "https" || u.Host == "" {
		// Bearer tokens are never sent over plain HTTP, and azidentity refuses non-https
		// authorities.
		return fmt.Errorf("%q must be an https URL", raw)
	}
	return nil
}

// CheckHTTPSURL reports why raw is not an https URL with a host (the rule for every API and
// authority URL a token is sent to), or nil.
func CheckHTTPSURL(raw string) error { return checkHTTPSURL(raw) }
