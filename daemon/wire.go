package daemon

import (
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/internal/httpserve"
	"github.com/mispsentinel/listener/listener"
	"github.com/mispsentinel/listener/misp"
	"github.com/mispsentinel/listener/pusher"
	"github.com/mispsentinel/listener/sentinel"
	"github.com/mispsentinel/listener/stix"
	"github.com/mispsentinel/listener/store"
)

// This file maps the configuration onto each package's own options. The options it builds are
// complete: the packages keep no defaults of their own, so every value comes from the
// configuration or from the fixed tuning values in config/defaults.go.

// ConversionOptions returns the stix options the daemon converts with for one sink, so that
// tools (the demo, tests, benchmarks) can compute the state Sentinel should end in.
func ConversionOptions(cfg *config.Config, s config.Sink) stix.Options {
	o := conversionOptions(s.Conversion, s.Filters, cfg.MISP.URL)
	o.Decay = decayOptions(s.Decay)
	o.Context, o.ContextLevels = stix.ContextMode(s.Context), stix.ContextLevels(s.ContextLevels)
	return o
}

// decayOptions returns the stix decay policy of a sink's decay block. The models' parameters
// are filled per event from MISP (pipeline.DecayModelSource) unless configured.
func decayOptions(d config.Decay) stix.Decay {
	if !d.Enabled() {
		return stix.Decay{}
	}
	out := stix.Decay{
		Enabled: true, Model: d.Model, MinScore: d.MinScore,
		ConfidenceFromScore: d.Confidence == config.DecayConfidenceFromScore,
	}
	if p := d.Parameters; p.IsSet() {
		out.Parameters = &misp.DecayingModel{
			Name: d.Model, Formula: misp.FormulaPolynomial,
			LifetimeDays: p.LifetimeDays, DecaySpeed: p.DecaySpeed, Threshold: p.Threshold,
		}
	}
	return out
}

// conversionOptions returns the stix options of one sink.
func conversionOptions(c config.Conversion, f config.Filters, mispURL string) stix.Options {
	o := stix.Options{
		Profile:            stix.Profile(c.Profile),
		DaysToExpire:       c.DaysToExpire,
		DaysToExpireByType: c.DaysToExpireByType,
		ExpiryStart:        stix.ExpiryStart(c.ExpireStart),
		IgnoreLastSeen:     c.IgnoreLastSeen,
		DefaultConfidence:  c.DefaultConfidence,
		DefaultTLP:         c.DefaultTLP,
		DefaultThreatType:  c.DefaultThreatType,
		IncludeLocalTags:   c.IncludeLocalTags,
		LabelDenyList:      c.TagsIgnore,
		LabelAllowList:     c.AllowedTaxonomies,
		MISPURL:            mispURL,
		Filter: stix.Filter{
			IncludeTags:   f.IncludeTags,
			ExcludeTags:   f.ExcludeTags,
			IncludeTypes:  f.AttributeTypes,
			MinConfidence: f.MinConfidence,
			MaxTLP:        f.MaxTLP,
		},
	}
	o.Composite = make(map[string]stix.Composite, len(config.CompositeTypes))
	for typ, mode := range c.CompositeModes() {
		o.Composite[typ] = stix.Composite(mode)
	}
	for _, pt := range c.PatternTypes {
		if pt != "stix" {
			o.ExportPatternLanguages = append(o.ExportPatternLanguages, pt)
		}
	}
	return o
}

// SentinelConfig returns the upload client configuration of one sink, with the trust roots of
// its endpoints.ca_file when it names one.
func SentinelConfig(s config.Sink) (sentinel.Config, error) {
	roots, err := sinkRoots(s)
	if err != nil {
		return sentinel.Config{}, err
	}
	return sentinelConfig(s, roots), nil
}

// sinkRoots returns the trust roots of a sink's endpoints.ca_file, nil for the system roots.
func sinkRoots(s config.Sink) (*x509.CertPool, error) {
	if s.Endpoints.CAFile == "" {
		return nil, nil
	}
	roots, err := loadCertPool(s.Endpoints.CAFile)
	if err != nil {
		return nil, fmt.Errorf("sink %s: endpoints.ca_file: %w", s.Name, err)
	}
	return roots, nil
}

// MISPClientConfig returns the MISP REST client configuration.
func MISPClientConfig(m config.MISP) misp.ClientConfig { return mispClientConfig(m, nil) }

// ZeroMQConfig returns the ZeroMQ subscriber configuration.
func ZeroMQConfig(z config.ZeroMQ) listener.ZeroMQConfig { return zeroMQConfig(z) }

// sentinelConfig returns the upload client configuration of one sink. roots, when not nil,
// replaces the system roots (simulators).
func sentinelConfig(s config.Sink, roots *x509.CertPool) sentinel.Config {
	cfg := sentinel.Config{
		API:               sentinel.API(s.API),
		APIVersion:        s.APIVersion,
		Cloud:             s.Cloud,
		AuthorityHost:     s.Endpoints.LoginHost,
		APIURL:            s.Endpoints.APIHost,
		Scope:             s.Endpoints.Scope,
		WorkspaceID:       s.WorkspaceID,
		SourceSystem:      s.SourceSystem,
		UserAgent:         s.UserAgent,
		BatchSize:         s.BatchSize,
		RequestTimeout:    s.RequestTimeout,
		RequestsPerMinute: s.RequestsPerMinute,
		QuotaMinute:       time.Minute,
		TLSRootCAs:        roots,
		Credential: sentinel.Credential{
			Kind:                sentinel.CredentialKind(s.Identity.Kind),
			TenantID:            s.Identity.TenantID,
			ClientID:            s.Identity.ClientID,
			ClientSecret:        sentinel.Secret(s.Identity.ClientSecret.Value()),
			CertificatePath:     s.Identity.CertificateFile,
			CertificatePassword: sentinel.Secret(s.Identity.CertificatePassword.Value()),
			// MSAL's instance discovery only knows Microsoft's own authorities.
			DisableInstanceDiscovery: !config.IsCloudLoginHost(s.Endpoints.LoginHost),
		},
	}
	return cfg
}

// ReaderConfig returns the read-back client configuration of a Sentinel sink with a
// read_back block, with the trust roots of its endpoints.ca_file: the sink's cloud, identity
// and management host, its read_back settings, and the pusher's cap on a Retry-After.
func ReaderConfig(s config.Sink, p config.Pusher) (sentinel.ReaderConfig, error) {
	if s.Kind != config.SinkSentinel || !s.ReadBack.Enabled() {
		return sentinel.ReaderConfig{}, fmt.Errorf("sink %s: no read_back block (read_back.subscription_id)", s.Name)
	}
	roots, err := sinkRoots(s)
	if err != nil {
		return sentinel.ReaderConfig{}, err
	}
	return readerConfig(s, p, roots), nil
}

func readerConfig(s config.Sink, p config.Pusher, roots *x509.CertPool) sentinel.ReaderConfig {
	rb := s.ReadBack
	up := sentinelConfig(s, roots)
	return sentinel.ReaderConfig{
		API:               sentinel.ReadAPI(rb.API),
		APIVersion:        rb.APIVersion,
		Cloud:             s.Cloud,
		AuthorityHost:     s.Endpoints.LoginHost,
		ManagementURL:     s.Endpoints.ManagementHost,
		Scope:             s.Endpoints.Scope,
		SubscriptionID:    rb.SubscriptionID,
		ResourceGroup:     rb.ResourceGroup,
		WorkspaceName:     rb.WorkspaceName,
		UserAgent:         s.UserAgent,
		RequestTimeout:    s.RequestTimeout,
		PageSize:          rb.PageSize,
		MaxPages:          config.ReadBackMaxPages,
		RequestsPerMinute: rb.RequestsPerMinute,
		QuotaMinute:       time.Minute,
		MaxRetryAfter:     p.MaxRetryAfter,
		MaxAttempts:       config.ReadBackMaxAttempts,
		RetryInitial:      config.ReadBackRetryInitial,
		Credential:        up.Credential,
		TLSRootCAs:        roots,
	}
}

// pusherConfig returns the delivery loop configuration of one sink.
func pusherConfig(p config.Pusher, sink string) pusher.Config {
	return pusher.Config{
		Sink:           sink,
		Linger:         p.Linger,
		ShutdownGrace:  p.ShutdownGrace,
		RetryInitial:   p.RetryBackoff.Initial,
		RetryMax:       p.RetryBackoff.Max,
		MaxRetryAfter:  p.MaxRetryAfter,
		InFlight:       p.InFlight,
		FailingInitial: p.FailingBackoff.Initial,
		FailingMax:     p.FailingBackoff.Max,
		Heartbeat:      config.LivenessBeat,
	}
}

// mispClientConfig returns the MISP REST client configuration.
func mispClientConfig(m config.MISP, httpClient *http.Client) misp.ClientConfig {
	return misp.ClientConfig{
		URL:                m.URL,
		Key:                m.Key.Value(),
		CAFile:             m.CAFile,
		InsecureSkipVerify: m.InsecureSkipVerify,
		Timeout:            m.Timeout,
		UserAgent:          m.UserAgent,
		HTTPClient:         httpClient,
		MaxPageAttempts:    config.MISPMaxPageAttempts,
		RetryInterval:      config.MISPRetryInterval,
		MaxResponseBytes:   config.MISPMaxResponseBytes,
	}
}

func zeroMQConfig(z config.ZeroMQ) listener.ZeroMQConfig {
	return listener.ZeroMQConfig{
		Endpoint:         z.Endpoint,
		Username:         z.Username,
		Password:         z.Password.Value(),
		HeartbeatTimeout: z.HeartbeatTimeout,
		ReconnectMin:     z.ReconnectBackoff.Initial,
		ReconnectMax:     z.ReconnectBackoff.Max,
		MaxFrameBytes:    z.MaxFrameBytes,
		DialTimeout:      config.ZeroMQDialTimeout,
		Workers:          config.ZeroMQWorkers,
		MaxQueued:        config.ZeroMQMaxQueued,
		DrainTimeout:     config.ZeroMQDrainTimeout,
	}
}

func webhookConfig(w config.Webhook, ready func() error) listener.WebhookConfig {
	return listener.WebhookConfig{
		Addr:             w.Listen,
		Path:             w.Path,
		AuthHeader:       w.AuthHeader,
		Token:            w.AuthToken.Value(),
		MaxBodyBytes:     w.MaxBodyBytes,
		MaxInflightBytes: w.MaxInflightBytes,
		MaxConns:         w.MaxConnections,
		TLSCertFile:      w.TLSCertFile,
		TLSKeyFile:       w.TLSKeyFile,
		Ready:            ready,

		ReadHeaderTimeout: config.WebhookReadHeaderTimeout,
		ReadTimeout:       config.WebhookReadTimeout,
		WriteTimeout:      config.WebhookWriteTimeout,
		HandlerTimeout:    config.WebhookHandlerTimeout,
		IdleTimeout:       config.WebhookIdleTimeout,
		MaxHeaderBytes:    config.HTTPMaxHeaderBytes,
		ShutdownTimeout:   config.WebhookShutdownTimeout,
	}
}

// metricsLimits are the ops (metrics, status, probes) server's HTTP limits.
func metricsLimits(m config.Metrics) httpserve.Limits {
	return httpserve.Limits{
		ReadHeaderTimeout: config.MetricsReadHeaderTimeout,
		ReadTimeout:       config.MetricsReadTimeout,
		WriteTimeout:      config.MetricsWriteTimeout,
		IdleTimeout:       config.MetricsIdleTimeout,
		MaxConns:          m.MaxConnections,
		MaxHeaderBytes:    config.HTTPMaxHeaderBytes,
	}
}

// storeOptions returns the options the daemon opens its store with.
func storeOptions(s config.Store, log *logrus.Logger) store.Options {
	return store.Options{
		Logger:          log,
		RefreshWindow:   s.RefreshWindow,
		GCInterval:      config.StoreGCInterval,
		CompactInterval: config.StoreCompactInterval,
		MinFreeBytes:    config.StoreMinFreeBytes,
	}
}

// loadCertPool reads a PEM bundle.
func loadCertPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}
