package sentinel

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mispsentinel/listener/pusher"
)

func validConfig() Config {
	return complete(Config{
		WorkspaceID: "5a1d3e7c-9b24-4f6a-8c0e-2d4f6a8b0c1e",
		Credential: Credential{
			Kind: CredentialClientSecret, TenantID: "8f2b0a52-5d36-4c1e-9b6f-0c7a4e3d2f10",
			ClientID: "3c9e7b14-2a6f-4d58-8e01-b7f5c2d9a463", ClientSecret: "s3cret",
		},
	})
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want string // substring of the error; "" means valid
	}{
		{"valid", func(*Config) {}, ""},
		{"legacy in public cloud", func(c *Config) { c.API = APILegacy }, ""},
		{"managed identity without ids", func(c *Config) { c.Credential = Credential{Kind: CredentialManagedIdentity} }, ""},
		{"workload identity from environment", func(c *Config) { c.Credential = Credential{Kind: CredentialWorkloadIdentity} }, ""},
		{"reserved source system", func(c *Config) { c.SourceSystem = "Microsoft Sentinel" }, "source_system"},
		{"reserved source system, other case", func(c *Config) { c.SourceSystem = "microsoft sentinel " }, "reserved"},
		{"empty source system", func(c *Config) { c.SourceSystem = "" }, "source_system: must not be empty"},
		{"workspace name instead of id", func(c *Config) { c.WorkspaceID = "my-workspace" }, "workspace_id"},
		{"unknown api", func(c *Config) { c.API = "graph" }, "api: unknown upload API"},
		{"no api url", func(c *Config) { c.APIURL = "" }, "api_url: must not be empty"},
		{"no quota", func(c *Config) { c.RequestsPerMinute = 0 }, "requests_per_minute"},
		{"no quota minute", func(c *Config) { c.QuotaMinute = 0 }, "quota_minute"},
		{"no timeout", func(c *Config) { c.RequestTimeout = 0 }, "request_timeout"},
		{"no batch size", func(c *Config) { c.BatchSize = 0 }, "batch_size"},
		{"plain http api url", func(c *Config) { c.APIURL = "http://127.0.0.1:8080" }, "api_url"},
		{"plain http authority", func(c *Config) { c.AuthorityHost = "http://login.example/" }, "authority_host"},
		{"bad scope", func(c *Config) { c.Scope = "https://management.azure.com/" }, "scope"},
		{"bad api-version", func(c *Config) { c.APIVersion = "2024&x=1" }, "api_version"},
		{"batch too large", func(c *Config) { c.BatchSize = 101 }, "batch_size"},
		{"negative timeout", func(c *Config) { c.RequestTimeout = -time.Second }, "request_timeout"},
		{"multi-line user agent", func(c *Config) { c.UserAgent = "a\r\nX-Evil: 1" }, "user_agent"},
		{"unknown credential kind", func(c *Config) { c.Credential.Kind = "password" }, "credential.kind"},
		{"secret missing", func(c *Config) { c.Credential.ClientSecret = "" }, "credential.client_secret"},
		{"hostile tenant", func(c *Config) { c.Credential.TenantID = "../evil" }, "credential.tenant_id"},
		{"certificate path missing", func(c *Config) {
			c.Credential = Credential{Kind: CredentialClientCertificate, TenantID: "t", ClientID: "c"}
		}, "credential.certificate_path"},
		{"managed identity with two ids", func(c *Config) {
			c.Credential = Credential{Kind: CredentialManagedIdentity, ClientID: "c", ManagedIdentityResourceID: "/subscriptions/x"}
		}, "either client_id or managed_identity_resource_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.edit(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate: %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestLegacyUploadURL(t *testing.T) {
	c := validConfig()
	c.API = APILegacy
	c.APIURL = "https://sentinel.example"
	c.APIVersion = "2022-07-01"
	u, err := uploadURL(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := "https://sentinel.example/" + c.WorkspaceID + "/threatintelligence:upload-indicators?api-version=2022-07-01"; u != want {
		t.Fatalf("legacy url %s, want %s", u, want)
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	c := validConfig()
	c.Credential.CertificatePassword = "pfx-password"
	for _, out := range []string{fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprint(c.Credential.ClientSecret)} {
		if strings.Contains(out, "s3cret") || strings.Contains(out, "pfx-password") {
			t.Fatalf("secret printed: %s", out)
		}
	}
}

func TestCertificateCredentialReportsUnreadableFile(t *testing.T) {
	c := validConfig()
	c.Credential = Credential{Kind: CredentialClientCertificate, TenantID: "t", ClientID: "c", CertificatePath: t.TempDir() + "/missing.pem"}
	if _, err := NewCredential(c); err == nil || !strings.Contains(err.Error(), "read certificate") {
		t.Fatalf("NewCredential: %v", err)
	}
}

func TestSinksOfOneIdentityShareAQuota(t *testing.T) {
	c1, c2, other := validConfig(), validConfig(), validConfig()
	c2.WorkspaceID = "7b3c5d9e-1f20-4a6b-8c4d-0e2f4a6c8e00"
	other.Credential.ClientID = "another-app"
	var quotas []pusher.Quota
	for _, c := range []Config{c1, c2, other} {
		client, err := NewWithCredential(c, &stubCredential{}, c.Credential.Identity())
		if err != nil {
			t.Fatal(err)
		}
		l := client.Limits()
		if l.MaxBatch != 100 || len(l.Upserts) != 1 || l.Revocations != nil {
			t.Fatalf("limits %+v, want batches of 100 and one quota for upserts and revocations", l)
		}
		quotas = append(quotas, l.Upserts[0])
	}
	if quotas[0] != quotas[1] || quotas[0].Requests != 100 || quotas[0].Per != time.Minute {
		t.Fatalf("two sinks of one app report %+v and %+v, want one shared 100/min quota", quotas[0], quotas[1])
	}
	if quotas[0].Key == quotas[2].Key {
		t.Fatalf("two identities share quota key %q", quotas[0].Key)
	}
}
