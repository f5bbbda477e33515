package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestEnvOverrides(t *testing.T) {
	environ := []string{
		"LISTENER_MISP_URL=https://misp.internal:8443",
		"LISTENER_MISP_KEY=env:OTHER_KEY_VAR",
		"LISTENER_MISP_PAGE_SIZE=250",
		"LISTENER_MISP_INSECURE_SKIP_VERIFY=false",
		`LISTENER_MISP_EVENT_FILTERS={"published": true, "tags": ["tlp:green"]}`,
		"LISTENER_ZEROMQ_ENABLED=true",
		"LISTENER_ZEROMQ_ENDPOINT=tcp://127.0.0.1:50000",
		"LISTENER_ZEROMQ_RECONNECT_BACKOFF_MAX=5m",
		"LISTENER_CONVERSION_DAYS_TO_EXPIRE=30",
		`LISTENER_CONVERSION_TAGS_IGNORE=["tlp:"]`,
		"LISTENER_SINKS_0_WORKSPACE_ID=22222222-2222-4333-8444-555555555555",
		"LISTENER_SINKS_0_IDENTITY_CLIENT_SECRET=file:/run/secrets/client",
		"LISTENER_SINKS_0_CONVERSION_DEFAULT_CONFIDENCE=80",
		"LISTENER_SINKS_0_CLOUD=usgov",
		"LISTENER_LOG_FORMAT=text",
		"LISTENER_LOG_LEVEL=",            // empty: ignored
		"LISTENER_SERVICE_HOST=10.0.0.1", // Kubernetes service link: not ours, ignored
		"UNRELATED=1",
	}
	cfg, err := Load(filepath.Join("testdata", "valid-minimal.yaml"), environ)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	s := cfg.Sinks[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"misp.url", cfg.MISP.URL, "https://misp.internal:8443"},
		{"misp.key", cfg.MISP.Key.Reference(), "env:OTHER_KEY_VAR"},
		{"misp.page_size", cfg.MISP.PageSize, 250},
		{"misp.event_filters", cfg.MISP.EventFilters, map[string]any{"published": true, "tags": []any{"tlp:green"}}},
		{"zeromq.enabled", cfg.ZeroMQ.Enabled, true},
		{"zeromq.reconnect_backoff.max", cfg.ZeroMQ.ReconnectBackoff.Max, 5 * time.Minute},
		{"zeromq.reconnect_backoff.initial (default kept)", cfg.ZeroMQ.ReconnectBackoff.Initial, time.Second},
		{"conversion.days_to_expire", cfg.Conversion.DaysToExpire, 30},
		{"conversion.tags_ignore", cfg.Conversion.TagsIgnore, []string{"tlp:"}},
		{"sinks[0].conversion inherits the overridden global", s.Conversion.DaysToExpire, 30},
		{"sinks[0].conversion.default_confidence", s.Conversion.DefaultConfidence, 80},
		{"conversion.default_confidence (global untouched)", cfg.Conversion.DefaultConfidence, 50},
		{"sinks[0].workspace_id", s.WorkspaceID, "22222222-2222-4333-8444-555555555555"},
		{"sinks[0].identity.client_secret", s.Identity.ClientSecret.Reference(), "file:/run/secrets/client"},
		{"sinks[0].endpoints follow the overridden cloud", s.Endpoints, cloudPresets[CloudUSGov]},
		{"log.format", cfg.Log.Format, "text"},
		{"log.level", cfg.Log.Level, "info"},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestEnvOverrideErrors(t *testing.T) {
	tests := []struct {
		env  string
		want string
	}{
		{"LISTENER_MISP_PAGE_SIZE=many", "LISTENER_MISP_PAGE_SIZE: cannot set misp.page_size"},
		{"LISTENER_ZEROMQ_HEARTBEAT_TIMEOUT=30", "LISTENER_ZEROMQ_HEARTBEAT_TIMEOUT: cannot set zeromq.heartbeat_timeout"},
		{"LISTENER_MISP_URLL=https://x", "LISTENER_MISP_URLL: no such key"},
		{"LISTENER_SINKS_3_WORKSPACE_ID=x", "LISTENER_SINKS_3_WORKSPACE_ID: no such key; a sink can only be overridden when the file defines it"},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", "valid-minimal.yaml"), []string{tt.env})
			var errs Errors
			if !errors.As(err, &errs) || len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), tt.want) {
				t.Fatalf("error = %v, want one beginning %q", err, tt.want)
			}
		})
	}
}

func TestTenantsFromEnvAndFile(t *testing.T) {
	tenants := `[
	  {"tenantId": "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", "id": "99999999-8888-4777-8666-555555555555", "secret": "s3cret-one", "workspaceId": "66666666-2222-4333-8444-555555555555"},
	  {"tenantId": "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", "id": "99999999-8888-4777-8666-555555555555", "secret": "s3cret-one", "workspaceId": "77777777-2222-4333-8444-555555555555"}
	]`
	file := filepath.Join(t.TempDir(), "tenants.json")
	if err := os.WriteFile(file, []byte(tenants), 0o600); err != nil {
		t.Fatal(err)
	}
	base, err := os.ReadFile(filepath.Join("testdata", "valid-minimal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		yaml    string
		environ []string
	}{
		{"LISTENER_TENANTS holds the JSON", string(base), []string{"LISTENER_TENANTS=" + tenants}},
		{"LISTENER_TENANTS names a file", string(base), []string{"LISTENER_TENANTS=file:" + file}},
		{"tenants key names a file", string(base) + "tenants: file:" + file + "\n", nil},
		{"tenants key names a variable", string(base) + "tenants: env:TENANTS\n", []string{"TENANTS=" + tenants}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.yaml), tt.environ)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if len(cfg.Sinks) != 3 {
				t.Fatalf("got %d sinks, want the file's 1 plus 2 tenants", len(cfg.Sinks))
			}
			for i, ws := range []string{"66666666-2222-4333-8444-555555555555", "77777777-2222-4333-8444-555555555555"} {
				s := cfg.Sinks[1+i]
				if k, ok := s.FromTenants(); !ok || k != i {
					t.Errorf("sink %d FromTenants = %d, %v", 1+i, k, ok)
				}
				if s.Name != ws || s.WorkspaceID != ws || s.Identity.Kind != IdentityClientSecret ||
					s.Identity.ClientSecret.Value() != "s3cret-one" || s.BatchSize != 100 ||
					s.Endpoints != cloudPresets[CloudPublic] || s.Conversion.DaysToExpire != cfg.Conversion.DaysToExpire {
					t.Errorf("tenant sink %d = %+v", i, s)
				}
			}
			if cfg.Sinks[1].Identity.Key() != cfg.Sinks[2].Identity.Key() {
				t.Error("two tenants with one app registration must share an identity key")
			}
		})
	}
}

func TestTenantsProblems(t *testing.T) {
	tests := []struct {
		name, tenants string
		want          []string
	}{
		{"key vault app setting left unresolved", "@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net/secrets/tenants/)", []string{"tenants: is an unresolved App Service Key Vault reference"}},
		{"not JSON", "[{", []string{"tenants: invalid JSON"}},
		{"empty array", "[]", []string{"tenants: the array is empty"}},
		{"lower-case key", `[{"tenantId":"a","id":"b","secret":"c","workspaceid":"d"}]`, []string{`tenants[0]: unknown key "workspaceid"`, "tenants[0].workspaceId: is required"}},
		{"number instead of string", `[{"tenantId":1,"id":"b","secret":"c","workspaceId":"d"}]`, []string{"tenants[0].tenantId: must be a string"}},
		{"not an object", `["x"]`, []string{"tenants[0]: must be an object"}},
		{"empty value", `[{"tenantId":"aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee","id":"b","secret":" ","workspaceId":"d"}]`, []string{"tenants[0].secret: must not be empty"}},
		{"two missing keys", `[{"tenantId":"aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee","secret":"c"}]`, []string{"tenants[0].id: is required", "tenants[0].workspaceId: is required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte("misp: {url: https://misp.example.org, key: k}\n"), []string{"LISTENER_TENANTS=" + tt.tenants})
			var errs Errors
			if !errors.As(err, &errs) || len(errs) != len(tt.want) {
				t.Fatalf("error = %v, want %d problems", err, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(errs[i].Error(), w) {
					t.Errorf("problem %d = %q, want it to begin %q", i, errs[i].Error(), w)
				}
			}
			if strings.Contains(err.Error(), `"c"`) {
				t.Errorf("error quotes a secret: %v", err)
			}
		})
	}
}

func TestSinkConversionOverride(t *testing.T) {
	yml := `
misp: {url: https://misp.example.org, key: k}
conversion:
  days_to_expire: 20
  days_to_expire_by_type: {url: 40, ipv4-addr: 60}
  tags_ignore: ["tlp:"]
sinks:
  - name: a
    workspace_id: 11111111-2222-4333-8444-555555555555
    identity: {kind: managed_identity}
    conversion:
      days_to_expire_by_type: {url: 10}
      default_tlp: TLP:Amber
  - name: b
    workspace_id: 21111111-2222-4333-8444-555555555555
    identity: {kind: managed_identity}
`
	cfg, err := Parse([]byte(yml), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Sinks[0].Conversion, cfg.Sinks[1].Conversion
	if a.DaysToExpire != 20 || !reflect.DeepEqual(a.DaysToExpireByType, map[string]int{"url": 10}) || a.DefaultTLP != "TLP:Amber" ||
		!reflect.DeepEqual(a.TagsIgnore, []string{"tlp:"}) {
		t.Errorf("sink a conversion = %+v", a)
	}
	if !reflect.DeepEqual(b, cfg.Conversion) {
		t.Errorf("sink b conversion = %+v, want the global %+v", b, cfg.Conversion)
	}
	b.DaysToExpireByType["url"] = 1
	if cfg.Conversion.DaysToExpireByType["url"] != 40 {
		t.Error("a sink's conversion shares its map with the global one")
	}
}

func TestRefetchOnNotice(t *testing.T) {
	tests := []struct {
		mode    string
		filters map[string]any
		want    bool
	}{
		{RealtimeFetchAuto, map[string]any{"published": true}, true},
		{RealtimeFetchAuto, map[string]any{"tags": []any{"tlp:green"}}, true},
		{RealtimeFetchAuto, map[string]any{"enforceWarninglist": true}, true},
		{RealtimeFetchAuto, map[string]any{}, false},
		{RealtimeFetchAuto, nil, false},
		{RealtimeFetchNever, map[string]any{"enforceWarninglist": true}, false},
		{RealtimeFetchAlways, nil, true},
	}
	for _, tt := range tests {
		m := MISP{RealtimeFetch: tt.mode, EventFilters: tt.filters}
		if got := m.RefetchOnNotice(); got != tt.want {
			t.Errorf("%s %v: RefetchOnNotice = %v, want %v", tt.mode, tt.filters, got, tt.want)
		}
	}
}

// TestFileMapsReplaceDefaults: a map given in the file replaces the default map instead of
// merging into it, so leaving enforceWarninglist out of event_filters really leaves it out.
func TestFileMapsReplaceDefaults(t *testing.T) {
	yml := `
misp:
  url: https://misp.example.org
  key: k
  event_filters: {published: true, tags: ["tlp:green"]}
conversion:
  days_to_expire_by_type: {url: 30}
sinks:
  - name: a
    workspace_id: 11111111-2222-4333-8444-555555555555
    identity: {kind: managed_identity}
`
	cfg, err := Parse([]byte(yml), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"published": true, "tags": []any{"tlp:green"}}; !reflect.DeepEqual(cfg.MISP.EventFilters, want) {
		t.Errorf("event_filters = %v, want %v", cfg.MISP.EventFilters, want)
	}
	if !cfg.MISP.RefetchOnNotice() {
		t.Error("a tag filter is applied by MISP only: notices must be refetched with it")
	}
	if want := map[string]int{"url": 30}; !reflect.DeepEqual(cfg.Conversion.DaysToExpireByType, want) ||
		!reflect.DeepEqual(cfg.Sinks[0].Conversion.DaysToExpireByType, want) {
		t.Errorf("days_to_expire_by_type = %v / %v, want %v", cfg.Conversion.DaysToExpireByType, cfg.Sinks[0].Conversion.DaysToExpireByType, want)
	}
	if d := Default(); len(d.MISP.EventFilters) != 3 {
		t.Error("parsing changed the defaults")
	}
}

func TestIdentityKey(t *testing.T) {
	secret := Identity{Kind: IdentityClientSecret, TenantID: "T", ClientID: "C"}
	cert := Identity{Kind: IdentityClientCertificate, TenantID: "t", ClientID: "c"}
	other := Identity{Kind: IdentityClientSecret, TenantID: "t", ClientID: "d"}
	system := Identity{Kind: IdentityManaged}
	chain := Identity{Kind: IdentityDefault}
	if secret.Key() != cert.Key() {
		t.Error("one app registration behind two credential kinds must share a key")
	}
	if secret.Key() == other.Key() || system.Key() == chain.Key() || system.Key() == secret.Key() {
		t.Error("different principals share a key")
	}
}

// TestConfigRefetchOnNotice: decay scores are only in restSearch answers, so a sink with a
// decay model makes the real-time path re-fetch even without event filters.
func TestConfigRefetchOnNotice(t *testing.T) {
	cfg := Default()
	cfg.MISP.EventFilters = nil
	cfg.Sinks = []Sink{{Name: "plain"}}
	if cfg.RefetchOnNotice() {
		t.Error("no filters and no decay: notices must be trusted as they are")
	}
	cfg.Sinks = append(cfg.Sinks, Sink{Name: "decayed", Decay: Decay{Model: "any"}})
	if !cfg.RefetchOnNotice() {
		t.Error("a sink with a decay model: notices must be re-fetched")
	}
}
