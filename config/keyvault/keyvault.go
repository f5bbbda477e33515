// Package keyvault resolves the configuration's keyvault:// secret references through Azure
// Key Vault (azsecrets), signing in at the Entra authority of the vaults' cloud. It implements
// config.KeyVault and does nothing else: it never reads the configuration (the caller passes
// the cloud) and never caches secret values.
package keyvault

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/mispsentinel/listener/config"
)

// Client fetches secrets from any number of vaults with one credential, keeping one
// azsecrets client per vault. It is safe for concurrent use.
type Client struct {
	cred azcore.TokenCredential
	opts *azsecrets.ClientOptions

	mu     sync.Mutex
	vaults map[string]*azsecrets.Client
}

// New returns a Client authenticating with cred. opts may be nil.
func New(cred azcore.TokenCredential, opts *azsecrets.ClientOptions) *Client {
	return &Client{cred: cred, opts: opts, vaults: map[string]*azsecrets.Client{}}
}

// NewDefault returns a Client using azidentity's DefaultAzureCredential (environment,
// workload identity, managed identity, then developer tools; set AZURE_TOKEN_CREDENTIALS=prod
// to keep only the first three), signing in at the Entra authority of the vaults' cloud
// (config.Config.KeyVaultCloud).
func NewDefault(c config.KeyVaultCloud) (*Client, error) {
	return newDefault(c, nil)
}

// newDefault is NewDefault with an HTTP transport for the credential (tests).
func newDefault(c config.KeyVaultCloud, transport policy.Transporter) (*Client, error) {
	cred, err := azidentity.NewDefaultAzureCredential(credentialOptions(c, transport))
	if err != nil {
		return nil, fmt.Errorf("create default Azure credential for Key Vault (%s cloud): %w", c.Cloud, err)
	}
	return New(cred, nil), nil
}

// credentialOptions are the DefaultAzureCredential options of a cloud.
func credentialOptions(c config.KeyVaultCloud, transport policy.Transporter) *azidentity.DefaultAzureCredentialOptions {
	return &azidentity.DefaultAzureCredentialOptions{ClientOptions: azcore.ClientOptions{
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: c.AuthorityHost},
		Transport: transport,
	}}
}

// GetSecret returns the value of secret name at version ("" = latest) in the vault at
// vaultURL.
func (c *Client) GetSecret(ctx context.Context, vaultURL, name, version string) (string, error) {
	vault, err := c.vault(vaultURL)
	if err != nil {
		return "", err
	}
	resp, err := vault.GetSecret(ctx, name, version, nil)
	if err != nil {
		return "", fmt.Errorf("get secret %s: %w", name, err)
	}
	if resp.Value == nil {
		return "", errors.New("get secret " + name + ": the response has no value")
	}
	return *resp.Value, nil
}

func (c *Client) vault(vaultURL string) (*azsecrets.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.vaults[vaultURL]; ok {
		return v, nil
	}
	v, err := azsecrets.NewClient(vaultURL, c.cred, c.opts)
	if err != nil {
		return nil, fmt.Errorf("create Key Vault client for %s: %w", vaultURL, err)
	}
	c.vaults[vaultURL] = v
	return v, nil
}
