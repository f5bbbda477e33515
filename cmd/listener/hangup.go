package main

import (
	"context"
	"os"
	"reflect"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/mispsentinel/listener/config"
)

// reloadOnHangup serves SIGHUP for `run` until ctx ends: it reads the configuration file again,
// applies the new log level and logs which other changed settings take effect only after a
// restart (the daemon reads them, secrets included, once at start). A configuration that no
// longer loads is logged and changes nothing.
func reloadOnHangup(ctx context.Context, hup <-chan os.Signal, path string, running *config.Config, log *logrus.Logger) {
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
		if restart := changedSettings(running, next); len(restart) > 0 {
			fields["need_restart"] = restart
		}
		log.WithFields(fields).Info("SIGHUP: configuration re-read")
	}
}

// changedSettings names the top-level configuration sections that differ between a and b,
// apart from log.level (which SIGHUP applies).
func changedSettings(a, b *config.Config) []string {
	ca, cb := *a, *b
	ca.Log.Level, cb.Log.Level = "", ""
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
