package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReadBackValidation checks the read_back block and the verify section: off by default,
// defaults that follow the API and cloud, and every bad value named by its key path.
func TestReadBackValidation(t *testing.T) {
	load := func(t *testing.T) *Config {
		t.Helper()
		cfg, err := Load(filepath.Join("testdata", "valid-minimal.yaml"), nil)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	cfg := load(t)
	s := cfg.Sinks[0]
	if s.ReadBack.Enabled() || cfg.ReadBackSinks() || cfg.Verify.Interval != 0 || !cfg.Verify.Repair {
		t.Fatalf("read-back or the schedule is on by default: %+v %+v", s.ReadBack, cfg.Verify)
	}
	if s.ReadBack.API != ReadBackIndicators || s.ReadBack.APIVersion != "2025-09-01" || s.Endpoints.ManagementHost != "https://management.azure.com" {
		t.Errorf("defaults: %+v, management host %q", s.ReadBack, s.Endpoints.ManagementHost)
	}
	for cloud, host := range map[string]string{CloudUSGov: "https://management.usgovcloudapi.net", CloudChina: "https://management.chinacloudapi.cn"} {
		sk := defaultSink()
		sk.Cloud = cloud
		sk.fillDerived()
		if sk.Endpoints.ManagementHost != host {
			t.Errorf("%s: management host %q, want %q", cloud, sk.Endpoints.ManagementHost, host)
		}
	}
	sk := defaultSink()
	sk.ReadBack.API = ReadBackSTIXObjects
	sk.fillDerived()
	if sk.ReadBack.APIVersion != "2025-07-01-preview" {
		t.Errorf("stix-objects api-version %q", sk.ReadBack.APIVersion)
	}

	good := ReadBack{SubscriptionID: "1f2e3d4c-5b6a-4798-8a9b-0c1d2e3f4a5b", ResourceGroup: "rg", WorkspaceName: "ws",
		API: ReadBackIndicators, APIVersion: "2025-09-01", Lag: time.Minute, PageSize: 100, RequestsPerMinute: 60}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string // "" for valid
	}{
		{"valid", func(c *Config) { c.Sinks[0].ReadBack = good; c.Verify.Interval = 24 * time.Hour }, ""},
		{"subscription", func(c *Config) { c.Sinks[0].ReadBack = good; c.Sinks[0].ReadBack.SubscriptionID = "sub" }, "sinks[0].read_back.subscription_id: must be a GUID"},
		{"names without subscription", func(c *Config) { c.Sinks[0].ReadBack.WorkspaceName = "ws" }, "sinks[0].read_back.subscription_id: is required"},
		{"workspace name", func(c *Config) { c.Sinks[0].ReadBack = good; c.Sinks[0].ReadBack.WorkspaceName = "" }, "sinks[0].read_back.workspace_name: must be the workspace's name"},
		{"api", func(c *Config) { c.Sinks[0].ReadBack = good; c.Sinks[0].ReadBack.API = "kql" }, "sinks[0].read_back.api: must be one of indicators, stix-objects"},
		{"lag", func(c *Config) { c.Sinks[0].ReadBack = good; c.Sinks[0].ReadBack.Lag = 48 * time.Hour }, "sinks[0].read_back.lag: must be between"},
		{"page size", func(c *Config) { c.Sinks[0].ReadBack = good; c.Sinks[0].ReadBack.PageSize = 0 }, "sinks[0].read_back.page_size: must be between 1 and 1000"},
		{"management host", func(c *Config) { c.Sinks[0].ReadBack = good; c.Sinks[0].Endpoints.ManagementHost = "http://x" }, "sinks[0].endpoints.management_host"},
		{"interval without read-back", func(c *Config) { c.Verify.Interval = time.Hour }, "verify.interval: needs at least one sink with a read_back block"},
		{"short interval", func(c *Config) { c.Sinks[0].ReadBack = good; c.Verify.Interval = time.Second }, "verify.interval: must be between 1m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := load(t)
			tc.edit(c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}
