package config

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"go.yaml.in/yaml/v3"
)

// Secret values used by the redaction tests; none may ever appear in printed output.
const (
	mispKeySecret     = "MISPKEY-5f1c9d0e7a"
	zmqPasswordSecret = "ZMQPASS-0b7e4a91c2"
	webhookSecret     = "HOOKTOKEN-88aa11ff"
	clientSecret1     = "CLIENTSECRET-1-xyz~Q8"
	certPassword      = "CERTPASS-3c3c3c"
	tenantSecret      = "TENANTSECRET-44dd55ee"
	envResolvedSecret = "FROMENV-9a8b7c6d"
	fileSecret        = "FROMFILE-1234abcd"
)

var allSecretValues = []string{mispKeySecret, zmqPasswordSecret, webhookSecret, clientSecret1, certPassword, tenantSecret, envResolvedSecret, fileSecret}

// secretConfig returns a resolved configuration holding every secret above.
func secretConfig(t *testing.T) *Config {
	t.Helper()
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "client-secret")
	if err := os.WriteFile(secretFile, []byte(fileSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yml := `
misp:
  url: https://misp.example.org
  key: ` + mispKeySecret + `
zeromq:
  enabled: true
  endpoint: tcp://127.0.0.1:50000
  username: listener
  password: ` + zmqPasswordSecret + `
webhook:
  enabled: true
  auth_token: ` + webhookSecret + `
sinks:
  - name: literal
    workspace_id: 11111111-2222-4333-8444-555555555555
    identity: {kind: client_secret, tenant_id: aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee, client_id: 99999999-8888-4777-8666-555555555555, client_secret: ` + clientSecret1 + `}
  - name: cert
    workspace_id: 22222222-2222-4333-8444-555555555555
    identity: {kind: client_certificate, tenant_id: aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee, client_id: 19999999-8888-4777-8666-555555555555, certificate_file: /etc/cert.pem, certificate_password: ` + certPassword + `}
  - name: from-env
    workspace_id: 33333333-2222-4333-8444-555555555555
    identity: {kind: client_secret, tenant_id: aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee, client_id: 29999999-8888-4777-8666-555555555555, client_secret: env:SINK_SECRET}
  - name: from-file
    workspace_id: 44444444-2222-4333-8444-555555555555
    identity: {kind: client_secret, tenant_id: aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee, client_id: 39999999-8888-4777-8666-555555555555, client_secret: file:` + secretFile + `}
`
	environ := []string{`LISTENER_TENANTS=[{"tenantId":"aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee","id":"49999999-8888-4777-8666-555555555555","secret":"` + tenantSecret + `","workspaceId":"55555555-2222-4333-8444-555555555555"}]`}
	cfg, err := Parse([]byte(yml), environ)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	env := map[string]string{"SINK_SECRET": envResolvedSecret}
	r := Resolver{LookupEnv: func(n string) (string, bool) { v, ok := env[n]; return v, ok }}
	if err := cfg.Resolve(context.Background(), r); err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	return cfg
}

func assertNoSecrets(t *testing.T, what, text string) {
	t.Helper()
	for _, s := range allSecretValues {
		if strings.Contains(text, s) {
			t.Errorf("%s reveals secret %q:\n%s", what, s, text)
		}
	}
}

// TestSecretsNeverPrinted renders the resolved configuration every way the program might
// (Print, logrus text and JSON, fmt verbs, encoding/json, yaml) and scans for secret values.
func TestSecretsNeverPrinted(t *testing.T) {
	cfg := secretConfig(t)

	// The values are really there, so the scan below is meaningful.
	got := map[string]string{
		"misp.key":       cfg.MISP.Key.Value(),
		"zeromq":         cfg.ZeroMQ.Password.Value(),
		"webhook":        cfg.Webhook.AuthToken.Value(),
		"sink literal":   cfg.Sinks[0].Identity.ClientSecret.Value(),
		"sink cert":      cfg.Sinks[1].Identity.CertificatePassword.Value(),
		"sink from env":  cfg.Sinks[2].Identity.ClientSecret.Value(),
		"sink from file": cfg.Sinks[3].Identity.ClientSecret.Value(),
		"tenant sink":    cfg.Sinks[4].Identity.ClientSecret.Value(),
	}
	want := map[string]string{
		"misp.key": mispKeySecret, "zeromq": zmqPasswordSecret, "webhook": webhookSecret,
		"sink literal": clientSecret1, "sink cert": certPassword, "sink from env": envResolvedSecret,
		"sink from file": fileSecret, "tenant sink": tenantSecret,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s resolved to %q, want %q", k, got[k], v)
		}
	}

	var printed bytes.Buffer
	if err := cfg.Print(&printed); err != nil {
		t.Fatal(err)
	}
	assertNoSecrets(t, "Print", printed.String())
	for _, wantText := range []string{"key: <secret>", "client_secret: env:SINK_SECRET", "from tenants[0]"} {
		if !strings.Contains(printed.String(), wantText) {
			t.Errorf("Print output lacks %q:\n%s", wantText, printed.String())
		}
	}

	for _, formatter := range []logrus.Formatter{&logrus.TextFormatter{DisableColors: true}, &logrus.JSONFormatter{}} {
		var buf bytes.Buffer
		log := logrus.New()
		log.SetOutput(&buf)
		log.SetFormatter(formatter)
		log.WithField("config", cfg).WithField("config_value", *cfg).WithField("sink", cfg.Sinks[0]).
			WithField("key", cfg.MISP.Key).Info("loaded")
		assertNoSecrets(t, fmt.Sprintf("logrus %T", formatter), buf.String())
		if !strings.Contains(buf.String(), "loaded") {
			t.Fatalf("logrus wrote nothing: %q", buf.String())
		}
	}

	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%10.3v"} {
		assertNoSecrets(t, "fmt "+verb, fmt.Sprintf(verb, *cfg)+fmt.Sprintf(verb, cfg.MISP.Key)+fmt.Sprintf(verb, cfg.Sinks))
	}
	j, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecrets(t, "encoding/json", string(j))
	y, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecrets(t, "yaml.Marshal", string(y))
	txt, _ := cfg.MISP.Key.MarshalText()
	assertNoSecrets(t, "MarshalText", string(txt))
}

// TestPrintRoundTrip reloads Print's output: it is a valid configuration that prints the same.
func TestPrintRoundTrip(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "config.example.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var first bytes.Buffer
	if err := cfg.Print(&first); err != nil {
		t.Fatal(err)
	}
	again, err := Parse(first.Bytes(), nil)
	if err != nil {
		t.Fatalf("Print output does not parse: %v\n%s", err, first.String())
	}
	if err := again.Validate(); err != nil {
		t.Fatalf("Print output does not validate: %v", err)
	}
	var second bytes.Buffer
	if err := again.Print(&second); err != nil {
		t.Fatal(err)
	}
	if first.String() != second.String() {
		t.Errorf("printing twice differs:\n%s\n---\n%s", first.String(), second.String())
	}
	if !strings.Contains(first.String(), "heartbeat_timeout: 30s") {
		t.Errorf("durations are not printed as durations:\n%s", first.String())
	}
}

func TestParseSecret(t *testing.T) {
	tests := []struct {
		text, ref, value string
		resolved         bool
	}{
		{"", "", "", false},
		{"plain", "", "plain", true},
		{"literal:env:NOT_A_REF", "", "env:NOT_A_REF", true},
		{"env:MISP_KEY", "env:MISP_KEY", "", false},
		{"file:/run/secrets/k", "file:/run/secrets/k", "", false},
		{"keyvault://vault-1/MISP-Key", "keyvault://vault-1/MISP-Key", "", false},
	}
	for _, tt := range tests {
		s := ParseSecret(tt.text)
		if s.Reference() != tt.ref || s.Value() != tt.value || s.IsResolved() != tt.resolved || s.IsSet() != (tt.text != "") {
			t.Errorf("ParseSecret(%q) = ref %q value %q resolved %v", tt.text, s.Reference(), s.Value(), s.IsResolved())
		}
	}
}

func TestParseKeyVaultRef(t *testing.T) {
	tests := []struct {
		ref     string
		want    KeyVaultRef
		wantErr bool
	}{
		{ref: "my-vault/MISP-Key", want: KeyVaultRef{VaultURL: "https://my-vault.vault.azure.net", Name: "MISP-Key"}},
		{ref: "My-Vault/ClientSecret/0123abcd", want: KeyVaultRef{VaultURL: "https://my-vault.vault.azure.net", Name: "ClientSecret", Version: "0123abcd"}},
		{ref: "gov-vault.vault.usgovcloudapi.net/tenants", want: KeyVaultRef{VaultURL: "https://gov-vault.vault.usgovcloudapi.net", Name: "tenants"}},
		{ref: "my-vault", wantErr: true},
		{ref: "my-vault/", wantErr: true},
		{ref: "ab/name", wantErr: true},
		{ref: "my-vault/bad_name", wantErr: true},
		{ref: "my-vault/name/ver/extra", wantErr: true},
		{ref: "evil.host/../x", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseKeyVaultRef(tt.ref, "")
		if (err != nil) != tt.wantErr || (!tt.wantErr && got != tt.want) {
			t.Errorf("parseKeyVaultRef(%q) = %+v, %v", tt.ref, got, err)
		}
	}
}
