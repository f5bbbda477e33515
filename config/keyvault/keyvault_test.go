package keyvault

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/mispsentinel/listener/config"
)

// fixedToken is a credential that always returns the same token.
type fixedToken struct{}

func (fixedToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "test-token", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

var _ config.KeyVault = (*Client)(nil)

// fakeVault answers like Key Vault: a 401 challenge without a token, the secret with one.
func fakeVault(t *testing.T, secrets map[string]string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var gets atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer test-token" {
			w.Header().Set("WWW-Authenticate", `Bearer authorization="https://login.microsoftonline.com/tenant", resource="https://vault.azure.net"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		gets.Add(1)
		name := strings.TrimPrefix(r.URL.Path, "/secrets/")
		name, _, _ = strings.Cut(name, "/")
		v, ok := secrets[name]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":{"code":"SecretNotFound","message":"not found"}}`))
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"value": v, "id": "https://" + r.Host + "/secrets/" + name + "/v1"})
	}))
	t.Cleanup(srv.Close)
	return srv, &gets
}

func TestGetSecret(t *testing.T) {
	srv, gets := fakeVault(t, map[string]string{"MISP-Key": "k3y-value"})
	c := New(fixedToken{}, &azsecrets.ClientOptions{
		ClientOptions:                        policy.ClientOptions{Transport: srv.Client()},
		DisableChallengeResourceVerification: true,
	})
	got, err := c.GetSecret(context.Background(), srv.URL, "MISP-Key", "")
	if err != nil {
		t.Fatalf("GetSecret: %v", err)
	}
	if got != "k3y-value" {
		t.Fatalf("GetSecret = %q, want k3y-value", got)
	}
	if _, err := c.GetSecret(context.Background(), srv.URL, "absent", ""); err == nil {
		t.Fatal("GetSecret of a missing secret: no error")
	}
	if gets.Load() != 2 {
		t.Fatalf("authenticated requests = %d, want 2", gets.Load())
	}
}

// TestResolveThroughKeyVault resolves a configuration's keyvault:// reference end to end.
func TestResolveThroughKeyVault(t *testing.T) {
	srv, _ := fakeVault(t, map[string]string{"ClientSecret": "cl1ent-secret"})
	host := strings.TrimPrefix(srv.URL, "https://")
	yml := `
misp: {url: https://misp.example.org, key: literal-key}
sinks:
  - name: main
    workspace_id: 11111111-2222-3333-4444-555555555555
    identity:
      kind: client_secret
      tenant_id: 11111111-2222-3333-4444-555555555555
      client_id: 11111111-2222-3333-4444-555555555555
      client_secret: keyvault://` + host + `/ClientSecret
`
	cfg, err := config.Parse([]byte(yml), nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	kv := New(fixedToken{}, &azsecrets.ClientOptions{
		ClientOptions:                        policy.ClientOptions{Transport: srv.Client()},
		DisableChallengeResourceVerification: true,
	})
	if err := cfg.Resolve(context.Background(), config.Resolver{KeyVault: kv}); err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if got := cfg.Sinks[0].Identity.ClientSecret.Value(); got != "cl1ent-secret" {
		t.Fatalf("client secret = %q", got)
	}
}
