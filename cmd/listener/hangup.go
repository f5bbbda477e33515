package main

import (
	"context"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/pusher"
)

// secretRefresher re-reads the sinks' secrets (*daemon.Daemon).
type secretRefresher interface {
	RefreshSecrets(ctx context.Context) (refreshed []string, err error)
}

// reloadOnHangup serves SIGHUP for `run` until ctx ends: it reads the configuration file again,
// applies the new log level, resolves every sink's identity secrets again (environment, file,
// Key Vault) so a rotated secret is used without a restart (a failing sink is retried at once),
// and logs which other changed settings take effect only after a restart. A configuration
// that no longer loads is logged and changes nothing.
func reloadOnHangup(ctx context.Context, hup <-chan os.Signal, path string, running *config.Config, log *logrus.Logger, secrets secretRefresher) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		next, err := loadConfig(ctx, path, true)
		if err != nil {
			log.WithError(err).Error("SIGHUP: configuration not reloaded; the daemon keeps running with the one it started with")
			continue
		}
		fields := logrus.Fields{"config": path}
		if level, err := logrus.ParseLevel(next.Log.Level); err == nil && level != log.GetLevel() {
			fields["log_level"] = level.String()
			log.SetLevel(level)
		}
		if secrets != nil {
			refreshed, err := secrets.RefreshSecrets(ctx)
			if len(refreshed) > 0 {
				fields["secrets_refreshed"] = refreshed
			}
			if err != nil {
				log.WithField("error", pusher.OneLine(err.Error())).Error("SIGHUP: a sink's secret could not be read again; it keeps the one it had")
			}
		}
		if restart := changedSettings(running, next); len(restart) > 0 {
			fields["need_restart"] = restart
		}
		log.WithFields(fields).Info("SIGHUP: configuration re-read")
	}
}

// changedSettings names the top-level configuration sections that differ between a and b,
// apart from log.level and the sinks' identity secrets (which SIGHUP applies). A rotated
// MISP key, webhook token or ZeroMQ password shows as its section: those need a restart.
func changedSettings(a, b *config.Config) []string {
	ca, cb := *a, *b
	ca.Log.Level, cb.Log.Level = "", ""
	ca.Sinks, cb.Sinks = withoutSecrets(a.Sinks), withoutSecrets(b.Sinks)
	va, vb := reflect.ValueOf(ca), reflect.ValueOf(cb)
	var changed []string
	for i := range va.NumField() {
		f := va.Type().Field(i)
		if !f.IsExported() || reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			name = f.Name
		}
		changed = append(changed, name)
	}
	return changed
}

// withoutSecrets returns a copy of sinks with the identity secrets SIGHUP re-reads blanked.
func withoutSecrets(sinks []config.Sink) []config.Sink {
	out := slices.Clone(sinks)
	for i := range out {
		out[i].Identity.ClientSecret, out[i].Identity.CertificatePassword = config.Secret{}, config.Secret{}
	}
	return out
}
