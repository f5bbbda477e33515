package stix

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateMapping = flag.Bool("update", false, "rewrite the generated type table in docs/MAPPING.md")

const (
	tableBegin = "<!-- BEGIN GENERATED TYPE TABLE (go test ./stix -run TestMappingDoc -update) -->\n"
	tableEnd   = "<!-- END GENERATED TYPE TABLE -->"
)

// TestMappingDocIsCurrent fails when the type table in docs/MAPPING.md differs from the code;
// run `go test ./stix -run TestMappingDoc -update` to regenerate it.
func TestMappingDocIsCurrent(t *testing.T) {
	path := filepath.Join("..", "docs", "MAPPING.md")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	doc := string(data)
	begin := strings.Index(doc, tableBegin)
	end := strings.Index(doc, tableEnd)
	if begin < 0 || end < begin {
		t.Fatalf("%s lacks the generated table markers", path)
	}
	table := MappingTable()
	current := doc[begin+len(tableBegin) : end]
	if current == table {
		return
	}
	if *updateMapping {
		doc = doc[:begin+len(tableBegin)] + table + doc[end:]
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote the type table in %s", path)
		return
	}
	t.Errorf("the type table in %s is stale: run go test ./stix -run TestMappingDoc -update", path)
}

func TestMappingTableRendersEveryType(t *testing.T) {
	table := MappingTable()
	if strings.Contains(table, "error:") {
		t.Errorf("a sample value does not convert:\n%s", table)
	}
	if got, want := strings.Count(table, "\n")-2, len(typeTable); got != want {
		t.Errorf("table has %d rows, want %d", got, want)
	}
}
