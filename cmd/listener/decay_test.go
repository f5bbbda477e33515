package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckRefusesAttributeScopeDecayFilters: MISP's events search silently ignores
// excludeDecayed, so check refuses it in misp.event_filters and points to the decay block.
func TestCheckRefusesAttributeScopeDecayFilters(t *testing.T) {
	path := filepath.Join("..", "..", "config", "testdata", "invalid", "misp-filter-exclude-decayed.yaml")
	code, out, errOut := runCommand(t, "check", "-c", path, "--offline")
	if code != exitBadInput {
		t.Errorf("check = %d, want %d\n%s%s", code, exitBadInput, out, errOut)
	}
	if !strings.Contains(errOut, "misp.event_filters.excludeDecayed") || !strings.Contains(errOut, "decay block") {
		t.Errorf("check does not point from excludeDecayed to the decay block:\n%s", errOut)
	}
}

// TestConvertExplainShowsDecayed: `convert -c --explain` on an event saved from a search with
// includeDecayScore shows the decay verdict of the sink's decay block, with its reason.
func TestConvertExplainShowsDecayed(t *testing.T) {
	cfg := writeTemp(t, `misp: {url: "https://misp.example", key: 0123456789abcdefghij0123456789ABCDEFGHIJ}
sinks:
  - name: soc
    workspace_id: 11111111-2222-4333-8444-555555555555
    identity: {kind: client_secret, tenant_id: aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee, client_id: 99999999-8888-4777-8666-555555555555, client_secret: x}
    decay: {model: NIDS, min_score: 50}
store: {dir: /tmp/unused}
`)
	event := writeTemp(t, `{"Event":{"uuid":"5f3c1a2b-1111-4222-8333-444455556666","info":"decay","timestamp":"1764000000",
  "Attribute":[
    {"uuid":"a1111111-1111-4222-8333-444455556666","type":"ip-dst","category":"Network activity","value":"198.51.100.1","to_ids":true,"timestamp":"1764000000",
     "decay_score":[{"score":72.5,"base_score":80,"decayed":false,"DecayingModel":{"id":"1","name":"NIDS"}}]},
    {"uuid":"a2222222-1111-4222-8333-444455556666","type":"ip-dst","category":"Network activity","value":"198.51.100.2","to_ids":true,"timestamp":"1764000000",
     "decay_score":[{"score":31.4,"base_score":80,"decayed":false,"DecayingModel":{"id":"1","name":"NIDS"}}]}]}}`)
	code, out, errOut := runCommand(t, "convert", event, "--explain", "-c", cfg)
	if code != exitOK {
		t.Fatalf("convert --explain -c = %d\n%s", code, errOut)
	}
	for _, want := range []string{
		"\"198.51.100.1\"\tsoc\texported\t",
		"\"198.51.100.2\"\tsoc\tskipped\tdecayed\t",
		`score 31.4 of decaying model "NIDS" (id 1) is below the sink's min_score 50`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explain lacks %q:\n%s", want, out)
		}
	}
}
