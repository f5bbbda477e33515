package config

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// tenantKeys are the keys of one element of misp2sentinel's Azure Function `tenants` JSON
// array (shared/spec/misp2sentinel-behaviour.md §1.8), case-sensitive as there.
var tenantKeys = []string{"tenantId", "id", "secret", "workspaceId"}

// expandTenants resolves the tenants secret, parses it and appends one sink per element,
// named after its workspace id. It returns Errors naming tenants[i].key for bad elements.
func (c *Config) expandTenants(ctx context.Context, r Resolver) error {
	if !c.Tenants.IsSet() || c.tenantsExpanded {
		return nil
	}
	if !c.Tenants.IsResolved() {
		value, err := r.resolve(ctx, c.Tenants)
		if err != nil {
			return Errors{{Path: "tenants", Msg: err.Error()}}
		}
		c.Tenants.value, c.Tenants.resolved = value, true
	}
	sinks, errs := parseTenants(c.Tenants.Value(), c.Conversion)
	if len(errs) > 0 {
		return errs
	}
	c.Sinks = append(c.Sinks, sinks...)
	c.tenantsExpanded = true
	return nil
}

// parseTenants turns the tenants JSON into sinks. Messages never quote secret values.
func parseTenants(text string, global Conversion) ([]Sink, Errors) {
	var errs Errors
	trimmed := strings.TrimSpace(text)
	switch {
	case strings.HasPrefix(trimmed, "@Microsoft.KeyVault("):
		errs.add("tenants", "is an unresolved App Service Key Vault reference; give keyvault://<vault>/<secret> instead")
		return nil, errs
	case strings.HasPrefix(trimmed, "{"):
		errs.add("tenants", "is a JSON object (the old dict format keyed by tenant id); write a JSON array of {\"tenantId\", \"id\", \"secret\", \"workspaceId\"} (see docs/MIGRATING.md)")
		return nil, errs
	case !strings.HasPrefix(trimmed, "["):
		errs.add("tenants", "must be a JSON array of {\"tenantId\", \"id\", \"secret\", \"workspaceId\"}")
		return nil, errs
	}
	var raw []json.RawMessage
	if err := json.Unmarshal([]byte(trimmed), &raw); err != nil {
		errs.add("tenants", "invalid JSON: %s", jsonErrorWithoutValue(err))
		return nil, errs
	}
	if len(raw) == 0 {
		errs.add("tenants", "the array is empty")
	}
	sinks := make([]Sink, 0, len(raw))
	for i, elem := range raw {
		path := fmt.Sprintf("tenants[%d]", i)
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(elem, &fields); err != nil {
			errs.add(path, "must be an object with the keys tenantId, id, secret and workspaceId")
			continue
		}
		values := map[string]string{}
		bad := false
		for _, key := range slices.Sorted(maps.Keys(fields)) {
			if !slices.Contains(tenantKeys, key) {
				errs.add(path, "unknown key %q (want tenantId, id, secret and workspaceId; keys are case-sensitive)", key)
				bad = true
			}
		}
		for _, key := range tenantKeys {
			raw, present := fields[key]
			var v string
			switch {
			case !present:
				errs.add(path+"."+key, "is required")
			case json.Unmarshal(raw, &v) != nil:
				errs.add(path+"."+key, "must be a string")
			case strings.TrimSpace(v) == "":
				errs.add(path+"."+key, "must not be empty")
			default:
				values[key] = strings.TrimSpace(v)
				continue
			}
			bad = true
		}
		if bad {
			continue
		}
		s := defaultSink()
		s.Name = strings.ToLower(values["workspaceId"])
		s.WorkspaceID = values["workspaceId"]
		s.Identity = Identity{
			Kind:         IdentityClientSecret,
			TenantID:     values["tenantId"],
			ClientID:     values["id"],
			ClientSecret: LiteralSecret(values["secret"]),
		}
		s.Conversion = cloneConversion(global)
		s.tenantElement = i + 1
		s.fillDerived()
		sinks = append(sinks, s)
	}
	return sinks, errs
}

// jsonErrorWithoutValue describes a JSON syntax error without echoing input (which may hold
// secrets).
func jsonErrorWithoutValue(err error) string {
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		return fmt.Sprintf("syntax error at byte %d", syntax.Offset)
	}
	return "not a JSON array of objects"
}

// tenantPath maps a sink key to the tenants JSON key it came from.
var tenantPath = map[string]string{
	"name":                   "workspaceId",
	"workspace_id":           "workspaceId",
	"identity.tenant_id":     "tenantId",
	"identity.client_id":     "id",
	"identity.client_secret": "secret",
}
