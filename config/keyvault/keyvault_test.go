package keyvault

import (
	"context"
	"encoding/json"
	"io"
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

// recordingTransport records the hosts the credential contacts and answers every request with
// a 400, so that no token is ever issued.
type recordingTransport struct{ hosts []string }

func (r *recordingTransport) Do(req *http.Request) (*http.Response, error) {
	r.hosts = append(r.hosts, req.URL.Host)
	return &http.Response{StatusCode: http.StatusBadRequest, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(`{"error":"invalid_request","error_description":"test"}`)), Request: req}, nil
}

// TestCredentialFollowsTheCloud: the Key Vault credential signs in at the Entra authority of
// the configured cloud (here Azure Government), never at the public one.
func TestCredentialFollowsTheCloud(t *testing.T) {
	t.Setenv("AZURE_TOKEN_CREDENTIALS", "EnvironmentCredential")
	t.Setenv("AZURE_TENANT_ID", "11111111-2222-4333-8444-555555555555")
	t.Setenv("AZURE_CLIENT_ID", "99999999-8888-4777-8666-555555555555")
	t.Setenv("AZURE_CLIENT_SECRET", "test-secret")
	cfg, err := config.Parse([]byte(`
misp: {url: https://misp.example.org, key: keyvault://gov-vault/MISP-Key}
sinks:
  - {name: gov, workspace_id: 11111111-2222-4333-8444-555555555555, cloud: usgov, identity: {kind: managed_identity}}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	kvc, err := cfg.KeyVaultCloud()
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordingTransport{}
	c, err := newDefault(kvc, rec)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://vault.usgovcloudapi.net/.default"}})
	if err == nil {
		t.Fatal("GetToken succeeded against a transport that refuses everything")
	}
	if len(rec.hosts) == 0 {
		t.Fatal("the credential contacted no host")
	}
	for _, h := range rec.hosts {
		if h != "login.microsoftonline.us" {
			t.Errorf("the credential contacted %s, want only login.microsoftonline.us (hosts %v)", h, rec.hosts)
		}
	}
}
