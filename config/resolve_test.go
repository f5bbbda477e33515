package config

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fakeKeyVault serves secrets from a map and counts the calls.
type fakeKeyVault struct {
	secrets map[string]string // key: vaultURL + "|" + name
	calls   int
}

func (f *fakeKeyVault) GetSecret(_ context.Context, vaultURL, name, version string) (string, error) {
	f.calls++
	v, ok := f.secrets[vaultURL+"|"+name]
	if !ok {
		return "", errors.New("SecretNotFound")
	}
	return v, nil
}

const resolveYAML = `
misp:
  url: https://misp.example.org
  key: keyvault://corp-vault/MISP-Key
webhook:
  enabled: true
  auth_token: env:HOOK_TOKEN
sinks:
  - name: a
    workspace_id: 11111111-2222-4333-8444-555555555555
    identity: {kind: client_secret, tenant_id: aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee, client_id: 99999999-8888-4777-8666-555555555555, client_secret: keyvault://corp-vault/ClientSecret}
  - name: b
    workspace_id: 21111111-2222-4333-8444-555555555555
    identity: {kind: client_secret, tenant_id: aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee, client_id: 99999999-8888-4777-8666-555555555555, client_secret: keyvault://corp-vault/ClientSecret}
`

func TestResolve(t *testing.T) {
	cfg, err := Parse([]byte(resolveYAML), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.MISP.Key.IsResolved() || cfg.MISP.Key.Value() != "" {
		t.Fatal("a reference has a value before Resolve")
	}
	kv := &fakeKeyVault{secrets: map[string]string{
		"https://corp-vault.vault.azure.net|MISP-Key":     "misp-from-kv",
		"https://corp-vault.vault.azure.net|ClientSecret": "client-from-kv",
	}}
	env := map[string]string{"HOOK_TOKEN": "hook-from-env"}
	r := Resolver{KeyVault: kv, LookupEnv: func(n string) (string, bool) { v, ok := env[n]; return v, ok }}
	if err := cfg.Resolve(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	got := []string{cfg.MISP.Key.Value(), cfg.Webhook.AuthToken.Value(), cfg.Sinks[0].Identity.ClientSecret.Value(), cfg.Sinks[1].Identity.ClientSecret.Value()}
	want := []string{"misp-from-kv", "hook-from-env", "client-from-kv", "client-from-kv"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("resolved %q, want %q", got, want)
	}
	if kv.calls != 2 {
		t.Errorf("Key Vault calls = %d, want 2 (a shared reference is fetched once)", kv.calls)
	}
}

func TestResolveErrorsNameKeys(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yml := strings.Replace(resolveYAML, "client_secret: keyvault://corp-vault/ClientSecret}", "client_secret: file:"+empty+"}", 1)
	yml = strings.Replace(yml, "client_secret: keyvault://corp-vault/ClientSecret}", "client_secret: file:"+filepath.Join(dir, "absent")+"}", 1)
	cfg, err := Parse([]byte(yml), nil)
	if err != nil {
		t.Fatal(err)
	}
	kv := &fakeKeyVault{}
	err = cfg.Resolve(context.Background(), Resolver{KeyVault: kv, LookupEnv: func(string) (string, bool) { return "", false }})
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error = %v", err)
	}
	want := []string{
		"misp.key: get secret MISP-Key from Key Vault https://corp-vault.vault.azure.net: SecretNotFound",
		"webhook.auth_token: environment variable HOOK_TOKEN is not set",
		"sinks[0].identity.client_secret: secret file " + empty + " is empty",
		"sinks[1].identity.client_secret: read secret file: open " + filepath.Join(dir, "absent"),
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(errs), len(want), err)
	}
	for i := range want {
		if !strings.HasPrefix(errs[i].Error(), want[i]) {
			t.Errorf("problem %d = %q, want it to begin %q", i, errs[i].Error(), want[i])
		}
	}

	cfg, _ = Parse([]byte(resolveYAML), nil)
	err = cfg.Resolve(context.Background(), Resolver{LookupEnv: func(string) (string, bool) { return "x", true }})
	if err == nil || !strings.Contains(err.Error(), "misp.key: keyvault:// reference but no Key Vault client") {
		t.Errorf("Resolve without a Key Vault client: %v", err)
	}
}

// TestTenantsFromKeyVault: a keyvault:// tenants reference is expanded by Resolve, and its
// sinks are validated there with tenants[i] paths.
func TestTenantsFromKeyVault(t *testing.T) {
	yml := "misp: {url: https://misp.example.org, key: k}\ntenants: keyvault://corp-vault/tenants\n"
	cfg, err := Parse([]byte(yml), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate with only a Key Vault tenants reference: %v", err)
	}
	good := `[{"tenantId":"aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee","id":"99999999-8888-4777-8666-555555555555","secret":"s","workspaceId":"11111111-2222-4333-8444-555555555555"}]`
	kv := &fakeKeyVault{secrets: map[string]string{"https://corp-vault.vault.azure.net|tenants": good}}
	if err := cfg.Resolve(context.Background(), Resolver{KeyVault: kv}); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Sinks) != 1 || cfg.Sinks[0].Identity.ClientSecret.Value() != "s" {
		t.Fatalf("sinks = %+v", cfg.Sinks)
	}
	if err := cfg.Resolve(context.Background(), Resolver{KeyVault: kv}); err != nil || len(cfg.Sinks) != 1 {
		t.Fatalf("a second Resolve added sinks again: %v, %d sinks", err, len(cfg.Sinks))
	}

	cfg, _ = Parse([]byte(yml), nil)
	kv.secrets["https://corp-vault.vault.azure.net|tenants"] = strings.Replace(good, `"id":"99999999-8888-4777-8666-555555555555"`, `"id":"app"`, 1)
	err = cfg.Resolve(context.Background(), Resolver{KeyVault: kv})
	if err == nil || err.Error() != `tenants[0].id: must be a GUID, got "app"` {
		t.Errorf("Resolve of a bad tenants element: %v", err)
	}
}
