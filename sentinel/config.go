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

// Default api-versions: the only ones Microsoft has documented for each API.
const (
	DefaultSTIXAPIVersion   = "2024-02-01-preview"
	DefaultLegacyAPIVersion = "2022-07-01"
)

// Cloud names an Azure cloud; a cloud fixes the Entra authority host, the upload API host and
// the token scope together, because mixing clouds is the usual cause of 401 and 404.
type Cloud string

const (
	CloudPublic Cloud = "public"
	CloudUSGov  Cloud = "usgov"
	CloudChina  Cloud = "china"
)

// Endpoints are the hosts and scope of one cloud.
type Endpoints struct {
	// AuthorityHost is the Entra authority, e.g. https://login.microsoftonline.com/.
	AuthorityHost string
	// APIURL is the base URL of the STIX objects upload API.
	APIURL string
	// LegacyAPIURL is the base URL of the legacy upload-indicators API ("" when unknown).
	LegacyAPIURL string
	// Scope is the token scope both upload APIs accept.
	Scope string
}

// CloudEndpoints returns the preset endpoints of c. The China authority host is the one
// azcore's cloud.AzureChina uses; no legacy API host is documented outside the public cloud.
func CloudEndpoints(c Cloud) (Endpoints, bool) {
	switch c {
	case CloudPublic, "":
		return Endpoints{
			AuthorityHost: "https://login.microsoftonline.com/",
			APIURL:        "https://api.ti.sentinel.azure.com",
			LegacyAPIURL:  "https://sentinelus.azure-api.net",
			Scope:         "https://management.azure.com/.default",
		}, true
	case CloudUSGov:
		return Endpoints{
			AuthorityHost: "https://login.microsoftonline.us/",
			APIURL:        "https://api.ti.sentinel.azure.us",
			Scope:         "https://management.usgovcloudapi.net/.default",
		}, true
	case CloudChina:
		return Endpoints{
			AuthorityHost: "https://login.chinacloudapi.cn/",
			APIURL:        "https://api.ti.sentinel.azure.cn",
			Scope:         "https://management.chinacloudapi.cn/.default",
		}, true
	}
	return Endpoints{}, false
}

// ReservedSourceSystem is the sourcesystem value Sentinel reserves for itself.
const ReservedSourceSystem = "Microsoft Sentinel"

// Defaults applied by Config.WithDefaults.
const (
	DefaultBatchSize      = 100
	MaxBatchSize          = 100
	DefaultRequestTimeout = 60 * time.Second
	DefaultUserAgent      = "mispsentinel-listener"
)

// Config configures one sink's upload client. Validate it (or let New do it) before use.
type Config struct {
	// API selects the upload API; default APISTIXObjects.
	API API
	// APIVersion is the api-version query parameter; default per API.
	APIVersion string
	// Cloud selects the preset endpoints; default CloudPublic.
	Cloud Cloud
	// AuthorityHost, APIURL and Scope override the cloud preset one by one.
	AuthorityHost string
	APIURL        string
	Scope         string

	// WorkspaceID is the Log Analytics workspace ID (a GUID, not the workspace name).
	WorkspaceID string
	// SourceSystem is the source name Sentinel stores with every object. Keep it constant:
	// it is part of every object's identity in Sentinel. "Microsoft Sentinel" is reserved.
	SourceSystem string
	// UserAgent is sent with every upload; default DefaultUserAgent.
	UserAgent string
	// RequestTimeout bounds each HTTP request (not the wait for the rate limiter); default
	// DefaultRequestTimeout.
	RequestTimeout time.Duration
	// BatchSize is the largest batch Upload accepts (1..100); default 100.
	BatchSize int

	// Credential selects and configures the Entra credential.
	Credential Credential

	// TLSRootCAs replaces the system roots for both Entra and upload requests (simulators).
	TLSRootCAs *x509.CertPool
	// Transport, when set, carries every request (Entra and uploads) instead of a transport
	// built from TLSRootCAs.
	Transport http.RoundTripper
}

// WithDefaults returns c with every empty field set to its default. It is the one place
// defaults live.
func (c Config) WithDefaults() Config {
	if c.API == "" {
		c.API = APISTIXObjects
	}
	if c.APIVersion == "" {
		c.APIVersion = DefaultSTIXAPIVersion
		if c.API == APILegacy {
			c.APIVersion = DefaultLegacyAPIVersion
		}
	}
	if c.Cloud == "" {
		c.Cloud = CloudPublic
	}
	if ep, ok := CloudEndpoints(c.Cloud); ok {
		if c.AuthorityHost == "" {
			c.AuthorityHost = ep.AuthorityHost
		}
		if c.APIURL == "" {
			c.APIURL = ep.APIURL
			if c.API == APILegacy {
				c.APIURL = ep.LegacyAPIURL
			}
		}
		if c.Scope == "" {
			c.Scope = ep.Scope
		}
	}
	if c.UserAgent == "" {
		c.UserAgent = DefaultUserAgent
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	return c
}

// Validate reports every problem of c (after defaults) with the field it concerns. It does
// no I/O.
func (c Config) Validate() error { return c.validate(true) }

func (c Config) validate(withCredential bool) error {
	c = c.WithDefaults()
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	switch c.API {
	case APISTIXObjects, APILegacy:
	default:
		bad("api", "unknown upload API %q (want %q or %q)", c.API, APISTIXObjects, APILegacy)
	}
	if _, ok := CloudEndpoints(c.Cloud); !ok {
		bad("cloud", "unknown cloud %q (want public, usgov or china)", c.Cloud)
	}
	for _, u := range []struct{ field, value string }{{"authority_host", c.AuthorityHost}, {"api_url", c.APIURL}} {
		if err := checkHTTPSURL(u.value); err != nil {
			if u.field == "api_url" && u.value == "" && c.API == APILegacy {
				bad(u.field, "no legacy upload API host is known for cloud %q: set it explicitly", c.Cloud)
				continue
			}
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
	if strings.ContainsAny(c.UserAgent, "\r\n") {
		bad("user_agent", "must be a single line")
	}
	if c.RequestTimeout < 0 {
		bad("request_timeout", "%s must not be negative", c.RequestTimeout)
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
