package stix

import "sort"

// kind is how an attribute type becomes a pattern.
type kind int

const (
	kindSimple        kind = iota // one comparison on path
	kindHash                      // file:hashes.<name>
	kindX509                      // x509-certificate:hashes.<name>
	kindIP                        // ip-src / ip-dst
	kindIPPort                    // ip-src|port / ip-dst|port
	kindDomainIP                  // domain|ip
	kindHostnamePort              // hostname|port
	kindFilenameHash              // filename|<hash>
	kindMalwareSample             // filename|md5 with optional zipped sample
	kindAttachment                // file name with optional content
	kindRegkey                    // regkey
	kindRegkeyValue               // regkey|value
	kindGithubUser                // github-username
	kindAS                        // autonomous system number
	kindPatternLang               // yara, sigma, snort, suricata
)

// typeSpec is one row of the type table: how one MISP attribute type is exported.
type typeSpec struct {
	kind kind
	// path is the object path for kindSimple, the hash name for kindHash, kindX509 and
	// kindFilenameHash, and "src"/"dst" for kindIP and kindIPPort.
	path string
	// observable is the STIX observable type the indicator is about: the key of
	// Options.DaysToExpireByType.
	observable string
	// norm normalises and validates the whole value (composite types: see the kind).
	norm normaliser
}

// typeTable maps every exportable MISP attribute type to its spec. Types not listed are
// skipped with SkipUnsupportedType.
var typeTable = map[string]typeSpec{}

func addSimple(observable, path string, norm normaliser, types ...string) {
	for _, t := range types {
		typeTable[t] = typeSpec{kind: kindSimple, path: path, observable: observable, norm: norm}
	}
}

func init() {
	addSimple("domain-name", "domain-name:value", normDomain, "domain")
	addSimple("domain-name", "domain-name:value", normHostname, "hostname")
	addSimple("url", "url:value", normURL, "url", "link")
	addSimple("url", "url:value", normNoNewline, "uri")
	addSimple("email-addr", "email-addr:value", normEmailLower, "email")
	addSimple("email-addr", "email-message:from_ref.value", normEmailLower, "email-src")
	addSimple("email-addr", "email-message:to_refs[*].value", normEmailLower, "email-dst")
	addSimple("email-message", "email-message:subject", normText, "email-subject")
	addSimple("email-message", "email-message:body", normText, "email-body")
	addSimple("email-message", "email-message:received_lines", normText, "email-header")
	addSimple("email-message", "email-message:additional_header_fields.reply_to", normEmail, "email-reply-to")
	addSimple("email-message", "email-message:additional_header_fields.x_mailer", normText, "email-x-mailer")
	addSimple("email-message", "email-message:message_id", normText, "email-message-id")
	addSimple("email-message", "email-message:body_multipart[*].body_raw_ref.name", normNoNewline, "email-attachment")
	addSimple("file", "file:name", normNoNewline, "filename")
	addSimple("file", "file:size", normUint, "size-in-bytes")
	addSimple("mutex", "mutex:name", normText, "mutex")
	addSimple("mac-addr", "mac-addr:value", normMAC, "mac-address")
	addSimple("network-traffic", "network-traffic:dst_port", normPort, "port")
	addSimple("network-traffic", "network-traffic:extensions.'http-request-ext'.request_method", normUpper, "http-method")
	addSimple("network-traffic", "network-traffic:extensions.'http-request-ext'.request_header.'User-Agent'", normText, "user-agent")

	for misp, name := range hashNames {
		typeTable[misp] = typeSpec{kind: kindHash, path: name, observable: "file", norm: hashNormaliser(misp)}
		typeTable["filename|"+misp] = typeSpec{kind: kindFilenameHash, path: name, observable: "file", norm: hashNormaliser(misp)}
	}
	delete(typeTable, "filename|cdhash")   // not a MISP type
	delete(typeTable, "filename|telfhash") // not a MISP type
	delete(typeTable, "filename|impfuzzy") // PyMISP has no validator for it: always rejected
	typeTable["malware-sample"] = typeSpec{kind: kindMalwareSample, path: "MD5", observable: "file", norm: hashNormaliser("md5")}
	typeTable["attachment"] = typeSpec{kind: kindAttachment, observable: "file", norm: normNoNewline}
	for misp, name := range map[string]string{"x509-fingerprint-md5": "MD5", "x509-fingerprint-sha1": "'SHA-1'", "x509-fingerprint-sha256": "'SHA-256'"} {
		typeTable[misp] = typeSpec{kind: kindX509, path: name, observable: "x509-certificate", norm: hashNormaliser(misp)}
	}
	typeTable["ip-src"] = typeSpec{kind: kindIP, path: "src", observable: "ipv4-addr", norm: normIP}
	typeTable["ip-dst"] = typeSpec{kind: kindIP, path: "dst", observable: "ipv4-addr", norm: normIP}
	typeTable["ip-src|port"] = typeSpec{kind: kindIPPort, path: "src", observable: "ipv4-addr", norm: normIP}
	typeTable["ip-dst|port"] = typeSpec{kind: kindIPPort, path: "dst", observable: "ipv4-addr", norm: normIP}
	typeTable["domain|ip"] = typeSpec{kind: kindDomainIP, observable: "domain-name", norm: normDomain}
	typeTable["hostname|port"] = typeSpec{kind: kindHostnamePort, observable: "domain-name", norm: normHostname}
	typeTable["regkey"] = typeSpec{kind: kindRegkey, observable: "windows-registry-key", norm: normNoNewline}
	typeTable["regkey|value"] = typeSpec{kind: kindRegkeyValue, observable: "windows-registry-key", norm: normNoNewline}
	typeTable["github-username"] = typeSpec{kind: kindGithubUser, observable: "user-account", norm: normText}
	typeTable["AS"] = typeSpec{kind: kindAS, observable: "autonomous-system", norm: normAS}
	for _, l := range PatternLanguages {
		typeTable[l] = typeSpec{kind: kindPatternLang, path: l, observable: l, norm: normRaw}
	}
}

// hashNames maps MISP hash types to misp-stix's file:hashes property names (quoted when not
// plain identifiers). sha512/224 and sha512/256 keep misp-stix's SHA-224/SHA-256 names.
var hashNames = map[string]string{
	"md5": "MD5", "sha1": "'SHA-1'", "sha224": "'SHA-224'", "sha256": "'SHA-256'",
	"sha384": "'SHA-384'", "sha512": "'SHA-512'", "sha512/224": "'SHA-224'", "sha512/256": "'SHA-256'",
	"sha3-224": "'SHA3-224'", "sha3-256": "'SHA3-256'", "sha3-384": "'SHA3-384'", "sha3-512": "'SHA3-512'",
	"ssdeep": "SSDEEP", "tlsh": "TLSH", "authentihash": "AUTHENTIHASH", "imphash": "IMPHASH",
	"vhash": "VHASH", "pehash": "PEHASH", "telfhash": "TELFHASH", "cdhash": "CDHASH", "impfuzzy": "IMPFUZZY",
}

// isComposite reports whether attributes of kind k are composite values whose handling
// Options.Composite chooses.
func (k kind) isComposite() bool {
	switch k {
	case kindIPPort, kindDomainIP, kindHostnamePort, kindFilenameHash, kindMalwareSample:
		return true
	}
	return false
}

// CompositeTypes returns the MISP attribute types whose handling Options.Composite chooses,
// sorted. regkey|value is not among them: a key or a value alone would match far more than
// was flagged, so it always keeps its compound pattern.
func CompositeTypes() []string {
	var types []string
	for t, spec := range typeTable {
		if spec.kind.isComposite() {
			types = append(types, t)
		}
	}
	sort.Strings(types)
	return types
}

// IsCompositeType reports whether typ is one of CompositeTypes.
func IsCompositeType(typ string) bool {
	spec, ok := typeTable[typ]
	return ok && spec.kind.isComposite()
}

// ExportedTypes returns the MISP attribute types that can yield an indicator, sorted.
func ExportedTypes() []string {
	types := make([]string, 0, len(typeTable))
	for t := range typeTable {
		types = append(types, t)
	}
	sort.Strings(types)
	return types
}
