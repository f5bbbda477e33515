package config

import "time"

// This file is the one place defaults live: Default for the whole configuration, defaultSink
// for every sink (from the sinks list or from the tenants JSON), cloudPresets and apiVersions
// for the values that follow a sink's cloud and API.

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
			Linger:        time.Second,
			ShutdownGrace: 10 * time.Second,
			RetryBackoff:  Backoff{Initial: time.Second, Max: time.Minute},
			MaxRetryAfter: 10 * time.Minute,
			QuotaHeadroom: 0.01,
		},
		Metrics: Metrics{Listen: "127.0.0.1:9464", MaxConnections: 64},
		Log:     Log{Level: "info", Format: "json"},
	}
}

// defaultSink returns the defaults of one sink. Its Conversion is filled from the top-level
// conversion block when the file is loaded; Endpoints and APIVersion follow Cloud and API
// (see fillDerived).
func defaultSink() Sink {
	return Sink{
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
	}
}

// cloudPresets are the Entra authority, upload API host and token scope of each cloud
// (shared/spec/sentinel-api.md §2.6).
var cloudPresets = map[string]Endpoints{
	CloudPublic: {
		LoginHost: "https://login.microsoftonline.com",
		APIHost:   "https://api.ti.sentinel.azure.com",
		Scope:     "https://management.azure.com/.default",
	},
	CloudUSGov: {
		LoginHost: "https://login.microsoftonline.us",
		APIHost:   "https://api.ti.sentinel.azure.us",
		Scope:     "https://management.usgovcloudapi.net/.default",
	},
	CloudChina: {
		LoginHost: "https://login.chinacloudapi.cn",
		APIHost:   "https://api.ti.sentinel.azure.cn",
		Scope:     "https://management.chinacloudapi.cn/.default",
	},
}

// legacyAPIHost is the deprecated upload-indicators API; it exists in the public cloud only.
const legacyAPIHost = "https://sentinelus.azure-api.net"

// apiVersions are the default api-version of each upload API.
var apiVersions = map[string]string{
	APISTIXObjects: "2024-02-01-preview",
	APILegacy:      "2022-07-01",
}

// keyVaultSuffix is the DNS suffix of Key Vault names in keyvault:// references without a dot.
const keyVaultSuffix = ".vault.azure.net"

// fillDerived sets the sink fields whose defaults depend on other fields: the endpoints of
// its cloud and the api-version of its API. Fields already set are kept.
func (s *Sink) fillDerived() {
	preset, ok := cloudPresets[s.Cloud]
	if ok && s.API == APILegacy && s.Cloud == CloudPublic {
		preset.APIHost = legacyAPIHost
	}
	if ok && s.API == APILegacy && s.Cloud != CloudPublic {
		preset.APIHost = "" // no legacy API outside the public cloud; Validate asks for one
	}
	if s.Endpoints.LoginHost == "" {
		s.Endpoints.LoginHost = preset.LoginHost
	}
	if s.Endpoints.APIHost == "" {
		s.Endpoints.APIHost = preset.APIHost
	}
	if s.Endpoints.Scope == "" {
		s.Endpoints.Scope = preset.Scope
	}
	if s.APIVersion == "" {
		s.APIVersion = apiVersions[s.API]
	}
}
