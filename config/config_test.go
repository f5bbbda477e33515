package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func loadFixture(t *testing.T, name string, environ []string) (*Config, error) {
	t.Helper()
	cfg, err := Load(filepath.Join("testdata", name), environ)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// TestInvalidConfigs loads one fixture per bad case from testdata/invalid and checks that the
// problems reported are exactly the expected ones, each beginning with its key path.
func TestInvalidConfigs(t *testing.T) {
	tests := []struct {
		fixture string
		want    []string // each reported problem begins with one of these, in order
	}{
		{"bad-duration", []string{"zeromq.heartbeat_timeout: cannot unmarshal !!str `30 seconds` into time.Duration"}},
		{"conversion-composite", []string{"conversion.composite_attributes: is no longer a setting (line 13): composite attributes are configured with composite"}},
		{"conversion-composite-mode", []string{"conversion.composite: must be one of profile, all, first, compound, got \"split\""}},
		{"conversion-composite-type", []string{
			"conversion.composite_by_type.domain|ip: must be one of profile, all, first, compound, got \"second\"",
			"conversion.composite_by_type.regkey|value: is not a composite MISP type (want one of domain|ip,",
		}},
		{"conversion-flatten", []string{"sinks[0].conversion.flatten_attributes: is no longer a setting (line 13): the attributes inside MISP objects are always exported"}},
		{"conversion-confidence", []string{"conversion.default_confidence: must be between 0 and 100, got 101"}},
		{"conversion-days", []string{"conversion.days_to_expire: must be between 1 and 3650, got 0"}},
		{"conversion-empty-ignore", []string{"conversion.tags_ignore[1]: must not be empty (it would drop every label)"}},
		{"conversion-expire-start", []string{"conversion.expire_start: must be one of valid_from, now, got \"current_date\""}},
		{"conversion-expiry-type", []string{"conversion.days_to_expire_by_type.file:hashes: is not a STIX observable type (want one of artifact,"}},
		{"conversion-pattern-profile", []string{"conversion.pattern_types[1]: \"yara\" needs profile misp-stix; the sentinel profile"}},
		{"conversion-profile", []string{"conversion.profile: must be one of sentinel, misp-stix, got \"graph\""}},
		{"conversion-tlp", []string{"conversion.default_tlp: must be one of tlp:clear, tlp:white, tlp:green, tlp:amber,"}},
		{"filters-include-exclude", []string{"sinks[0].filters.include_tags[0]: \"tlp:green\" is also in exclude_tags"}},
		{"filters-max-tlp", []string{"sinks[0].filters.max_tlp: must be empty or one of tlp:clear, tlp:white, tlp:green,"}},
		{"filters-min-confidence", []string{"sinks[0].filters.min_confidence: must be between 0 and 100, got -1"}},
		{"identity-certificate-file", []string{"sinks[0].identity.certificate_file: is required for kind client_certificate"}},
		{"identity-client-id", []string{"sinks[0].identity.client_id: must be a GUID, got \"my-app\""}},
		{"identity-default-tenant", []string{"sinks[0].identity.tenant_id: is not used with kind default (set AZURE_TENANT_ID for the"}},
		{"identity-kind", []string{"sinks[0].identity.kind: must be one of client_secret, client_certificate,"}},
		{"identity-missing-secret", []string{"sinks[0].identity.client_secret: is required"}},
		{"identity-missing-tenant", []string{"sinks[0].identity.tenant_id: is required for kind client_secret"}},
		{"identity-secret-with-managed", []string{"sinks[0].identity.client_secret: is only used with kind client_secret"}},
		{"log-format", []string{"log.format: must be one of json, text, got \"logfmt\""}},
		{"log-level", []string{"log.level: must be one of trace, debug, info, warn, warning, error,"}},
		{"metrics-listen", []string{"metrics.listen: must be host:port, got \"9464\""}},
		{"misp-ca-and-insecure", []string{"misp.insecure_skip_verify: cannot be true together with misp.ca_file"}},
		{"misp-filter-exclude-decayed", []string{"misp.event_filters.excludeDecayed: must not be set: it filters attributes/restSearch only; MISP's events search silently ignores it. Use a sink's decay block instead"}},
		{"decay-block", []string{
			"misp.realtime_fetch: cannot be never while a sink has a decay block",
			"sinks[0].decay.min_score: must be between 0 and 100, got 120",
			"sinks[0].decay.confidence: must be one of keep, from_score, got \"score\"",
			"sinks[0].decay.parameters: need one model",
			"sinks[0].decay.parameters.lifetime_days: must be positive, got 0",
		}},
		{"misp-filter-limit", []string{"misp.event_filters.limit: must not be set: set misp.page_size instead; the pager sets"}},
		{"misp-key-missing", []string{"misp.key: is required"}},
		{"misp-page-size", []string{"misp.page_size: must be between 1 and 10000, got 0"}},
		{"misp-realtime-fetch", []string{"misp.realtime_fetch: must be one of auto, always, never, got \"sometimes\""}},
		{"misp-url-credentials", []string{"misp.url: must not contain credentials"}},
		{"misp-url-missing", []string{"misp.url: is required"}},
		{"pusher-linger", []string{"pusher.linger: must be more than 0s and at most 1m, got 0s"}},
		{"reconcile-incremental", []string{"reconcile.incremental_interval: must be shorter than reconcile.full_interval (5m0s), got"}},
		{"reconcile-overlap", []string{"reconcile.overlap: must be shorter than reconcile.incremental_interval (1m0s),"}},
		{"reconcile-schedule-range", []string{"reconcile.schedule: hour field \"25\": \"25\" is not between 0 and 23"}},
		{"reconcile-schedule", []string{"reconcile.schedule: want 5 fields (minute hour day-of-month month day-of-week),"}},
		{"secret-bad-env-ref", []string{"misp.key: env:MISP-KEY: \"MISP-KEY\" is not an environment variable name"}},
		{"secret-bad-keyvault-ref", []string{"misp.key: keyvault://my_vault: want"}},
		{"secret-relative-file", []string{"misp.key: file:secrets/misp: the path must be absolute"}},
		{"sink-api-version", []string{"sinks[0].api_version: must look like 2024-02-01-preview, got \"latest\""}},
		{"sink-api", []string{"sinks[0].api: must be one of stix-objects, legacy, got \"graph\""}},
		{"sink-batch-size", []string{"sinks[0].batch_size: must be between 1 and 100 (Sentinel's limit per request),"}},
		{"sink-cloud", []string{"sinks[0].cloud: must be one of public, usgov, china, got \"germany\""}},
		{"sink-conversion", []string{"sinks[0].conversion.default_tlp: must be one of tlp:clear, tlp:white, tlp:green, tlp:amber,"}},
		{"sink-duplicate-name", []string{"sinks[1].name: \"main\" is already the name of sinks[0]"}},
		{"sink-duplicate-workspace", []string{"sinks[1].workspace_id: sinks[0] already writes to this workspace with the same"}},
		{"sink-endpoint-http", []string{"sinks[0].endpoints.login_host: must be an absolute https URL, got"}},
		{"sink-legacy-usgov", []string{"sinks[0].endpoints.api_host: is required: the legacy upload API exists in the public"}},
		{"sink-name", []string{"sinks[0].name: must be 1-64 letters, digits, '.', '_' or '-', starting"}},
		{"sink-requests-per-minute", []string{"sinks[0].requests_per_minute: must be between 1 and 100 (Sentinel's quota per identity),"}},
		{"sink-scope", []string{"sinks[0].endpoints.scope: must be an https resource followed by /.default, got"}},
		{"sink-shared-identity-rate", []string{"sinks[1].requests_per_minute: is 50 but sinks[0] shares this identity with 100; sinks"}},
		{"sink-sourcesystem-reserved", []string{"sinks[0].sourcesystem: \"Microsoft Sentinel\" is reserved by Sentinel"}},
		{"sink-workspace-id", []string{"sinks[0].workspace_id: must be a GUID (the Log Analytics workspace ID, not its"}},
		{"sink-context-legacy", []string{"sinks[0].context: must be none: a legacy API sink takes indicators only, got \"all\""}},
		{"sinks-none", []string{"sinks: at least one sink is required (in sinks or tenants)"}},
		{"store-dir", []string{"store.dir: is required"}},
		{"store-refresh-window", []string{"store.refresh_window: 168h0m0s is not shorter than the shortest indicator"}},
		{"tenants-bad-ref", []string{"tenants: keyvault://x/tenants: vault name \"x\" must be 3-24 letters,"}},
		{"defender-action", []string{
			"sinks[0].defender.actions_by_type.Url: Url indicators cannot take BlockAndRemediate",
			"sinks[0].defender.action: IpAddress, DomainName indicators cannot take BlockAndRemediate: set defender.actions_by_type for them",
		}},
		{"defender-budget-disagree", []string{"sinks[1].defender.budget: is 5000 but sinks[0] feeds the same tenant with 14000"}},
		{"defender-cloud-budget", []string{
			"sinks[0].workspace_id: is a Sentinel setting",
			"sinks[0].cloud: must be one of public, public-legacy, gcc, gcc-high, dod",
			"sinks[0].defender.budget: must be between 1 and 15000 (the tenant's cap), got 16000",
		}},
		{"tenants-bad-workspace", []string{"tenants[0].workspaceId: must be a GUID (the Log Analytics workspace ID, not its"}},
		{"tenants-missing-key", []string{"tenants[0].secret: is required"}},
		{"tenants-old-dict", []string{"tenants: is a JSON object (the old dict format keyed by tenant id);"}},
		{"unknown-nested-key", []string{"sinks[0].identity.tenant: unknown key (line 9)"}},
		{"unknown-top-key", []string{"colour: unknown key (line 12)"}},
		{"webhook-header", []string{"webhook.auth_header: must be an HTTP header name, got \"X Token\""}},
		{"webhook-listen", []string{"webhook.listen: must be host:port, got \"localhost\""}},
		{"webhook-max-body", []string{"webhook.max_body_bytes: must be between 1024 and 1073741824, got 10"}},
		{"webhook-no-token", []string{"webhook.auth_token: is required"}},
		{"webhook-path", []string{"webhook.path: must begin with /, got \"v1/misp\""}},
		{"webhook-tls-half", []string{"webhook.tls_key_file: webhook.tls_cert_file and webhook.tls_key_file must be"}},
		{"wrong-type", []string{"sinks[0].batch_size: cannot unmarshal !!str `lots` into int (line 12)"}},
		{"zeromq-backoff-max", []string{"zeromq.reconnect_backoff.max: must be at least zeromq.reconnect_backoff.initial (10s),"}},
		{"zeromq-endpoint-missing", []string{"zeromq.endpoint: is required when zeromq.enabled is true"}},
		{"zeromq-endpoint-scheme", []string{"zeromq.endpoint: must look like tcp://host:port, got"}},
		{"zeromq-heartbeat-too-short", []string{"zeromq.heartbeat_timeout: must be longer than MISP's 10s heartbeat period, got 10s"}},
		{"zeromq-username-without-password", []string{"zeromq.password: is required when zeromq.username is set (MISP enforces"}},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.fixture+".yaml"] = true
		t.Run(tt.fixture, func(t *testing.T) {
			_, err := loadFixture(t, filepath.Join("invalid", tt.fixture+".yaml"), nil)
			if err == nil {
				t.Fatal("no error")
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, not Errors: %v", err, err)
			}
			if len(errs) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(errs), len(tt.want), err)
			}
			for i, e := range errs {
				if !strings.HasPrefix(e.Error(), tt.want[i]) {
					t.Errorf("problem %d:\n got %q\nwant %q...", i, e.Error(), tt.want[i])
				}
				if e.Path == "" || strings.Contains(e.Path, " ") && !strings.HasPrefix(e.Path, "tenants[") {
					t.Errorf("problem %d has no key path: %q", i, e.Path)
				}
			}
		})
	}
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("fixture %s has no test case", f)
		}
	}
}

func TestMinimalConfigTakesDefaults(t *testing.T) {
	cfg, err := loadFixture(t, "valid-minimal.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	if cfg.MISP.PageSize != want.MISP.PageSize || cfg.ZeroMQ.HeartbeatTimeout != want.ZeroMQ.HeartbeatTimeout ||
		cfg.Webhook.Path != "/v1/misp/webhook" || cfg.Pusher.Linger != want.Pusher.Linger {
		t.Errorf("top-level defaults not applied: %+v", cfg)
	}
	s := cfg.Sinks[0]
	if s.BatchSize != 100 || s.RequestsPerMinute != 100 || s.SourceSystem != "MISP" || s.API != APISTIXObjects ||
		s.APIVersion != "2024-02-01-preview" || s.Cloud != CloudPublic {
		t.Errorf("sink defaults not applied: %+v", s)
	}
	if s.Context != ContextAll || s.ContextLevels != ContextLevelsBoth {
		t.Errorf("a stix-objects sink exports context %q at levels %q by default, want all and both", s.Context, s.ContextLevels)
	}
	if s.Endpoints != cloudPresets[CloudPublic] {
		t.Errorf("endpoints = %+v, want the public preset", s.Endpoints)
	}
	if s.Conversion.DaysToExpire != 50 || s.Conversion.ExpiryDays("url") != 365 || s.Conversion.ExpiryDays("file") != 50 {
		t.Errorf("sink conversion did not inherit the defaults: %+v", s.Conversion)
	}
	if !cfg.MISP.RefetchOnNotice() {
		t.Error("default filters are not empty, so notices must be refetched")
	}
}

// TestExampleIsCompleteAndValid loads config.example.yaml, validates it, and checks that it
// mentions every key the Config struct has, so the example cannot go stale.
func TestExampleIsCompleteAndValid(t *testing.T) {
	path := filepath.Join("..", "config.example.yaml")
	cfg, err := Load(path, nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if lookup(doc.Content[0], "sinks", "0", "conversion") == nil {
		t.Error("config.example.yaml does not show a sink's conversion block")
	}
	for _, p := range leafPaths(reflect.TypeOf(Config{}), "") {
		// A sink's conversion block has the keys of the top-level one, documented there.
		if rest, ok := strings.CutPrefix(p, "sinks[0].conversion."); ok {
			p = "conversion." + rest
		}
		// A Defender sink's keys are documented on the example's defender sink.
		if rest, ok := strings.CutPrefix(p, "sinks[0].defender."); ok {
			p = fmt.Sprintf("sinks[%d].defender.%s", exampleDefenderSink(t, cfg), rest)
		}
		keys := strings.Split(strings.ReplaceAll(strings.ReplaceAll(p, "[", "."), "]", ""), ".")
		if lookup(doc.Content[0], keys...) == nil {
			t.Errorf("config.example.yaml does not document %s", p)
		}
	}
}

// leafPaths lists the path of every leaf key of t, with lists of structs as element [0].
func leafPaths(t reflect.Type, path string) []string {
	switch {
	case t.Kind() == reflect.Struct && t != secretType:
		var out []string
		for i := 0; i < t.NumField(); i++ {
			if key := yamlKey(t.Field(i)); key != "" {
				out = append(out, leafPaths(t.Field(i).Type, joinPath(path, key))...)
			}
		}
		return out
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		return leafPaths(t.Elem(), path+"[0]")
	}
	return []string{path}
}

func TestEnvNamesAreUnique(t *testing.T) {
	seen := map[string]string{}
	for _, p := range leafPaths(reflect.TypeOf(Config{}), "") {
		name := EnvName(p)
		if other, dup := seen[name]; dup {
			t.Errorf("%s and %s share the environment variable %s", p, other, name)
		}
		seen[name] = p
		if p != "tenants" && !envSections.MatchString(name) {
			t.Errorf("%s (%s) is not covered by the unknown-variable check", name, p)
		}
	}
}

// exampleDefenderSink returns the index of the example's first defender sink.
func exampleDefenderSink(t *testing.T, cfg *Config) int {
	t.Helper()
	for i, s := range cfg.Sinks {
		if s.Kind == SinkDefender {
			return i
		}
	}
	t.Fatal("config.example.yaml shows no sink of kind defender")
	return 0
}

func TestWindowNoteNamesTheTimeWindows(t *testing.T) {
	m := MISP{EventFilters: map[string]any{"published": true, "publish_timestamp": "14d", "tags": []any{"x"}}}
	if note := m.WindowNote(); !strings.Contains(note, "time window publish_timestamp:") || !strings.Contains(note, "never which belong") {
		t.Errorf("WindowNote = %q", note)
	}
	if note := (MISP{EventFilters: map[string]any{"published": true}}).WindowNote(); note != "" {
		t.Errorf("WindowNote without a window = %q", note)
	}
	cfg := Default()
	cfg.MISP.EventFilters = m.EventFilters
	var out strings.Builder
	if err := cfg.Print(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "# misp.event_filters: time window publish_timestamp") {
		t.Errorf("config print does not say which keys are windows:\n%s", out.String())
	}
}
