package stix

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mispsentinel/listener/misp"
)

// TestMISP2SentinelBugsAreAbsent has one case per defect of misp2sentinel's indicator fields
// listed in spec/misp2sentinel-behaviour.md (section in the case name), each asserting that
// this converter does not have it.
func TestMISP2SentinelBugsAreAbsent(t *testing.T) {
	cases := []struct {
		name string
		test func(t *testing.T)
	}{
		{"§1.3 days_to_expire_mapping matches by substring (curlx.com got the url lifetime)", func(t *testing.T) {
			ind, _ := convertOne(t, testOptions(), attr("domain", "curlx.com"))
			if want := FormatTime(testNow.Add(180 * 24 * time.Hour)); ind.ValidUntil != want {
				t.Errorf("valid_until = %s, want the domain-name lifetime %s", ind.ValidUntil, want)
			}
		}},
		{"§1.3 MISP first_seen/last_seen ignored", func(t *testing.T) {
			first, last := testTS.Add(-30*24*time.Hour), testNow.Add(10*24*time.Hour)
			a := attr("domain", "seen.example")
			a.FirstSeen, a.LastSeen = &first, &last
			ind, _ := convertOne(t, testOptions(), a)
			if ind.ValidFrom != FormatTime(first) || ind.ValidUntil != FormatTime(last) {
				t.Errorf("valid_from/until = %s/%s, want first_seen/last_seen", ind.ValidFrom, ind.ValidUntil)
			}
		}},
		{"§1.3 G2: ignore_localtags off drops all tags", func(t *testing.T) {
			a := attr("domain", "a.example")
			a.Tags = []misp.Tag{{Name: "local:tag", Local: true}, {Name: "global:tag"}}
			o := testOptions()
			o.IncludeLocalTags = true
			ind, _ := convertOne(t, o, a)
			if !slices.Equal(ind.Labels, []string{"local:tag", "global:tag"}) {
				t.Errorf("labels = %v, want both tags", ind.Labels)
			}
			ind, _ = convertOne(t, testOptions(), a)
			if !slices.Equal(ind.Labels, []string{"global:tag"}) {
				t.Errorf("labels = %v, want only the global tag by default", ind.Labels)
			}
		}},
		{"§1.3 G4: object attributes are lost unless flattened", func(t *testing.T) {
			ev := event()
			ev.Objects = []misp.Object{{UUID: testAttrUUID("obj"), Name: "domain-ip", Attributes: []misp.Attribute{attr("ip-dst", "198.51.100.9")}}}
			if got := patterns(t, Convert(ev, testOptions(), testNow)); !slices.Equal(got, []string{"[ipv4-addr:value = '198.51.100.9']"}) {
				t.Errorf("patterns = %v", got)
			}
		}},
		{"§1.5 an unexpected threat_level_id aborts the run", func(t *testing.T) {
			ev := event(attr("domain", "a.example"))
			ev.ThreatLevelID = "9"
			if got := len(indicators(t, Convert(ev, testOptions(), testNow))); got != 1 {
				t.Errorf("%d indicators, want 1", got)
			}
		}},
		{"§2.4 ssdeep labelled SSDEEPWHIRLPOOL", func(t *testing.T) {
			ind, _ := convertOne(t, testOptions(), attr("ssdeep", "96:QRWkwoBevsL0JsIQ3pq1ACBu0z3i5ViJsL4:QRWkwoXcQ3pq1AC00jqVisL4"))
			if !strings.HasPrefix(ind.Pattern, "[file:hashes.SSDEEP = ") {
				t.Errorf("pattern = %s", ind.Pattern)
			}
		}},
		{"§2.4 CIDR ip-src/ip-dst dropped", func(t *testing.T) {
			ind, _ := convertOne(t, testOptions(), attr("ip-src", "192.0.2.0/24"))
			if ind.Pattern != "[ipv4-addr:value = '192.0.2.0/24']" {
				t.Errorf("pattern = %s", ind.Pattern)
			}
		}},
		{"§2.4 non-v4 attribute uuid gets a random id on every run", func(t *testing.T) {
			a := attr("domain", "a.example")
			a.UUID = "5c5a1b2e-3f4d-11ee-be56-0242ac120002" // UUIDv1
			first, _ := convertOne(t, testOptions(), a)
			second, _ := convertOne(t, testOptions(), a)
			if first.ID != second.ID || first.ID != "indicator--"+uuid.NewSHA1(Namespace, []byte(a.UUID)).String() {
				t.Errorf("ids %s, %s: want the same UUIDv5", first.ID, second.ID)
			}
		}},
		{"§2.4 created/modified are now on every run", func(t *testing.T) {
			a := attr("domain", "a.example")
			one := Convert(event(a), testOptions(), testNow).Objects[1]
			two := Convert(event(a), testOptions(), testNow.Add(time.Hour)).Objects[1]
			ind := indicators(t, Result{Objects: []Object{two}})[0]
			if one.Hash != two.Hash || ind.Created != FormatTime(testTS) {
				t.Errorf("created = %s, hashes %s/%s: want the attribute timestamp and a stable hash", ind.Created, one.Hash, two.Hash)
			}
		}},
		{"§2.4 composite attributes lose their second part", func(t *testing.T) {
			ev := event(
				attr("filename|sha256", "evil.exe|"+strings.Repeat("ab", 32)),
				attr("domain|ip", "evil.example|198.51.100.7"),
				attr("ip-dst|port", "198.51.100.8|443"),
			)
			want := []string{
				"[file:hashes.'SHA-256' = '" + strings.Repeat("ab", 32) + "']",
				"[domain-name:value = 'evil.example']", "[ipv4-addr:value = '198.51.100.7']",
				"[ipv4-addr:value = '198.51.100.8']",
			}
			res := Convert(ev, testOptions(), testNow)
			if got := patterns(t, res); !slices.Equal(got, want) {
				t.Errorf("patterns = %q, want %q", got, want)
			}
			if ind := indicators(t, res)[0]; !strings.Contains(ind.Name, "evil.exe") || !strings.Contains(ind.Description, "evil.exe") {
				t.Errorf("file name missing from name/description: %q / %q", ind.Name, ind.Description)
			}
			if ind := indicators(t, res)[3]; !strings.Contains(ind.Description, "port 443") {
				t.Errorf("port missing from description: %q", ind.Description)
			}
		}},
		{"§2.4 about 20 accepted types silently dropped", func(t *testing.T) {
			for _, a := range []misp.Attribute{
				attr("AS", "AS64500"), attr("email-src", "a@example.com"), attr("email-dst", "b@example.com"),
				attr("email-subject", "Invoice"), attr("email-x-mailer", "Evil 1.0"), attr("mutex", "Global\\m"),
				attr("port", "8443"), attr("size-in-bytes", "1234"), attr("user-agent", "EvilAgent/1.0"),
				attr("authentihash", strings.Repeat("c", 64)), attr("imphash", strings.Repeat("d", 32)),
				attr("impfuzzy", "48:Yh7xhYlMxBN5CYpOhqVSuYuMTmUGdFgHM7vUGHSqmK:aZu9sIM6mtSqmK"),
				attr("pehash", strings.Repeat("e", 40)), attr("sha512/224", strings.Repeat("f", 56)),
				attr("sha512/256", strings.Repeat("f", 64)), attr("tlsh", strings.Repeat("1", 70)),
				attr("sha3-256", strings.Repeat("2", 64)),
			} {
				if d := Convert(event(a), testOptions(), testNow).Decisions[0]; len(d.Exported) != 1 {
					t.Errorf("%s not exported: %s %s", a.Type, d.Reason, d.Detail)
				}
			}
		}},
		{"§2.4 #129 event-level confidence tags not applied", func(t *testing.T) {
			ev := event(attr("domain", "a.example"))
			ev.Tags = []misp.Tag{{Name: `misp:confidence-level="completely-confident"`}}
			if ind := indicators(t, Convert(ev, testOptions(), testNow))[0]; *ind.Confidence != 100 {
				t.Errorf("confidence = %d, want 100 from the event tag", *ind.Confidence)
			}
		}},
		{"§2.4 event-level kill-chain tags ignored, duplicate phases", func(t *testing.T) {
			ev := event(attr("domain", "a.example", "kill-chain:Delivery", "kill-chain:Delivery"))
			ev.Tags = []misp.Tag{{Name: "kill-chain:Installation"}, {Name: "kill-chain:Delivery"}}
			ind := indicators(t, Convert(ev, testOptions(), testNow))[0]
			var phases []string
			for _, p := range ind.KillChainPhases {
				phases = append(phases, p.PhaseName)
			}
			if !slices.Equal(phases, []string{"delivery", "installation"}) {
				t.Errorf("phases = %v", phases)
			}
		}},
		{"§2.4 #12 every untagged indicator is published as TLP:CLEAR", func(t *testing.T) {
			ind, _ := convertOne(t, testOptions(), attr("domain", "a.example"))
			if len(ind.ObjectMarkings) != 0 {
				t.Errorf("object_marking_refs = %v, want none without a TLP tag or a configured default", ind.ObjectMarkings)
			}
		}},
		{"§2.9 an upper-case TLP tag crashes the run", func(t *testing.T) {
			ev := event(attr("domain", "a.example"))
			ev.Tags = []misp.Tag{{Name: "TLP:GREEN"}}
			if ind := indicators(t, Convert(ev, testOptions(), testNow))[0]; !slices.Equal(ind.ObjectMarkings, []string{tlpGreenID}) {
				t.Errorf("object_marking_refs = %v", ind.ObjectMarkings)
			}
		}},
		{"§1.5 label lists match by substring", func(t *testing.T) {
			o := testOptions()
			o.LabelAllowList = []string{"type"}
			o.LabelDenyList = []string{"osint"}
			ind, _ := convertOne(t, o, attr("domain", "a.example", `misp:type="domain"`, "type:OSINT", "osint-extra:x"))
			if !slices.Equal(ind.Labels, []string{"type:OSINT"}) {
				t.Errorf("labels = %v, want only type:OSINT", ind.Labels)
			}
		}},
		{"§2.4 a value already queued in the run is skipped for every later attribute", func(t *testing.T) {
			a, b := attr("domain", "same.example"), attr("domain", "same.example")
			b.UUID = testAttrUUID("other")
			res := Convert(event(a, b), testOptions(), testNow)
			if len(res.Decisions[0].Exported) != 1 || len(res.Decisions[1].Exported) != 1 {
				t.Errorf("decisions = %+v, want both attributes exported under their own ids", res.Decisions)
			}
		}},
		{"§2.4 expired indicators dropped silently", func(t *testing.T) {
			a := attr("domain", "old.example")
			last := testNow.Add(-time.Minute)
			first := last.Add(-time.Hour)
			a.FirstSeen, a.LastSeen = &first, &last
			d := Convert(event(a), testOptions(), testNow).Decisions[0]
			if d.Reason != SkipExpired || !strings.Contains(d.Detail, "expired") {
				t.Errorf("decision = %+v", d)
			}
		}},
		{"§6.1 #6 old republished attributes are already expired", func(t *testing.T) {
			a := attr("domain", "old.example")
			a.Timestamp = testNow.Add(-3 * 365 * 24 * time.Hour)
			if d := Convert(event(a), testOptions(), testNow).Decisions[0]; len(d.Exported) != 1 {
				t.Errorf("decision = %+v, want exported with the lifetime counted from now", d)
			}
		}},
		{"§3 G3 kill chain TTP ids pushed into object_marking_refs", func(t *testing.T) {
			ind, _ := convertOne(t, testOptions(), attr("domain", "a.example", "kill-chain:Delivery", "tlp:green"))
			if !slices.Equal(ind.ObjectMarkings, []string{tlpGreenID}) {
				t.Errorf("object_marking_refs = %v, want only the TLP marking", ind.ObjectMarkings)
			}
		}},
		{"§3 G3 event sentinel-threattype never applied", func(t *testing.T) {
			ev := event(attr("domain", "a.example"))
			ev.Tags = []misp.Tag{{Name: "sentinel-threattype:Phishing"}}
			if ind := indicators(t, Convert(ev, testOptions(), testNow))[0]; !slices.Equal(ind.IndicatorTypes, []string{"Phishing"}) {
				t.Errorf("indicator_types = %v", ind.IndicatorTypes)
			}
		}},
		{"§2.4 unconvertible types dropped without a trace", func(t *testing.T) {
			d := Convert(event(attr("iban", "DE89370400440532013000")), testOptions(), testNow).Decisions[0]
			if d.Reason != SkipUnsupportedType {
				t.Errorf("decision = %+v", d)
			}
		}},
		{"§2.4 #28 no identity object, Created by shows a bare id", func(t *testing.T) {
			res := Convert(event(attr("domain", "a.example")), testOptions(), testNow)
			if res.Objects[0].Type != "identity" || res.Objects[0].ID != "identity--"+testOrgUUID {
				t.Errorf("first object = %s %s, want the creator identity", res.Objects[0].Type, res.Objects[0].ID)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, tc.test)
	}
}
