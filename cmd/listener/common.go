package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/config/keyvault"
)

// newFlagSet returns a flag set that writes its usage to stderr and never exits.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("listener "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args and reports the exit code to return when parsing did not succeed.
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	return 0, true
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
		if err := cfg.Resolve(ctx, config.Resolver{KeyVault: &lazyKeyVault{}}); err != nil {
			return nil, fmt.Errorf("config %s: resolve secrets:\n%w", path, err)
		}
	}
	return cfg, nil
}

// lazyKeyVault creates the Key Vault client (DefaultAzureCredential) only when a keyvault://
// reference is resolved, so configurations without one never touch Azure.
type lazyKeyVault struct {
	once   sync.Once
	client *keyvault.Client
	err    error
}

func (l *lazyKeyVault) GetSecret(ctx context.Context, vaultURL, name, version string) (string, error) {
	l.once.Do(func() { l.client, l.err = keyvault.NewDefault() })
	if l.err != nil {
		return "", fmt.Errorf("key vault client: %w", l.err)
	}
	return l.client.GetSecret(ctx, vaultURL, name, version)
}

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
		log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	} else {
		log.SetFormatter(&logrus.JSONFormatter{})
	}
	return log, nil
}
