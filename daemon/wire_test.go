package daemon

import (
	"reflect"
	"slices"
	"testing"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/stix"
)

// TestEveryConversionKeyIsHonoured sets each key of a conversion block and of a sink's filters,
// one at a time, and checks that the stix options the sink converts with change: a key the
// configuration accepts must never silently do nothing.
func TestEveryConversionKeyIsHonoured(t *testing.T) {
	base := config.Default().Conversion
	baseFilters := config.Filters{}
	want := conversionOptions(base, baseFilters, "https://misp.example.org")

	sample := func(t *testing.T, f reflect.Value, name string) {
		t.Helper()
		switch f.Kind() {
		case reflect.String:
			f.SetString("x-" + name)
		case reflect.Int:
			f.SetInt(f.Int() + 7)
		case reflect.Bool:
			f.SetBool(!f.Bool())
		case reflect.Slice:
			f.Set(reflect.ValueOf([]string{"yara"}))
		case reflect.Map:
			if f.Type().Elem().Kind() == reflect.String {
				f.Set(reflect.ValueOf(map[string]string{"domain|ip": config.CompositeFirst}))
				break
			}
			f.Set(reflect.ValueOf(map[string]int{"file": 3}))
		default:
			t.Fatalf("field %s has kind %s: extend the test", name, f.Kind())
		}
	}
	for _, blk := range []struct {
		name   string
		typ    reflect.Type
		mutate func(field int, set func(reflect.Value)) stix.Options
	}{
		{"conversion", reflect.TypeFor[config.Conversion](), func(i int, set func(reflect.Value)) stix.Options {
			c := base
			set(reflect.ValueOf(&c).Elem().Field(i))
			return conversionOptions(c, baseFilters, "https://misp.example.org")
		}},
		{"filters", reflect.TypeFor[config.Filters](), func(i int, set func(reflect.Value)) stix.Options {
			f := baseFilters
			set(reflect.ValueOf(&f).Elem().Field(i))
			return conversionOptions(base, f, "https://misp.example.org")
		}},
	} {
		for i := range blk.typ.NumField() {
			field := blk.typ.Field(i)
			key := blk.name + "." + field.Tag.Get("yaml")
			got := blk.mutate(i, func(v reflect.Value) { sample(t, v, key) })
			if reflect.DeepEqual(got, want) {
				t.Errorf("%s changes nothing in the stix options: the key would be accepted and ignored", key)
			}
		}
	}
}

// TestConversionOptionsMapping pins the meaning of the mapped keys.
func TestConversionOptionsMapping(t *testing.T) {
	c := config.Default().Conversion
	c.TagsIgnore = []string{"misp-galaxy"}
	c.AllowedTaxonomies = []string{"admiralty-scale"}
	c.PatternTypes = []string{"stix", "yara", "sigma"}
	c.ExpireStart = config.ExpireStartValid
	f := config.Filters{IncludeTags: []string{"tlp:green"}, ExcludeTags: []string{"kill-chain"},
		AttributeTypes: []string{"ip-dst"}, MinConfidence: 40, MaxTLP: "tlp:amber"}
	o := conversionOptions(c, f, "https://misp.example.org")
	if !slices.Equal(o.LabelDenyList, c.TagsIgnore) || !slices.Equal(o.LabelAllowList, c.AllowedTaxonomies) {
		t.Errorf("label lists = %v / %v", o.LabelDenyList, o.LabelAllowList)
	}
	if !slices.Equal(o.ExportPatternLanguages, []string{"yara", "sigma"}) {
		t.Errorf("ExportPatternLanguages = %v, want the non-stix pattern types", o.ExportPatternLanguages)
	}
	if o.ExpiryStart != stix.ExpiryStart(config.ExpireStartValid) || o.Profile != stix.ProfileSentinel || o.MISPURL != "https://misp.example.org" {
		t.Errorf("options = %+v", o)
	}
	wantFilter := stix.Filter{IncludeTags: f.IncludeTags, ExcludeTags: f.ExcludeTags, IncludeTypes: f.AttributeTypes, MinConfidence: 40, MaxTLP: "tlp:amber"}
	if !reflect.DeepEqual(o.Filter, wantFilter) {
		t.Errorf("filter = %+v, want %+v", o.Filter, wantFilter)
	}
	if err := o.Validate(); err != nil {
		t.Errorf("the mapped options do not validate: %v", err)
	}
	// The mapped options of the default configuration are valid too.
	def := conversionOptions(config.Default().Conversion, config.Filters{}, "")
	if err := def.Validate(); err != nil {
		t.Errorf("default options do not validate: %v", err)
	}
}

// TestCompositeMapping checks that composite and composite_by_type reach the stix options as a
// complete per-type map, with profile resolved by the conversion profile, and that config's
// list of composite types is stix's.
func TestCompositeMapping(t *testing.T) {
	if !slices.Equal(config.CompositeTypes, stix.CompositeTypes()) {
		t.Fatalf("config.CompositeTypes = %q, stix.CompositeTypes() = %q", config.CompositeTypes, stix.CompositeTypes())
	}
	c := config.Default().Conversion
	c.Composite = config.CompositeFirst
	c.CompositeByType = map[string]string{"filename|sha256": config.CompositeAll, "ip-dst|port": config.CompositeProfile}
	o := conversionOptions(c, config.Filters{}, "")
	if len(o.Composite) != len(stix.CompositeTypes()) {
		t.Fatalf("Composite has %d types, want every composite type", len(o.Composite))
	}
	for typ, want := range map[string]stix.Composite{"domain|ip": stix.CompositeFirst, "filename|md5": stix.CompositeFirst,
		"filename|sha256": stix.CompositeAll, "ip-dst|port": stix.CompositeAll} {
		if o.Composite[typ] != want {
			t.Errorf("Composite[%s] = %q, want %q", typ, o.Composite[typ], want)
		}
	}
	c.Profile = config.ProfileMISPSTIX
	if got := conversionOptions(c, config.Filters{}, "").Composite["ip-dst|port"]; got != stix.CompositeCompound {
		t.Errorf("profile under misp-stix = %q, want compound", got)
	}
	def := conversionOptions(config.Default().Conversion, config.Filters{}, "")
	for typ, mode := range def.Composite {
		if mode != stix.CompositeAll {
			t.Errorf("default Composite[%s] = %q, want all (the sentinel profile as before)", typ, mode)
		}
	}
	if err := o.Validate(); err != nil {
		t.Errorf("mapped options do not validate: %v", err)
	}
}

// TestSentinelConfigMapping checks that the sink keys reach the upload client's configuration.
func TestSentinelConfigMapping(t *testing.T) {
	s := config.Sink{
		Name: "soc", WorkspaceID: "11111111-2222-4333-8444-555555555555", Cloud: "public", API: "stix-objects",
		APIVersion: "2024-02-01-preview", SourceSystem: "MISP-test", UserAgent: "ua/1", BatchSize: 42,
		Endpoints: config.Endpoints{LoginHost: "https://login.example", APIHost: "https://api.example", Scope: "https://scope.example/.default"},
		Identity:  config.Identity{Kind: "client_secret", TenantID: "t", ClientID: "c", ClientSecret: config.ParseSecret("literal:s3cret")},
	}
	got, err := SentinelConfig(s)
	if err != nil {
		t.Fatal(err)
	}
	if got.WorkspaceID != s.WorkspaceID || got.SourceSystem != "MISP-test" || got.UserAgent != "ua/1" || got.BatchSize != 42 ||
		got.APIVersion != s.APIVersion || got.AuthorityHost != "https://login.example" || got.APIURL != "https://api.example" ||
		got.Scope != "https://scope.example/.default" || string(got.API) != "stix-objects" || string(got.Cloud) != "public" {
		t.Errorf("sentinel config = %+v", got)
	}
	if got.Credential.TenantID != "t" || got.Credential.ClientID != "c" || string(got.Credential.Kind) != "client_secret" ||
		!got.Credential.DisableInstanceDiscovery {
		t.Errorf("credential = %+v", got.Credential)
	}
}

// TestDecayOptionsMapping pins a sink's decay block onto the stix decay policy.
func TestDecayOptionsMapping(t *testing.T) {
	if d := decayOptions(config.Decay{Confidence: config.DecayConfidenceKeep}); d.Enabled {
		t.Errorf("no model: %+v, want decay off", d)
	}
	d := decayOptions(config.Decay{Model: "NIDS", MinScore: 40, Confidence: config.DecayConfidenceFromScore,
		Parameters: config.DecayParameters{LifetimeDays: 3, DecaySpeed: 0.3, Threshold: 30}})
	if !d.Enabled || d.Model != "NIDS" || d.MinScore != 40 || !d.ConfidenceFromScore || d.Parameters == nil ||
		d.Parameters.LifetimeDays != 3 || d.Parameters.DecaySpeed != 0.3 || d.Parameters.Threshold != 30 || !d.Parameters.Decays() {
		t.Errorf("decay = %+v (parameters %+v)", d, d.Parameters)
	}
	d = decayOptions(config.Decay{Model: "any", Confidence: config.DecayConfidenceKeep})
	if !d.Enabled || d.ConfidenceFromScore || d.Parameters != nil {
		t.Errorf("any model without parameters: %+v", d)
	}
	o := stix.Options{Decay: d}
	if err := o.Validate(); err != nil {
		t.Errorf("mapped decay options do not validate: %v", err)
	}
}
