package config

import (
	"context"
	"strings"
	"testing"
)

// recordingVault records the vault URLs it is asked for.
type recordingVault struct{ urls []string }

func (v *recordingVault) GetSecret(_ context.Context, vaultURL, name, _ string) (string, error) {
	v.urls = append(v.urls, vaultURL+"/"+name)
	return "value-of-" + name, nil
}

func kvConfig(keyVault string, sinks ...[3]string) string {
	y := "misp: {url: https://misp.example.org, key: keyvault://my-vault/MISP-Key}\n"
	if keyVault != "" {
		y += "key_vault: {cloud: " + keyVault + "}\n"
	}
	y += "sinks:\n"
	for _, s := range sinks {
		y += "  - name: " + s[0] + "\n    workspace_id: " + s[1] + "\n    cloud: " + s[2] + "\n    identity: {kind: managed_identity}\n"
	}
	return y
}

// TestKeyVaultFollowsTheCloud: the Key Vault cloud is the sinks' (authority host and vault
// DNS suffix from the cloud table), key_vault.cloud overrides it, and sinks in two clouds
// fall back to the public cloud with a warning once a keyvault:// reference is used.
func TestKeyVaultFollowsTheCloud(t *testing.T) {
	gov := [3]string{"gov", "11111111-2222-4333-8444-555555555555", CloudUSGov}
	pub := [3]string{"pub", "11111111-2222-4333-8444-666666666666", CloudPublic}
	for _, tc := range []struct {
		name, yml           string
		wantURL, wantAuthor string
		wantErr             string
	}{
		{"usgov sinks", kvConfig("", gov), "https://my-vault.vault.usgovcloudapi.net/MISP-Key", "https://login.microsoftonline.us", ""},
		{"public sinks", kvConfig("", pub), "https://my-vault.vault.azure.net/MISP-Key", "https://login.microsoftonline.com", ""},
		{"explicit china", kvConfig(CloudChina, pub), "https://my-vault.vault.azure.cn/MISP-Key", "https://login.chinacloudapi.cn", ""},
		{"mixed sinks", kvConfig("", gov, pub), "https://my-vault.vault.azure.net/MISP-Key", "https://login.microsoftonline.com", ""},
		{"mixed sinks, explicit", kvConfig(CloudUSGov, gov, pub), "https://my-vault.vault.usgovcloudapi.net/MISP-Key", "https://login.microsoftonline.us", ""},
		{"unknown cloud", kvConfig("germany", pub), "", "", "key_vault.cloud: must be one of public, usgov, china"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.yml), nil)
			if err != nil {
				t.Fatal(err)
			}
			err = cfg.Validate()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Validate = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			kvc, err := cfg.KeyVaultCloud()
			if err != nil || kvc.AuthorityHost != tc.wantAuthor {
				t.Errorf("KeyVaultCloud = %+v, %v; want authority %s", kvc, err, tc.wantAuthor)
			}
			v := &recordingVault{}
			if err := cfg.Resolve(context.Background(), Resolver{KeyVault: v}); err != nil {
				t.Fatal(err)
			}
			if len(v.urls) != 1 || v.urls[0] != tc.wantURL {
				t.Errorf("vault asked = %v, want %s", v.urls, tc.wantURL)
			}
		})
	}
	// Sinks in two clouds: a warning with a keyvault:// reference, none without.
	for _, tc := range []struct {
		yml  string
		warn bool
	}{{kvConfig("", gov, pub), true}, {kvConfig(CloudUSGov, gov, pub), false},
		{strings.Replace(kvConfig("", gov, pub), "keyvault://my-vault/MISP-Key", "literal", 1), false}} {
		cfg, err := Parse([]byte(tc.yml), nil)
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Contains(strings.Join(cfg.Warnings(), "\n"), "key_vault.cloud is not set")
		if got != tc.warn {
			t.Errorf("warning = %v, want %v, for\n%s", got, tc.warn, tc.yml)
		}
	}
	// A Defender sink in GCC High counts as usgov.
	def := Config{Sinks: []Sink{{Kind: SinkDefender, Cloud: DefenderCloudGCCHigh}}}
	if kvc, err := def.KeyVaultCloud(); err != nil || kvc.Cloud != CloudUSGov {
		t.Errorf("defender gcc-high: %+v, %v", kvc, err)
	}
	for cloud := range cloudPresets {
		if _, ok := keyVaultSuffixes[cloud]; !ok {
			t.Errorf("the cloud table has no Key Vault suffix for %s", cloud)
		}
	}
}
