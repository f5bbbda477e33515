package config

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Validate checks the whole configuration without any I/O (no file is opened, no name
// resolved, no secret fetched) and returns Errors listing every problem, each naming its key
// path, or nil.
func (c *Config) Validate() error {
	var errs Errors
	c.validateMISP(&errs)
	c.validateZeroMQ(&errs)
	c.validateWebhook(&errs)
	validateConversion(c.Conversion, "conversion", &errs)
	if len(c.Sinks) == 0 && !(c.Tenants.IsSet() && !c.tenantsExpanded) {
		errs.add("sinks", "at least one sink is required (in sinks or tenants)")
	}
	for i := range c.Sinks {
		c.validateSink(i, &errs)
	}
	c.validateSinkSet(&errs)
	c.validateDefenderSinkSet(&errs)
	if err := c.Tenants.checkReference(); err != nil {
		errs.add("tenants", "%v", err)
	}
	c.validateKeyVault(&errs)
	c.validateStore(&errs)
	c.validateReconcile(&errs)
	c.validatePusher(&errs)
	c.validateVerify(&errs)
	if c.Metrics.Listen != "" {
		checkListen(c.Metrics.Listen, "metrics.listen", &errs)
		if c.Metrics.MaxConnections < 1 || c.Metrics.MaxConnections > 65536 {
			errs.add("metrics.max_connections", "must be between 1 and 65536, got %d", c.Metrics.MaxConnections)
		}
	}
	checkSecret(c.Control.Token, "control.token", false, &errs)
	if c.Control.Token.IsSet() && c.Metrics.Listen == "" {
		errs.add("control.token", "serves the control routes on the ops listener: set metrics.listen too")
	}
	oneOf(c.Log.Level, "log.level", &errs, "trace", "debug", "info", "warn", "warning", "error", "fatal", "panic")
	oneOf(c.Log.Format, "log.format", &errs, "json", "text")
	return errs.orNil()
}

// reservedFilterKeys are restSearch parameters the pager sets itself.
var reservedFilterKeys = map[string]string{
	"limit":        "set misp.page_size instead; the pager sets limit and page",
	"page":         "the pager sets limit and page",
	"returnFormat": "the listener always asks for json",
	// MISP's events search silently ignores the attribute-scope decay filters.
	"excludeDecayed":    attributeScopeDecay,
	"decayingModel":     attributeScopeDecay,
	"score":             attributeScopeDecay,
	"modelOverrides":    attributeScopeDecay,
	"includeDecayScore": "the listener asks for decay scores itself when a sink has a decay block",
}

// attributeScopeDecay explains why the attribute-scope decay filters are refused in
// misp.event_filters.
const attributeScopeDecay = "it filters attributes/restSearch only; MISP's events search silently ignores it. " +
	"Use a sink's decay block instead (decay: {model: any, min_score: 50})"

func (c *Config) validateMISP(errs *Errors) {
	m := c.MISP
	checkURL(m.URL, "misp.url", true, errs, "http", "https")
	checkSecret(m.Key, "misp.key", true, errs)
	if m.InsecureSkipVerify && m.CAFile != "" {
		errs.add("misp.insecure_skip_verify", "cannot be true together with misp.ca_file")
	}
	checkDuration(m.Timeout, "misp.timeout", time.Second, time.Hour, errs)
	checkNotEmpty(m.UserAgent, "misp.user_agent", errs)
	if m.PageSize < 1 || m.PageSize > 10000 {
		errs.add("misp.page_size", "must be between 1 and 10000, got %d", m.PageSize)
	}
	keys := make([]string, 0, len(m.EventFilters))
	for k := range m.EventFilters {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if why, reserved := reservedFilterKeys[k]; reserved {
			errs.add("misp.event_filters."+k, "must not be set: %s", why)
		}
	}
	oneOf(m.RealtimeFetch, "misp.realtime_fetch", errs, RealtimeFetchAuto, RealtimeFetchAlways, RealtimeFetchNever)
	if m.RealtimeFetch == RealtimeFetchNever && c.DecayEnabled() {
		errs.add("misp.realtime_fetch", "cannot be never while a sink has a decay block: ZeroMQ and webhook payloads carry no decay scores, so notified events must be fetched again")
	}
	if m.RefetchBatch < 1 || m.RefetchBatch > 1000 {
		errs.add("misp.refetch_batch", "must be between 1 and 1000, got %d", m.RefetchBatch)
	}
	if m.RefetchConcurrency < 1 || m.RefetchConcurrency > 64 {
		errs.add("misp.refetch_concurrency", "must be between 1 and 64, got %d", m.RefetchConcurrency)
	}
	if c.DecayEnabled() {
		checkDuration(m.DecayingModelsMaxAge, "misp.decaying_models_max_age", time.Minute, 7*24*time.Hour, errs)
	}
}

func (c *Config) validateZeroMQ(errs *Errors) {
	z := c.ZeroMQ
	if !z.Enabled {
		return
	}
	if z.Endpoint == "" {
		errs.add("zeromq.endpoint", "is required when zeromq.enabled is true")
	} else if u, err := url.Parse(z.Endpoint); err != nil || u.Scheme != "tcp" || u.Hostname() == "" || u.Port() == "" {
		errs.add("zeromq.endpoint", "must look like tcp://host:port, got %q", RedactURL(z.Endpoint))
	}
	if z.Username != "" && !z.Password.IsSet() {
		errs.add("zeromq.password", "is required when zeromq.username is set (MISP enforces PLAIN authentication)")
	}
	if z.Username == "" && z.Password.IsSet() {
		errs.add("zeromq.username", "is required when zeromq.password is set")
	}
	checkSecret(z.Password, "zeromq.password", false, errs)
	if z.HeartbeatTimeout <= 10*time.Second {
		errs.add("zeromq.heartbeat_timeout", "must be longer than MISP's 10s heartbeat period, got %s", z.HeartbeatTimeout)
	}
	checkDuration(z.ReconnectBackoff.Initial, "zeromq.reconnect_backoff.initial", time.Millisecond, time.Hour, errs)
	if z.ReconnectBackoff.Max < z.ReconnectBackoff.Initial {
		errs.add("zeromq.reconnect_backoff.max", "must be at least zeromq.reconnect_backoff.initial (%s), got %s", z.ReconnectBackoff.Initial, z.ReconnectBackoff.Max)
	}
	if z.MaxFrameBytes < 1024 || z.MaxFrameBytes > 1<<30 {
		errs.add("zeromq.max_frame_bytes", "must be between 1024 and 1073741824, got %d", z.MaxFrameBytes)
	}
}

var headerNamePattern = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

func (c *Config) validateWebhook(errs *Errors) {
	w := c.Webhook
	if !w.Enabled {
		return
	}
	checkListen(w.Listen, "webhook.listen", errs)
	if !strings.HasPrefix(w.Path, "/") {
		errs.add("webhook.path", "must begin with /, got %q", w.Path)
	}
	if !headerNamePattern.MatchString(w.AuthHeader) {
		errs.add("webhook.auth_header", "must be an HTTP header name, got %q", w.AuthHeader)
	}
	checkSecret(w.AuthToken, "webhook.auth_token", true, errs)
	if w.MaxBodyBytes < 1024 || w.MaxBodyBytes > 1<<30 {
		errs.add("webhook.max_body_bytes", "must be between 1024 and 1073741824, got %d", w.MaxBodyBytes)
	}
	if w.MaxInflightBytes < w.MaxBodyBytes || w.MaxInflightBytes > 1<<34 {
		errs.add("webhook.max_inflight_bytes", "must be at least webhook.max_body_bytes (%d) and at most 17179869184, got %d", w.MaxBodyBytes, w.MaxInflightBytes)
	}
	if w.MaxConnections < 1 || w.MaxConnections > 65536 {
		errs.add("webhook.max_connections", "must be between 1 and 65536, got %d", w.MaxConnections)
	}
	if (w.TLSCertFile == "") != (w.TLSKeyFile == "") {
		errs.add("webhook.tls_key_file", "webhook.tls_cert_file and webhook.tls_key_file must be given together")
	}
}

// stixObservableTypes are the STIX 2.1 cyber-observable types, the keys of
// days_to_expire_by_type.
var stixObservableTypes = []string{
	"artifact", "autonomous-system", "directory", "domain-name", "email-addr", "email-message",
	"file", "ipv4-addr", "ipv6-addr", "mac-addr", "mutex", "network-traffic", "process",
	"software", "url", "user-account", "windows-registry-key", "x509-certificate",
}

// tlpLevels are the TLP tags in increasing order of restriction.
var tlpLevels = []string{"tlp:clear", "tlp:white", "tlp:green", "tlp:amber", "tlp:amber+strict", "tlp:red"}

// TLPRank orders TLP tags from least (0, tlp:clear and tlp:white) to most restrictive
// (4, tlp:red); it returns -1 for anything else. Comparison is case-insensitive.
func TLPRank(tag string) int {
	switch strings.ToLower(strings.TrimSpace(tag)) {
	case "tlp:clear", "tlp:white":
		return 0
	case "tlp:green":
		return 1
	case "tlp:amber":
		return 2
	case "tlp:amber+strict":
		return 3
	case "tlp:red":
		return 4
	}
	return -1
}

func validateConversion(c Conversion, path string, errs *Errors) {
	oneOf(c.Profile, path+".profile", errs, ProfileSentinel, ProfileMISPSTIX)
	if c.DaysToExpire < 1 || c.DaysToExpire > 3650 {
		errs.add(path+".days_to_expire", "must be between 1 and 3650, got %d", c.DaysToExpire)
	}
	oneOf(c.ExpireStart, path+".expire_start", errs, ExpireStartValid, ExpireStartNow)
	types := make([]string, 0, len(c.DaysToExpireByType))
	for k := range c.DaysToExpireByType {
		types = append(types, k)
	}
	slices.Sort(types)
	for _, k := range types {
		p := path + ".days_to_expire_by_type." + k
		if !slices.Contains(stixObservableTypes, k) {
			errs.add(p, "is not a STIX observable type (want one of %s)", strings.Join(stixObservableTypes, ", "))
		}
		if d := c.DaysToExpireByType[k]; d < 1 || d > 3650 {
			errs.add(p, "must be between 1 and 3650, got %d", d)
		}
	}
	if c.DefaultConfidence < 0 || c.DefaultConfidence > 100 {
		errs.add(path+".default_confidence", "must be between 0 and 100, got %d", c.DefaultConfidence)
	}
	if TLPRank(c.DefaultTLP) < 0 {
		errs.add(path+".default_tlp", "must be one of %s, got %q", strings.Join(tlpLevels, ", "), c.DefaultTLP)
	}
	checkNotEmpty(c.DefaultThreatType, path+".default_threat_type", errs)
	for i, s := range c.TagsIgnore {
		if strings.TrimSpace(s) == "" {
			errs.add(fmt.Sprintf("%s.tags_ignore[%d]", path, i), "must not be empty (it would drop every label)")
		}
	}
	for i, s := range c.AllowedTaxonomies {
		if strings.TrimSpace(s) == "" {
			errs.add(fmt.Sprintf("%s.allowed_taxonomies[%d]", path, i), "must not be empty")
		}
	}
	if len(c.PatternTypes) == 0 {
		errs.add(path+".pattern_types", "must list at least one pattern language")
	}
	oneOf(c.Composite, path+".composite", errs, CompositeProfile, CompositeAll, CompositeFirst, CompositeCompound)
	composite := make([]string, 0, len(c.CompositeByType))
	for k := range c.CompositeByType {
		composite = append(composite, k)
	}
	slices.Sort(composite)
	for _, k := range composite {
		p := path + ".composite_by_type." + k
		if !slices.Contains(CompositeTypes, k) {
			errs.add(p, "is not a composite MISP type (want one of %s; regkey|value always keeps its compound pattern)", strings.Join(CompositeTypes, ", "))
			continue
		}
		oneOf(c.CompositeByType[k], p, errs, CompositeProfile, CompositeAll, CompositeFirst, CompositeCompound)
	}
	for i, t := range c.PatternTypes {
		p := fmt.Sprintf("%s.pattern_types[%d]", path, i)
		oneOf(t, p, errs, "stix", "yara", "sigma", "snort", "suricata")
		if t != "stix" && c.Profile == ProfileSentinel {
			errs.add(p, "%q needs profile misp-stix; the sentinel profile exports stix patterns only", t)
		}
		if slices.Index(c.PatternTypes, t) != i {
			errs.add(p, "%q is listed twice", t)
		}
	}
}

var (
	guidPattern       = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	domainPattern     = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$`)
	sinkNamePattern   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	apiVersionPattern = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}(-preview)?$`)
)

// sinkPath returns the function naming a key of sink i: sinks[i].key, or for a sink made from
// the tenants JSON the tenants[k] key it came from.
func sinkPath(s Sink, i int) func(key string) string {
	if k, ok := s.FromTenants(); ok {
		return func(key string) string {
			if jsonKey, ok := tenantPath[key]; ok {
				return fmt.Sprintf("tenants[%d].%s", k, jsonKey)
			}
			return fmt.Sprintf("tenants[%d] (sink default %s)", k, key)
		}
	}
	return func(key string) string { return fmt.Sprintf("sinks[%d].%s", i, key) }
}

func (c *Config) validateSink(i int, errs *Errors) {
	s := c.Sinks[i]
	p := sinkPath(s, i)
	if !sinkNamePattern.MatchString(s.Name) {
		errs.add(p("name"), "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit, got %q", s.Name)
	}
	if !oneOf(s.Kind, p("kind"), errs, SinkSentinel, SinkDefender) {
		return
	}
	if oneOf(s.ContextLevels, p("context_levels"), errs, ContextLevelsBoth, ContextLevelsAttribute) &&
		(s.Context != "" || s.Kind == SinkDefender || s.API == APISTIXObjects || s.API == APILegacy) && // an unknown api is reported once
		oneOf(s.Context, p("context"), errs, ContextNone, ContextAttackPatterns, ContextAll) &&
		s.Context != ContextNone && (s.Kind == SinkDefender || s.API == APILegacy) {
		errs.add(p("context"), "must be none: a %s sink takes indicators only, got %q", map[bool]string{true: "defender", false: "legacy API"}[s.Kind == SinkDefender], s.Context)
	}
	if s.Kind == SinkDefender {
		c.validateDefenderSink(i, errs)
		return
	}
	if !guidPattern.MatchString(s.WorkspaceID) {
		errs.add(p("workspace_id"), "must be a GUID (the Log Analytics workspace ID, not its resource ID), got %q", s.WorkspaceID)
	}
	cloudOK := oneOf(s.Cloud, p("cloud"), errs, CloudPublic, CloudUSGov, CloudChina)
	apiOK := oneOf(s.API, p("api"), errs, APISTIXObjects, APILegacy)
	if s.Endpoints.APIHost == "" && cloudOK && apiOK && s.API == APILegacy {
		errs.add(p("endpoints.api_host"), "is required: the legacy upload API exists in the public cloud only")
	}
	if cloudOK {
		validateEndpoints(s.Endpoints, p, apiOK, false, errs)
	}
	if apiOK && !apiVersionPattern.MatchString(s.APIVersion) {
		errs.add(p("api_version"), "must look like 2024-02-01-preview, got %q", s.APIVersion)
	}
	switch src := strings.TrimSpace(s.SourceSystem); {
	case src == "":
		errs.add(p("sourcesystem"), "is required")
	case strings.EqualFold(src, ReservedSource):
		errs.add(p("sourcesystem"), "%q is reserved by Sentinel", ReservedSource)
	}
	checkNotEmpty(s.UserAgent, p("user_agent"), errs)
	if s.BatchSize < 1 || s.BatchSize > 100 {
		errs.add(p("batch_size"), "must be between 1 and 100 (Sentinel's limit per request), got %d", s.BatchSize)
	}
	if s.RequestTimeout <= 0 {
		errs.add(p("request_timeout"), "must be more than 0s, got %s", s.RequestTimeout)
	}
	if s.RequestsPerMinute < 1 || s.RequestsPerMinute > 100 {
		errs.add(p("requests_per_minute"), "must be between 1 and 100 (Sentinel's quota per identity), got %d", s.RequestsPerMinute)
	}
	validateIdentity(s.Identity, p, errs)
	c.validateSinkFilters(s, p, errs)
	validateReadBack(s.ReadBack, p, errs)
}

var armNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.()-]{0,89}$`)

// validateReadBack checks a Sentinel sink's read_back block when it is on.
func validateReadBack(r ReadBack, p func(string) string, errs *Errors) {
	if !r.Enabled() {
		if r.ResourceGroup != "" || r.WorkspaceName != "" {
			errs.add(p("read_back.subscription_id"), "is required with read_back.resource_group and workspace_name")
		}
		return
	}
	if !guidPattern.MatchString(r.SubscriptionID) {
		errs.add(p("read_back.subscription_id"), "must be a GUID, got %q", r.SubscriptionID)
	}
	if !armNamePattern.MatchString(r.ResourceGroup) {
		errs.add(p("read_back.resource_group"), "must be the workspace's resource group name, got %q", r.ResourceGroup)
	}
	if !armNamePattern.MatchString(r.WorkspaceName) {
		errs.add(p("read_back.workspace_name"), "must be the workspace's name (not its ID), got %q", r.WorkspaceName)
	}
	if oneOf(r.API, p("read_back.api"), errs, ReadBackIndicators, ReadBackSTIXObjects) && !apiVersionPattern.MatchString(r.APIVersion) {
		errs.add(p("read_back.api_version"), "must look like 2025-09-01, got %q", r.APIVersion)
	}
	checkDuration(r.Lag, p("read_back.lag"), 0, 24*time.Hour, errs)
	if r.PageSize < 1 || r.PageSize > 1000 {
		errs.add(p("read_back.page_size"), "must be between 1 and 1000, got %d", r.PageSize)
	}
	if r.RequestsPerMinute < 1 || r.RequestsPerMinute > 1000 {
		errs.add(p("read_back.requests_per_minute"), "must be between 1 and 1000, got %d", r.RequestsPerMinute)
	}
}

func (c *Config) validateVerify(errs *Errors) {
	v := c.Verify
	if v.Interval != 0 {
		checkDuration(v.Interval, "verify.interval", time.Minute, 30*24*time.Hour, errs)
		if !c.ReadBackSinks() {
			errs.add("verify.interval", "needs at least one sink with a read_back block")
		}
	}
	if v.Examples < 0 || v.Examples > 1000 {
		errs.add("verify.examples", "must be between 0 and 1000, got %d", v.Examples)
	}
}

// validateSinkFilters checks what every kind of sink shares: filters and conversion.
func (c *Config) validateSinkFilters(s Sink, p func(string) string, errs *Errors) {
	f := s.Filters
	for j, t := range f.IncludeTags {
		if slices.ContainsFunc(f.ExcludeTags, func(x string) bool { return strings.EqualFold(x, t) }) {
			errs.add(fmt.Sprintf("%s[%d]", p("filters.include_tags"), j), "%q is also in exclude_tags", t)
		}
	}
	for j, t := range f.AttributeTypes {
		if strings.TrimSpace(t) == "" {
			errs.add(fmt.Sprintf("%s[%d]", p("filters.attribute_types"), j), "must not be empty")
		}
	}
	if f.MinConfidence < 0 || f.MinConfidence > 100 {
		errs.add(p("filters.min_confidence"), "must be between 0 and 100, got %d", f.MinConfidence)
	}
	if f.MaxTLP != "" && TLPRank(f.MaxTLP) < 0 {
		errs.add(p("filters.max_tlp"), "must be empty or one of %s, got %q", strings.Join(tlpLevels, ", "), f.MaxTLP)
	}
	validateDecay(s.Decay, p, errs)
	// Report only the problems the sink's own conversion keys add: inherited values were
	// reported once under conversion.
	var global, own Errors
	validateConversion(c.Conversion, "conversion", &global)
	validateConversion(s.Conversion, p("conversion"), &own)
	inherited := map[string]bool{}
	for _, e := range global {
		inherited[strings.TrimPrefix(e.Path, "conversion")+"\x00"+e.Msg] = true
	}
	for _, e := range own {
		if !inherited[strings.TrimPrefix(e.Path, p("conversion"))+"\x00"+e.Msg] {
			*errs = append(*errs, e)
		}
	}
}

func validateIdentity(id Identity, p func(string) string, errs *Errors) {
	if !oneOf(id.Kind, p("identity.kind"), errs, IdentityClientSecret, IdentityClientCertificate, IdentityManaged, IdentityWorkload, IdentityDefault) {
		return
	}
	needTenant := id.Kind == IdentityClientSecret || id.Kind == IdentityClientCertificate
	switch {
	case id.TenantID == "" && needTenant:
		errs.add(p("identity.tenant_id"), "is required for kind %s", id.Kind)
	case id.TenantID != "" && !guidPattern.MatchString(id.TenantID) && !domainPattern.MatchString(id.TenantID):
		errs.add(p("identity.tenant_id"), "must be a GUID or a verified domain such as contoso.onmicrosoft.com, got %q", id.TenantID)
	}
	switch {
	case id.ClientID == "" && needTenant:
		errs.add(p("identity.client_id"), "is required for kind %s", id.Kind)
	case id.ClientID != "" && !guidPattern.MatchString(id.ClientID):
		errs.add(p("identity.client_id"), "must be a GUID, got %q", id.ClientID)
	}
	if id.Kind == IdentityClientSecret {
		checkSecret(id.ClientSecret, p("identity.client_secret"), true, errs)
	} else if id.ClientSecret.IsSet() {
		errs.add(p("identity.client_secret"), "is only used with kind client_secret")
	}
	if id.Kind == IdentityClientCertificate {
		if id.CertificateFile == "" {
			errs.add(p("identity.certificate_file"), "is required for kind client_certificate")
		}
		checkSecret(id.CertificatePassword, p("identity.certificate_password"), false, errs)
	} else {
		if id.CertificateFile != "" {
			errs.add(p("identity.certificate_file"), "is only used with kind client_certificate")
		}
		if id.CertificatePassword.IsSet() {
			errs.add(p("identity.certificate_password"), "is only used with kind client_certificate")
		}
	}
	if id.Kind == IdentityDefault && id.TenantID != "" {
		errs.add(p("identity.tenant_id"), "is not used with kind default (set AZURE_TENANT_ID for the credential chain)")
	}
}

// validateSinkSet checks what concerns several sinks at once.
func (c *Config) validateSinkSet(errs *Errors) {
	names := map[string]int{}
	targets := map[string]int{}
	rates := map[string]int{}
	for i, s := range c.Sinks {
		p := sinkPath(s, i)
		if j, dup := names[strings.ToLower(s.Name)]; dup && s.Name != "" {
			errs.add(p("name"), "%q is already the name of sinks[%d]", s.Name, j)
		} else {
			names[strings.ToLower(s.Name)] = i
		}
		if s.Kind == SinkDefender {
			continue // Defender's limits are per call type and fixed; validateDefenderSinkSet
		}
		target := strings.ToLower(s.Endpoints.APIHost + "|" + s.WorkspaceID + "|" + strings.TrimSpace(s.SourceSystem))
		if j, dup := targets[target]; dup && s.WorkspaceID != "" {
			errs.add(p("workspace_id"), "sinks[%d] already writes to this workspace with the same sourcesystem; the two would overwrite each other's indicators", j)
		} else {
			targets[target] = i
		}
		key := s.Identity.Key()
		if j, shared := rates[key]; shared && c.Sinks[j].RequestsPerMinute != s.RequestsPerMinute {
			errs.add(p("requests_per_minute"), "is %d but sinks[%d] shares this identity with %d; sinks sharing an identity share its rate and must agree", s.RequestsPerMinute, j, c.Sinks[j].RequestsPerMinute)
		} else if !shared {
			rates[key] = i
		}
	}
}

func (c *Config) validateStore(errs *Errors) {
	if strings.TrimSpace(c.Store.Dir) == "" {
		errs.add("store.dir", "is required")
	}
	if c.Store.RefreshWindow <= 0 {
		errs.add("store.refresh_window", "must be more than 0s, got %s", c.Store.RefreshWindow)
		return
	}
	shortest, where := c.Conversion.shortestExpiry(), "conversion"
	for i, s := range c.Sinks {
		if d := s.Conversion.shortestExpiry(); d < shortest {
			shortest, where = d, sinkPath(s, i)("conversion")
		}
	}
	if shortest >= 1 && time.Duration(shortest)*24*time.Hour <= c.Store.RefreshWindow {
		errs.add("store.refresh_window", "%s is not shorter than the shortest indicator lifetime (%d days in %s); indicators would be refreshed on every pass", c.Store.RefreshWindow, shortest, where)
	}
}

// shortestExpiry returns the smallest lifetime in days c can give an indicator.
func (c Conversion) shortestExpiry() int {
	d := c.DaysToExpire
	for _, v := range c.DaysToExpireByType {
		if v > 0 && v < d {
			d = v
		}
	}
	return d
}

func (c *Config) validateReconcile(errs *Errors) {
	r := c.Reconcile
	if r.Schedule == "" {
		checkDuration(r.FullInterval, "reconcile.full_interval", time.Minute, 30*24*time.Hour, errs)
	} else if err := checkCron(r.Schedule); err != nil {
		errs.add("reconcile.schedule", "%v", err)
	}
	if r.IncrementalInterval < 0 {
		errs.add("reconcile.incremental_interval", "must not be negative, got %s", r.IncrementalInterval)
	}
	if r.IncrementalInterval > 0 {
		if r.IncrementalInterval < 10*time.Second {
			errs.add("reconcile.incremental_interval", "must be 0 (off) or at least 10s, got %s", r.IncrementalInterval)
		}
		if r.Schedule == "" && r.IncrementalInterval >= r.FullInterval {
			errs.add("reconcile.incremental_interval", "must be shorter than reconcile.full_interval (%s), got %s", r.FullInterval, r.IncrementalInterval)
		}
	}
	if r.Overlap < 0 {
		errs.add("reconcile.overlap", "must not be negative, got %s", r.Overlap)
	} else if r.IncrementalInterval > 0 && r.Overlap >= r.IncrementalInterval {
		errs.add("reconcile.overlap", "must be shorter than reconcile.incremental_interval (%s), got %s", r.IncrementalInterval, r.Overlap)
	}
	if r.GoneGrace < 0 {
		errs.add("reconcile.gone_grace", "must not be negative, got %s", r.GoneGrace)
	}
}

// oneOf reports whether v is one of allowed, adding a problem if not.
func oneOf(v, path string, errs *Errors, allowed ...string) bool {
	if slices.Contains(allowed, v) {
		return true
	}
	if v == "" {
		errs.add(path, "is required (one of %s)", strings.Join(allowed, ", "))
	} else {
		errs.add(path, "must be one of %s, got %q", strings.Join(allowed, ", "), v)
	}
	return false
}

func checkNotEmpty(v, path string, errs *Errors) {
	if strings.TrimSpace(v) == "" {
		errs.add(path, "is required")
	}
}

func checkDuration(d time.Duration, path string, lo, hi time.Duration, errs *Errors) {
	if d < lo || d > hi {
		errs.add(path, "must be between %s and %s, got %s", lo, hi, d)
	}
}

// checkSecret checks that a required secret is set and that a reference is well formed.
func checkSecret(s Secret, path string, required bool, errs *Errors) {
	if !s.IsSet() {
		if required {
			errs.add(path, "is required")
		}
		return
	}
	if err := s.checkReference(); err != nil {
		errs.add(path, "%v", err)
	}
}

// userinfo matches the credentials part of a URL, parseable or not.
var userinfo = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@`)

// RedactURL returns raw with any user and password replaced, for echoing a URL in an error or
// a log line; it works on strings url.Parse refuses too.
func RedactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		return u.Redacted()
	}
	return userinfo.ReplaceAllString(raw, "${1}REDACTED@")
}

// Warnings returns what a valid configuration does that weakens security, for `check` and
// `run` to print loudly.
func (c *Config) Warnings() []string {
	var w []string
	if c.MISP.InsecureSkipVerify {
		w = append(w, "misp.insecure_skip_verify is true: MISP's TLS certificate is not verified, so anyone on the path can read the API key and forge events")
	}
	if u, err := url.Parse(c.MISP.URL); err == nil && strings.EqualFold(u.Scheme, "http") {
		w = append(w, "misp.url uses plain http: the API key and every event travel in clear; use https")
	}
	if kv := c.keyVaultWarning(); kv != "" {
		w = append(w, kv)
	}
	return w
}

// checkURL checks an absolute URL with one of schemes, a host, and no credentials.
func checkURL(raw, path string, required bool, errs *Errors, schemes ...string) {
	if raw == "" {
		if required {
			errs.add(path, "is required")
		}
		return
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || !slices.Contains(schemes, u.Scheme):
		errs.add(path, "must be an absolute %s URL, got %q", strings.Join(schemes, " or "), RedactURL(raw))
	case u.User != nil:
		errs.add(path, "must not contain credentials")
	case u.RawQuery != "" || u.Fragment != "":
		errs.add(path, "must not have a query or fragment, got %q", raw)
	}
}

func checkListen(addr, path string, errs *Errors) {
	_, port, err := net.SplitHostPort(addr) // any host, or none for every interface
	if err != nil {
		errs.add(path, "must be host:port, got %q", addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		errs.add(path, "port must be a number between 0 and 65535, got %q", port)
	}
}

// validateDecay checks a sink's decay block.
func validateDecay(d Decay, p func(string) string, errs *Errors) {
	if strings.TrimSpace(d.Model) != d.Model {
		errs.add(p("decay.model"), "must not have surrounding spaces, got %q", d.Model)
	}
	if d.MinScore < 0 || d.MinScore > 100 {
		errs.add(p("decay.min_score"), "must be between 0 and 100, got %g", d.MinScore)
	}
	oneOf(d.Confidence, p("decay.confidence"), errs, DecayConfidenceKeep, DecayConfidenceFromScore)
	if !d.Enabled() {
		return
	}
	if par := d.Parameters; par.IsSet() {
		if d.Model == DecayAnyModel {
			errs.add(p("decay.parameters"), "need one model: with model %q the parameters of each model are read from MISP", DecayAnyModel)
		}
		if par.LifetimeDays <= 0 {
			errs.add(p("decay.parameters.lifetime_days"), "must be positive, got %g", par.LifetimeDays)
		}
		if par.DecaySpeed <= 0 {
			errs.add(p("decay.parameters.decay_speed"), "must be positive, got %g", par.DecaySpeed)
		}
		if par.Threshold < 0 || par.Threshold > 100 {
			errs.add(p("decay.parameters.threshold"), "must be between 0 and 100, got %g", par.Threshold)
		}
	}
}

func (c *Config) validatePusher(errs *Errors) {
	p := c.Pusher
	if p.Linger <= 0 || p.Linger > time.Minute {
		errs.add("pusher.linger", "must be more than 0s and at most 1m, got %s", p.Linger)
	}
	if p.ShutdownGrace <= 0 {
		errs.add("pusher.shutdown_grace", "must be more than 0s, got %s", p.ShutdownGrace)
	}
	if p.RetryBackoff.Initial <= 0 || p.RetryBackoff.Max < p.RetryBackoff.Initial {
		errs.add("pusher.retry_backoff", "initial must be more than 0s and max at least initial, got %s and %s", p.RetryBackoff.Initial, p.RetryBackoff.Max)
	}
	if p.MaxRetryAfter < time.Second {
		errs.add("pusher.max_retry_after", "must be at least 1s, got %s", p.MaxRetryAfter)
	}
	if p.QuotaHeadroom < 0 || p.QuotaHeadroom >= 0.5 {
		errs.add("pusher.quota_headroom", "must be within [0, 0.5), got %v", p.QuotaHeadroom)
	}
	if p.FailingBackoff.Initial <= 0 || p.FailingBackoff.Max < p.FailingBackoff.Initial {
		errs.add("pusher.failing_backoff", "initial must be more than 0s and max at least initial, got %s and %s", p.FailingBackoff.Initial, p.FailingBackoff.Max)
	}
	if p.InFlight < 1 || p.InFlight > 64 {
		errs.add("pusher.in_flight", "must be between 1 and 64, got %d", p.InFlight)
	}
}

// validateEndpoints checks a sink's addresses after its cloud preset filled them in.
func validateEndpoints(e Endpoints, p func(string) string, loginRequired, apiRequired bool, errs *Errors) {
	checkURL(e.LoginHost, p("endpoints.login_host"), loginRequired, errs, "https")
	checkURL(e.APIHost, p("endpoints.api_host"), apiRequired, errs, "https")
	checkURL(e.ManagementHost, p("endpoints.management_host"), false, errs, "https")
	if e.CAFile != "" && !filepath.IsAbs(e.CAFile) {
		errs.add(p("endpoints.ca_file"), "must be an absolute path, got %q", e.CAFile)
	}
	if e.Scope == "" {
		errs.add(p("endpoints.scope"), "is required")
	} else if u, err := url.Parse(e.Scope); err != nil || u.Scheme != "https" || !strings.HasSuffix(e.Scope, "/.default") {
		errs.add(p("endpoints.scope"), "must be an https resource followed by /.default, got %q", e.Scope)
	}
}
