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
