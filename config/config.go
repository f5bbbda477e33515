package config

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mispsentinel/listener/misp"
)

// Config is the whole listener configuration. Field names mirror the YAML keys; every key is
// documented in config.example.yaml at the module root, and every default is set in
// defaults.go.
type Config struct {
	MISP       MISP       `yaml:"misp" json:"misp"`
	ZeroMQ     ZeroMQ     `yaml:"zeromq" json:"zeromq"`
	Webhook    Webhook    `yaml:"webhook" json:"webhook"`
	Conversion Conversion `yaml:"conversion" json:"conversion"`
	// Sinks are the Sentinel workspaces to keep in sync. After Load (and after Resolve, for a
	// Key Vault tenants reference) it also holds one sink per element of Tenants.
	Sinks []Sink `yaml:"sinks" json:"sinks"`
	// Tenants is misp2sentinel's Azure Function `tenants` JSON array, given inline, as
	// env:NAME, file:/path or a keyvault:// reference. Each element becomes a sink.
	Tenants   Secret    `yaml:"tenants" json:"tenants"`
	Store     Store     `yaml:"store" json:"store"`
	Reconcile Reconcile `yaml:"reconcile" json:"reconcile"`
	Pusher    Pusher    `yaml:"pusher" json:"pusher"`
	// KeyVault says in which cloud keyvault:// references are resolved.
	KeyVault KeyVaultSettings `yaml:"key_vault" json:"key_vault"`
	// Verify schedules the daemon's comparison of each sink with what Sentinel holds (the
	// sinks with a read_back block); `listener verify` runs it on demand.
	Verify  Verify  `yaml:"verify" json:"verify"`
	Metrics Metrics `yaml:"metrics" json:"metrics"`
	Control Control `yaml:"control" json:"control"`
	Log     Log     `yaml:"log" json:"log"`

	// tenantsExpanded is set once the sinks of Tenants have been appended to Sinks.
	tenantsExpanded bool
}

// MISP is the connection to the MISP REST API and the event filters every search uses.
type MISP struct {
	// URL is the MISP base URL, e.g. https://misp.example.org.
	URL string `yaml:"url" json:"url"`
	// Key is the MISP automation key (read-only suffices).
	Key Secret `yaml:"key" json:"key"`
	// CAFile is a PEM bundle that verifies MISP's certificate instead of the system roots.
	CAFile string `yaml:"ca_file" json:"ca_file"`
	// InsecureSkipVerify turns TLS verification off. Never the default.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify" json:"insecure_skip_verify"`
	// Timeout bounds each MISP HTTP request.
	Timeout time.Duration `yaml:"timeout" json:"timeout"`
	// UserAgent is sent on every MISP request.
	UserAgent string `yaml:"user_agent" json:"user_agent"`
	// PageSize is the number of events per events/restSearch page (misp_event_limit_per_page).
	PageSize int `yaml:"page_size" json:"page_size"`
	// EventFilters are passed verbatim to events/restSearch (misp_event_filters). The pager
	// owns limit, page and returnFormat.
	EventFilters map[string]any `yaml:"event_filters" json:"event_filters"`
	// DecayingModelsMaxAge is how long a decaying model read from MISP's decayingModel API is
	// used before it is read again (only with a sink's decay block).
	DecayingModelsMaxAge time.Duration `yaml:"decaying_models_max_age" json:"decaying_models_max_age"`
	// RealtimeFetch says whether a ZeroMQ or webhook notice is trusted as-is or the event is
	// fetched again through restSearch with the filters: auto, always or never.
	RealtimeFetch string `yaml:"realtime_fetch" json:"realtime_fetch"`
	// RefetchBatch is the most notified events one re-fetch asks restSearch for: notices that
	// wait while earlier re-fetches are in flight are gathered into one request with a list
	// of uuids. RefetchConcurrency bounds the re-fetches in flight at once, and the pages of
	// a catch-up's metadata listing asked at once.
	RefetchBatch       int `yaml:"refetch_batch" json:"refetch_batch"`
	RefetchConcurrency int `yaml:"refetch_concurrency" json:"refetch_concurrency"`
}

// WindowNote says which keys of event_filters are time windows and what that means, or ""
// when there are none. check and config print show it.
func (m MISP) WindowNote() string {
	keys := misp.WindowKeys(m.EventFilters)
	if len(keys) == 0 {
		return ""
	}
	return fmt.Sprintf("misp.event_filters: time window %s: it limits which events a run fetches, never which belong in a sink; "+
		"an event that ages out keeps its indicators until their valid_until (deleting it, un-flagging its attributes or a non-time filter still revokes)",
		strings.Join(keys, ", "))
}

// RefetchOnNotice reports whether the real-time path must fetch a notified event through
// restSearch (with the filters) instead of trusting the ZeroMQ or webhook payload. With auto it
// does whenever event_filters is not empty: only MISP applies its filters with its own
// semantics (tags, published, to_ids, warninglists, decay, ...), and a payload trusted as-is
// would upload what the reconciler's filtered search later revokes.
func (m MISP) RefetchOnNotice() bool {
	switch m.RealtimeFetch {
	case RealtimeFetchAlways:
		return true
	case RealtimeFetchNever:
		return false
	}
	return len(m.EventFilters) > 0
}

// Values of MISP.RealtimeFetch.
const (
	RealtimeFetchAuto   = "auto"
	RealtimeFetchAlways = "always"
	RealtimeFetchNever  = "never"
)

// ZeroMQ is the subscription to MISP's ZeroMQ publisher.
type ZeroMQ struct {
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Endpoint is the publisher address, e.g. tcp://misp.example.org:50000.
	Endpoint string `yaml:"endpoint" json:"endpoint"`
	// Username and Password are MISP's ZeroMQ PLAIN credentials (both or neither).
	Username string `yaml:"username" json:"username"`
	Password Secret `yaml:"password" json:"password"`
	// HeartbeatTimeout is how long silence may last before the subscription counts as
	// broken; MISP sends a heartbeat every 10 s when idle.
	HeartbeatTimeout time.Duration `yaml:"heartbeat_timeout" json:"heartbeat_timeout"`
	// ReconnectBackoff spaces reconnect attempts.
	ReconnectBackoff Backoff `yaml:"reconnect_backoff" json:"reconnect_backoff"`
	// MaxFrameBytes caps one message the publisher may send (a whole event as JSON); a peer
	// declaring more is disconnected before anything is allocated.
	MaxFrameBytes int64 `yaml:"max_frame_bytes" json:"max_frame_bytes"`
}

// Backoff is an exponential backoff between Initial and Max.
type Backoff struct {
	Initial time.Duration `yaml:"initial" json:"initial"`
	Max     time.Duration `yaml:"max" json:"max"`
}

// Webhook is the HTTP endpoint that MISP's workflow webhook module posts to.
type Webhook struct {
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Listen is the host:port to listen on.
	Listen string `yaml:"listen" json:"listen"`
	// Path is the URL path that accepts the POST.
	Path string `yaml:"path" json:"path"`
	// AuthHeader names the request header that must carry AuthToken.
	AuthHeader string `yaml:"auth_header" json:"auth_header"`
	AuthToken  Secret `yaml:"auth_token" json:"auth_token"`
	// MaxBodyBytes caps a request body.
	MaxBodyBytes int64 `yaml:"max_body_bytes" json:"max_body_bytes"`
	// MaxInflightBytes caps the bodies of all calls being read or handled at once; a call
	// that does not fit is answered 503 with Retry-After.
	MaxInflightBytes int64 `yaml:"max_inflight_bytes" json:"max_inflight_bytes"`
	// MaxConnections caps the connections the server holds open at once.
	MaxConnections int `yaml:"max_connections" json:"max_connections"`
	// TLSCertFile and TLSKeyFile turn on HTTPS (both or neither).
	TLSCertFile string `yaml:"tls_cert_file" json:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file" json:"tls_key_file"`
}

// Conversion is how MISP attributes become STIX indicators. The top-level value is the default
// of every sink; a sink's own conversion block replaces single keys of it.
type Conversion struct {
	// Profile is sentinel (single-observable patterns Sentinel parses) or misp-stix.
	Profile string `yaml:"profile" json:"profile"`
	// DaysToExpire is the default indicator lifetime (days_to_expire).
	DaysToExpire int `yaml:"days_to_expire" json:"days_to_expire"`
	// ExpireStart is valid_from or now (days_to_expire_start).
	ExpireStart string `yaml:"expire_start" json:"expire_start"`
	// DaysToExpireByType overrides DaysToExpire per STIX observable type, matched exactly
	// (days_to_expire_mapping).
	DaysToExpireByType map[string]int `yaml:"days_to_expire_by_type" json:"days_to_expire_by_type"`
	// IgnoreLastSeen ignores MISP last_seen when computing valid_until.
	IgnoreLastSeen bool `yaml:"ignore_last_seen" json:"ignore_last_seen"`
	// DefaultConfidence applies when no misp:confidence-level tag is present.
	DefaultConfidence int `yaml:"default_confidence" json:"default_confidence"`
	// DefaultTLP applies when neither attribute nor event has a TLP tag.
	DefaultTLP string `yaml:"default_tlp" json:"default_tlp"`
	// DefaultThreatType applies when no sentinel-threattype tag is present.
	DefaultThreatType string `yaml:"default_threat_type" json:"default_threat_type"`
	// IncludeLocalTags keeps tags MISP flags as local (the inverse of ignore_localtags).
	IncludeLocalTags bool `yaml:"include_local_tags" json:"include_local_tags"`
	// TagsIgnore drops tags from labels by exact taxonomy prefix, case-insensitively
	// (MISP_TAGS_IGNORE): an entry matches a tag equal to it or beginning with it followed by
	// ':' or '=' (or ending in one itself), so "misp-galaxy" drops misp-galaxy:threat-actor="X"
	// but never my-misp-galaxy:x. TLP tags are never labels (they become markings).
	TagsIgnore []string `yaml:"tags_ignore" json:"tags_ignore"`
	// AllowedTaxonomies, if not empty, keeps only the labels whose taxonomy prefix is listed,
	// with the same matching as TagsIgnore (MISP_ALLOWED_TAXONOMIES).
	AllowedTaxonomies []string `yaml:"allowed_taxonomies" json:"allowed_taxonomies"`
	// PatternTypes are the pattern languages exported: stix, and with the misp-stix profile
	// also yara, sigma, snort, suricata.
	PatternTypes []string `yaml:"pattern_types" json:"pattern_types"`
	// Composite is how attributes of the composite MISP types (CompositeTypes: domain|ip,
	// filename|<hash>, malware-sample, ip-src|port, ip-dst|port, hostname|port) become
	// indicators: all (each component that identifies something alone), first (the first
	// component only: misp2sentinel's remove_pipe_from_misp_attribute), compound (misp-stix's
	// AND-ed pattern), or profile (all under the sentinel profile, compound under misp-stix).
	Composite string `yaml:"composite" json:"composite"`
	// CompositeByType sets the mode of single composite types, over Composite.
	CompositeByType map[string]string `yaml:"composite_by_type" json:"composite_by_type"`
}

// Values of Conversion fields.
const (
	ProfileSentinel  = "sentinel"
	ProfileMISPSTIX  = "misp-stix"
	ExpireStartValid = "valid_from"
	ExpireStartNow   = "now"
)

// Values of Conversion.Composite and CompositeByType.
const (
	CompositeProfile  = "profile"
	CompositeAll      = "all"
	CompositeFirst    = "first"
	CompositeCompound = "compound"
)

// CompositeTypes are the MISP types Conversion.Composite applies to (package stix's
// CompositeTypes; a daemon test keeps the two equal).
var CompositeTypes = []string{
	"domain|ip",
	"filename|authentihash", "filename|imphash", "filename|md5", "filename|pehash", "filename|sha1",
	"filename|sha224", "filename|sha256", "filename|sha3-224", "filename|sha3-256", "filename|sha3-384",
	"filename|sha3-512", "filename|sha384", "filename|sha512", "filename|sha512/224", "filename|sha512/256",
	"filename|ssdeep", "filename|tlsh", "filename|vhash",
	"hostname|port", "ip-dst|port", "ip-src|port", "malware-sample",
}

// CompositeModes returns the mode (all, first or compound) of every composite MISP type:
// its composite_by_type entry, else composite, with profile resolved by the conversion
// profile.
func (c Conversion) CompositeModes() map[string]string {
	out := make(map[string]string, len(CompositeTypes))
	for _, t := range CompositeTypes {
		mode, ok := c.CompositeByType[t]
		if !ok {
			mode = c.Composite
		}
		if mode == CompositeProfile {
			mode = CompositeAll
			if c.Profile == ProfileMISPSTIX {
				mode = CompositeCompound
			}
		}
		out[t] = mode
	}
	return out
}

// ExpiryDays returns the lifetime in days of an indicator whose observable has the given
// STIX type.
func (c Conversion) ExpiryDays(observableType string) int {
	if d, ok := c.DaysToExpireByType[observableType]; ok {
		return d
	}
	return c.DaysToExpire
}

// Sink is one Sentinel workspace and the identity, limits and filters used to feed it.
type Sink struct {
	// Name identifies the sink in logs, metrics and the store. Never rename a sink that has
	// state: its progress is keyed by name.
	Name string `yaml:"name" json:"name"`
	// Kind is sentinel (a Sentinel workspace) or defender (Defender for Endpoint indicators
	// of the identity's tenant, settings in Defender).
	Kind     string   `yaml:"kind" json:"kind"`
	Defender Defender `yaml:"defender" json:"defender"`
	// WorkspaceID is the Log Analytics workspace ID (a GUID, not a resource ID).
	WorkspaceID string `yaml:"workspace_id" json:"workspace_id"`
	// Cloud is public, usgov or china; it selects the Endpoints defaults.
	Cloud     string    `yaml:"cloud" json:"cloud"`
	Endpoints Endpoints `yaml:"endpoints" json:"endpoints"`
	// API is stix-objects (default) or legacy (the deprecated upload-indicators API).
	API string `yaml:"api" json:"api"`
	// APIVersion is the upload api-version; the default follows API.
	APIVersion string `yaml:"api_version" json:"api_version"`
	// SourceSystem is the upload body's sourcesystem; "Microsoft Sentinel" is reserved.
	SourceSystem string `yaml:"sourcesystem" json:"sourcesystem"`
	UserAgent    string `yaml:"user_agent" json:"user_agent"`
	// BatchSize is the number of objects per upload request (at most 100).
	BatchSize int `yaml:"batch_size" json:"batch_size"`
	// RequestTimeout bounds each upload request.
	RequestTimeout time.Duration `yaml:"request_timeout" json:"request_timeout"`
	// RequestsPerMinute is the upload rate of the sink's identity; sinks sharing an identity
	// share it and must agree on it.
	RequestsPerMinute int        `yaml:"requests_per_minute" json:"requests_per_minute"`
	Identity          Identity   `yaml:"identity" json:"identity"`
	Filters           Filters    `yaml:"filters" json:"filters"`
	Conversion        Conversion `yaml:"conversion" json:"conversion"`
	// Decay filters and ages the sink's indicators by MISP's decaying-model scores.
	Decay Decay `yaml:"decay" json:"decay"`
	// Context is none, attack-patterns or all: which MISP galaxy clusters become
	// attack-pattern and threat-actor objects with indicates relationships from the
	// indicators. The default follows the API (all on stix-objects; legacy and defender sinks
	// take indicators only).
	Context string `yaml:"context" json:"context"`
	// ContextLevels is both (an indicator is linked to its attribute's and its event's
	// clusters) or attribute (its attribute's only).
	ContextLevels string `yaml:"context_levels" json:"context_levels"`
	// ReadBack lets `listener verify` and the scheduled comparison read the workspace back
	// through the management API (off while subscription_id is empty).
	ReadBack ReadBack `yaml:"read_back" json:"read_back"`

	// tenantElement is 1 + the index of the tenants JSON element the sink was made from,
	// 0 for a sink from the sinks list.
	tenantElement int
}

// FromTenants reports whether the sink was made from an element of the tenants JSON, and
// from which.
func (s Sink) FromTenants() (index int, ok bool) {
	return s.tenantElement - 1, s.tenantElement > 0
}

// Values of Sink.Cloud and Sink.API.
const (
	CloudPublic    = "public"
	CloudUSGov     = "usgov"
	CloudChina     = "china"
	APISTIXObjects = "stix-objects"
	APILegacy      = "legacy"

	ContextNone           = "none"
	ContextAttackPatterns = "attack-patterns"
	ContextAll            = "all"

	ContextLevelsBoth      = "both"
	ContextLevelsAttribute = "attribute"
	ReservedSource         = "Microsoft Sentinel"
)

// Endpoints are the three cloud-specific addresses a sink talks to. Empty fields take the
// value of the sink's cloud preset.
type Endpoints struct {
	// LoginHost is the Entra authority, e.g. https://login.microsoftonline.com.
	LoginHost string `yaml:"login_host" json:"login_host"`
	// APIHost is the upload API base URL, e.g. https://api.ti.sentinel.azure.com.
	APIHost string `yaml:"api_host" json:"api_host"`
	// Scope is the token scope, e.g. https://management.azure.com/.default.
	Scope string `yaml:"scope" json:"scope"`
	// ManagementHost is the management (ARM) base URL read-back uses, e.g.
	// https://management.azure.com (Sentinel sinks only).
	ManagementHost string `yaml:"management_host" json:"management_host"`
	// CAFile is a PEM bundle that verifies Entra and the upload API instead of the system
	// roots (TLS-inspecting proxies, private endpoints, the simulators of `listener demo`).
	CAFile string `yaml:"ca_file" json:"ca_file"`
}

// Identity is the Entra identity a sink authenticates as.
type Identity struct {
	// Kind is client_secret, client_certificate, managed_identity, workload_identity or
	// default (azidentity's DefaultAzureCredential chain).
	Kind     string `yaml:"kind" json:"kind"`
	TenantID string `yaml:"tenant_id" json:"tenant_id"`
	// ClientID is the app registration (or user-assigned managed identity) client ID.
	ClientID            string `yaml:"client_id" json:"client_id"`
	ClientSecret        Secret `yaml:"client_secret" json:"client_secret"`
	CertificateFile     string `yaml:"certificate_file" json:"certificate_file"`
	CertificatePassword Secret `yaml:"certificate_password" json:"certificate_password"`
}

// Values of Identity.Kind.
const (
	IdentityClientSecret      = "client_secret"
	IdentityClientCertificate = "client_certificate"
	IdentityManaged           = "managed_identity"
	IdentityWorkload          = "workload_identity"
	IdentityDefault           = "default"
)

// Key identifies the Entra principal: sinks with equal keys share one request-rate limiter
// (Sentinel's quota belongs to the principal, whatever credential proves it). An identity
// without a client ID (system-assigned managed identity, the default chain) is keyed by kind.
func (id Identity) Key() string {
	if id.ClientID == "" {
		return id.Kind + "/" + strings.ToLower(id.TenantID)
	}
	return strings.ToLower(id.TenantID) + "/" + strings.ToLower(id.ClientID)
}

// Filters narrow what a sink receives, on top of misp.event_filters.
type Filters struct {
	// IncludeTags, if not empty, keeps only attributes whose (attribute or event) tags
	// include one of these, matched by exact taxonomy prefix like conversion.tags_ignore:
	// "tlp" matches tlp:red, "misp-galaxy:threat-actor" matches misp-galaxy:threat-actor="X".
	IncludeTags []string `yaml:"include_tags" json:"include_tags"`
	// ExcludeTags drops attributes carrying any of these tags (matched like IncludeTags).
	ExcludeTags []string `yaml:"exclude_tags" json:"exclude_tags"`
	// AttributeTypes, if not empty, keeps only these MISP attribute types.
	AttributeTypes []string `yaml:"attribute_types" json:"attribute_types"`
	// MinConfidence drops indicators whose confidence is lower (0 keeps all).
	MinConfidence int `yaml:"min_confidence" json:"min_confidence"`
	// MaxTLP is the highest TLP sent to this sink ("" sends all), e.g. tlp:amber.
	MaxTLP string `yaml:"max_tlp" json:"max_tlp"`
}

// Decay filters and ages a sink's indicators by MISP's decaying-model scores (the
// decay_score entries an events search with includeDecayScore attaches to each attribute).
// It is off while Model is empty.
type Decay struct {
	// Model is the decaying model whose score counts: its id, its name, or any (the highest
	// score over every model that scored the attribute). Empty turns decay off.
	Model string `yaml:"model" json:"model"`
	// MinScore is the lowest score exported (0-100); an attribute the model marks decayed
	// (below its own threshold) is never exported.
	MinScore float64 `yaml:"min_score" json:"min_score"`
	// Confidence is keep (the tag-derived confidence) or from_score (the rounded score).
	Confidence string `yaml:"confidence" json:"confidence"`
	// Parameters are the chosen model's parameters when MISP's decayingModel API cannot be
	// read; by default they are read from MISP and cached.
	Parameters DecayParameters `yaml:"parameters" json:"parameters"`
}

// Enabled reports whether the sink filters by decay scores.
func (d Decay) Enabled() bool { return d.Model != "" }

// DecayParameters are a polynomial decaying model's parameters, as MISP's model editor names
// them. All zero means not configured.
type DecayParameters struct {
	// LifetimeDays is the age in days at which the score reaches 0 (MISP: lifetime).
	LifetimeDays float64 `yaml:"lifetime_days" json:"lifetime_days"`
	// DecaySpeed shapes the curve; 1 is linear (MISP: decay_speed).
	DecaySpeed float64 `yaml:"decay_speed" json:"decay_speed"`
	// Threshold is the score below which the model marks an attribute decayed.
	Threshold float64 `yaml:"threshold" json:"threshold"`
}

// IsSet reports whether any parameter is configured.
func (p DecayParameters) IsSet() bool { return p != DecayParameters{} }

// Values of Decay.Model and Decay.Confidence.
const (
	DecayAnyModel            = "any"
	DecayConfidenceKeep      = "keep"
	DecayConfidenceFromScore = "from_score"
)

// DecayEnabled reports whether any sink filters by decay scores: every events search then
// asks MISP for includeDecayScore.
func (c *Config) DecayEnabled() bool {
	return slices.ContainsFunc(c.Sinks, func(s Sink) bool { return s.Decay.Enabled() })
}

// RefetchOnNotice is the one re-fetch policy of the real-time path: it re-reads a notified
// event through restSearch when the MISP section asks for it (MISP.RefetchOnNotice) or when a
// sink uses decay scores, which ZeroMQ and webhook payloads do not carry (Validate refuses
// realtime_fetch never then).
func (c *Config) RefetchOnNotice() bool { return c.MISP.RefetchOnNotice() || c.DecayEnabled() }

// SearchFilters are the filters of every events search the listener makes (real-time
// re-fetch, reconcile, sync): misp.event_filters, plus includeDecayScore when a sink has a
// decay block. The map is a copy.
func (c *Config) SearchFilters() map[string]any {
	out := maps.Clone(c.MISP.EventFilters)
	if c.DecayEnabled() {
		if out == nil {
			out = map[string]any{}
		}
		out["includeDecayScore"] = true
	}
	return out
}

// Store is the local Badger state.
type Store struct {
	// Dir is the store's directory. Load resolves a relative one against the configuration
	// file's directory (never the working directory), so every command finds the same store.
	Dir string `yaml:"dir" json:"dir"`
	// RefreshWindow re-uploads an unchanged indicator this long before its valid_until.
	RefreshWindow time.Duration `yaml:"refresh_window" json:"refresh_window"`

	// dirAsWritten is Dir as the file or environment wrote it when Load resolved it
	// (relative), "" otherwise.
	dirAsWritten string
}

// DirAsWritten returns store.dir as the configuration wrote it when Load resolved it against
// the configuration file's directory, and "" when it was absolute.
func (s Store) DirAsWritten() string { return s.dirAsWritten }

// Reconcile schedules the REST reconciliation with MISP.
type Reconcile struct {
	// FullInterval is the period of full reconciles (ignored when Schedule is set).
	FullInterval time.Duration `yaml:"full_interval" json:"full_interval"`
	// Schedule is an optional 5-field cron expression for full reconciles.
	Schedule string `yaml:"schedule" json:"schedule"`
	// IncrementalInterval is the period of incremental reconciles (a metadata listing of the
	// filters' events that fetches only the new or changed ones and revokes the deleted ones,
	// as the start-up and catch-up runs do); 0 turns them off.
	IncrementalInterval time.Duration `yaml:"incremental_interval" json:"incremental_interval"`
	// Overlap widened each incremental timestamp window backwards to absorb clock skew. The
	// incremental run is a listing since issue 13 and has no window: kept for compatibility,
	// unused.
	Overlap time.Duration `yaml:"overlap" json:"overlap"`
	// GoneGrace is how long an event must stay missing from full reconciles before its
	// indicators are revoked.
	GoneGrace time.Duration `yaml:"gone_grace" json:"gone_grace"`
}

// Pusher drains the outbox: one delivery loop per sink.
type Pusher struct {
	// Linger is how long a partial batch waits for more objects.
	Linger time.Duration `yaml:"linger" json:"linger"`
	// ShutdownGrace bounds how long the batches in flight may take to finish on shutdown.
	ShutdownGrace time.Duration `yaml:"shutdown_grace" json:"shutdown_grace"`
	// RetryBackoff bounds the exponential backoff after an upload error that names no wait
	// (5xx, timeouts, connection errors).
	RetryBackoff Backoff `yaml:"retry_backoff" json:"retry_backoff"`
	// MaxRetryAfter caps a wait an API asks for (Retry-After); longer requests are clamped
	// with a warning.
	MaxRetryAfter time.Duration `yaml:"max_retry_after" json:"max_retry_after"`
	// QuotaHeadroom is the fraction of the quota's window added to it to absorb network
	// jitter (0.01: 100 requests per 60.6 s for Sentinel's 100 per minute).
	QuotaHeadroom float64 `yaml:"quota_headroom" json:"quota_headroom"`
	// InFlight is the most batches of one sink in flight at once, so that a slow API still
	// gets the whole quota. Versions of one indicator are never in flight together.
	InFlight int `yaml:"in_flight" json:"in_flight"`
	// FailingBackoff bounds the retries of a sink failing on a configuration error (a
	// refused credential, a missing role, an unknown workspace); each retry resolves the
	// identity's secret again, so a rotated secret or a new role is picked up without a
	// restart.
	FailingBackoff Backoff `yaml:"failing_backoff" json:"failing_backoff"`
}

// ReadBack locates a Sentinel workspace for the management API, which needs its
// subscription, resource group and name (the upload API's workspace ID does not name it, and
// finding it from the ID would need read access to the whole subscription), and tunes how
// it is read.
type ReadBack struct {
	// SubscriptionID, ResourceGroup and WorkspaceName locate the workspace; read-back is off
	// while SubscriptionID is empty.
	SubscriptionID string `yaml:"subscription_id" json:"subscription_id"`
	ResourceGroup  string `yaml:"resource_group" json:"resource_group"`
	WorkspaceName  string `yaml:"workspace_name" json:"workspace_name"`
	// API is indicators (the stable queryIndicators) or stix-objects (the preview
	// STIX-object query, which returns the stored STIX objects and so compares content in
	// full).
	API string `yaml:"api" json:"api"`
	// APIVersion is the management api-version; the default follows API.
	APIVersion string `yaml:"api_version" json:"api_version"`
	// Lag is how long Microsoft's query side may take to show an upload: an object queued
	// within it is not judged.
	Lag time.Duration `yaml:"lag" json:"lag"`
	// PageSize is the number of objects per read request.
	PageSize int `yaml:"page_size" json:"page_size"`
	// RequestsPerMinute is the management read rate of the sink's identity (sinks sharing an
	// identity share it).
	RequestsPerMinute int `yaml:"requests_per_minute" json:"requests_per_minute"`
}

// Enabled reports whether the sink is read back.
func (r ReadBack) Enabled() bool { return r.SubscriptionID != "" }

// Values of ReadBack.API.
const (
	ReadBackIndicators  = "indicators"
	ReadBackSTIXObjects = "stix-objects"
)

// Verify is the daemon's scheduled comparison of each read-back sink with its workspace.
type Verify struct {
	// Interval is the period of the comparison; 0 turns it off.
	Interval time.Duration `yaml:"interval" json:"interval"`
	// Repair re-queues what the comparison finds missing or stale and re-sends lost
	// revocations.
	Repair bool `yaml:"repair" json:"repair"`
	// Examples is the number of example ids kept per kind of difference in reports and logs.
	Examples int `yaml:"examples" json:"examples"`
}

// ReadBackSinks reports whether any sink is read back.
func (c *Config) ReadBackSinks() bool {
	return slices.ContainsFunc(c.Sinks, func(s Sink) bool { return s.ReadBack.Enabled() })
}

// Metrics serves /metrics and the health endpoints.
type Metrics struct {
	// Listen is host:port; empty turns the server off.
	Listen string `yaml:"listen" json:"listen"`
	// MaxConnections caps the connections the server holds open at once; idle keep-alive
	// connections are closed after a minute.
	MaxConnections int `yaml:"max_connections" json:"max_connections"`
}

// Control is the local control endpoint that `listener status`, `deadletters` and `trace`
// reach the running daemon through.
type Control struct {
	// Socket is the path of the control Unix socket; empty puts control.sock in store.dir, a
	// relative path is relative to store.dir, and "off" turns the socket off.
	Socket string `yaml:"socket" json:"socket"`
	// Token, when set, also serves the control routes on the ops listener (metrics.listen),
	// each request carrying it as "Authorization: Bearer <token>". Without it the ops listener
	// serves no control route: never an unauthenticated mutation on a network port.
	Token Secret `yaml:"token" json:"token"`
}

// ControlSocketOff is the control.socket value that turns the control socket off.
const ControlSocketOff = "off"

// ControlSocket returns the control socket's path, "" when it is off.
func (c *Config) ControlSocket() string {
	switch p := c.Control.Socket; {
	case p == ControlSocketOff:
		return ""
	case p == "":
		return filepath.Join(c.Store.Dir, ControlSocketName)
	case filepath.IsAbs(p):
		return p
	default:
		return filepath.Join(c.Store.Dir, p)
	}
}

// Log configures logrus.
type Log struct {
	// Level is trace, debug, info, warn, error, fatal or panic.
	Level string `yaml:"level" json:"level"`
	// Format is json or text.
	Format string `yaml:"format" json:"format"`
}
