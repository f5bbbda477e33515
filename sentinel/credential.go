package sentinel

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/mispsentinel/listener/internal/version"
)

// CredentialKind selects how a sink authenticates to Entra ID.
type CredentialKind string

const (
	CredentialClientSecret      CredentialKind = "client_secret"
	CredentialClientCertificate CredentialKind = "client_certificate"
	CredentialManagedIdentity   CredentialKind = "managed_identity"
	CredentialWorkloadIdentity  CredentialKind = "workload_identity"
	// CredentialDefault is azidentity's DefaultAzureCredential chain; prefer a specific kind
	// in production (set AZURE_TOKEN_CREDENTIALS=prod to restrict the chain).
	CredentialDefault CredentialKind = "default"
)

// Secret is a string that never prints its value.
type Secret string

// String returns a redacted placeholder.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString returns a redacted placeholder.
func (s Secret) GoString() string { return `sentinel.Secret("[redacted]")` }

// MarshalText returns a redacted placeholder so that secrets never reach logs or dumps.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Credential configures the Entra credential of a sink.
type Credential struct {
	Kind CredentialKind
	// TenantID and ClientID identify the app registration (client secret, certificate,
	// workload identity) or the user-assigned managed identity (ClientID only).
	TenantID string
	ClientID string
	// ClientSecret is the client secret value (client_secret).
	ClientSecret Secret
	// CertificatePath is a PEM or PKCS#12 file holding the certificate and its private key
	// (client_certificate); CertificatePassword decrypts it.
	CertificatePath     string
	CertificatePassword Secret
	// SendCertificateChain sends the x5c header (subject name/issuer authentication).
	SendCertificateChain bool
	// ManagedIdentityResourceID selects a user-assigned managed identity by resource ID
	// instead of ClientID.
	ManagedIdentityResourceID string
	// TokenFilePath is the federated token file (workload_identity); default
	// $AZURE_FEDERATED_TOKEN_FILE.
	TokenFilePath string
	// DisableInstanceDiscovery skips MSAL's instance discovery call to
	// login.microsoftonline.com; needed for authority hosts Microsoft does not know
	// (simulators, disconnected clouds).
	DisableInstanceDiscovery bool
}

var tenantPattern = regexp.MustCompile(`^[0-9a-zA-Z.-]+$`)

func (c Credential) validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	needApp := func() {
		if !tenantPattern.MatchString(c.TenantID) {
			bad("tenant_id", "%q is not a tenant id or domain", c.TenantID)
		}
		if c.ClientID == "" {
			bad("client_id", "must not be empty")
		}
	}
	switch c.Kind {
	case CredentialClientSecret:
		needApp()
		if c.ClientSecret == "" {
			bad("client_secret", "must not be empty")
		}
	case CredentialClientCertificate:
		needApp()
		if c.CertificatePath == "" {
			bad("certificate_path", "must not be empty")
		}
	case CredentialManagedIdentity:
		if c.ClientID != "" && c.ManagedIdentityResourceID != "" {
			bad("client_id", "set either client_id or managed_identity_resource_id, not both")
		}
	case CredentialWorkloadIdentity, CredentialDefault:
		if c.TenantID != "" && !tenantPattern.MatchString(c.TenantID) {
			bad("tenant_id", "%q is not a tenant id or domain", c.TenantID)
		}
	default:
		bad("kind", "unknown credential kind %q (want client_secret, client_certificate, managed_identity, workload_identity or default)", c.Kind)
	}
	return errors.Join(errs...)
}

// Identity names an Entra identity for rate limiting: Sentinel's quota belongs to the
// identity, so every sink using the same identity shares one limiter.
type Identity struct {
	TenantID string
	ClientID string
}

func (i Identity) String() string { return i.TenantID + "/" + i.ClientID }

// Identity returns the identity the credential authenticates as, as far as configuration
// and the azidentity environment variables tell. Managed identities without a client id and
// DefaultAzureCredential without AZURE_CLIENT_ID get a stable placeholder id.
func (c Credential) Identity() Identity {
	id := Identity{TenantID: strings.ToLower(c.TenantID), ClientID: strings.ToLower(c.ClientID)}
	switch c.Kind {
	case CredentialManagedIdentity:
		id.TenantID = "managed-identity"
		if id.ClientID == "" {
			id.ClientID = c.ManagedIdentityResourceID
		}
		if id.ClientID == "" {
			id.ClientID = "system-assigned"
		}
	case CredentialWorkloadIdentity, CredentialDefault:
		if id.TenantID == "" {
			id.TenantID = strings.ToLower(os.Getenv("AZURE_TENANT_ID"))
		}
		if id.ClientID == "" {
			id.ClientID = strings.ToLower(os.Getenv("AZURE_CLIENT_ID"))
		}
		if id.ClientID == "" {
			id.ClientID = string(c.Kind)
		}
	}
	return id
}

// NewCredential builds the azidentity credential cfg.Credential describes, using cfg's
// authority host and transport. It does not contact Entra: the first token request does.
func NewCredential(cfg Config) (azcore.TokenCredential, error) {
	c := cfg.Credential
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("sentinel credential: %w", err)
	}
	opts := azcore.ClientOptions{
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: cfg.AuthorityHost},
		Transport: &http.Client{Transport: transportFor(cfg)},
		// azcore puts the application id first in its User-Agent (at most 24 characters).
		Telemetry: policy.TelemetryOptions{ApplicationID: version.Name + "/" + version.String()},
	}
	var (
		cred azcore.TokenCredential
		err  error
	)
	switch c.Kind {
	case CredentialClientSecret:
		cred, err = azidentity.NewClientSecretCredential(c.TenantID, c.ClientID, string(c.ClientSecret),
			&azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: c.DisableInstanceDiscovery})
	case CredentialClientCertificate:
		data, rerr := os.ReadFile(c.CertificatePath)
		if rerr != nil {
			return nil, fmt.Errorf("sentinel credential: read certificate: %w", rerr)
		}
		certs, key, perr := azidentity.ParseCertificates(data, []byte(c.CertificatePassword))
		if perr != nil {
			return nil, fmt.Errorf("sentinel credential: parse certificate %s: %w", c.CertificatePath, perr)
		}
		cred, err = azidentity.NewClientCertificateCredential(c.TenantID, c.ClientID, certs, key,
			&azidentity.ClientCertificateCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: c.DisableInstanceDiscovery, SendCertificateChain: c.SendCertificateChain})
	case CredentialManagedIdentity:
		mo := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: opts}
		switch {
		case c.ClientID != "":
			mo.ID = azidentity.ClientID(c.ClientID)
		case c.ManagedIdentityResourceID != "":
			mo.ID = azidentity.ResourceID(c.ManagedIdentityResourceID)
		}
		cred, err = azidentity.NewManagedIdentityCredential(mo)
	case CredentialWorkloadIdentity:
		cred, err = azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: opts, ClientID: c.ClientID, TenantID: c.TenantID, TokenFilePath: c.TokenFilePath,
			DisableInstanceDiscovery: c.DisableInstanceDiscovery,
		})
	case CredentialDefault:
		cred, err = azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{
			ClientOptions: opts, TenantID: c.TenantID, DisableInstanceDiscovery: c.DisableInstanceDiscovery,
		})
	}
	if err != nil {
		return nil, fmt.Errorf("sentinel credential %s: %w", c.Kind, err)
	}
	return cred, nil
}
