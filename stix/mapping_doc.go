package stix

import (
	"fmt"
	"sort"
	"strings"
)

// sampleValue returns a valid example value for a MISP type, used to render the type table.
func sampleValue(typ string, spec typeSpec) string {
	hash := func(t string) string {
		if n, ok := hexLengths[t]; ok {
			return strings.Repeat("0123456789abcdef", 8)[:n]
		}
		switch t {
		case "ssdeep", "impfuzzy":
			return "96:QRWkwoBevsL0JsIQ3pq1ACBu0z3i5ViJsL4:QRWkwoXcQ3pq1AC00jqVisL4"
		}
		return "015076656d1d1bz1"
	}
	switch spec.kind {
	case kindHash, kindX509:
		return hash(typ)
	case kindFilenameHash:
		return "evil.exe|" + hash(strings.TrimPrefix(typ, "filename|"))
	case kindMalwareSample:
		return "evil.exe|" + hash("md5")
	case kindIP:
		return "198.51.100.7"
	case kindIPPort:
		return "198.51.100.7|443"
	case kindDomainIP:
		return "example.com|198.51.100.7"
	case kindHostnamePort:
		return "www.example.com|443"
	case kindRegkey:
		return `HKLM\Software\Run`
	case kindRegkeyValue:
		return `HKLM\Software\Run|C:\evil.exe`
	case kindGithubUser:
		return "octocat"
	case kindAS:
		return "AS64500"
	case kindPatternLang:
		return "<rule>"
	case kindAttachment:
		return "invoice.pdf"
	}
	samples := map[string]string{
		"domain": "example.com", "hostname": "www.example.com", "url": "https://example.com/a", "link": "https://example.com/a",
		"uri": "/a/b.php", "email": "a@example.com", "email-src": "a@example.com", "email-dst": "a@example.com",
		"email-reply-to": "a@example.com", "email-subject": "Invoice", "email-body": "Hello", "email-header": "Received: x",
		"email-x-mailer": "Mailer 1.0", "email-message-id": "<1@example.com>", "email-attachment": "invoice.pdf",
		"filename": "evil.exe", "size-in-bytes": "1234", "mutex": "Global\\m", "mac-address": "aa:bb:cc:dd:ee:ff",
		"port": "443", "http-method": "POST", "user-agent": "Agent/1.0",
	}
	return samples[typ]
}

// MappingTable renders the type table of docs/MAPPING.md from the code: every MISP type that
// can yield an indicator, its observable type (the key of DaysToExpireByType) and the pattern
// each profile writes for a sample value.
func MappingTable() string {
	var b strings.Builder
	b.WriteString("| MISP type | observable type | sentinel profile | misp-stix profile |\n")
	b.WriteString("|---|---|---|---|\n")
	for _, typ := range ExportedTypes() {
		spec := typeTable[typ]
		v := sampleValue(typ, spec)
		render := func(p Profile) string { return renderPatterns(spec, typ, v, p, compositeMode(spec, typ, p, nil)) }
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", strings.ReplaceAll(typ, "|", `\|`), spec.observable, render(ProfileSentinel), render(ProfileMISPSTIX))
	}
	return b.String()
}

// CompositeTable renders the composite table of docs/MAPPING.md from the code: every
// composite MISP type (CompositeTypes) and the patterns each Composite mode writes for a
// sample value under the sentinel profile.
func CompositeTable() string {
	var b strings.Builder
	b.WriteString("| MISP type | `all` | `first` | `compound` |\n")
	b.WriteString("|---|---|---|---|\n")
	for _, typ := range CompositeTypes() {
		spec := typeTable[typ]
		v := sampleValue(typ, spec)
		fmt.Fprintf(&b, "| `%s` |", strings.ReplaceAll(typ, "|", `\|`))
		for _, m := range CompositeModes {
			fmt.Fprintf(&b, " %s |", renderPatterns(spec, typ, v, ProfileSentinel, m))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// renderPatterns returns the patterns an attribute of type typ with value v yields, as
// Markdown code spans (long sample hashes shown as <hash>).
func renderPatterns(spec typeSpec, typ, v string, p Profile, mode Composite) string {
	comps, _, err := buildComponents(spec, typ, v, "", p, mode)
	if err != nil {
		return "error: " + err.Error()
	}
	parts := make([]string, len(comps))
	for i, c := range comps {
		pattern := c.pattern
		if len(v) >= 32 && !strings.Contains(v, ":") {
			// Long hex sample hashes: show a placeholder instead.
			_, h, found := strings.Cut(v, "|")
			if !found {
				h = v
			}
			pattern = strings.ReplaceAll(pattern, h, "<hash>")
		}
		parts[i] = "`" + strings.ReplaceAll(pattern, "|", `\|`) + "`"
		if c.patternType != "stix" {
			parts[i] += " (" + c.patternType + ")"
		}
	}
	return strings.Join(parts, "<br>")
}

// GalaxyTable renders the galaxy table of docs/MAPPING.md from the code: every galaxy type
// misp-stix converts, the STIX type it becomes here (or that it stays a tag), and the
// context setting that exports it.
func GalaxyTable() string {
	exported, other := ContextGalaxyTypes()
	type row struct{ galaxy, ours, mode, mispStix string }
	var rows []row
	for g, typ := range exported {
		mode, mispStix := "all", typ
		if typ == "attack-pattern" {
			mode = "attack-patterns, all"
		}
		if strings.Contains(g, "intrusion-set") {
			mispStix = "intrusion-set"
		}
		rows = append(rows, row{g, "`" + typ + "`", mode, mispStix})
	}
	for g, typ := range other {
		rows = append(rows, row{g, "tag on the indicators (`unsupported_galaxy`)", "-", typ})
	}
	sort.Slice(rows, func(i, j int) bool {
		if (rows[i].mode == "-") != (rows[j].mode == "-") {
			return rows[j].mode == "-"
		}
		return rows[i].galaxy < rows[j].galaxy
	})
	var b strings.Builder
	b.WriteString("| MISP galaxy type | exported as | with `context` | misp-stix emits |\n|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| `%s` | %s | %s | `%s` |\n", r.galaxy, r.ours, r.mode, r.mispStix)
	}
	return b.String()
}
