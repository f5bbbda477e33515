package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Redacted is what a Secret prints instead of its value.
const Redacted = "<secret>"

// Secret is a configuration value that must never be printed. In the file it is written as
// one of:
//
//	literal text             the value itself
//	literal:text             the value "text" (for values that begin with a scheme below)
//	env:NAME                 the environment variable NAME
//	file:/path               the file's content, trailing newlines removed
//	keyvault://vault/name    the latest version of secret name in Azure Key Vault "vault"
//	keyvault://vault/name/version
//
// vault is a vault name (https://<vault>.vault.azure.net) or, when it contains a dot, the
// vault's full host name (sovereign clouds, private endpoints). References are checked by
// Validate and fetched by Config.Resolve; a literal is available at once.
//
// Secret redacts itself in String, Format (every verb), GoString, MarshalText, MarshalJSON
// and MarshalYAML, so neither fmt, logrus (text or JSON) nor Print can reveal it. Marshalling
// writes the reference of a referenced secret (env:NAME, file:/path, keyvault://...), which
// names where the value lives but not the value, and Redacted for a literal.
type Secret struct {
	source   secretSource
	ref      string // the reference without its scheme: variable name, path, vault/name[/version]
	value    string // the literal value, or the resolved one
	resolved bool
}

type secretSource int

const (
	sourceNone secretSource = iota
	sourceLiteral
	sourceEnv
	sourceFile
	sourceKeyVault
)

// ParseSecret reads a secret as written in the file or an environment override. It never
// fails: a malformed reference is reported by Validate.
func ParseSecret(text string) Secret {
	switch {
	case text == "":
		return Secret{}
	case strings.HasPrefix(text, "literal:"):
		return LiteralSecret(strings.TrimPrefix(text, "literal:"))
	case strings.HasPrefix(text, "env:"):
		return Secret{source: sourceEnv, ref: strings.TrimPrefix(text, "env:")}
	case strings.HasPrefix(text, "file:"):
		return Secret{source: sourceFile, ref: strings.TrimPrefix(text, "file:")}
	case strings.HasPrefix(text, "keyvault://"):
		return Secret{source: sourceKeyVault, ref: strings.TrimPrefix(text, "keyvault://")}
	}
	return LiteralSecret(text)
}

// LiteralSecret returns a secret holding value itself.
func LiteralSecret(value string) Secret {
	if value == "" {
		return Secret{}
	}
	return Secret{source: sourceLiteral, value: value, resolved: true}
}

// IsSet reports whether the secret was given at all.
func (s Secret) IsSet() bool { return s.source != sourceNone }

// IsResolved reports whether Value is available: always for literals, after Resolve for
// references.
func (s Secret) IsResolved() bool { return s.resolved }

// Value returns the secret's value; "" for a reference that has not been resolved.
func (s Secret) Value() string { return s.value }

// Reference returns where the value comes from (env:NAME, file:/path, keyvault://...), or ""
// for a literal or unset secret.
func (s Secret) Reference() string {
	switch s.source {
	case sourceEnv:
		return "env:" + s.ref
	case sourceFile:
		return "file:" + s.ref
	case sourceKeyVault:
		return "keyvault://" + s.ref
	}
	return ""
}

// redacted is the printable form: "" when unset, the reference when there is one, Redacted
// otherwise.
func (s Secret) redacted() string {
	if s.source == sourceNone {
		return ""
	}
	if r := s.Reference(); r != "" {
		return r
	}
	return Redacted
}

// String returns the redacted form.
func (s Secret) String() string { return s.redacted() }

// GoString returns the redacted form, for %#v.
func (s Secret) GoString() string { return strconv.Quote(s.redacted()) }

// Format writes the redacted form for every verb.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' || (verb == 'v' && f.Flag('#')) {
		_, _ = f.Write([]byte(strconv.Quote(s.redacted())))
		return
	}
	_, _ = f.Write([]byte(s.redacted()))
}

// MarshalText returns the redacted form.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.redacted()), nil }

// MarshalJSON returns the redacted form as a JSON string.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.redacted()) }

// MarshalYAML returns the redacted form.
func (s Secret) MarshalYAML() (any, error) { return s.redacted(), nil }

// UnmarshalYAML reads a secret written as a YAML string.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: a secret must be a string", n.Line)}}
	}
	if n.Tag == "!!null" {
		*s = Secret{}
		return nil
	}
	*s = ParseSecret(n.Value)
	return nil
}

var (
	envNamePattern     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	vaultNamePattern   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]$`)
	vaultHostPattern   = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+(:[0-9]{1,5})?$`)
	vaultSecretPattern = regexp.MustCompile(`^[A-Za-z0-9-]{1,127}$`)
	vaultVersionRegexp = regexp.MustCompile(`^[A-Za-z0-9]{1,64}$`)
)

// KeyVaultRef is a parsed keyvault:// reference.
type KeyVaultRef struct {
	// VaultURL is the vault's base URL, e.g. https://my-vault.vault.azure.net.
	VaultURL string
	// Name is the secret name and Version its version ("" = latest).
	Name, Version string
}

// parseKeyVaultRef parses the part of a keyvault:// reference after the scheme; a vault given
// by name gets suffix (the public cloud's when empty).
func parseKeyVaultRef(ref, suffix string) (KeyVaultRef, error) {
	if suffix == "" {
		suffix = keyVaultSuffixes[CloudPublic]
	}
	parts := strings.Split(ref, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return KeyVaultRef{}, errors.New("want keyvault://<vault>/<secret-name>[/<version>]")
	}
	var out KeyVaultRef
	vault := parts[0]
	switch {
	case strings.Contains(vault, "."):
		if !vaultHostPattern.MatchString(vault) {
			return KeyVaultRef{}, fmt.Errorf("vault host %q is not a host name", vault)
		}
		out.VaultURL = "https://" + strings.ToLower(vault)
	case vaultNamePattern.MatchString(vault):
		out.VaultURL = "https://" + strings.ToLower(vault) + suffix
	default:
		return KeyVaultRef{}, fmt.Errorf("vault name %q must be 3-24 letters, digits and hyphens, starting with a letter", vault)
	}
	if !vaultSecretPattern.MatchString(parts[1]) {
		return KeyVaultRef{}, fmt.Errorf("secret name %q must be 1-127 letters, digits and hyphens", parts[1])
	}
	out.Name = parts[1]
	if len(parts) == 3 {
		if !vaultVersionRegexp.MatchString(parts[2]) {
			return KeyVaultRef{}, fmt.Errorf("secret version %q must be letters and digits", parts[2])
		}
		out.Version = parts[2]
	}
	return out, nil
}

// checkReference returns why the secret's reference is malformed, or nil.
func (s Secret) checkReference() error {
	switch s.source {
	case sourceEnv:
		if !envNamePattern.MatchString(s.ref) {
			return fmt.Errorf("env:%s: %q is not an environment variable name", s.ref, s.ref)
		}
	case sourceFile:
		if !strings.HasPrefix(s.ref, "/") {
			return fmt.Errorf("file:%s: the path must be absolute", s.ref)
		}
	case sourceKeyVault:
		if _, err := parseKeyVaultRef(s.ref, ""); err != nil {
			return fmt.Errorf("keyvault://%s: %w", s.ref, err)
		}
	}
	return nil
}
