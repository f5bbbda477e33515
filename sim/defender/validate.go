package defender

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

var (
	types      = []string{"FileSha1", "FileSha256", "FileMd5", "CertificateThumbprint", "IpAddress", "DomainName", "Url"}
	actions    = []string{"Warn", "Block", "Audit", "Alert", "AlertAndBlock", "BlockAndRemediate", "Allowed"}
	severities = []string{"Informational", "Low", "Medium", "High"}
	hexDigits  = regexp.MustCompile(`^[0-9a-fA-F]+$`)
	domainRe   = regexp.MustCompile(`^(?i:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)(?:\.(?i:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?))*\.?$`)
)

// validate checks one submitted indicator as spec §13.2 describes and returns it, or the
// failure reason.
func (s *Server) validate(fields map[string]json.RawMessage, now time.Time) (Indicator, string) {
	var ind Indicator
	str := func(name string, required bool) (string, string) {
		raw, ok := fields[name]
		if !ok || string(raw) == "null" {
			if required {
				return "", fmt.Sprintf("MissingRequiredParameter: Parameter %s is missing.", name)
			}
			return "", ""
		}
		var v string
		if json.Unmarshal(raw, &v) != nil {
			return "", fmt.Sprintf("InvalidInput: Invalid input %s.", name)
		}
		if required && strings.TrimSpace(v) == "" {
			return "", fmt.Sprintf("InvalidInput: Recieved an empty %s.", name)
		}
		return v, ""
	}
	var problem string
	for _, f := range []struct {
		name     string
		dst      *string
		required bool
	}{
		{"indicatorValue", &ind.IndicatorValue, true}, {"indicatorType", &ind.IndicatorType, true},
		{"action", &ind.Action, true}, {"title", &ind.Title, true}, {"description", &ind.Description, true},
		{"expirationTime", &ind.ExpirationTime, false}, {"severity", &ind.Severity, false},
		{"application", &ind.Application, false}, {"recommendedActions", &ind.RecommendedActions, false},
		{"externalId", &ind.ExternalID, false},
	} {
		if *f.dst, problem = str(f.name, f.required); problem != "" {
			return ind, problem
		}
	}
	if raw, ok := fields["generateAlert"]; ok && json.Unmarshal(raw, &ind.GenerateAlert) != nil {
		return ind, "InvalidInput: generateAlert must be a boolean."
	}
	if raw, ok := fields["rbacGroupNames"]; ok && string(raw) != "null" && json.Unmarshal(raw, &ind.RbacGroupNames) != nil {
		return ind, "InvalidInput: rbacGroupNames must be a list of strings."
	}
	if !slices.Contains(types, ind.IndicatorType) {
		return ind, fmt.Sprintf("InvalidInput: Invalid input indicatorType %s.", ind.IndicatorType)
	}
	if !slices.Contains(actions, ind.Action) {
		return ind, fmt.Sprintf("InvalidInput: Invalid input action %s.", ind.Action)
	}
	if ind.Severity != "" && !slices.Contains(severities, ind.Severity) {
		return ind, fmt.Sprintf("InvalidInput: Invalid input severity %s.", ind.Severity)
	}
	if ind.Action == "Audit" && !ind.GenerateAlert {
		return ind, "InvalidInput: Audit requires generateAlert to be true."
	}
	network := ind.IndicatorType == "IpAddress" || ind.IndicatorType == "DomainName" || ind.IndicatorType == "Url"
	if network && (ind.Action == "BlockAndRemediate" || ind.Action == "AlertAndBlock") {
		return ind, fmt.Sprintf("InvalidInput: Network indicators do not support the action type %s.", ind.Action)
	}
	if ind.IndicatorType == "CertificateThumbprint" && !slices.Contains([]string{"Allowed", "BlockAndRemediate", "Audit", "Alert", "AlertAndBlock"}, ind.Action) {
		return ind, fmt.Sprintf("InvalidInput: Certificate indicators do not support the action type %s.", ind.Action)
	}
	if ind.ExpirationTime != "" {
		t, err := time.Parse(time.RFC3339, ind.ExpirationTime)
		if err != nil {
			return ind, fmt.Sprintf("InvalidInput: Invalid input expirationTime %s.", ind.ExpirationTime)
		}
		if !t.After(now) {
			return ind, "InvalidInput: expirationTime is in the past."
		}
		ind.expires = t
	}
	if p := s.checkValue(ind.IndicatorType, ind.IndicatorValue); p != "" {
		return ind, p
	}
	return ind, ""
}

// checkValue applies the value rules of spec §5.
func (s *Server) checkValue(typ, v string) string {
	if v != strings.TrimSpace(v) {
		return "InvalidInput: indicatorValue ends with whitespace."
	}
	switch typ {
	case "FileSha1", "FileSha256", "FileMd5", "CertificateThumbprint":
		want := map[string][]int{"FileSha1": {40}, "FileSha256": {64}, "FileMd5": {32}, "CertificateThumbprint": {40, 64}}[typ]
		if !hexDigits.MatchString(v) || !slices.Contains(want, len(v)) {
			return fmt.Sprintf("InvalidHashValue: Hash value %s is invalid.", v)
		}
	case "IpAddress":
		if strings.ContainsAny(v, "/-") {
			return fmt.Sprintf("InvalidIpAddress: IP address %s is invalid. CIDR notation and ranges aren't supported.", v)
		}
		ip, err := netip.ParseAddr(v)
		if err != nil || ip.Zone() != "" {
			return fmt.Sprintf("InvalidIpAddress: IP address %s is invalid.", v)
		}
		if !s.opts.AllowInternalIPs && (ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() || ip.IsMulticast()) {
			return fmt.Sprintf("InvalidIpAddress: IP address %s is internal; only external IPs can be added.", v)
		}
	case "DomainName":
		if strings.ContainsAny(v, "/:*") || !domainRe.MatchString(v) {
			return fmt.Sprintf("InvalidDomainName: Domain name %s is invalid.", v)
		}
	case "Url":
		if strings.ContainsAny(v, " \t\r\n") {
			return fmt.Sprintf("InvalidUrl: URL %s is invalid.", v)
		}
		target := v
		if !strings.Contains(v, "://") {
			target = "http://" + v // lenient: a URL without scheme is accepted
		}
		u, err := url.Parse(target)
		if err != nil || u.Host == "" {
			return fmt.Sprintf("InvalidUrl: URL %s is invalid.", v)
		}
	}
	return ""
}
