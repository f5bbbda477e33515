package config

import (
	"strings"
	"time"
)

// This file is the one place defaults live: Default for the whole configuration, defaultSink
// for every sink (from the sinks list or from the tenants JSON), cloudPresets (with
// keyVaultSuffixes) and apiVersions
// for the values that follow a sink's cloud and API, and the fixed tuning values below that the
// file does not expose. Other packages take complete options from the daemon and never fill in
// numbers of their own (TestDefaultsLiveInConfig enforces it).

// DefaultUserAgent is sent to MISP and Sentinel unless configured otherwise.
const DefaultUserAgent = "mispsentinel-listener"

// Default returns the configuration used for every key the file and environment leave out.
func Default() Config {
	return Config{
		MISP: MISP{
			Timeout:   60 * time.Second,
			UserAgent: DefaultUserAgent,
			PageSize:  100,
			EventFilters: map[string]any{
				"published":          true,
				"enforceWarninglist": true,
				"includeEventTags":   true,
			},
			RealtimeFetch:        RealtimeFetchAuto,
			RefetchBatch:         50,
			RefetchConcurrency:   4,
			DecayingModelsMaxAge: time.Hour,
		},
		ZeroMQ: ZeroMQ{
			HeartbeatTimeout: 30 * time.Second,
			ReconnectBackoff: Backoff{Initial: time.Second, Max: time.Minute},
			MaxFrameBytes:    64 << 20,
		},
		Webhook: Webhook{
			Listen:           "127.0.0.1:8080",
			Path:             "/v1/misp/webhook",
			AuthHeader:       "Authorization",
			MaxBodyBytes:     32 << 20,
			MaxInflightBytes: 64 << 20,
			MaxConnections:   256,
		},
		Conversion: Conversion{
			Profile:      ProfileSentinel,
			DaysToExpire: 50,
			ExpireStart:  ExpireStartNow,
			DaysToExpireByType: map[string]int{
				"ipv4-addr":   180,
				"ipv6-addr":   180,
				"domain-name": 180,
				"url":         365,
			},
			IgnoreLastSeen:    false,
			DefaultConfidence: 50,
			DefaultTLP:        "tlp:clear",
			DefaultThreatType: "WatchList",
			IncludeLocalTags:  false,
			TagsIgnore: []string{
				"tlp:", "misp-galaxy:", "Threat-Report", `misp:tool="MISP-STIX-Converter"`,
				`misp:to_ids="True"`, `misp:to_ids="False"`, "misp:category=", "misp:name=",
				"misp:meta-category=", "misp:type=",
			},
			AllowedTaxonomies: []string{},
			PatternTypes:      []string{"stix"},
			Composite:         CompositeProfile,
			CompositeByType:   map[string]string{},
		},
		Store: Store{
			Dir:           "/var/lib/listener",
			RefreshWindow: 7 * 24 * time.Hour,
		},
		Reconcile: Reconcile{
			FullInterval:        6 * time.Hour,
			IncrementalInterval: 5 * time.Minute,
			Overlap:             time.Minute,
			GoneGrace:           time.Hour,
		},
		Pusher: Pusher{
			Linger:         time.Second,
			ShutdownGrace:  10 * time.Second,
			RetryBackoff:   Backoff{Initial: time.Second, Max: time.Minute},
			MaxRetryAfter:  10 * time.Minute,
			QuotaHeadroom:  0.01,
			InFlight:       4,
			FailingBackoff: Backoff{Initial: time.Minute, Max: 15 * time.Minute},
		},
		Verify:  Verify{Interval: 0, Repair: true, Examples: 5},
		Metrics: Metrics{Listen: "127.0.0.1:9464", MaxConnections: 64},
		Log:     Log{Level: "info", Format: "json"},
	}
}

// Fixed tuning values. The configuration file does not expose them; the daemon passes them to
// the packages with the configured values.
const (
	// ZeroMQDialTimeout bounds one connection attempt to the publisher (TCP and ZMTP handshake).
	ZeroMQDialTimeout = 10 * time.Second
	// ZeroMQWorkers is the number of notices the ZeroMQ source handles at once, so that the
	// re-fetch of one event overlaps the store commit of another.
	ZeroMQWorkers = 2
	// ZeroMQMaxQueued bounds the notices received and not yet committed; at 200 events/s a
	// notice waits well under a second, so this leaves room for bursts of several seconds.
	ZeroMQMaxQueued = 2048
	// ZeroMQDrainTimeout bounds how long a shutdown keeps handling the notices already received;
	// the ones still queued then are recorded in the store and applied first at the next start.
	ZeroMQDrainTimeout = 20 * time.Second

	// WebhookReadHeaderTimeout, WebhookReadTimeout, WebhookWriteTimeout and WebhookIdleTimeout
	// are the webhook server's HTTP timeouts; WebhookShutdownTimeout bounds the graceful stop.
	WebhookReadHeaderTimeout = 10 * time.Second
	WebhookReadTimeout       = 2 * time.Minute
	WebhookWriteTimeout      = 2 * time.Minute
	// WebhookHandlerTimeout bounds one webhook call's handling (a MISP re-fetch and the store
	// commit) below the write timeout, so that a slow call is answered 503, not cut.
	WebhookHandlerTimeout  = WebhookWriteTimeout * 3 / 4
	WebhookIdleTimeout     = 2 * time.Minute
	WebhookShutdownTimeout = 10 * time.Second

	// MetricsReadHeaderTimeout, MetricsReadTimeout, MetricsWriteTimeout and MetricsIdleTimeout
	// are the ops (metrics, status, probes) server's HTTP timeouts: it answers small requests.
	MetricsReadHeaderTimeout = 10 * time.Second
	MetricsReadTimeout       = 30 * time.Second
	MetricsWriteTimeout      = 30 * time.Second
	MetricsIdleTimeout       = time.Minute
	// HTTPMaxHeaderBytes caps a request's header block on every HTTP server of the daemon.
	HTTPMaxHeaderBytes = 64 << 10

	// ControlSocketName is the control socket's file name in store.dir when control.socket is
	// empty. ControlTimeout bounds one control request the CLI sends, ControlHandlerTimeout
	// the daemon's handling of one (a trace searches MISP), below ControlWriteTimeout and
	// MetricsWriteTimeout (the ops listener serves the routes too, with control.token).
	// ControlTraceMaxAttributes is the most MISP attributes one trace follows.
	ControlSocketName         = "control.sock"
	ControlTimeout            = 60 * time.Second
	ControlWriteTimeout       = 30 * time.Second
	ControlHandlerTimeout     = 25 * time.Second
	ControlTraceMaxAttributes = 20

	// MISPMaxPageAttempts is how often one restSearch page is tried (the first try included)
	// before a 5xx, a broken body or a network error gives up; MISPRetryInterval is the first
	// pause between tries (it grows exponentially).
	MISPMaxPageAttempts = 4
	MISPRetryInterval   = time.Second
	// MISPMaxResponseBytes bounds one MISP response body (one page of events).
	MISPMaxResponseBytes = 512 << 20

	// StoreGCInterval is the period of the store's value-log garbage collection;
	// StoreCompactInterval the least time between two compactions.
	StoreGCInterval      = 5 * time.Minute
	StoreCompactInterval = time.Hour
	// StoreMinFreeBytes is the free space the store keeps on its file system: room for a
	// memtable's write-ahead log (16 MB), its flush to a table and a compaction.
	StoreMinFreeBytes = 64 << 20

	// ReconcileCatchUpRetry is the wait before a failed start-up or catch-up run is retried.
	ReconcileCatchUpRetry = 30 * time.Second
	// ReconcileListPageSize is the page of a catch-up's metadata listing (events without
	// attributes, about 1.4 KB each; up to misp.refetch_concurrency pages are asked at once,
	// so smaller pages overlap better); ReconcileFetchBatch the most event uuids one
	// restSearch of changed events asks for.
	ReconcileListPageSize = 500
	ReconcileFetchBatch   = 50

	// ReadBackMaxPages bounds one listing of a workspace; ReadBackMaxAttempts the tries of
	// one page (429, 5xx, network errors); ReadBackRetryInitial the first pause after a 5xx
	// or network error (it doubles up to pusher.max_retry_after, which also caps a 429's
	// Retry-After).
	ReadBackMaxPages     = 10000
	ReadBackMaxAttempts  = 6
	ReadBackRetryInitial = 2 * time.Second

	// ReadyMISPProbeInterval is how often the daemon asks MISP for its version while
	// re-fetching notices is on; /readyz fails when MISP has not answered for ReadyMISPMaxAge
	// (a notice cannot be accepted durably without it).
	ReadyMISPProbeInterval = 15 * time.Second
	ReadyMISPMaxAge        = time.Minute
	// LivenessBeat is how often an idle long-running loop (a sink's delivery loop) still
	// shows it is making progress; /healthz fails when a loop has not for LivenessBound, or
	// when a store read has not returned within it. The bound is generous: only a wedged
	// process trips it, never a slow Microsoft or MISP.
	LivenessBeat  = 30 * time.Second
	LivenessBound = 5 * time.Minute
)

// defaultSink returns the defaults of one sink. Its Conversion is filled from the top-level
// conversion block when the file is loaded; Endpoints and APIVersion follow Cloud and API
// (see fillDerived).
func defaultSink() Sink {
	return Sink{
		Kind:              SinkSentinel,
		Cloud:             CloudPublic,
		API:               APISTIXObjects,
		SourceSystem:      "MISP",
		UserAgent:         DefaultUserAgent,
		BatchSize:         100,
		RequestTimeout:    60 * time.Second,
		RequestsPerMinute: 100,
		// Decay is off (no model); with a model, MISP's own decayed verdict alone filters
		// until min_score is raised.
		Decay: Decay{MinScore: 0, Confidence: DecayConfidenceKeep},
		// Context follows the API (contextByAPI); indicators link to both levels' clusters.
		ContextLevels: ContextLevelsBoth,
		// Read-back is off until subscription_id is set.
		ReadBack: ReadBack{API: ReadBackIndicators, Lag: 15 * time.Minute, PageSize: 100, RequestsPerMinute: 60},
	}
}

// contextByAPI is the default context of a Sentinel sink per upload API: the STIX objects
// API stores attack patterns, threat actors and relationships; the legacy API indicators only.
var contextByAPI = map[string]string{
	APISTIXObjects: ContextAll,
	APILegacy:      ContextNone,
}

// cloudPresets are the Entra authority, upload API host and token scope of each cloud
// (shared/spec/sentinel-api.md §2.6).
var cloudPresets = map[string]Endpoints{
	CloudPublic: {
		LoginHost:      "https://login.microsoftonline.com",
		APIHost:        "https://api.ti.sentinel.azure.com",
		Scope:          "https://management.azure.com/.default",
		ManagementHost: "https://management.azure.com",
	},
	CloudUSGov: {
		LoginHost:      "https://login.microsoftonline.us",
		APIHost:        "https://api.ti.sentinel.azure.us",
		Scope:          "https://management.usgovcloudapi.net/.default",
		ManagementHost: "https://management.usgovcloudapi.net",
	},
	CloudChina: {
		LoginHost:      "https://login.chinacloudapi.cn",
		APIHost:        "https://api.ti.sentinel.azure.cn",
		Scope:          "https://management.chinacloudapi.cn/.default",
		ManagementHost: "https://management.chinacloudapi.cn",
	},
}

// IsCloudLoginHost reports whether host is the Entra authority of one of the cloud presets
// (MSAL's instance discovery knows only these).
func IsCloudLoginHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), "/")
	for _, p := range cloudPresets {
		if host == p.LoginHost {
			return true
		}
	}
	return false
}

// legacyAPIHost is the deprecated upload-indicators API; it exists in the public cloud only.
const legacyAPIHost = "https://sentinelus.azure-api.net"

// readBackAPIVersions are the default management api-version of each read-back API
// (shared/spec/sentinel-api.md §5.1, §5.2).
var readBackAPIVersions = map[string]string{
	ReadBackIndicators:  "2025-09-01",
	ReadBackSTIXObjects: "2025-07-01-preview",
}

// apiVersions are the default api-version of each upload API.
var apiVersions = map[string]string{
	APISTIXObjects: "2024-02-01-preview",
	APILegacy:      "2022-07-01",
}

// keyVaultSuffixes complete the cloud table (cloudPresets): the DNS suffix of Key Vault names
// in each cloud, for keyvault:// references without a dot. The Key Vault credential signs in
// at the cloud's login host. key_vault.cloud (KeyVaultSettings) chooses the cloud.
var keyVaultSuffixes = map[string]string{
	CloudPublic: ".vault.azure.net",
	CloudUSGov:  ".vault.usgovcloudapi.net",
	CloudChina:  ".vault.azure.cn",
}

// fillDerived sets the sink fields whose defaults depend on other fields: the endpoints of
// its cloud and the api-version of its API. Fields already set are kept.
func (s *Sink) fillDerived() {
	if s.Kind == SinkDefender {
		if s.Context == "" {
			s.Context = ContextNone // Defender takes indicators only
		}
		s.fillDefenderDerived()
		return
	}
	if s.Context == "" {
		s.Context = contextByAPI[s.API]
	}
	preset, ok := cloudPresets[s.Cloud]
	if ok && s.API == APILegacy && s.Cloud == CloudPublic {
		preset.APIHost = legacyAPIHost
	}
	if ok && s.API == APILegacy && s.Cloud != CloudPublic {
		preset.APIHost = "" // no legacy API outside the public cloud; Validate asks for one
	}
	s.Endpoints.fillFrom(preset)
	if s.APIVersion == "" {
		s.APIVersion = apiVersions[s.API]
	}
	if s.ReadBack.APIVersion == "" {
		s.ReadBack.APIVersion = readBackAPIVersions[s.ReadBack.API]
	}
}

// defaultDefenderSink returns the defaults of a sink of kind defender: Audit with alerts,
// severity from the MISP threat level, a budget of 15,000 less 1,000 slots of headroom for
// other tools' indicators, a swap margin of 0.02, and the score weights documented in
// docs/MAPPING.md.
func defaultDefenderSink() Sink {
	s := defaultSink()
	// Sentinel's settings do not apply.
	s.API, s.SourceSystem, s.RequestsPerMinute = "", "", 0
	s.ReadBack = ReadBack{} // Defender reads its tenant back itself (defender.read_back_interval)
	s.Kind, s.Cloud, s.BatchSize = SinkDefender, DefenderCloudPublic, 500
	s.Defender = Defender{
		Action:        "Audit",
		GenerateAlert: true,
		Application:   "MISP",
		Budget:        14000,
		SwapMargin:    0.02,
		Score: DefenderScore{
			Confidence: 0.4, Decay: 0.2, Recency: 0.2, ThreatLevel: 0.2,
			RecencyHalfLife: 30 * 24 * time.Hour,
		},
		MaxDefer:         time.Minute,
		ReadBackInterval: time.Hour,
	}
	return s
}

// defenderCloudPresets are the Entra authority, Defender for Endpoint API host and token
// scope of each cloud (shared/spec/defender-api.md §1.2, §2). The scope is the legacy
// resource even on the new host: Microsoft says some MDE APIs answer 403 to other audiences.
var defenderCloudPresets = map[string]Endpoints{
	DefenderCloudPublic: {
		LoginHost: "https://login.microsoftonline.com",
		APIHost:   "https://api.security.microsoft.com",
		Scope:     "https://api.securitycenter.microsoft.com/.default",
	},
	DefenderCloudPublicLegacy: {
		LoginHost: "https://login.microsoftonline.com",
		APIHost:   "https://api.securitycenter.microsoft.com",
		Scope:     "https://api.securitycenter.microsoft.com/.default",
	},
	DefenderCloudGCC: {
		LoginHost: "https://login.microsoftonline.com",
		APIHost:   "https://api-gcc.securitycenter.microsoft.us",
		Scope:     "https://api-gcc.securitycenter.microsoft.us/.default",
	},
	DefenderCloudGCCHigh: {
		LoginHost: "https://login.microsoftonline.us",
		APIHost:   "https://api-gov.securitycenter.microsoft.us",
		Scope:     "https://api-gov.securitycenter.microsoft.us/.default",
	},
	DefenderCloudDoD: {
		LoginHost: "https://login.microsoftonline.us",
		APIHost:   "https://api-gov.securitycenter.microsoft.us",
		Scope:     "https://api-gov.securitycenter.microsoft.us/.default",
	},
}

// fillDefenderDerived sets the endpoints of a defender sink's cloud (and region).
func (s *Sink) fillDefenderDerived() {
	preset := defenderCloudPresets[s.Cloud]
	if s.Defender.Region != "" && s.Cloud == DefenderCloudPublic {
		preset.APIHost = "https://" + s.Defender.Region + ".api.security.microsoft.com"
	}
	s.Endpoints.fillFrom(preset)
}

// fillFrom sets the addresses left empty to the preset's.
func (e *Endpoints) fillFrom(preset Endpoints) {
	if e.LoginHost == "" {
		e.LoginHost = preset.LoginHost
	}
	if e.APIHost == "" {
		e.APIHost = preset.APIHost
	}
	if e.Scope == "" {
		e.Scope = preset.Scope
	}
	if e.ManagementHost == "" {
		e.ManagementHost = preset.ManagementHost
	}
}
