package stix

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// normaliser validates one value (or one component of a composite value) and returns it in
// the canonical form PyMISP gives it before misp-stix builds a pattern
// (spec/misp-stix-mapping.md §8). Its error says what is wrong with the value.
type normaliser func(string) (string, error)

var errEmpty = errors.New("empty value")

// prepare applies what PyMISP does to every value: trim surrounding white space and replace
// characters above U+FFFF by '?'. Invalid UTF-8 is rejected.
func prepare(v string) (string, error) {
	v = strings.TrimSpace(v)
	if !utf8.ValidString(v) {
		return "", errors.New("value is not valid UTF-8")
	}
	if hasFourByteRune(v) {
		var b strings.Builder
		for _, r := range v {
			if r > 0xFFFF {
				r = '?'
			}
			b.WriteRune(r)
		}
		v = b.String()
	}
	if v == "" {
		return "", errEmpty
	}
	return v, nil
}

// hasFourByteRune reports whether the valid UTF-8 s holds a rune above U+FFFF: only those
// are encoded in four bytes, which start with a byte of 0xF0 or more.
func hasFourByteRune(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0xF0 {
			return true
		}
	}
	return false
}

func normRaw(v string) (string, error) { return v, nil }

func normText(v string) (string, error) { return v, nil }

func normNoNewline(v string) (string, error) {
	if strings.ContainsAny(v, "\r\n") {
		return "", errors.New("value contains a line break")
	}
	return v, nil
}

func normUpper(v string) (string, error) { return strings.ToUpper(v), nil }

var dotRefang = strings.NewReplacer("[.]", ".", "[dot]", ".", "(dot)", ".")

var urlRefang = strings.NewReplacer(
	"hxxp", "http", "hxtp", "http", "meow", "http", "h[tt]p", "http", "[:]", ":",
	"[.]", ".", "[dot]", ".", "(dot)", ".",
)

func normURL(v string) (string, error) {
	if strings.ContainsAny(v, "[(") || strings.Contains(v, "hx") || strings.Contains(v, "meow") {
		v = urlRefang.Replace(v)
	}
	return normNoNewline(v)
}

// refangDots replaces [.], [dot] and (dot) by a dot.
func refangDots(v string) string {
	if !strings.ContainsAny(v, "[(") {
		return v
	}
	return dotRefang.Replace(v)
}

var domainRE = regexp.MustCompile(`(?i)^[A-Z0-9.\-_]+\.[A-Z0-9\-]{2,}$`)

func normDomain(v string) (string, error) {
	v = strings.Trim(strings.ToLower(refangDots(v)), ".")
	if !domainRE.MatchString(v) {
		if err := checkVisibleRunes(v); err != nil {
			return "", err
		}
		ascii, err := idna.ToASCII(v)
		if err != nil || !domainRE.MatchString(ascii) {
			return "", fmt.Errorf("%q is not a valid domain name", v)
		}
		v = ascii
	}
	return v, nil
}

func normHostname(v string) (string, error) { return normDomain(v) }

// checkVisibleRunes refuses, before IDNA sees them, characters that IDNA would fold into a
// different, real-looking xn-- name: U+FFFD (what JSON decoding leaves of invalid UTF-8),
// control and format characters (bidi overrides and isolates, zero-width characters, the soft
// hyphen), private-use and unassigned code points, and white space.
func checkVisibleRunes(v string) error {
	for _, r := range v {
		if r == utf8.RuneError || unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs, unicode.Z) || !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S) {
			return fmt.Errorf("%q contains the invisible or replaced character %U", v, r)
		}
	}
	return nil
}

var emailRefang = strings.NewReplacer("[@]", "@", "[at]", "@", "[.]", ".", "[dot]", ".", "(dot)", ".")

var emailRE = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)

func normEmail(v string) (string, error) {
	if strings.ContainsAny(v, "[(") {
		v = emailRefang.Replace(v)
	}
	if !emailRE.MatchString(v) {
		return "", fmt.Errorf("%q is not a valid email address", v)
	}
	return v, nil
}

func normEmailLower(v string) (string, error) { return normEmail(strings.ToLower(v)) }

// normIP accepts an IPv4 or IPv6 address or CIDR block, in Python ipaddress's canonical
// form; /32 and /128 are dropped.
func normIP(v string) (string, error) {
	v = refangDots(v)
	if _, bits, ok := strings.Cut(v, "/"); ok {
		p, err := netip.ParsePrefix(v)
		if err != nil || p.Addr().Zone() != "" {
			return "", fmt.Errorf("%q is not a valid IP address or CIDR block", v)
		}
		if p.Bits() == p.Addr().BitLen() {
			return p.Addr().String(), nil
		}
		return p.Addr().String() + "/" + bits, nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		return "", fmt.Errorf("%q is not a valid IP address", v)
	}
	return a.String(), nil
}

func isIPv6(v string) bool { return strings.Contains(v, ":") }

func normPort(v string) (string, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 65535 || v[0] == '+' {
		return "", fmt.Errorf("%q is not a port number (1-65535)", v)
	}
	return v, nil
}

func normUint(v string) (string, error) {
	if _, err := strconv.ParseUint(v, 10, 64); err != nil {
		return "", fmt.Errorf("%q is not a non-negative integer", v)
	}
	return v, nil
}

func normMAC(v string) (string, error) {
	hex := make([]byte, 0, 12)
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
			hex = append(hex, c)
		case c >= 'A' && c <= 'F':
			hex = append(hex, c+'a'-'A')
		}
	}
	if len(hex) != 12 {
		return "", fmt.Errorf("%q is not a MAC address", v)
	}
	out := make([]byte, 0, 17)
	for i := 0; i < 12; i += 2 {
		if i > 0 {
			out = append(out, ':')
		}
		out = append(out, hex[i], hex[i+1])
	}
	return string(out), nil
}

// normAS accepts "AS174", "174" and asdot "AS1.10" (= 65546) and returns the number.
func normAS(v string) (string, error) {
	s := v
	if len(s) >= 2 && strings.EqualFold(s[:2], "as") {
		s = s[2:]
	}
	hi, lo, dot := strings.Cut(s, ".")
	if dot {
		h, err1 := strconv.ParseUint(hi, 10, 16)
		l, err2 := strconv.ParseUint(lo, 10, 16)
		if err1 != nil || err2 != nil {
			return "", fmt.Errorf("%q is not an AS number", v)
		}
		return strconv.FormatUint(h<<16|l, 10), nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return "", fmt.Errorf("%q is not an AS number", v)
	}
	return strconv.FormatUint(n, 10), nil
}

var hexLengths = map[string]int{
	"md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128,
	"sha512/224": 56, "sha512/256": 64, "sha3-224": 56, "sha3-256": 64, "sha3-384": 96, "sha3-512": 128,
	"imphash": 32, "authentihash": 64, "pehash": 40, "cdhash": 40, "tlsh": 70, "telfhash": 70,
	"x509-fingerprint-md5": 32, "x509-fingerprint-sha1": 40, "x509-fingerprint-sha256": 64,
}

var fuzzyHashRE = regexp.MustCompile(`^[0-9]+:[0-9A-Za-z/+]+:[0-9A-Za-z/+]+$`)
var vhashRE = regexp.MustCompile(`^[0-9A-Za-z]+$`)

// hashNormaliser returns the normaliser of a MISP hash type: hex hashes are lower-cased and
// must have their exact length (x509 fingerprints also lose their colons); ssdeep and impfuzzy
// must look like fuzzy hashes.
func hashNormaliser(misp string) normaliser {
	if n, ok := hexLengths[misp]; ok {
		x509 := strings.HasPrefix(misp, "x509-")
		return func(v string) (string, error) {
			v = strings.ToLower(v)
			if x509 {
				v = strings.ReplaceAll(v, ":", "")
			}
			if len(v) != n || strings.Trim(v, "0123456789abcdef") != "" {
				return "", fmt.Errorf("%q is not a %s hash (%d hexadecimal characters)", v, misp, n)
			}
			return v, nil
		}
	}
	switch misp {
	case "ssdeep", "impfuzzy":
		return func(v string) (string, error) {
			if !fuzzyHashRE.MatchString(v) {
				return "", fmt.Errorf("%q is not a %s hash", v, misp)
			}
			return v, nil
		}
	default: // vhash
		return func(v string) (string, error) {
			if !vhashRE.MatchString(v) {
				return "", fmt.Errorf("%q is not a %s hash", v, misp)
			}
			return v, nil
		}
	}
}

// splitComposite splits a composite value as misp-stix does: on '|' when present, else on
// '_'; anything but exactly two parts is an error.
func splitComposite(v string) (string, string, error) {
	sep := "|"
	if !strings.Contains(v, sep) {
		sep = "_"
	}
	a, b, ok := strings.Cut(v, sep)
	if !ok || strings.Contains(b, sep) {
		return "", "", fmt.Errorf("%q is not a composite value of two parts", v)
	}
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	if a == "" || b == "" {
		return "", "", fmt.Errorf("%q has an empty part", v)
	}
	return a, b, nil
}

// splitIPPort accepts ip|port, ip:port and [v6]:port.
func splitIPPort(v string) (string, string, error) {
	if strings.Contains(v, "|") {
		return splitComposite(v)
	}
	if ap, err := netip.ParseAddrPort(v); err == nil {
		return ap.Addr().String(), strconv.Itoa(int(ap.Port())), nil
	}
	return splitComposite(v)
}

// splitHostPort accepts host|port and host:port.
func splitHostPort(v string) (string, string, error) {
	if !strings.Contains(v, "|") && strings.Count(v, ":") == 1 {
		v = strings.Replace(v, ":", "|", 1)
	}
	return splitComposite(v)
}

// normBase64 re-encodes attachment data as PyMISP does (characters outside the base64
// alphabet are dropped by the lenient decoder) and reports whether it is a zip archive.
func normBase64(data string) (string, bool) {
	clean := make([]byte, 0, len(data))
	for i := 0; i < len(data); i++ {
		c := data[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' {
			clean = append(clean, c)
		}
	}
	n := len(clean)
	if n%4 == 1 { // a lone trailing character carries no byte
		n--
	}
	raw, err := base64.RawStdEncoding.DecodeString(string(clean[:n]))
	if err != nil {
		return data, false
	}
	return base64.StdEncoding.EncodeToString(raw), bytes.HasPrefix(raw, []byte("PK\x03\x04"))
}
