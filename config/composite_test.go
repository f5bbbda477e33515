package config

import (
	"maps"
	"testing"
)

// TestCompositeKeys loads composite and composite_by_type at the top level and per sink: a
// sink's composite_by_type replaces the top-level map (as every conversion map does), and
// CompositeModes resolves profile by each block's profile.
func TestCompositeKeys(t *testing.T) {
	yml := `
misp: {url: https://misp.example.org, key: k}
conversion:
  composite: first
  composite_by_type: {filename|sha256: all}
sinks:
  - name: a
    workspace_id: 11111111-2222-4333-8444-555555555555
    identity: {kind: managed_identity}
  - name: b
    workspace_id: 11111111-2222-4333-8444-666666666666
    identity: {kind: managed_identity}
    conversion:
      profile: misp-stix
      composite: profile
      composite_by_type: {domain|ip: first}
`
	cfg, err := Parse([]byte(yml), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Sinks[0].Conversion.CompositeModes(), cfg.Sinks[1].Conversion.CompositeModes()
	for typ, want := range map[string]string{"domain|ip": CompositeFirst, "filename|sha256": CompositeAll, "ip-dst|port": CompositeFirst} {
		if a[typ] != want {
			t.Errorf("sink a: %s = %q, want %q", typ, a[typ], want)
		}
	}
	for typ, want := range map[string]string{"domain|ip": CompositeFirst, "filename|sha256": CompositeCompound, "ip-dst|port": CompositeCompound} {
		if b[typ] != want {
			t.Errorf("sink b: %s = %q, want %q", typ, b[typ], want)
		}
	}
	if len(a) != len(CompositeTypes) {
		t.Errorf("CompositeModes has %d types, want %d", len(a), len(CompositeTypes))
	}
	// The default is the sentinel profile's own handling for every type.
	for typ, mode := range Default().Conversion.CompositeModes() {
		if mode != CompositeAll {
			t.Errorf("default %s = %q, want all", typ, mode)
		}
	}
	// A sink's map never leaks into the top-level block.
	if !maps.Equal(cfg.Conversion.CompositeByType, map[string]string{"filename|sha256": CompositeAll}) {
		t.Errorf("top-level composite_by_type = %v", cfg.Conversion.CompositeByType)
	}
}

// TestCompositeFromEnvironment sets the keys from the environment, as the Azure Function
// migration does for every key.
func TestCompositeFromEnvironment(t *testing.T) {
	yml := `
misp: {url: https://misp.example.org, key: k}
sinks:
  - name: a
    workspace_id: 11111111-2222-4333-8444-555555555555
    identity: {kind: managed_identity}
`
	cfg, err := Parse([]byte(yml), []string{"LISTENER_CONVERSION_COMPOSITE=first"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := cfg.Sinks[0].Conversion.CompositeModes()["domain|ip"]; got != CompositeFirst {
		t.Errorf("domain|ip = %q, want first", got)
	}
}
