package sentinel

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func validConfig() Config {
	return Config{
		WorkspaceID:  "5a1d3e7c-9b24-4f6a-8c0e-2d4f6a8b0c1e",
		SourceSystem: "MISP",
		Credential: Credential{
			Kind: CredentialClientSecret, TenantID: "8f2b0a52-5d36-4c1e-9b6f-0c7a4e3d2f10",
			ClientID: "3c9e7b14-2a6f-4d58-8e01-b7f5c2d9a463", ClientSecret: "s3cret",
		},
	}
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
		{"unknown cloud", func(c *Config) { c.Cloud = "germany" }, "cloud: unknown cloud"},
		{"legacy without a known host", func(c *Config) { c.API, c.Cloud = APILegacy, CloudUSGov }, "no legacy upload API host"},
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

func TestCloudPresetsSetAllThreeEndpoints(t *testing.T) {
	tests := []struct {
		cloud                    Cloud
		authority, upload, scope string
	}{
		{CloudPublic, "https://login.microsoftonline.com/", "https://api.ti.sentinel.azure.com/workspaces/", "https://management.azure.com/.default"},
		{CloudUSGov, "https://login.microsoftonline.us/", "https://api.ti.sentinel.azure.us/workspaces/", "https://management.usgovcloudapi.net/.default"},
		{CloudChina, "https://login.chinacloudapi.cn/", "https://api.ti.sentinel.azure.cn/workspaces/", "https://management.chinacloudapi.cn/.default"},
	}
	for _, tt := range tests {
		t.Run(string(tt.cloud), func(t *testing.T) {
			c := validConfig()
			c.Cloud = tt.cloud
			c = c.WithDefaults()
			u, err := uploadURL(c)
			if err != nil {
				t.Fatal(err)
			}
			if c.AuthorityHost != tt.authority || c.Scope != tt.scope || !strings.HasPrefix(u, tt.upload) {
				t.Fatalf("authority %s scope %s url %s", c.AuthorityHost, c.Scope, u)
			}
			if want := c.WorkspaceID + "/threat-intelligence-stix-objects:upload?api-version=2024-02-01-preview"; !strings.HasSuffix(u, want) {
				t.Fatalf("url %s, want suffix %s", u, want)
			}
		})
	}
	c := validConfig()
	c.API = APILegacy
	c.APIURL = "https://sentinel.example"
	u, err := uploadURL(c.WithDefaults())
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

func TestLimitersSharePerIdentity(t *testing.T) {
	l := NewLimiters(LimiterOptions{})
	a := Identity{TenantID: "t", ClientID: "a"}
	if l.For(a) != l.For(a) {
		t.Fatal("one identity got two limiters")
	}
	if l.For(a) == l.For(Identity{TenantID: "t", ClientID: "b"}) {
		t.Fatal("two identities share a limiter")
	}
	if got, want := l.Interval(), time.Minute/99; got.Round(time.Microsecond) != want.Round(time.Microsecond) {
		t.Fatalf("interval %s, want %s (100/min less 1 %% headroom)", got, want)
	}
	// Clients built from configs naming the same app share its limit.
	c1, c2 := validConfig(), validConfig()
	c2.WorkspaceID = "7b3c5d9e-1f20-4a6b-8c4d-0e2f4a6c8e00"
	if l.For(c1.Credential.Identity()) != l.For(c2.Credential.Identity()) {
		t.Fatal("two sinks of one app got different limiters")
	}
}

func TestIdentityLimitPauseHoldsEveryWaiter(t *testing.T) {
	lim := NewLimiters(LimiterOptions{RequestsPerMinute: 1e9}).For(Identity{ClientID: "x"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := lim.Wait(ctx); err != nil {
		t.Fatalf("unpaused wait: %v", err)
	}
	lim.Pause(time.Now().Add(time.Hour))
	lim.Pause(time.Now()) // never shortens
	if err := lim.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("paused wait: %v, want the context deadline", err)
	}
}
