package config

import (
	"fmt"
	"slices"
	"strings"
)

// KeyVaultSettings says where keyvault:// references are resolved.
type KeyVaultSettings struct {
	// Cloud is the Azure cloud of the vaults (public, usgov or china): the Key Vault
	// credential signs in at its Entra authority and a vault given by name gets its DNS
	// suffix. Empty follows the sinks: the cloud they all use (a Defender sink's gcc-high and
	// dod count as usgov, its other clouds as public); public when there is none, or when
	// the sinks use several (Warnings then says so if a keyvault:// reference is used).
	Cloud string `yaml:"cloud" json:"cloud"`
}

// KeyVaultCloud is where the Key Vault credential signs in and how a vault name becomes its
// URL.
type KeyVaultCloud struct {
	// Cloud is public, usgov or china.
	Cloud string
	// AuthorityHost is the cloud's Entra authority (the cloud table's login host).
	AuthorityHost string
	// VaultSuffix is the DNS suffix of vault names, e.g. ".vault.azure.net".
	VaultSuffix string
}

// KeyVaultCloud returns the cloud keyvault:// references are resolved in (see
// KeyVaultSettings.Cloud); an error only for an unknown key_vault.cloud.
func (c *Config) KeyVaultCloud() (KeyVaultCloud, error) {
	name, _ := c.keyVaultCloudName()
	preset, ok := cloudPresets[name]
	suffix, known := keyVaultSuffixes[name]
	if !ok || !known {
		return KeyVaultCloud{}, fmt.Errorf("unknown cloud %q", name)
	}
	return KeyVaultCloud{Cloud: name, AuthorityHost: preset.LoginHost, VaultSuffix: suffix}, nil
}

// keyVaultCloudName returns the name of the Key Vault cloud and, when it fell back to public
// because the sinks use several clouds, their clouds.
func (c *Config) keyVaultCloudName() (string, []string) {
	name := c.KeyVault.Cloud
	if name == "" {
		var clouds []string
		for _, s := range c.Sinks {
			cl := s.Cloud
			if s.Kind == SinkDefender {
				cl = CloudPublic
				if s.Cloud == DefenderCloudGCCHigh || s.Cloud == DefenderCloudDoD {
					cl = CloudUSGov
				}
			}
			if !slices.Contains(clouds, cl) {
				clouds = append(clouds, cl)
			}
		}
		if len(clouds) == 1 {
			return clouds[0], nil
		}
		if len(clouds) > 1 {
			slices.Sort(clouds)
			return CloudPublic, clouds
		}
		return CloudPublic, nil
	}
	return name, nil
}

// keyVaultWarning says when keyvault:// references are resolved in the public cloud only
// because the sinks use several clouds.
func (c *Config) keyVaultWarning() string {
	if c.KeyVault.Cloud != "" || !c.usesKeyVault() {
		return ""
	}
	if _, mixed := c.keyVaultCloudName(); len(mixed) > 1 {
		return fmt.Sprintf("key_vault.cloud is not set and the sinks use the clouds %s: keyvault:// references are resolved in the public cloud; set key_vault.cloud to the cloud of your vaults", strings.Join(mixed, ", "))
	}
	return ""
}

// usesKeyVault reports whether any secret of c is a keyvault:// reference.
func (c *Config) usesKeyVault() bool {
	if c.Tenants.source == sourceKeyVault {
		return true
	}
	for _, f := range c.secrets() {
		if f.secret.source == sourceKeyVault {
			return true
		}
	}
	return false
}

// validateKeyVault checks key_vault.cloud.
func (c *Config) validateKeyVault(errs *Errors) {
	if c.KeyVault.Cloud != "" {
		oneOf(c.KeyVault.Cloud, "key_vault.cloud", errs, CloudPublic, CloudUSGov, CloudChina)
	}
}
