package config

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
)

// KeyVault fetches secrets from Azure Key Vault. Package config/keyvault implements it with
// azsecrets; tests use a fake.
type KeyVault interface {
	// GetSecret returns the value of secret name at version ("" = latest) in the vault at
	// vaultURL (e.g. https://my-vault.vault.azure.net).
	GetSecret(ctx context.Context, vaultURL, name, version string) (string, error)
}

// Resolver fetches the values of secret references. Nil fields take the process's own:
// os.LookupEnv and os.ReadFile. A nil KeyVault makes keyvault:// references an error.
type Resolver struct {
	LookupEnv func(name string) (string, bool)
	ReadFile  func(path string) ([]byte, error)
	KeyVault  KeyVault
	// VaultSuffix is the DNS suffix a vault given by name gets (KeyVaultCloud); Config.Resolve
	// sets it from the configuration when it is empty, Refresh takes the public cloud's.
	VaultSuffix string
}

// maxSecretFileBytes bounds a file: secret (the tenants JSON is the largest expected).
const maxSecretFileBytes = 1 << 20

// resolve returns the value of s. Errors describe the reference, never a value.
func (r Resolver) resolve(ctx context.Context, s Secret) (string, error) {
	if s.resolved || s.source == sourceNone {
		return s.value, nil
	}
	if err := s.checkReference(); err != nil {
		return "", err
	}
	switch s.source {
	case sourceEnv:
		lookup := r.LookupEnv
		if lookup == nil {
			lookup = os.LookupEnv
		}
		v, ok := lookup(s.ref)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", s.ref)
		}
		if v == "" {
			return "", fmt.Errorf("environment variable %s is empty", s.ref)
		}
		return v, nil
	case sourceFile:
		read := r.ReadFile
		if read == nil {
			read = os.ReadFile
		}
		data, err := read(s.ref)
		if err != nil {
			return "", fmt.Errorf("read secret file: %w", err)
		}
		if len(data) > maxSecretFileBytes {
			return "", fmt.Errorf("secret file %s is larger than %d bytes", s.ref, maxSecretFileBytes)
		}
		v := strings.TrimRight(string(data), "\r\n")
		if v == "" {
			return "", fmt.Errorf("secret file %s is empty", s.ref)
		}
		return v, nil
	case sourceKeyVault:
		if r.KeyVault == nil {
			return "", errors.New("keyvault:// reference but no Key Vault client was given to Resolve")
		}
		ref, _ := parseKeyVaultRef(s.ref, r.VaultSuffix) // checked by checkReference
		v, err := r.KeyVault.GetSecret(ctx, ref.VaultURL, ref.Name, ref.Version)
		if err != nil {
			return "", fmt.Errorf("get secret %s from Key Vault %s: %w", ref.Name, ref.VaultURL, err)
		}
		if v == "" {
			return "", fmt.Errorf("Key Vault secret %s in %s is empty", ref.Name, ref.VaultURL)
		}
		return v, nil
	}
	return s.value, nil
}

// secretField is one secret of the configuration and its key path.
type secretField struct {
	path   string
	secret *Secret
}

// secrets lists every secret in c with its path. Tenants is handled by expandTenants.
func (c *Config) secrets() []secretField {
	out := []secretField{
		{"misp.key", &c.MISP.Key},
		{"zeromq.password", &c.ZeroMQ.Password},
		{"webhook.auth_token", &c.Webhook.AuthToken},
		{"control.token", &c.Control.Token},
	}
	for i := range c.Sinks {
		p := sinkPath(c.Sinks[i], i)
		out = append(out,
			secretField{p("identity.client_secret"), &c.Sinks[i].Identity.ClientSecret},
			secretField{p("identity.certificate_password"), &c.Sinks[i].Identity.CertificatePassword},
		)
	}
	return out
}

// Resolve fetches the value of every secret reference (and, for a keyvault:// tenants
// reference, adds and validates its sinks). Call it after Validate. Each reference is fetched
// once even if several keys share it. It returns Errors naming every key that failed.
func (c *Config) Resolve(ctx context.Context, r Resolver) error {
	var errs Errors
	if r.VaultSuffix == "" && c.usesKeyVault() {
		kv, err := c.KeyVaultCloud()
		if err != nil {
			errs.add("key_vault.cloud", "%v", err)
			return errs
		}
		r.VaultSuffix = kv.VaultSuffix
	}
	if c.Tenants.IsSet() && !c.tenantsExpanded {
		first := len(c.Sinks)
		if err := c.expandTenants(ctx, r); err != nil {
			var fe Errors
			if errors.As(err, &fe) {
				return fe
			}
			return err
		}
		var sinkErrs Errors
		for i := first; i < len(c.Sinks); i++ {
			c.validateSink(i, &sinkErrs)
		}
		c.validateSinkSet(&sinkErrs)
		if len(sinkErrs) > 0 {
			return sinkErrs
		}
	}
	cache := map[string]string{}
	for _, f := range c.secrets() {
		if f.secret.resolved || !f.secret.IsSet() {
			continue
		}
		key := f.secret.Reference()
		v, ok := cache[key]
		if !ok {
			var err error
			if v, err = r.resolve(ctx, *f.secret); err != nil {
				errs.add(f.path, "%v", err)
				continue
			}
			cache[key] = v
		}
		f.secret.value, f.secret.resolved = v, true
	}
	return errs.orNil()
}

// Refresh fetches the value of a secret reference again, ignoring the value resolved before:
// a secret rotated in its file, environment variable or Key Vault is picked up. A literal or
// an unset secret is returned as it is.
func (r Resolver) Refresh(ctx context.Context, s Secret) (Secret, error) {
	if s.source == sourceNone || s.source == sourceLiteral {
		return s, nil
	}
	s.resolved = false
	v, err := r.resolve(ctx, s)
	if err != nil {
		return s, fmt.Errorf("%s: %w", s.Reference(), err)
	}
	s.value, s.resolved = v, true
	return s, nil
}
