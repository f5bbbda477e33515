package defender

import (
	"os"
	"strings"
	"testing"
)

// TestMappingDocListsEveryMappedType keeps docs/MAPPING.md's Defender table true to mispTypes.
func TestMappingDocListsEveryMappedType(t *testing.T) {
	doc, err := os.ReadFile("../docs/MAPPING.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "## Defender for Endpoint sinks")
	if !ok {
		t.Fatal("docs/MAPPING.md has no Defender section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	for misp, typ := range mispTypes {
		row := ""
		for _, line := range strings.Split(section, "\n") {
			if strings.Contains(line, "`"+strings.ReplaceAll(misp, "|", `\|`)+"`") {
				row = line
				break
			}
		}
		if row == "" || !strings.Contains(row, "`"+string(typ)+"`") {
			t.Errorf("docs/MAPPING.md does not map %s to %s (row %q)", misp, typ, row)
		}
	}
}
