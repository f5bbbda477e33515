package config

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// EnvPrefix begins every environment override.
//
// The scheme: every leaf key has one variable, LISTENER_ followed by its path in upper case
// with "." and list indices turned into "_": misp.url is LISTENER_MISP_URL,
// zeromq.reconnect_backoff.max is LISTENER_ZEROMQ_RECONNECT_BACKOFF_MAX, and
// sinks[0].identity.client_secret is LISTENER_SINKS_0_IDENTITY_CLIENT_SECRET (sinks must
// exist in the file; the environment cannot add one). tenants is LISTENER_TENANTS. Strings
// and secrets are taken verbatim; every other value is parsed as YAML (so JSON works too):
// numbers, true/false, durations such as 90s, lists such as ["a","b"] and maps such as
// {"published": 1}. A list or map replaces the file's value. An empty variable counts as
// unset. A LISTENER_ variable that names a configuration section but no key is an error;
// others (such as Kubernetes' LISTENER_SERVICE_HOST) are ignored.
const EnvPrefix = "LISTENER_"

// EnvName returns the environment variable that overrides the key at path (as written in
// FieldError paths, e.g. sinks[0].workspace_id).
func EnvName(path string) string {
	return EnvPrefix + strings.ToUpper(envPath.Replace(path))
}

// envPath turns a key path into the tail of its variable name (a Replacer is safe for
// concurrent use, and building one costs more than using it).
var envPath = strings.NewReplacer(".", "_", "[", "_", "]", "")

// environMap turns environ into a map; with onlyOverrides, only names beginning with
// EnvPrefix.
func environMap(environ []string, onlyOverrides bool) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && (!onlyOverrides || strings.HasPrefix(k, EnvPrefix)) {
			m[k] = v
		}
	}
	return m
}

// applyEnv sets every leaf under v whose path satisfies want from its environment variable,
// deleting the variables it uses from env.
func applyEnv(v reflect.Value, path string, env map[string]string, want func(string) bool, errs *Errors) {
	t := v.Type()
	if t.Kind() == reflect.Struct && t != secretType {
		for i := 0; i < t.NumField(); i++ {
			key := yamlKey(t.Field(i))
			if key == "" {
				continue
			}
			applyEnv(v.Field(i), joinPath(path, key), env, want, errs)
		}
		return
	}
	if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct {
		for i := 0; i < v.Len(); i++ {
			applyEnv(v.Index(i), fmt.Sprintf("%s[%d]", path, i), env, want, errs)
		}
		return
	}
	if !want(path) {
		return
	}
	name := EnvName(path)
	text, ok := env[name]
	if !ok {
		return
	}
	delete(env, name)
	if text == "" {
		return
	}
	switch {
	case t == secretType:
		v.Set(reflect.ValueOf(ParseSecret(text)))
	case t.Kind() == reflect.String:
		v.SetString(text)
	default:
		fresh := reflect.New(t)
		if err := yaml.Unmarshal([]byte(text), fresh.Interface()); err != nil {
			errs.add(name, "cannot set %s: %s", path, strings.TrimPrefix(oneLine(err.Error()), "yaml: unmarshal errors: line 1: "))
			return
		}
		v.Set(fresh.Elem())
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// envSections are the prefixes of variables that must match a key.
var envSections = regexp.MustCompile(`^LISTENER_(MISP|ZEROMQ|WEBHOOK|CONVERSION|SINKS|STORE|RECONCILE|PUSHER|KEY_VAULT|VERIFY|METRICS|CONTROL|LOG)_`)

// checkUnknownEnv reports the variables applyEnv did not use that look like overrides.
func checkUnknownEnv(env map[string]string, errs *Errors) {
	var names []string
	for name := range env {
		if envSections.MatchString(name) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		if strings.HasPrefix(name, "LISTENER_SINKS_") {
			errs.add(name, "no such key; a sink can only be overridden when the file defines it (sinks are counted from 0)")
			continue
		}
		errs.add(name, "no such key")
	}
}
