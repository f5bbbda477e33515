package stix

import (
	"fmt"
	"strings"
)

// component is one indicator to build from an attribute: most attributes give one; composite
// attributes split by the sentinel profile give one per matchable part.
type component struct {
	// name identifies the part within a split attribute ("domain", "ip"); "" when the
	// attribute yields a single indicator.
	name        string
	pattern     string
	patternType string
	observable  string
	// context is a part of the value dropped from the pattern but worth showing in the
	// description ("port 443"), "" when none.
	context string
	// fileName is the file name dropped from a filename|<hash> pattern; it goes into the
	// indicator's name.
	fileName string
}

// componentError is a part of a split attribute that could not be exported.
type componentError struct {
	name string
	err  error
}

// escapeValue escapes a string for a STIX pattern literal: backslash first, then the single
// quote. Nothing else needs escaping inside '...', so no value can end the literal early.
func escapeValue(v string) string {
	if !strings.ContainsAny(v, `\'`) {
		return v
	}
	var b strings.Builder
	b.Grow(len(v) + 8)
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '\\':
			b.WriteString(`\\`)
		case '\'':
			b.WriteString(`\'`)
		default:
			b.WriteByte(v[i])
		}
	}
	return b.String()
}

// escapeRegistry escapes a registry key or value: escapeValue, then misp-stix's % rule
// (a % is preceded by two backslashes unless the text already has one such %).
func escapeRegistry(v string) string {
	v = strings.TrimSpace(escapeValue(v))
	if !strings.Contains(v, "%") || strings.Contains(v, `\\%`) {
		return v
	}
	if strings.Contains(v, `\%`) {
		return strings.ReplaceAll(v, `\%`, `\\%`)
	}
	return strings.ReplaceAll(v, "%", `\\%`)
}

func comparison(path, value string) string {
	return path + " = '" + escapeValue(value) + "'"
}

func single(path, value string) string {
	return "[" + comparison(path, value) + "]"
}

func ipObservable(ip string) string {
	if isIPv6(ip) {
		return "ipv6-addr"
	}
	return "ipv4-addr"
}

// networkTrafficRef is misp-stix's ip-src/ip-dst comparison pair.
func networkTrafficRef(dir, ip string) string {
	return "network-traffic:" + dir + "_ref.type = '" + ipObservable(ip) + "' AND network-traffic:" + dir + "_ref.value = '" + escapeValue(ip) + "'"
}

// buildComponents normalises the value of one attribute of type typ and builds its
// indicator patterns for profile. err is set when nothing can be exported; skipped lists the
// parts of a split attribute that could not be exported while others could.
func buildComponents(spec typeSpec, typ, value, data string, profile Profile) (comps []component, skipped []componentError, err error) {
	value, err = prepare(value)
	if err != nil {
		return nil, nil, err
	}
	one := func(pattern, observable string) ([]component, []componentError, error) {
		return []component{{pattern: pattern, patternType: "stix", observable: observable}}, nil, nil
	}
	sentinel := profile != ProfileMISPSTIX

	switch spec.kind {
	case kindSimple:
		v, err := spec.norm(value)
		if err != nil {
			return nil, nil, err
		}
		return one(single(spec.path, v), spec.observable)

	case kindHash:
		v, err := spec.norm(value)
		if err != nil {
			return nil, nil, err
		}
		return one(single("file:hashes."+spec.path, v), "file")

	case kindX509:
		v, err := spec.norm(value)
		if err != nil {
			return nil, nil, err
		}
		return one(single("x509-certificate:hashes."+spec.path, v), "x509-certificate")

	case kindIP:
		ip, err := normIP(value)
		if err != nil {
			return nil, nil, err
		}
		if sentinel {
			return one(single(ipObservable(ip)+":value", ip), ipObservable(ip))
		}
		return one("["+networkTrafficRef(spec.path, ip)+"]", ipObservable(ip))

	case kindIPPort:
		ipPart, port, err := splitIPPort(value)
		if err != nil {
			return nil, nil, err
		}
		ip, err := normIP(ipPart)
		if err != nil {
			return nil, nil, err
		}
		if port, err = normPort(port); err != nil {
			return nil, nil, err
		}
		if sentinel {
			c := component{pattern: single(ipObservable(ip)+":value", ip), patternType: "stix", observable: ipObservable(ip), context: "port " + port}
			return []component{c}, nil, nil
		}
		return one("["+networkTrafficRef(spec.path, ip)+" AND "+comparison("network-traffic:"+spec.path+"_port", port)+"]", ipObservable(ip))

	case kindDomainIP:
		d, ipPart, err := splitComposite(value)
		if err != nil {
			return nil, nil, err
		}
		domain, derr := normDomain(d)
		ip, ierr := normIP(ipPart)
		if !sentinel {
			if derr != nil {
				return nil, nil, derr
			}
			if ierr != nil {
				return nil, nil, ierr
			}
			return one("["+comparison("domain-name:value", domain)+" AND "+comparison("domain-name:resolves_to_refs[*].value", ip)+"]", "domain-name")
		}
		if derr == nil {
			comps = append(comps, component{name: "domain", pattern: single("domain-name:value", domain), patternType: "stix", observable: "domain-name", context: "resolves to " + ip})
		} else {
			skipped = append(skipped, componentError{"domain", derr})
		}
		if ierr == nil {
			comps = append(comps, component{name: "ip", pattern: single(ipObservable(ip)+":value", ip), patternType: "stix", observable: ipObservable(ip), context: "resolved from " + domain})
		} else {
			skipped = append(skipped, componentError{"ip", ierr})
		}
		if len(comps) == 0 {
			return nil, nil, fmt.Errorf("domain: %v; ip: %v", derr, ierr)
		}
		return comps, skipped, nil

	case kindHostnamePort:
		h, port, err := splitHostPort(value)
		if err != nil {
			return nil, nil, err
		}
		host, err := normHostname(h)
		if err != nil {
			return nil, nil, err
		}
		if port, err = normPort(port); err != nil {
			return nil, nil, err
		}
		if sentinel {
			c := component{pattern: single("domain-name:value", host), patternType: "stix", observable: "domain-name", context: "port " + port}
			return []component{c}, nil, nil
		}
		return one("["+comparison("domain-name:value", host)+" AND "+comparison("network-traffic:dst_port", port)+"]", "domain-name")

	case kindFilenameHash, kindMalwareSample:
		if spec.kind == kindMalwareSample && !strings.ContainsAny(value, "|_") {
			// A sample without its hash: misp-stix falls back to the file name.
			name, err := normNoNewline(value)
			if err != nil {
				return nil, nil, err
			}
			return one(single("file:name", name), "file")
		}
		f, h, err := splitComposite(value)
		if err != nil {
			return nil, nil, err
		}
		name, err := normNoNewline(f)
		if err != nil {
			return nil, nil, err
		}
		hash, err := spec.norm(h)
		if err != nil {
			return nil, nil, err
		}
		if sentinel {
			c := component{pattern: single("file:hashes."+spec.path, hash), patternType: "stix", observable: "file", context: "file name " + name, fileName: name}
			return []component{c}, nil, nil
		}
		if spec.kind == kindMalwareSample && data != "" {
			data, isZip := normBase64(data)
			if !isZip {
				// PyMISP drops the name and hash of a sample that is not a MISP zip.
				return one("["+comparison("file:content_ref.payload_bin", data)+" AND file:content_ref.mime_type = 'application/zip' AND "+
					"file:content_ref.encryption_algorithm = 'mime-type-indicated' AND file:content_ref.decryption_key = 'infected']", "file")
			}
			return one("["+comparison("file:content_ref.payload_bin", data)+" AND "+comparison("file:name", name)+" AND "+
				comparison("file:hashes.MD5", hash)+" AND file:content_ref.mime_type = 'application/zip' AND "+
				"file:content_ref.encryption_algorithm = 'mime-type-indicated' AND file:content_ref.decryption_key = 'infected']", "file")
		}
		return one("["+comparison("file:name", name)+" AND "+comparison("file:hashes."+spec.path, hash)+"]", "file")

	case kindAttachment:
		name, err := normNoNewline(value)
		if err != nil {
			return nil, nil, err
		}
		if !sentinel && data != "" {
			data, _ = normBase64(data)
			return one("["+comparison("file:name", name)+" AND "+comparison("file:content_ref.payload_bin", data)+"]", "file")
		}
		return one(single("file:name", name), "file")

	case kindRegkey:
		key, err := normNoNewline(value)
		if err != nil {
			return nil, nil, err
		}
		return one("[windows-registry-key:key = '"+escapeRegistry(key)+"']", "windows-registry-key")

	case kindRegkeyValue:
		if !strings.ContainsAny(value, "|_") {
			// A key without a value: misp-stix exports the key alone.
			key, err := normNoNewline(value)
			if err != nil {
				return nil, nil, err
			}
			return one("[windows-registry-key:key = '"+escapeRegistry(key)+"']", "windows-registry-key")
		}
		k, d, err := splitComposite(value)
		if err != nil {
			return nil, nil, err
		}
		if _, err := normNoNewline(k); err != nil {
			return nil, nil, err
		}
		return one("[windows-registry-key:key = '"+escapeRegistry(k)+"' AND windows-registry-key:values.data = '"+escapeRegistry(d)+"']", "windows-registry-key")

	case kindGithubUser:
		return one("[user-account:account_type = 'github' AND "+comparison("user-account:account_login", value)+"]", "user-account")

	case kindAS:
		n, err := normAS(value)
		if err != nil {
			return nil, nil, err
		}
		return one(single("autonomous-system:number", n), "autonomous-system")

	case kindPatternLang:
		pattern := value
		if !sentinel {
			pattern = "[" + value + "]"
		}
		return []component{{pattern: pattern, patternType: typ, observable: typ}}, nil, nil
	}
	return nil, nil, fmt.Errorf("type %s has no pattern rule", typ)
}
