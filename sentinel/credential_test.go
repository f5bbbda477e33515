package sentinel

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
)

// simConfig returns a sink configuration pointing at the simulator with a client-secret
// credential, as an operator would write it for a private cloud.
func simConfig(sim *simsentinel.Server) Config {
	return complete(Config{
		AuthorityHost: sim.URL + "/",
		APIURL:        sim.URL,
		WorkspaceID:   simsentinel.DefaultWorkspaceID,
		SourceSystem:  "MISP",
		TLSRootCAs:    sim.CertPool(),
		Credential: Credential{
			Kind:                     CredentialClientSecret,
			TenantID:                 sim.TenantID(),
			ClientID:                 simsentinel.DefaultClientID,
			ClientSecret:             simsentinel.DefaultClientSecret,
			DisableInstanceDiscovery: true,
		},
		Scope: simsentinel.ManagementScope,
	})
}

func startSim(t testing.TB, opts simsentinel.Options) *simsentinel.Server {
	t.Helper()
	sim, err := simsentinel.New(opts)
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(sim.Close)
	return sim
}

func TestClientSecretCredentialObtainsAndRefreshesTokens(t *testing.T) {
	// Tokens living less than azidentity's five-minute refresh margin are renewed on every
	// request, so each GetToken must reach the simulator's token endpoint again.
	sim := startSim(t, simsentinel.Options{TokenLifetime: 2 * time.Minute})
	cred, err := NewCredential(simConfig(sim))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	opts := policy.TokenRequestOptions{Scopes: []string{simsentinel.ManagementScope}}
	first, err := cred.GetToken(ctx, opts)
	if err != nil {
		t.Fatalf("first token: %v", err)
	}
	second, err := cred.GetToken(ctx, opts)
	if err != nil {
		t.Fatalf("second token: %v", err)
	}
	if first.Token == "" || first.Token == second.Token {
		t.Fatalf("tokens %q and %q: want two different tokens", first.Token, second.Token)
	}
	if until := time.Until(first.ExpiresOn); until <= 0 || until > 2*time.Minute {
		t.Errorf("token expires in %s, want within the simulator's 2m lifetime", until)
	}
	if st := sim.Stats(); st.TokensIssued != 2 {
		t.Errorf("simulator issued %d tokens, want 2", st.TokensIssued)
	}
}

func TestClientRefreshesAnInvalidatedTokenOnce(t *testing.T) {
	sim := startSim(t, simsentinel.Options{}) // one-hour tokens: cached by azidentity
	c, err := New(simConfig(sim))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	now := time.Now()
	if _, err := c.Upload(ctx, testBatch(2, now)); err != nil {
		t.Fatalf("first upload: %v", err)
	}
	if _, err := c.Upload(ctx, testBatch(2, now)); err != nil {
		t.Fatalf("second upload: %v", err)
	}
	if got := sim.Stats().TokensIssued; got != 1 {
		t.Fatalf("%d tokens issued for two uploads, want 1 (cached)", got)
	}
	sim.InvalidateTokens()
	if _, err := c.Upload(ctx, testBatch(3, now)); err != nil {
		t.Fatalf("upload after invalidation: %v", err)
	}
	st := sim.Stats()
	if st.TokensIssued != 2 || st.Unauthorized != 1 {
		t.Fatalf("after invalidation: %d tokens issued, %d 401s; want 2 and 1", st.TokensIssued, st.Unauthorized)
	}
	if got := len(sim.Indicators(simsentinel.DefaultWorkspaceID, "MISP")); got != 3 {
		t.Fatalf("%d indicators stored, want 3", got)
	}
}

func TestMisconfigurationIsFatal(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(*Config, *simsentinel.Server)
		status int
		cause  string
	}{
		{"wrong client secret", func(c *Config, _ *simsentinel.Server) { c.Credential.ClientSecret = "wrong" }, 0, CauseCredential},
		{"unknown workspace", func(c *Config, _ *simsentinel.Server) { c.WorkspaceID = "99999999-0000-4000-8000-000000000000" }, 404, CauseWorkspaceOrPath},
		{"unknown api-version", func(c *Config, _ *simsentinel.Server) { c.APIVersion = "2030-01-01" }, 404, CauseWorkspaceOrPath},
		{"missing role", func(_ *Config, s *simsentinel.Server) {
			s.SetContributor(simsentinel.DefaultWorkspaceID, simsentinel.DefaultClientID, false)
		}, 403, CauseRole},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim := startSim(t, simsentinel.Options{})
			cfg := simConfig(sim)
			tt.edit(&cfg, sim)
			c, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.Upload(context.Background(), testBatch(1, time.Now()))
			var fe *FatalError
			if !errors.As(err, &fe) || fe.Status != tt.status || fe.Cause != tt.cause {
				t.Fatalf("Upload error %v, want fatal HTTP %d cause %s", err, tt.status, tt.cause)
			}
		})
	}
}

// TestLegacyAPIThroughSimulator: a legacy sink uploads indicators only; the creator identity
// (which the legacy API refuses) is settled without being sent, not dead-lettered.
func TestLegacyAPIThroughSimulator(t *testing.T) {
	sim := startSim(t, simsentinel.Options{})
	cfg := simConfig(sim)
	cfg.API, cfg.APIVersion = APILegacy, "2022-07-01"
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	now := time.Now()
	batch := append(testBatch(2, now), testIndicator(2, now, func(o map[string]any) {
		o["type"], o["id"] = "identity", "identity--00000002-0000-4000-8000-000000000000"
	}))
	res, err := c.Upload(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rejected) != 0 {
		t.Fatalf("rejected %+v, want nothing: the identity is not the legacy API's to refuse", res.Rejected)
	}
	if st := sim.Stats(); st.UploadRequests != 1 || st.ObjectsRejected != 0 {
		t.Fatalf("simulator stats %+v, want one request of indicators only", st)
	}
	if got := len(sim.Indicators(simsentinel.DefaultWorkspaceID, "MISP")); got != 2 {
		t.Fatalf("%d stored, want 2", got)
	}
}

// writeCertificate writes a self-signed RSA certificate and its key as one PEM file.
func writeCertificate(t *testing.T) (*x509.Certificate, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "listener"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "app.pem")
	pemData := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})...)
	if err := os.WriteFile(path, pemData, 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, path
}

func TestClientCertificateCredentialAgainstSimulator(t *testing.T) {
	const certApp = "6d0e2a4c-8b1f-4e3a-9c5d-7f9b1d3e5a70"
	registered, path := writeCertificate(t)
	_, otherPath := writeCertificate(t)
	for _, tt := range []struct {
		name    string
		path    string
		wantErr bool
	}{{"registered certificate", path, false}, {"unregistered certificate", otherPath, true}} {
		t.Run(tt.name, func(t *testing.T) {
			sim := startSim(t, simsentinel.Options{Apps: []simsentinel.App{{ClientID: certApp, Certificate: registered}}})
			cfg := simConfig(sim)
			cfg.Credential = Credential{Kind: CredentialClientCertificate, TenantID: sim.TenantID(), ClientID: certApp,
				CertificatePath: tt.path, DisableInstanceDiscovery: true}
			c, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.Upload(context.Background(), testBatch(1, time.Now()))
			var fe *FatalError
			switch {
			case !tt.wantErr && err != nil:
				t.Fatalf("upload with a certificate credential: %v", err)
			case tt.wantErr && (!errors.As(err, &fe) || fe.Cause != CauseCredential):
				t.Fatalf("upload with an unregistered certificate: %v, want a fatal credential error", err)
			}
			if st := sim.Stats(); !tt.wantErr && (st.TokensIssued != 1 || st.Served != 1) {
				t.Fatalf("simulator stats %+v, want one token and one served upload", st)
			}
		})
	}
}

func TestWorkloadIdentityCredentialAgainstSimulator(t *testing.T) {
	const app, federated = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", "federated-service-account-token"
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(federated), 0o600); err != nil {
		t.Fatal(err)
	}
	sim := startSim(t, simsentinel.Options{Apps: []simsentinel.App{{ClientID: app, FederatedToken: federated}}})
	cfg := simConfig(sim)
	cfg.Credential = Credential{Kind: CredentialWorkloadIdentity, TenantID: sim.TenantID(), ClientID: app,
		TokenFilePath: tokenFile, DisableInstanceDiscovery: true}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Upload(context.Background(), testBatch(1, time.Now())); err != nil {
		t.Fatalf("upload with a workload identity: %v", err)
	}
	if got := c.Identity(); got != (Identity{TenantID: sim.TenantID(), ClientID: app}) {
		t.Fatalf("identity %v", got)
	}
}

func TestManagedIdentityCredentialAgainstSimulator(t *testing.T) {
	sim := startSim(t, simsentinel.Options{})
	// The App Service managed-identity protocol, pointed at the simulator.
	t.Setenv("IDENTITY_ENDPOINT", sim.URL+"/msi/token")
	t.Setenv("IDENTITY_HEADER", simsentinel.DefaultManagedIdentityHeader)
	cfg := simConfig(sim)
	cfg.Credential = Credential{Kind: CredentialManagedIdentity, ClientID: simsentinel.DefaultManagedIdentityClientID}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Upload(context.Background(), testBatch(1, time.Now())); err != nil {
		t.Fatalf("upload with a managed identity: %v", err)
	}
	sim.InvalidateTokens() // a 401 must lead to a fresh managed-identity token too
	if _, err := c.Upload(context.Background(), testBatch(1, time.Now())); err != nil {
		t.Fatalf("upload after invalidation: %v", err)
	}
	if st := sim.Stats(); st.TokensIssued != 2 || st.Served != 2 {
		t.Fatalf("simulator stats %+v, want two tokens and two served uploads", st)
	}
}

func TestDefaultAzureCredentialAgainstSimulator(t *testing.T) {
	sim := startSim(t, simsentinel.Options{})
	// Restrict the chain to the environment credential so that no developer tool is tried.
	t.Setenv("AZURE_TOKEN_CREDENTIALS", "EnvironmentCredential")
	t.Setenv("AZURE_TENANT_ID", sim.TenantID())
	t.Setenv("AZURE_CLIENT_ID", simsentinel.DefaultClientID)
	t.Setenv("AZURE_CLIENT_SECRET", simsentinel.DefaultClientSecret)
	cfg := simConfig(sim)
	cfg.Credential = Credential{Kind: CredentialDefault, DisableInstanceDiscovery: true}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Upload(context.Background(), testBatch(1, time.Now())); err != nil {
		t.Fatalf("upload with DefaultAzureCredential: %v", err)
	}
	if got := c.Identity(); got.ClientID != simsentinel.DefaultClientID {
		t.Fatalf("identity %v, want the environment's client id", got)
	}
}
