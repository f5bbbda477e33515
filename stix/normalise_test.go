package stix

import "testing"

func TestNormalisers(t *testing.T) {
	cases := []struct {
		name string
		norm normaliser
		in   string
		want string // "" means invalid
	}{
		{"ip v4", normIP, "198.51.100.7", "198.51.100.7"},
		{"ip v6 canonical", normIP, "2001:0DB8:0000::0001", "2001:db8::1"},
		{"ip refanged", normIP, "198[.]51[.]100[.]7", "198.51.100.7"},
		{"ip cidr", normIP, "10.0.0.0/8", "10.0.0.0/8"},
		{"ip /32 dropped", normIP, "10.0.0.1/32", "10.0.0.1"},
		{"ip /128 dropped", normIP, "2001:db8::1/128", "2001:db8::1"},
		{"ip leading zeros", normIP, "010.0.0.1", ""},
		{"ip zone", normIP, "fe80::1%eth0", ""},
		{"ip garbage", normIP, "not-an-ip", ""},
		{"domain", normDomain, ".Evil.Example.COM.", "evil.example.com"},
		{"domain idn", normDomain, "bücher.example", "xn--bcher-kva.example"},
		{"domain quote", normDomain, "evil'o.example.com", ""},
		{"domain no dot", normDomain, "localhost", ""},
		{"email", normEmailLower, "User[at]Example[.]com", "user@example.com"},
		{"email no at", normEmailLower, "user.example.com", ""},
		{"port", normPort, "443", "443"},
		{"port zero", normPort, "0", ""},
		{"port big", normPort, "65536", ""},
		{"port sign", normPort, "+80", ""},
		{"mac", normMAC, "AA-BB-CC-DD-EE-FF", "aa:bb:cc:dd:ee:ff"},
		{"mac short", normMAC, "AA-BB-CC", ""},
		{"as", normAS, "AS174", "174"},
		{"as plain", normAS, "174", "174"},
		{"as asdot", normAS, "AS1.10", "65546"},
		{"as quote", normAS, "AS174'", ""},
		{"md5", hashNormaliser("md5"), "B2A5ABFEEF9E36964281A31E17B57C97", "b2a5abfeef9e36964281a31e17b57c97"},
		{"md5 short", hashNormaliser("md5"), "b2a5", ""},
		{"md5 quoted", hashNormaliser("md5"), `"b2a5abfeef9e36964281a31e17b57c97"`, ""},
		{"x509 colons", hashNormaliser("x509-fingerprint-sha1"), "29:20:D5:E6:C5:79:FC:E7:72:E5:50:6C:AF:03:AF:65:57:90:88:BD", "2920d5e6c579fce772e5506caf03af65579088bd"},
		{"tlsh T1", hashNormaliser("tlsh"), "T1" + "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2", ""},
		{"ssdeep", hashNormaliser("ssdeep"), "96:QRWk/+:QRWkwoXc", "96:QRWk/+:QRWkwoXc"},
		{"ssdeep bad", hashNormaliser("ssdeep"), "96:QRWk", ""},
		{"url refang", normURL, "hxxps://evil[.]example[:]8080/a", "https://evil.example:8080/a"},
		{"url newline", normURL, "http://a.example/\nb", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.norm(tc.in)
			if tc.want == "" {
				if err == nil {
					t.Errorf("%q accepted as %q, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("%q = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestSplitters(t *testing.T) {
	cases := []struct {
		name  string
		split func(string) (string, string, error)
		in    string
		a, b  string
	}{
		{"pipe", splitComposite, "evil.exe|abc", "evil.exe", "abc"},
		{"underscore", splitComposite, "evil.exe_abc", "evil.exe", "abc"},
		{"pipe wins over underscore", splitComposite, "my_file.exe|abc", "my_file.exe", "abc"},
		{"two pipes", splitComposite, "a|b|c", "", ""},
		{"no separator", splitComposite, "abc", "", ""},
		{"empty part", splitComposite, "abc|", "", ""},
		{"ip:port", splitIPPort, "198.51.100.7:443", "198.51.100.7", "443"},
		{"[v6]:port", splitIPPort, "[2001:db8::1]:443", "2001:db8::1", "443"},
		{"ip|port", splitIPPort, "2001:db8::1|443", "2001:db8::1", "443"},
		{"host:port", splitHostPort, "www.example.com:8443", "www.example.com", "8443"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b, err := tc.split(tc.in)
			if tc.a == "" {
				if err == nil {
					t.Errorf("%q split into %q, %q; want an error", tc.in, a, b)
				}
				return
			}
			if err != nil || a != tc.a || b != tc.b {
				t.Errorf("%q = %q, %q, %v", tc.in, a, b, err)
			}
		})
	}
}

func TestEscaping(t *testing.T) {
	cases := []struct{ in, value, registry string }{
		{`plain`, `plain`, `plain`},
		{`it's`, `it\'s`, `it\'s`},
		{`C:\dir\`, `C:\\dir\\`, `C:\\dir\\`},
		{`HKCU\Env%PATH%`, `HKCU\\Env%PATH%`, `HKCU\\Env\\%PATH\\%`},
		{`HKLM\O'Neil\%APPDATA%`, `HKLM\\O\'Neil\\%APPDATA%`, `HKLM\\O\'Neil\\%APPDATA%`},
		{`%DATA%\1234`, `%DATA%\\1234`, `\\%DATA\\%\\1234`},
	}
	for _, tc := range cases {
		if got := escapeValue(tc.in); got != tc.value {
			t.Errorf("escapeValue(%q) = %q, want %q", tc.in, got, tc.value)
		}
		if got := escapeRegistry(tc.in); got != tc.registry {
			t.Errorf("escapeRegistry(%q) = %q, want %q", tc.in, got, tc.registry)
		}
	}
}
