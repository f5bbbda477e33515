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

// single is the pattern comparing path with value.
func single(path, value string) string {
	return singleOn("", path, value)
}

// singleOn is single on the path prefix+path, built with one allocation (it runs for
// nearly every attribute).
func singleOn(prefix, path, value string) string {
	return "[" + prefix + path + " = '" + escapeValue(value) + "']"
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
// indicator patterns for profile with the builder of its kind; mode is how a composite type is
// exported (see compositeMode). err is set when nothing can be exported; skipped lists the
// parts of a split attribute that could not be exported while others could.
func buildComponents(spec typeSpec, typ, value, data string, profile Profile, mode Composite) (comps []component, skipped []componentError, err error) {
	value, err = prepare(value)
	if err != nil {
		return nil, nil, err
	}
	if int(spec.kind) < 0 || int(spec.kind) >= len(patternBuilders) || patternBuilders[spec.kind] == nil {
		return nil, nil, fmt.Errorf("type %s has no pattern rule", typ)
	}
	return patternBuilders[spec.kind](patternInput{spec: spec, typ: typ, value: value, data: data, sentinel: profile != ProfileMISPSTIX, composite: mode})
}

// compositeMode returns how attributes of type typ are exported under opts: the configured
// mode, else the profile's own (all for sentinel, compound for misp-stix). It is "" for a type
// that is not composite.
func compositeMode(spec typeSpec, typ string, profile Profile, configured map[string]Composite) Composite {
	if !spec.kind.isComposite() {
		return ""
	}
	if m, ok := configured[typ]; ok && m != "" {
		return m
	}
	if profile == ProfileMISPSTIX {
		return CompositeCompound
	}
	return CompositeAll
}

// patternInput is what a pattern builder knows of one attribute.
type patternInput struct {
	spec typeSpec
	typ  string
	// value is the attribute's value after prepare; data its data field (samples, attachments).
	value, data string
	// sentinel selects the sentinel profile: matchable parts only.
	sentinel bool
	// composite is how a composite type is exported ("" for other types).
	composite Composite
}

// patternBuilder builds the components of one kind of attribute (see buildComponents).
type patternBuilder func(in patternInput) ([]component, []componentError, error)

// patternBuilders holds the builder of each kind.
var patternBuilders = [...]patternBuilder{
	kindSimple:        buildSimple,
	kindHash:          buildHash,
	kindX509:          buildX509,
	kindIP:            buildIP,
	kindIPPort:        buildIPPort,
	kindDomainIP:      buildDomainIP,
	kindHostnamePort:  buildHostnamePort,
	kindFilenameHash:  buildFilenameHash,
	kindMalwareSample: buildFilenameHash,
	kindAttachment:    buildAttachment,
	kindRegkey:        buildRegkey,
	kindRegkeyValue:   buildRegkeyValue,
	kindGithubUser:    buildGithubUser,
	kindAS:            buildAS,
	kindPatternLang:   buildPatternLang,
}

// one returns the single STIX component of an attribute that yields one indicator.
func one(pattern, observable string) ([]component, []componentError, error) {
	return []component{{pattern: pattern, patternType: "stix", observable: observable}}, nil, nil
}

// oneWithContext is one with a part of the value the pattern drops but the description shows.
func oneWithContext(c component) ([]component, []componentError, error) {
	c.patternType = "stix"
	return []component{c}, nil, nil
}

// normalised returns in.value normalised by the type's normaliser and compared on path.
func normalised(in patternInput, prefix, path, observable string) ([]component, []componentError, error) {
	v, err := in.spec.norm(in.value)
	if err != nil {
		return nil, nil, err
	}
	return one(singleOn(prefix, path, v), observable)
}

func buildSimple(in patternInput) ([]component, []componentError, error) {
	return normalised(in, "", in.spec.path, in.spec.observable)
}

func buildHash(in patternInput) ([]component, []componentError, error) {
	return normalised(in, "file:hashes.", in.spec.path, "file")
}

func buildX509(in patternInput) ([]component, []componentError, error) {
	return normalised(in, "x509-certificate:hashes.", in.spec.path, "x509-certificate")
}

func buildIP(in patternInput) ([]component, []componentError, error) {
	ip, err := normIP(in.value)
	if err != nil {
		return nil, nil, err
	}
	if in.sentinel {
		return one(singleOn(ipObservable(ip), ":value", ip), ipObservable(ip))
	}
	return one("["+networkTrafficRef(in.spec.path, ip)+"]", ipObservable(ip))
}

func buildIPPort(in patternInput) ([]component, []componentError, error) {
	ipPart, port, err := splitIPPort(in.value)
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
	if in.composite != CompositeCompound {
		return oneWithContext(component{pattern: singleOn(ipObservable(ip), ":value", ip), observable: ipObservable(ip), context: "port " + port})
	}
	return one("["+networkTrafficRef(in.spec.path, ip)+" AND "+comparison("network-traffic:"+in.spec.path+"_port", port)+"]", ipObservable(ip))
}

// buildDomainIP exports domain|ip as one compound pattern, as the domain alone (first), or as
// one indicator per part (all), keeping the part that is valid when the other is not.
func buildDomainIP(in patternInput) (comps []component, skipped []componentError, err error) {
	d, ipPart, err := splitComposite(in.value)
	if err != nil {
		return nil, nil, err
	}
	domain, derr := normDomain(d)
	if in.composite == CompositeFirst {
		if derr != nil {
			return nil, nil, derr
		}
		ip := strings.TrimSpace(ipPart)
		if n, err := normIP(ip); err == nil {
			ip = n
		}
		return oneWithContext(component{pattern: single("domain-name:value", domain), observable: "domain-name", context: "resolves to " + ip})
	}
	ip, ierr := normIP(ipPart)
	if in.composite == CompositeCompound {
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
		comps = append(comps, component{name: "ip", pattern: singleOn(ipObservable(ip), ":value", ip), patternType: "stix", observable: ipObservable(ip), context: "resolved from " + domain})
	} else {
		skipped = append(skipped, componentError{"ip", ierr})
	}
	if len(comps) == 0 {
		return nil, nil, fmt.Errorf("domain: %v; ip: %v", derr, ierr)
	}
	return comps, skipped, nil
}

func buildHostnamePort(in patternInput) ([]component, []componentError, error) {
	h, port, err := splitHostPort(in.value)
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
	if in.composite != CompositeCompound {
		return oneWithContext(component{pattern: single("domain-name:value", host), observable: "domain-name", context: "port " + port})
	}
	return one("["+comparison("domain-name:value", host)+" AND "+comparison("network-traffic:dst_port", port)+"]", "domain-name")
}

// buildFilenameHash exports filename|<hash> and malware-sample (filename|md5 with an optional
// zipped sample in data): the hash with the file name beside it (all), the file name alone
// (first) or misp-stix's compound pattern.
func buildFilenameHash(in patternInput) ([]component, []componentError, error) {
	sample := in.spec.kind == kindMalwareSample
	if sample && !strings.ContainsAny(in.value, "|_") {
		// A sample without its hash: misp-stix falls back to the file name.
		name, err := normNoNewline(in.value)
		if err != nil {
			return nil, nil, err
		}
		return one(single("file:name", name), "file")
	}
	f, h, err := splitComposite(in.value)
	if err != nil {
		return nil, nil, err
	}
	name, err := normNoNewline(f)
	if err != nil {
		return nil, nil, err
	}
	if in.composite == CompositeFirst {
		return one(single("file:name", name), "file")
	}
	hash, err := in.spec.norm(h)
	if err != nil {
		return nil, nil, err
	}
	if in.composite == CompositeAll {
		return oneWithContext(component{pattern: singleOn("file:hashes.", in.spec.path, hash), observable: "file", context: "file name " + name, fileName: name})
	}
	if sample && in.data != "" {
		return one(samplePattern(in.data, name, hash), "file")
	}
	return one("["+comparison("file:name", name)+" AND "+comparison("file:hashes."+in.spec.path, hash)+"]", "file")
}

// samplePattern is misp-stix's pattern of a malware sample with its zipped content.
func samplePattern(data, name, hash string) string {
	const zip = "file:content_ref.mime_type = 'application/zip' AND " +
		"file:content_ref.encryption_algorithm = 'mime-type-indicated' AND file:content_ref.decryption_key = 'infected']"
	data, isZip := normBase64(data)
	if !isZip {
		// PyMISP drops the name and hash of a sample that is not a MISP zip.
		return "[" + comparison("file:content_ref.payload_bin", data) + " AND " + zip
	}
	return "[" + comparison("file:content_ref.payload_bin", data) + " AND " + comparison("file:name", name) + " AND " +
		comparison("file:hashes.MD5", hash) + " AND " + zip
}

func buildAttachment(in patternInput) ([]component, []componentError, error) {
	name, err := normNoNewline(in.value)
	if err != nil {
		return nil, nil, err
	}
	if !in.sentinel && in.data != "" {
		data, _ := normBase64(in.data)
		return one("["+comparison("file:name", name)+" AND "+comparison("file:content_ref.payload_bin", data)+"]", "file")
	}
	return one(single("file:name", name), "file")
}

func buildRegkey(in patternInput) ([]component, []componentError, error) {
	key, err := normNoNewline(in.value)
	if err != nil {
		return nil, nil, err
	}
	return one("[windows-registry-key:key = '"+escapeRegistry(key)+"']", "windows-registry-key")
}

func buildRegkeyValue(in patternInput) ([]component, []componentError, error) {
	if !strings.ContainsAny(in.value, "|_") {
		// A key without a value: misp-stix exports the key alone.
		return buildRegkey(in)
	}
	k, d, err := splitComposite(in.value)
	if err != nil {
		return nil, nil, err
	}
	if _, err := normNoNewline(k); err != nil {
		return nil, nil, err
	}
	return one("[windows-registry-key:key = '"+escapeRegistry(k)+"' AND windows-registry-key:values.data = '"+escapeRegistry(d)+"']", "windows-registry-key")
}

func buildGithubUser(in patternInput) ([]component, []componentError, error) {
	return one("[user-account:account_type = 'github' AND "+comparison("user-account:account_login", in.value)+"]", "user-account")
}

func buildAS(in patternInput) ([]component, []componentError, error) {
	n, err := normAS(in.value)
	if err != nil {
		return nil, nil, err
	}
	return one(single("autonomous-system:number", n), "autonomous-system")
}

// buildPatternLang passes a yara, sigma, snort or suricata rule through as a pattern of its own
// language (bracketed for misp-stix).
func buildPatternLang(in patternInput) ([]component, []componentError, error) {
	pattern := in.value
	if !in.sentinel {
		pattern = "[" + in.value + "]"
	}
	return []component{{pattern: pattern, patternType: in.typ, observable: in.typ}}, nil, nil
}
