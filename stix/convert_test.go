package stix

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mispsentinel/listener/misp"
)

var (
	testNow = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	testTS  = time.Date(2026, 10, 1, 8, 0, 0, 0, time.UTC)
)

const (
	testEventUUID = "5f3c1a2b-1111-4222-8333-444455556666"
	testOrgUUID   = "55f6ea5e-2c60-40e5-964f-47a8950d210f"
)

// testAttrUUID returns a deterministic, valid UUIDv4 for a test attribute.
func testAttrUUID(key string) string {
	u := uuid.NewSHA1(uuid.NameSpaceURL, []byte(key))
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u.String()
}

func attr(typ, value string, tags ...string) misp.Attribute {
	a := misp.Attribute{UUID: testAttrUUID(typ + "/" + value), Type: typ, Value: value, Category: "Network activity", ToIDS: true, Timestamp: testTS}
	for _, t := range tags {
		a.Tags = append(a.Tags, misp.Tag{Name: t, Exportable: true})
	}
	return a
}

func event(attrs ...misp.Attribute) *misp.Event {
	return &misp.Event{
		ID: "42", UUID: testEventUUID, Info: "test event", Date: "2026-10-01", Timestamp: testTS,
		Orgc:       misp.Org{Name: "CIRCL", UUID: testOrgUUID},
		Attributes: attrs,
	}
}

// indicatorJSON is an indicator body as Sentinel will read it.
type indicatorJSON struct {
	Type            string   `json:"type"`
	SpecVersion     string   `json:"spec_version"`
	ID              string   `json:"id"`
	Created         string   `json:"created"`
	Modified        string   `json:"modified"`
	CreatedByRef    string   `json:"created_by_ref"`
	Name            string   `json:"name"`
	Description     string   `json:"description"`
	IndicatorTypes  []string `json:"indicator_types"`
	Pattern         string   `json:"pattern"`
	PatternType     string   `json:"pattern_type"`
	ValidFrom       string   `json:"valid_from"`
	ValidUntil      string   `json:"valid_until"`
	Confidence      *int     `json:"confidence"`
	Labels          []string `json:"labels"`
	ObjectMarkings  []string `json:"object_marking_refs"`
	KillChainPhases []struct {
		KillChainName string `json:"kill_chain_name"`
		PhaseName     string `json:"phase_name"`
	} `json:"kill_chain_phases"`
	ExternalReferences []struct {
		SourceName string `json:"source_name"`
		ExternalID string `json:"external_id"`
		URL        string `json:"url"`
	} `json:"external_references"`
}

func indicators(t *testing.T, res Result) []indicatorJSON {
	t.Helper()
	var out []indicatorJSON
	for _, o := range res.Objects {
		var ind indicatorJSON
		if err := json.Unmarshal(o.Body, &ind); err != nil {
			t.Fatalf("object %s is not valid JSON: %v\n%s", o.ID, err, o.Body)
		}
		if ind.ID != o.ID || ind.Type != o.Type {
			t.Fatalf("object %s/%s has body id/type %s/%s", o.ID, o.Type, ind.ID, ind.Type)
		}
		if o.Type == "indicator" {
			out = append(out, ind)
		}
	}
	return out
}

func convertOne(t *testing.T, opts Options, a misp.Attribute) (indicatorJSON, Decision) {
	t.Helper()
	res := Convert(event(a), opts, testNow)
	inds := indicators(t, res)
	if len(inds) != 1 {
		t.Fatalf("got %d indicators, want 1 (decision %+v)", len(inds), res.Decisions)
	}
	return inds[0], res.Decisions[0]
}

func patterns(t *testing.T, res Result) []string {
	var out []string
	for _, ind := range indicators(t, res) {
		out = append(out, ind.Pattern)
	}
	return out
}

func TestPatternsPerProfile(t *testing.T) {
	cases := []struct {
		typ, value         string
		sentinel, mispSTIX []string
	}{
		{"ip-dst", "198.51.100.7", []string{"[ipv4-addr:value = '198.51.100.7']"}, []string{"[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '198.51.100.7']"}},
		{"ip-src", "2001:0db8::0001", []string{"[ipv6-addr:value = '2001:db8::1']"}, []string{"[network-traffic:src_ref.type = 'ipv6-addr' AND network-traffic:src_ref.value = '2001:db8::1']"}},
		{"ip-dst", "10.0.0.0/8", []string{"[ipv4-addr:value = '10.0.0.0/8']"}, []string{"[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '10.0.0.0/8']"}},
		{"ip-dst", "10.0.0.1/32", []string{"[ipv4-addr:value = '10.0.0.1']"}, nil},
		{"ip-dst|port", "198.51.100.7|443", []string{"[ipv4-addr:value = '198.51.100.7']"}, []string{"[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '198.51.100.7' AND network-traffic:dst_port = '443']"}},
		{"ip-src|port", "[2001:db8::1]:8080", []string{"[ipv6-addr:value = '2001:db8::1']"}, nil},
		{"domain|ip", "evil.example|198.51.100.7", []string{"[domain-name:value = 'evil.example']", "[ipv4-addr:value = '198.51.100.7']"}, []string{"[domain-name:value = 'evil.example' AND domain-name:resolves_to_refs[*].value = '198.51.100.7']"}},
		{"hostname|port", "www.example.com:8443", []string{"[domain-name:value = 'www.example.com']"}, []string{"[domain-name:value = 'www.example.com' AND network-traffic:dst_port = '8443']"}},
		{"filename|sha256", "evil.exe|7FA3DAB1EF1A9B2D5FD9D5BD3CDEC7C76F4EC6C4E7A6CD2FFDF17C3D4E5E6F7A", []string{"[file:hashes.'SHA-256' = '7fa3dab1ef1a9b2d5fd9d5bd3cdec7c76f4ec6c4e7a6cd2ffdf17c3d4e5e6f7a']"}, []string{"[file:name = 'evil.exe' AND file:hashes.'SHA-256' = '7fa3dab1ef1a9b2d5fd9d5bd3cdec7c76f4ec6c4e7a6cd2ffdf17c3d4e5e6f7a']"}},
		{"regkey|value", `HKCU\Env|%PATH%`, []string{`[windows-registry-key:key = 'HKCU\\Env' AND windows-registry-key:values.data = '\\%PATH\\%']`}, nil},
		{"ssdeep", "96:QRWkwoBevsL0JsIQ3pq1ACBu0z3i5ViJsL4:QRWkwoXcQ3pq1AC00jqVisL4", []string{"[file:hashes.SSDEEP = '96:QRWkwoBevsL0JsIQ3pq1ACBu0z3i5ViJsL4:QRWkwoXcQ3pq1AC00jqVisL4']"}, nil},
		{"url", "hxxp://evil[.]example/a", []string{"[url:value = 'http://evil.example/a']"}, nil},
		{"domain", "EVIL[.]Example.COM.", []string{"[domain-name:value = 'evil.example.com']"}, nil},
		{"domain", "bücher.example", []string{"[domain-name:value = 'xn--bcher-kva.example']"}, nil},
		{"email-src", "User[at]Example.com", []string{"[email-message:from_ref.value = 'user@example.com']"}, nil},
		{"AS", "AS174", []string{"[autonomous-system:number = '174']"}, nil},
		{"imphash", "B2A5ABFEEF9E36964281A31E17B57C97", []string{"[file:hashes.IMPHASH = 'b2a5abfeef9e36964281a31e17b57c97']"}, nil},
		{"mac-address", "AA-BB-CC-DD-EE-FF", []string{"[mac-addr:value = 'aa:bb:cc:dd:ee:ff']"}, nil},
		{"github-username", "oct'o", []string{`[user-account:account_type = 'github' AND user-account:account_login = 'oct\'o']`}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.typ+" "+tc.value, func(t *testing.T) {
			o := testOptions()
			got := patterns(t, Convert(event(attr(tc.typ, tc.value)), o, testNow))
			if !slices.Equal(got, tc.sentinel) {
				t.Errorf("sentinel: got %q, want %q", got, tc.sentinel)
			}
			want := tc.mispSTIX
			if want == nil {
				want = tc.sentinel
				if tc.typ == "ip-dst" || tc.typ == "ip-src|port" {
					return // compound form covered by the other rows
				}
			}
			o.Profile = ProfileMISPSTIX
			got = patterns(t, Convert(event(attr(tc.typ, tc.value)), o, testNow))
			if !slices.Equal(got, want) {
				t.Errorf("misp-stix: got %q, want %q", got, want)
			}
		})
	}
}

func TestHostileValuesCannotBreakOutOfThePattern(t *testing.T) {
	hostile := []string{
		`evil' OR file:name = 'x`,
		`a\' OR 1=1`,
		`back\slash\`,
		`]] AND [url:value = 'x'`,
		"two\nlines\r\n' ]",
		`ünïcödé ' \ ] 🙂`,
		`\\'\\'`,
	}
	for _, typ := range []string{"email-subject", "mutex", "user-agent", "email-body"} {
		for _, v := range hostile {
			ind, _ := convertOne(t, testOptions(), attr(typ, v))
			cmp, ok := comparisons(ind.Pattern)
			if !ok || len(cmp) != 1 {
				t.Errorf("%s %q: pattern %q does not hold exactly one comparison", typ, v, ind.Pattern)
				continue
			}
			want, _ := prepare(v)
			if cmp[0].value != want {
				t.Errorf("%s %q: pattern value round-trips to %q", typ, v, cmp[0].value)
			}
			if !strings.HasSuffix(ind.Pattern, "']") || strings.Count(ind.Pattern, "[") < 1 {
				t.Errorf("%s %q: pattern %q not closed properly", typ, v, ind.Pattern)
			}
		}
	}
}

func TestIDs(t *testing.T) {
	v4 := misp.Attribute{UUID: "8F3B0B6E-9F1C-4E2A-9B7D-5C3A1E2F4D6B", Type: "domain", Value: "a.example", ToIDS: true, Timestamp: testTS}
	v1 := misp.Attribute{UUID: "5c5a1b2e-3f4d-11ee-be56-0242ac120002", Type: "domain", Value: "b.example", ToIDS: true, Timestamp: testTS}
	split := misp.Attribute{UUID: "9a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", Type: "domain|ip", Value: "c.example|192.0.2.1", ToIDS: true, Timestamp: testTS}
	res := Convert(event(v4, v1, split), testOptions(), testNow)
	got := []string{res.Decisions[0].Exported[0], res.Decisions[1].Exported[0], res.Decisions[2].Exported[0], res.Decisions[2].Exported[1]}
	want := []string{
		"indicator--8f3b0b6e-9f1c-4e2a-9b7d-5c3a1e2f4d6b",
		"indicator--" + uuid.NewSHA1(Namespace, []byte(v1.UUID)).String(),
		"indicator--" + uuid.NewSHA1(Namespace, []byte(split.UUID+"/domain")).String(),
		"indicator--" + uuid.NewSHA1(Namespace, []byte(split.UUID+"/ip")).String(),
	}
	if !slices.Equal(got, want) {
		t.Errorf("ids = %q, want %q", got, want)
	}
	again := Convert(event(v4, v1, split), testOptions(), testNow.Add(time.Hour))
	for i := range res.Objects {
		if res.Objects[i].ID != again.Objects[i].ID || res.Objects[i].Hash != again.Objects[i].Hash {
			t.Errorf("object %d: id or hash differs between runs", i)
		}
	}
}

func TestHashChangesExactlyWithContent(t *testing.T) {
	base := attr("domain", "a.example")
	ref := Convert(event(base), testOptions(), testNow).Objects[1]

	// valid_until moves with now (expiry counted from now): hash unchanged.
	later := Convert(event(base), testOptions(), testNow.Add(48*time.Hour)).Objects[1]
	if later.Hash != ref.Hash {
		t.Error("hash changed when only valid_until changed")
	}
	if later.ValidUntil.Equal(ref.ValidUntil) {
		t.Error("valid_until did not follow now")
	}
	for name, mutate := range map[string]func(a *misp.Attribute, ev *misp.Event){
		"value":   func(a *misp.Attribute, _ *misp.Event) { a.Value = "b.example" },
		"comment": func(a *misp.Attribute, _ *misp.Event) { a.Comment = "now with a comment" },
		"tag":     func(a *misp.Attribute, _ *misp.Event) { a.Tags = []misp.Tag{{Name: "tlp:green"}} },
		"info":    func(_ *misp.Attribute, ev *misp.Event) { ev.Info = "renamed" },
	} {
		a := base
		ev := event()
		mutate(&a, ev)
		ev.Attributes = []misp.Attribute{a}
		if got := Convert(ev, testOptions(), testNow).Objects[1]; got.Hash == ref.Hash {
			t.Errorf("%s changed but the hash did not", name)
		}
	}
}

func TestIndicatorFields(t *testing.T) {
	first := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	a := attr("domain", "a.example", "misp:confidence-level=\"usually-confident\"", "sentinel-threattype:C2", "kill-chain:Command and Control", "tlp:amber", "custom:tag")
	a.FirstSeen = &first
	a.Comment = "seen in campaign X"
	o := testOptions()
	o.MISPURL = "https://misp.example.org/"
	ind, d := convertOne(t, o, a)
	if ind.SpecVersion != "2.1" || ind.PatternType != "stix" {
		t.Errorf("spec_version/pattern_type = %s/%s", ind.SpecVersion, ind.PatternType)
	}
	if ind.Created != "2026-10-01T08:00:00.000Z" || ind.Modified != ind.Created {
		t.Errorf("created/modified = %s/%s, want the attribute timestamp", ind.Created, ind.Modified)
	}
	if ind.ValidFrom != "2026-09-01T00:00:00.000Z" {
		t.Errorf("valid_from = %s, want first_seen", ind.ValidFrom)
	}
	if ind.ValidUntil != "2027-05-21T12:00:00.000Z" { // now + 180 days (domain-name)
		t.Errorf("valid_until = %s", ind.ValidUntil)
	}
	if ind.Confidence == nil || *ind.Confidence != 75 {
		t.Errorf("confidence = %v, want 75", ind.Confidence)
	}
	if !slices.Equal(ind.IndicatorTypes, []string{"C2"}) {
		t.Errorf("indicator_types = %v", ind.IndicatorTypes)
	}
	if len(ind.KillChainPhases) != 1 || ind.KillChainPhases[0].KillChainName != "lockheed-martin-cyber-kill-chain" || ind.KillChainPhases[0].PhaseName != "command-and-control" {
		t.Errorf("kill_chain_phases = %+v", ind.KillChainPhases)
	}
	if !slices.Equal(ind.ObjectMarkings, []string{tlpAmberID}) {
		t.Errorf("object_marking_refs = %v", ind.ObjectMarkings)
	}
	for _, l := range ind.Labels {
		if strings.HasPrefix(l, "tlp:") {
			t.Errorf("TLP tag %q became a label", l)
		}
	}
	if !slices.Contains(ind.Labels, "custom:tag") {
		t.Errorf("labels = %v, want custom:tag", ind.Labels)
	}
	if ind.CreatedByRef != "identity--"+testOrgUUID {
		t.Errorf("created_by_ref = %s", ind.CreatedByRef)
	}
	if ind.Name != "test event" || !strings.Contains(ind.Description, "seen in campaign X") || !strings.Contains(ind.Description, testEventUUID) {
		t.Errorf("name/description = %q / %q", ind.Name, ind.Description)
	}
	if len(ind.ExternalReferences) != 1 || ind.ExternalReferences[0].URL != "https://misp.example.org/events/view/"+testEventUUID || ind.ExternalReferences[0].ExternalID != testEventUUID {
		t.Errorf("external_references = %+v", ind.ExternalReferences)
	}
	if d.Reason != "" || len(d.Exported) != 1 {
		t.Errorf("decision = %+v", d)
	}
}

func TestIdentityObjectIsSharedAndEventIndependent(t *testing.T) {
	res1 := Convert(event(attr("domain", "a.example")), testOptions(), testNow)
	ev2 := event(attr("url", "http://b.example/"))
	ev2.UUID, ev2.Timestamp, ev2.Info = "0b0b0b0b-1111-4222-8333-444455556666", testTS.Add(time.Hour), "other"
	res2 := Convert(ev2, testOptions(), testNow)
	id1, id2 := res1.Objects[0], res2.Objects[0]
	if id1.Type != "identity" || !id1.Shared || id1.EventUUID != "" {
		t.Fatalf("identity = %+v", id1)
	}
	if id1.ID != "identity--"+testOrgUUID || id1.Hash != id2.Hash || string(id1.Body) != string(id2.Body) {
		t.Errorf("identity differs between events of the same organisation:\n%s\n%s", id1.Body, id2.Body)
	}
	var body struct{ Name, IdentityClass string }
	_ = json.Unmarshal(id1.Body, &body)
	if body.Name != "CIRCL" {
		t.Errorf("identity name = %q", body.Name)
	}
	noOrg := event(attr("domain", "a.example"))
	noOrg.Orgc = misp.Org{}
	res := Convert(noOrg, testOptions(), testNow)
	if res.Objects[0].Type != "indicator" || strings.Contains(string(res.Objects[0].Body), "created_by_ref") {
		t.Errorf("event without Orgc: %s", res.Objects[0].Body)
	}
}

func TestTLPPrecedence(t *testing.T) {
	cases := []struct {
		name       string
		attrTags   []string
		eventTags  []string
		defaultTLP string
		profile    Profile
		want       string
	}{
		{"attribute wins", []string{"tlp:green"}, []string{"tlp:red"}, "", "", tlpGreenID},
		{"event applies", nil, []string{"tlp:amber"}, "", "", tlpAmberID},
		{"upper case", []string{"TLP:RED"}, nil, "", "", tlpRedID},
		{"tlp 2.0 clear", []string{"tlp:clear"}, nil, "", "", tlpWhiteID},
		{"tlp 2.0 clear misp-stix", []string{"tlp:clear"}, nil, "", ProfileMISPSTIX, tlpClearID},
		{"amber+strict misp-stix", []string{"tlp:amber+strict"}, nil, "", ProfileMISPSTIX, tlpAmberStrictID},
		{"most restrictive of two", []string{"tlp:green", "tlp:red"}, nil, "", "", tlpRedID},
		{"default", nil, nil, "tlp:green", "", tlpGreenID},
		{"none", nil, nil, "", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev := event(attr("domain", "a.example", tc.attrTags...))
			for _, tag := range tc.eventTags {
				ev.Tags = append(ev.Tags, misp.Tag{Name: tag})
			}
			o := testOptions()
			o.DefaultTLP, o.Profile = tc.defaultTLP, tc.profile
			ind := indicators(t, Convert(ev, o, testNow))[0]
			got := strings.Join(ind.ObjectMarkings, ",")
			if got != tc.want {
				t.Errorf("object_marking_refs = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestConfidenceAndThreatTypePrecedence(t *testing.T) {
	ev := event(
		attr("domain", "a.example", `misp:confidence-level="rarely-confident"`, "sentinel-threattype:Botnet"),
		attr("domain", "b.example"),
	)
	ev.Tags = []misp.Tag{{Name: `misp:confidence-level="completely-confident"`}, {Name: "sentinel-threattype:Phishing"}}
	inds := indicators(t, Convert(ev, testOptions(), testNow))
	if *inds[0].Confidence != 25 || !slices.Equal(inds[0].IndicatorTypes, []string{"Botnet"}) {
		t.Errorf("attribute tags: confidence %d types %v", *inds[0].Confidence, inds[0].IndicatorTypes)
	}
	if *inds[1].Confidence != 100 || !slices.Equal(inds[1].IndicatorTypes, []string{"Phishing"}) {
		t.Errorf("event tags: confidence %d types %v", *inds[1].Confidence, inds[1].IndicatorTypes)
	}
	ind, _ := convertOne(t, testOptions(), attr("domain", "c.example"))
	if *ind.Confidence != 50 || !slices.Equal(ind.IndicatorTypes, []string{"WatchList"}) {
		t.Errorf("defaults: confidence %d types %v", *ind.Confidence, ind.IndicatorTypes)
	}
	var zero Options
	ind, _ = convertOne(t, zero, attr("domain", "c.example"))
	if ind.Confidence != nil || ind.IndicatorTypes != nil || ind.ValidUntil != "" {
		t.Errorf("zero options: confidence %v types %v valid_until %q", ind.Confidence, ind.IndicatorTypes, ind.ValidUntil)
	}
}

func TestSkipReasons(t *testing.T) {
	deleted := attr("domain", "deleted.example")
	deleted.Deleted = true
	notIDS := attr("domain", "notids.example")
	notIDS.ToIDS = false
	expired := attr("domain", "expired.example")
	past := testNow.Add(-time.Hour)
	expired.LastSeen = &past
	expired.FirstSeen = &testTS
	cases := []struct {
		name   string
		attr   misp.Attribute
		mutate func(o *Options)
		want   SkipReason
	}{
		{"deleted", deleted, nil, SkipDeleted},
		{"not ids", notIDS, nil, SkipNotIDS},
		{"unsupported", attr("text", "hello"), nil, SkipUnsupportedType},
		{"invalid", attr("ip-dst", "999.1.1.1"), nil, SkipInvalidValue},
		{"invalid hash", attr("md5", "tooshort"), nil, SkipInvalidValue},
		{"expired", expired, nil, SkipExpired},
		{"pattern language off", attr("yara", "rule x { condition: true }"), nil, SkipPatternLanguage},
		{"include types", attr("domain", "a.example"), func(o *Options) { o.Filter.IncludeTypes = []string{"url"} }, SkipFilteredType},
		{"exclude types", attr("domain", "a.example"), func(o *Options) { o.Filter.ExcludeTypes = []string{"domain"} }, SkipFilteredType},
		{"include tags", attr("domain", "a.example", "other"), func(o *Options) { o.Filter.IncludeTags = []string{"sentinel"} }, SkipFilteredTag},
		{"exclude tags", attr("domain", "a.example", `workflow:state="draft"`), func(o *Options) { o.Filter.ExcludeTags = []string{"workflow:state"} }, SkipFilteredTag},
		{"below confidence", attr("domain", "a.example", `misp:confidence-level="rarely-confident"`), func(o *Options) { o.Filter.MinConfidence = 50 }, SkipBelowConfidence},
		{"above tlp", attr("domain", "a.example", "tlp:red"), func(o *Options) { o.Filter.MaxTLP = "tlp:amber" }, SkipAboveTLP},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions()
			if tc.mutate != nil {
				tc.mutate(&o)
			}
			res := Convert(event(tc.attr), o, testNow)
			if len(res.Objects) != 1 { // the identity only
				t.Errorf("got %d objects, want only the identity", len(res.Objects))
			}
			d := res.Decisions[0]
			if d.Reason != tc.want || len(d.Exported) != 0 || d.Detail == "" {
				t.Errorf("decision = %+v, want reason %s with a detail", d, tc.want)
			}
		})
	}
}

// TestInvisibleOrReplacedCharactersInDomainsAreInvalid: MISP's JSON carries invalid UTF-8 as
// U+FFFD, and IDNA would turn it, a bidi override or a zero-width character into a different,
// real-looking xn-- domain ("ex\xffample.com" became xn--example-1e14b.com). Such values are
// refused before IDNA with invalid_value; a real internationalised name still converts.
func TestInvisibleOrReplacedCharactersInDomainsAreInvalid(t *testing.T) {
	for _, v := range []string{
		"ex\uFFFDample.com", // invalid UTF-8 after JSON decoding
		"ex\u202Eample.com", // right-to-left override
		"ex\u200Bample.com", // zero-width space
		"ex\u00ADample.com", // soft hyphen
		"ex\u2066ample.com", // left-to-right isolate
	} {
		for _, typ := range []string{"domain", "hostname", "domain|ip", "hostname|port"} {
			value := v
			switch typ {
			case "domain|ip":
				value += "|198.51.100.7"
			case "hostname|port":
				value += "|443"
			}
			res := Convert(event(attr(typ, value)), testOptions(), testNow)
			d := res.Decisions[0]
			for _, o := range res.Objects {
				if strings.Contains(string(o.Body), "xn--") {
					t.Errorf("%s %q exported as %s", typ, value, o.Body)
				}
			}
			if typ == "domain|ip" { // the IP component is still exported, the domain is named skipped
				if !strings.Contains(d.Detail, string(SkipInvalidValue)) {
					t.Errorf("%s %q: decision %+v, want the domain component skipped as %s", typ, value, d, SkipInvalidValue)
				}
				continue
			}
			if d.Reason != SkipInvalidValue {
				t.Errorf("%s %q: decision %+v, want %s", typ, value, d, SkipInvalidValue)
			}
		}
	}
	if got, err := normDomain("bücher.example"); err != nil || got != "xn--bcher-kva.example" {
		t.Errorf("a real IDN: %q, %v", got, err)
	}
}

func TestFiltersLetMatchingAttributesThrough(t *testing.T) {
	o := testOptions()
	o.Filter = Filter{IncludeTags: []string{"sentinel"}, IncludeTypes: []string{"domain"}, MinConfidence: 50, MaxTLP: "tlp:amber"}
	ev := event(attr("domain", "a.example", "sentinel:export", "tlp:green"))
	if d := Convert(ev, o, testNow).Decisions[0]; len(d.Exported) != 1 {
		t.Errorf("decision = %+v", d)
	}
}

func TestPatternLanguagesWhenEnabled(t *testing.T) {
	o := testOptions()
	o.ExportPatternLanguages = PatternLanguages
	rule := `rule test { strings: $a = "evil" condition: $a }`
	ind, _ := convertOne(t, o, attr("yara", rule))
	if ind.Pattern != rule || ind.PatternType != "yara" {
		t.Errorf("sentinel: %q %q", ind.Pattern, ind.PatternType)
	}
	o.Profile = ProfileMISPSTIX
	ind, _ = convertOne(t, o, attr("yara", rule))
	if ind.Pattern != "["+rule+"]" {
		t.Errorf("misp-stix: %q", ind.Pattern)
	}
}

func TestObjectAttributesAreTakenOneByOne(t *testing.T) {
	ev := event()
	ev.Objects = []misp.Object{{
		UUID: "7d2b5a1e-0c3f-4b6a-9e8d-1f2a3b4c5d6e", Name: "file", Timestamp: testTS,
		Attributes: []misp.Attribute{
			{UUID: "1d2b5a1e-0c3f-4b6a-9e8d-1f2a3b4c5d6e", Type: "sha256", ObjectRelation: "sha256", Value: strings.Repeat("ab", 32), ToIDS: true},
			{UUID: "2d2b5a1e-0c3f-4b6a-9e8d-1f2a3b4c5d6e", Type: "filename", ObjectRelation: "filename", Value: "evil.exe", ToIDS: false},
		},
	}}
	res := Convert(ev, testOptions(), testNow)
	inds := indicators(t, res)
	if len(inds) != 1 || !strings.Contains(inds[0].Description, "part of MISP object file (sha256)") {
		t.Fatalf("indicators = %+v", inds)
	}
	if inds[0].Created != "2026-10-01T08:00:00.000Z" {
		t.Errorf("created = %s, want the object timestamp", inds[0].Created)
	}
	if res.Decisions[1].Reason != SkipNotIDS || res.Decisions[1].ObjectName != "file" {
		t.Errorf("second object attribute: %+v", res.Decisions[1])
	}
	ev.Objects[0].Deleted = true
	if d := Convert(ev, testOptions(), testNow).Decisions[0]; d.Reason != SkipDeleted {
		t.Errorf("attribute of a deleted object: %+v", d)
	}
}

func TestExpiry(t *testing.T) {
	first := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	last := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		typ    string
		value  string
		last   *time.Time
		mutate func(o *Options)
		want   string
	}{
		{"default lifetime from now", "md5", strings.Repeat("a", 32), nil, nil, "2027-01-11T12:00:00.000Z"},
		{"per type override", "url", "http://a.example/", nil, nil, "2027-11-22T12:00:00.000Z"},
		{"from valid_from", "md5", strings.Repeat("a", 32), nil, func(o *Options) { o.ExpiryStart = ExpiryFromValidFrom; o.DaysToExpire = 400 }, "2027-02-05T00:00:00.000Z"},
		{"last_seen", "md5", strings.Repeat("a", 32), &last, nil, "2027-01-01T00:00:00.000Z"},
		{"last_seen ignored", "md5", strings.Repeat("a", 32), &last, func(o *Options) { o.IgnoreLastSeen = true }, "2027-01-11T12:00:00.000Z"},
		{"no lifetime", "md5", strings.Repeat("a", 32), nil, func(o *Options) { o.DaysToExpire = 0 }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := attr(tc.typ, tc.value)
			a.FirstSeen, a.LastSeen = &first, tc.last
			o := testOptions()
			if tc.mutate != nil {
				tc.mutate(&o)
			}
			res := Convert(event(a), o, testNow)
			ind := indicators(t, res)[0]
			if ind.ValidUntil != tc.want {
				t.Errorf("valid_until = %q, want %q", ind.ValidUntil, tc.want)
			}
			if tc.want != "" && FormatTime(res.Objects[1].ValidUntil) != tc.want {
				t.Errorf("Object.ValidUntil = %v", res.Objects[1].ValidUntil)
			}
		})
	}
	// valid_until is always after valid_from, even when valid_from lies in the future.
	future := testNow.Add(400 * 24 * time.Hour)
	a := attr("md5", strings.Repeat("b", 32))
	a.FirstSeen = &future
	ind, _ := convertOne(t, testOptions(), a)
	if ind.ValidUntil <= ind.ValidFrom {
		t.Errorf("valid_until %s not after valid_from %s", ind.ValidUntil, ind.ValidFrom)
	}
}

func TestLabelLists(t *testing.T) {
	tags := []string{"tlp:green", "admiralty-scale:source-reliability=\"a\"", "my-admiralty-scale:x", "type:OSINT", `misp:type="x"`, "osint:source-type=\"blog-post\""}
	cases := []struct {
		name        string
		deny, allow []string
		want        []string
	}{
		{"no lists", nil, nil, []string{"admiralty-scale:source-reliability=\"a\"", "my-admiralty-scale:x", "type:OSINT", `misp:type="x"`, "osint:source-type=\"blog-post\""}},
		{"deny by exact prefix", []string{"admiralty-scale"}, nil, []string{"my-admiralty-scale:x", "type:OSINT", `misp:type="x"`, "osint:source-type=\"blog-post\""}},
		{"allow by exact prefix", nil, []string{"type", "osint:source-type"}, []string{"type:OSINT", "osint:source-type=\"blog-post\""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions()
			o.LabelDenyList, o.LabelAllowList = tc.deny, tc.allow
			ind, _ := convertOne(t, o, attr("domain", "a.example", tags...))
			if !slices.Equal(ind.Labels, tc.want) {
				t.Errorf("labels = %q, want %q", ind.Labels, tc.want)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	d := testOptions()
	if err := d.Validate(); err != nil {
		t.Fatalf("Defaults invalid: %v", err)
	}
	var zero Options
	if err := zero.Validate(); err != nil {
		t.Fatalf("zero Options invalid: %v", err)
	}
	cases := map[string]func(o *Options){
		"profile":                  func(o *Options) { o.Profile = "graph" },
		"days_to_expire":           func(o *Options) { o.DaysToExpire = -1 },
		"days_to_expire_by_type":   func(o *Options) { o.DaysToExpireByType = map[string]int{"ipv4": 10} },
		"expiry_start":             func(o *Options) { o.ExpiryStart = "yesterday" },
		"default_confidence":       func(o *Options) { o.DefaultConfidence = 101 },
		"default_tlp":              func(o *Options) { o.DefaultTLP = "tlp:purple" },
		"export_pattern_languages": func(o *Options) { o.ExportPatternLanguages = []string{"pcre"} },
		"filter.min_confidence":    func(o *Options) { o.Filter.MinConfidence = -5 },
		"filter.max_tlp":           func(o *Options) { o.Filter.MaxTLP = "amber" },
	}
	for field, mutate := range cases {
		o := testOptions()
		mutate(&o)
		err := o.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), field) {
			t.Errorf("%s: error = %v, want one naming the field", field, err)
		}
	}
}

func TestDuplicateAttributeUUIDIsReported(t *testing.T) {
	a := attr("domain", "a.example")
	b := a
	b.Value = "b.example"
	res := Convert(event(a, b), testOptions(), testNow)
	if len(res.Decisions[0].Exported) != 1 || res.Decisions[1].Reason != SkipDuplicate {
		t.Errorf("decisions = %+v", res.Decisions)
	}
}

func TestConvertDoesNotReadTheClock(t *testing.T) {
	a := attr("domain", "a.example")
	a.Timestamp = time.Time{}
	ev := event(a)
	ev.Timestamp = time.Time{}
	at := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	res := Convert(ev, testOptions(), at)
	got := indicators(t, res)[0]
	if got.Created != "2001-02-03T04:05:06.000Z" || got.ValidUntil != "2001-08-02T04:05:06.000Z" {
		t.Errorf("created %s valid_until %s: want times derived from the now argument", got.Created, got.ValidUntil)
	}
}
