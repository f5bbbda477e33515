package stix

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// compositeCase is one composite attribute and what each mode must make of it.
type compositeCase struct {
	typ, value string
	// patterns per mode, in export order
	all, first, compound []string
	// fileNameInName: mode all puts the file name into the indicator's name
	fileNameInName bool
}

var compositeCases = []compositeCase{
	{
		typ: "domain|ip", value: "evil.example|198.51.100.7",
		all:      []string{"[domain-name:value = 'evil.example']", "[ipv4-addr:value = '198.51.100.7']"},
		first:    []string{"[domain-name:value = 'evil.example']"},
		compound: []string{"[domain-name:value = 'evil.example' AND domain-name:resolves_to_refs[*].value = '198.51.100.7']"},
	},
	{
		typ: "filename|sha256", value: "evil.exe|7FA3DAB1EF1A9B2D5FD9D5BD3CDEC7C76F4EC6C4E7A6CD2FFDF17C3D4E5E6F7A",
		all:            []string{"[file:hashes.'SHA-256' = '7fa3dab1ef1a9b2d5fd9d5bd3cdec7c76f4ec6c4e7a6cd2ffdf17c3d4e5e6f7a']"},
		first:          []string{"[file:name = 'evil.exe']"},
		compound:       []string{"[file:name = 'evil.exe' AND file:hashes.'SHA-256' = '7fa3dab1ef1a9b2d5fd9d5bd3cdec7c76f4ec6c4e7a6cd2ffdf17c3d4e5e6f7a']"},
		fileNameInName: true,
	},
	{
		typ: "malware-sample", value: "dropper.bin|d41d8cd98f00b204e9800998ecf8427e",
		all:            []string{"[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']"},
		first:          []string{"[file:name = 'dropper.bin']"},
		compound:       []string{"[file:name = 'dropper.bin' AND file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']"},
		fileNameInName: true,
	},
	{
		typ: "ip-dst|port", value: "198.51.100.7|443",
		all:      []string{"[ipv4-addr:value = '198.51.100.7']"},
		first:    []string{"[ipv4-addr:value = '198.51.100.7']"},
		compound: []string{"[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '198.51.100.7' AND network-traffic:dst_port = '443']"},
	},
	{
		typ: "ip-src|port", value: "198.51.100.8|8080",
		all:      []string{"[ipv4-addr:value = '198.51.100.8']"},
		first:    []string{"[ipv4-addr:value = '198.51.100.8']"},
		compound: []string{"[network-traffic:src_ref.type = 'ipv4-addr' AND network-traffic:src_ref.value = '198.51.100.8' AND network-traffic:src_port = '8080']"},
	},
	{
		typ: "hostname|port", value: "www.example.com|8443",
		all:      []string{"[domain-name:value = 'www.example.com']"},
		first:    []string{"[domain-name:value = 'www.example.com']"},
		compound: []string{"[domain-name:value = 'www.example.com' AND network-traffic:dst_port = '8443']"},
	},
}

// TestCompositeModes converts each composite type under each mode, configured for that one
// type, and checks the patterns and ids: all splits domain|ip into per-component ids, first
// and compound keep the attribute's own id, as misp2sentinel's remove_pipe_from_misp_attribute
// does for first.
func TestCompositeModes(t *testing.T) {
	for _, tc := range compositeCases {
		for _, mode := range CompositeModes {
			t.Run(tc.typ+"/"+string(mode), func(t *testing.T) {
				a := attr(tc.typ, tc.value)
				o := testOptions()
				o.Composite = map[string]Composite{tc.typ: mode}
				if err := o.Validate(); err != nil {
					t.Fatalf("Validate: %v", err)
				}
				res := Convert(event(a), o, testNow)
				want := map[Composite][]string{CompositeAll: tc.all, CompositeFirst: tc.first, CompositeCompound: tc.compound}[mode]
				if got := patterns(t, res); !slices.Equal(got, want) {
					t.Fatalf("patterns = %q, want %q", got, want)
				}
				ids := res.Decisions[0].Exported
				if len(want) == 1 && (len(ids) != 1 || ids[0] != "indicator--"+a.UUID) {
					t.Errorf("ids = %q, want the attribute's own id indicator--%s", ids, a.UUID)
				}
				if len(want) == 2 {
					wantIDs := []string{
						"indicator--" + uuid.NewSHA1(Namespace, []byte(a.UUID+"/domain")).String(),
						"indicator--" + uuid.NewSHA1(Namespace, []byte(a.UUID+"/ip")).String(),
					}
					if !slices.Equal(ids, wantIDs) {
						t.Errorf("ids = %q, want %q", ids, wantIDs)
					}
				}
				ind := indicators(t, res)[0]
				if tc.fileNameInName && mode == CompositeAll && !strings.Contains(ind.Name, "(") {
					t.Errorf("mode all: name %q lacks the file name", ind.Name)
				}
			})
		}
	}
}

// TestCompositeDefaultFollowsTheProfile checks that without a configured mode each profile
// keeps what it always did (sentinel: all, misp-stix: compound), and that a configured mode
// wins over the misp-stix profile too.
func TestCompositeDefaultFollowsTheProfile(t *testing.T) {
	for _, tc := range compositeCases {
		a := attr(tc.typ, tc.value)
		o := testOptions()
		if got := patterns(t, Convert(event(a), o, testNow)); !slices.Equal(got, tc.all) {
			t.Errorf("%s sentinel default: %q, want %q", tc.typ, got, tc.all)
		}
		o.Profile = ProfileMISPSTIX
		if got := patterns(t, Convert(event(a), o, testNow)); !slices.Equal(got, tc.compound) {
			t.Errorf("%s misp-stix default: %q, want %q", tc.typ, got, tc.compound)
		}
		o.Composite = map[string]Composite{tc.typ: CompositeFirst}
		if got := patterns(t, Convert(event(a), o, testNow)); !slices.Equal(got, tc.first) {
			t.Errorf("%s misp-stix with first: %q, want %q", tc.typ, got, tc.first)
		}
	}
}

// TestCompositeModeIsPerType sets two types to different modes in one event and leaves a third
// at the profile's default.
func TestCompositeModeIsPerType(t *testing.T) {
	o := testOptions()
	o.Composite = map[string]Composite{"domain|ip": CompositeFirst, "filename|sha256": CompositeCompound}
	ev := event(attr(compositeCases[0].typ, compositeCases[0].value), attr(compositeCases[1].typ, compositeCases[1].value),
		attr(compositeCases[3].typ, compositeCases[3].value))
	got := patterns(t, Convert(ev, o, testNow))
	want := slices.Concat(compositeCases[0].first, compositeCases[1].compound, compositeCases[3].all)
	if !slices.Equal(got, want) {
		t.Errorf("patterns = %q, want %q", got, want)
	}
}

// TestCompositeFirstSkipsAnInvalidFirstComponent: with first, domain|ip whose domain is invalid
// exports nothing (the IP is never the fallback), and says why.
func TestCompositeFirstSkipsAnInvalidFirstComponent(t *testing.T) {
	o := testOptions()
	o.Composite = map[string]Composite{"domain|ip": CompositeFirst}
	res := Convert(event(attr("domain|ip", "not a domain|198.51.100.7")), o, testNow)
	if len(res.Decisions[0].Exported) != 0 || res.Decisions[0].Reason != SkipInvalidValue {
		t.Errorf("decision = %+v, want skipped as %s", res.Decisions[0], SkipInvalidValue)
	}
}

func TestCompositeOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		composite map[string]Composite
		want      string
	}{
		{map[string]Composite{"regkey|value": CompositeFirst}, "not a composite MISP type"},
		{map[string]Composite{"domain": CompositeFirst}, "not a composite MISP type"},
		{map[string]Composite{"domain|ip": "split"}, "unknown mode"},
	} {
		o := testOptions()
		o.Composite = tc.composite
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%v) = %v, want an error containing %q", tc.composite, err, tc.want)
		}
	}
	if got := CompositeTypes(); !slices.Contains(got, "domain|ip") || slices.Contains(got, "regkey|value") || !slices.IsSorted(got) {
		t.Errorf("CompositeTypes() = %q", got)
	}
}
