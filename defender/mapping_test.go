package defender

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mispsentinel/listener/internal/stixtest"
	"github.com/mispsentinel/listener/misp"
	"github.com/mispsentinel/listener/stix"
)

var mapNow = time.Date(2026, 5, 2, 8, 0, 0, 0, time.UTC)

func mispEvent(threat string, attrs ...misp.Attribute) *misp.Event {
	for i := range attrs {
		attrs[i].UUID = fmt.Sprintf("5b0e3c1a-0000-4000-8000-%012d", i+1)
		attrs[i].ToIDS = true
		attrs[i].Timestamp = mapNow.Add(-time.Hour)
	}
	return &misp.Event{ID: "4711", UUID: "0d6b1a52-1111-4222-8333-444455556666", Info: "phishing wave",
		ThreatLevelID: threat, Timestamp: mapNow, Attributes: attrs}
}

func a(typ, value string) misp.Attribute { return misp.Attribute{Type: typ, Value: value} }

func convert(t *testing.T, ev *misp.Event, profile stix.Profile) stix.Result {
	t.Helper()
	o := stixtest.Options()
	o.Profile = profile
	return stix.Convert(ev, o, mapNow)
}

func TestMapTypesValuesAndSkips(t *testing.T) {
	ev := mispEvent("1",
		a("md5", "D41D8CD98F00B204E9800998ECF8427E"),
		a("sha1", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
		a("sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
		a("filename|sha256", "evil.exe|e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b856"),
		a("sha512/256", "c672b8d1ef56ed28ab87c3622c5114069bdd3ad7b8f9737498d0c01ecef0967a"),
		a("x509-fingerprint-sha1", "b7e1a0f3e2d5c6a7b8c9d0e1f2a3b4c5d6e7f8a9"),
		a("ip-dst", "198.51.100.23"),
		a("ip-src", "2001:db8:0:0::1"),
		a("ip-dst", "10.0.0.1"),
		a("ip-src", "203.0.113.0/24"),
		a("ip-dst|port", "192.0.2.44|443"),
		a("domain", "Evil.Example.COM"),
		a("hostname|port", "c2.example.net|8080"),
		a("domain|ip", "mixed.example|198.51.100.77"),
		a("url", "https://evil.example.com/login?x=1"),
		a("email-src", "phish@example.org"),
		a("filename", "invoice.pdf.exe"),
		a("ssdeep", "3:AXGBicFlgVNhBGcL6wCrFQEv:AXGHsNhxLsr2C"),
	)
	res := convert(t, ev, stix.ProfileSentinel)
	cands, skips := Map(ev, res, MapOptions{Action: ActionAudit, ActionByType: map[Type]Action{TypeFileSha256: ActionBlockAndRemediate}, Application: "MISP", MISPURL: "https://misp.example"})
	got := map[string]Indicator{}
	for _, c := range cands {
		got[string(c.Indicator.IndicatorType)+" "+c.Indicator.IndicatorValue] = c.Indicator
	}
	for _, want := range []string{
		"FileMd5 d41d8cd98f00b204e9800998ecf8427e",
		"FileSha1 da39a3ee5e6b4b0d3255bfef95601890afd80709",
		"FileSha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"FileSha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b856",
		"CertificateThumbprint b7e1a0f3e2d5c6a7b8c9d0e1f2a3b4c5d6e7f8a9",
		"IpAddress 198.51.100.23",
		"IpAddress 2001:db8:0:0:0:0:0:1",
		"IpAddress 192.0.2.44",
		"DomainName evil.example.com",
		"DomainName c2.example.net",
		"DomainName mixed.example",
		"IpAddress 198.51.100.77",
		"Url https://evil.example.com/login?x=1",
	} {
		if _, ok := got[want]; !ok {
			t.Errorf("missing %s; got %v", want, keys(got))
		}
		delete(got, want)
	}
	if len(got) != 0 {
		t.Errorf("unexpected candidates %v", keys(got))
	}
	skipped := map[string]string{}
	for _, s := range skips {
		if s.Reason != stix.SkipUnsupportedBySink {
			t.Errorf("skip reason %q", s.Reason)
		}
		skipped[s.Decision.Type+" "+s.Decision.Value] = s.Detail
	}
	for _, want := range []string{"sha512/256", "ip-dst 10.0.0.1", "ip-src 203.0.113.0/24", "email-src", "filename invoice", "ssdeep"} {
		found := false
		for k := range skipped {
			if strings.HasPrefix(k, want) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s not skipped as unsupported_by_sink; skips %v", want, skipped)
		}
	}
	for _, c := range cands {
		ind := c.Indicator
		switch {
		case ind.IndicatorType == TypeFileSha256 && ind.Action != ActionBlockAndRemediate:
			t.Errorf("%s: action %s, want the per-type BlockAndRemediate", ind.IndicatorValue, ind.Action)
		case ind.IndicatorType != TypeFileSha256 && (ind.Action != ActionAudit || !ind.GenerateAlert):
			t.Errorf("%s: action %s alert %v, want Audit with an alert", ind.IndicatorValue, ind.Action, ind.GenerateAlert)
		}
		if ind.Severity != SeverityHigh || ind.ExpirationTime == "" || !strings.Contains(ind.Description, "https://misp.example/events/view/"+ev.UUID) ||
			!strings.HasPrefix(ind.Title, "MISP: phishing wave") || ind.Application != "MISP" || ind.ExternalID != c.Object.ID {
			t.Errorf("fields of %s: %+v", ind.IndicatorValue, ind)
		}
		if c.Rank.Confidence != 50 || c.Rank.ThreatLevel != 1 || c.Rank.Seen.IsZero() {
			t.Errorf("rank inputs of %s: %+v", ind.IndicatorValue, c.Rank)
		}
		env, _, _, err := DecodeEnvelope(c.Object.Body)
		if err != nil || env.Indicator.IndicatorValue != ind.IndicatorValue {
			t.Errorf("body of %s does not decode back: %v", ind.IndicatorValue, err)
		}
	}
}

func TestMapMISPSTIXProfileCompoundPatterns(t *testing.T) {
	ev := mispEvent("3", a("ip-dst", "198.51.100.23"), a("domain|ip", "mixed.example|198.51.100.77"), a("filename|md5", "x.exe|d41d8cd98f00b204e9800998ecf8427e"))
	cands, skips := Map(ev, convert(t, ev, stix.ProfileMISPSTIX), MapOptions{Action: ActionBlock})
	if len(skips) != 0 || len(cands) != 3 {
		t.Fatalf("candidates %d skips %v", len(cands), skips)
	}
	want := []string{"IpAddress 198.51.100.23", "DomainName mixed.example", "FileMd5 d41d8cd98f00b204e9800998ecf8427e"}
	for i, c := range cands {
		if got := string(c.Indicator.IndicatorType) + " " + c.Indicator.IndicatorValue; got != want[i] {
			t.Errorf("candidate %d = %s, want %s", i, got, want[i])
		}
		if c.Indicator.Severity != SeverityLow || c.Indicator.GenerateAlert {
			t.Errorf("severity %s alert %v", c.Indicator.Severity, c.Indicator.GenerateAlert)
		}
	}
}

func TestMapHashIgnoresExpiry(t *testing.T) {
	ev := mispEvent("2", a("domain", "evil.example"))
	first, _ := Map(ev, stix.Convert(ev, stixtest.Options(), mapNow), MapOptions{Action: ActionBlock})
	later, _ := Map(ev, stix.Convert(ev, stixtest.Options(), mapNow.Add(48*time.Hour)), MapOptions{Action: ActionBlock})
	if first[0].Indicator.ExpirationTime == later[0].Indicator.ExpirationTime {
		t.Fatal("expiry should move with the conversion time")
	}
	if first[0].Object.Hash != later[0].Object.Hash {
		t.Error("a new expiry alone changed the content hash")
	}
	blocked, _ := Map(ev, stix.Convert(ev, stixtest.Options(), mapNow), MapOptions{Action: ActionWarn})
	if blocked[0].Object.Hash == first[0].Object.Hash {
		t.Error("a new action must change the content hash")
	}
}

func keys(m map[string]Indicator) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestMapTakesTheDecayScoreWherePresent(t *testing.T) {
	ev := mispEvent("2", a("domain", "decaying.example"), a("domain", "plain.example"))
	ev.Attributes[0].DecayScores = []misp.DecayScore{{Score: 41.4, ModelID: "1"}, {Score: 63.6, ModelID: "2"}}
	cands, _ := Map(ev, convert(t, ev, stix.ProfileSentinel), MapOptions{Action: ActionBlock})
	if len(cands) != 2 {
		t.Fatalf("%d candidates", len(cands))
	}
	if d := cands[0].Rank.Decay; d == nil || *d != 64 {
		t.Errorf("decay of the scored attribute: %v, want the highest score rounded, 64", d)
	}
	if cands[1].Rank.Decay != nil {
		t.Errorf("an attribute without a score got decay %v", *cands[1].Rank.Decay)
	}
	env, _, _, err := DecodeEnvelope(cands[0].Object.Body)
	if err != nil || env.Rank.Decay == nil || *env.Rank.Decay != 64 {
		t.Errorf("the body does not carry the decay score: %+v %v", env.Rank, err)
	}
}
