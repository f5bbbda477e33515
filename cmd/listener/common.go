package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/config/keyvault"
	"github.com/mispsentinel/listener/internal/cli"
)

// configFlag adds -c/--config, the configuration file every daemon-facing command reads.
func configFlag(cmd *cobra.Command) *string {
	return cmd.Flags().StringP("config", "c", "", "configuration `FILE` (YAML)")
}

// exitWith adapts a command body that prints its own errors and returns an exit code.
func exitWith(code int) error { return cli.Exit(code) }

// writeJSON writes v as the indented JSON document of a command's --json output.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// loadConfig loads and validates the configuration file; with resolve it also fetches every
// secret reference (environment, files, Key Vault).
func loadConfig(ctx context.Context, path string, resolve bool) (*config.Config, error) {
	if path == "" {
		return nil, errors.New("no configuration file: pass -c config.yaml")
	}
	cfg, err := config.Load(path, os.Environ())
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config %s:\n%w", path, err)
	}
	if resolve {
		if err := cfg.Resolve(ctx, config.Resolver{KeyVault: newLazyKeyVault(cfg)}); err != nil {
			return nil, fmt.Errorf("config %s: resolve secrets:\n%w", path, err)
		}
	}
	return cfg, nil
}

// lazyKeyVault creates the Key Vault client (DefaultAzureCredential, in the vaults' cloud) only
// when a keyvault:// reference is resolved, so configurations without one never touch Azure.
type lazyKeyVault struct {
	cloud  config.KeyVaultCloud
	cerr   error
	once   sync.Once
	client *keyvault.Client
	err    error
}

// newResolver returns the resolver of secret references a daemon refreshes failing sinks'
// secrets with: the process's environment and files, and Key Vault in the vaults' cloud.
func newResolver(cfg *config.Config) config.Resolver {
	kv := newLazyKeyVault(cfg)
	return config.Resolver{KeyVault: kv, VaultSuffix: kv.cloud.VaultSuffix}
}

// newLazyKeyVault returns the Key Vault client of cfg's cloud (config.Config.KeyVaultCloud).
func newLazyKeyVault(cfg *config.Config) *lazyKeyVault {
	c, err := cfg.KeyVaultCloud()
	return &lazyKeyVault{cloud: c, cerr: err}
}

func (l *lazyKeyVault) GetSecret(ctx context.Context, vaultURL, name, version string) (string, error) {
	if l.cerr != nil {
		return "", fmt.Errorf("key vault client: %w", l.cerr)
	}
	l.once.Do(func() { l.client, l.err = keyvault.NewDefault(l.cloud) })
	if l.err != nil {
		return "", fmt.Errorf("key vault client: %w", l.err)
	}
	return l.client.GetSecret(ctx, vaultURL, name, version)
}

// logTimestamp is the time format of every log line: RFC 3339 in UTC offset form with
// milliseconds, so lines from one second can be ordered and matched with Microsoft's and
// MISP's own logs.
const logTimestamp = "2006-01-02T15:04:05.000Z07:00"

// newLogger returns a logrus logger configured by the log section.
func newLogger(c config.Log, out io.Writer) (*logrus.Logger, error) {
	log := logrus.New()
	log.SetOutput(out)
	level, err := logrus.ParseLevel(c.Level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	log.SetLevel(level)
	if c.Format == "text" {
		log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, TimestampFormat: logTimestamp})
	} else {
		log.SetFormatter(&logrus.JSONFormatter{TimestampFormat: logTimestamp})
	}
	return log, nil
}
