package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mispsentinel/listener/internal/sharedref"
)

// TestMigratingCoversEveryOption checks that docs/MIGRATING.md names every misp2sentinel
// option listed in the reference inventory (shared/spec/misp2sentinel-behaviour.md §1).
func TestMigratingCoversEveryOption(t *testing.T) {
	root := sharedref.ModuleRoot(t)
	spec, err := os.ReadFile(filepath.Join(root, "..", "shared", "spec", "misp2sentinel-behaviour.md"))
	if os.IsNotExist(err) {
		t.Skip("reference corpus ../shared is absent; cannot check MIGRATING.md against the misp2sentinel inventory")
	}
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "MIGRATING.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(spec)
	start, end := strings.Index(text, "\n## 1."), strings.Index(text, "\n## 2.")
	if start < 0 || end < start {
		t.Fatal("the inventory has no section 1")
	}
	section := text[start:end]

	options := map[string]bool{}
	tableOption := regexp.MustCompile("`([^`]+)`")
	bulletOption := regexp.MustCompile(`^\s*\* ` + "`" + `([A-Z][A-Z_]+)`)
	flag := regexp.MustCompile(`^\* ` + "`" + `(--[a-z-]+)`)
	for _, line := range strings.Split(section, "\n") {
		if strings.HasPrefix(line, "| `") {
			for _, m := range tableOption.FindAllStringSubmatch(strings.Split(line, "|")[1], -1) {
				options[m[1]] = true
			}
		}
		if m := bulletOption.FindStringSubmatch(line); m != nil {
			options[m[1]] = true
		}
		if m := flag.FindStringSubmatch(line); m != nil {
			options[m[1]] = true
		}
	}
	for _, extra := range []string{"key_vault_name", "MISP-Key", "ClientSecret", "tenants", "tenantId", "workspaceId", "misp_decaying_score_threshold"} {
		options[extra] = true
	}
	if len(options) < 50 {
		t.Fatalf("found only %d options in the inventory; has its layout changed?", len(options))
	}
	for opt := range options {
		name := strings.Trim(opt, "[]'")
		if !strings.Contains(string(doc), name) {
			t.Errorf("docs/MIGRATING.md does not mention misp2sentinel option %s", opt)
		}
	}
}
