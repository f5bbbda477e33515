package stix

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateMapping = flag.Bool("update", false, "rewrite the generated type table in docs/MAPPING.md")

// generatedTables are the tables of docs/MAPPING.md generated from the code, each between
// its markers.
var generatedTables = []struct {
	begin, end string
	render     func() string
}{
	{
		"<!-- BEGIN GENERATED TYPE TABLE (go test ./stix -run TestMappingDoc -update) -->\n",
		"<!-- END GENERATED TYPE TABLE -->", MappingTable,
	},
	{
		"<!-- BEGIN GENERATED COMPOSITE TABLE (go test ./stix -run TestMappingDoc -update) -->\n",
		"<!-- END GENERATED COMPOSITE TABLE -->", CompositeTable,
	},
	{
		"<!-- BEGIN GENERATED GALAXY TABLE (go test ./stix -run TestMappingDoc -update) -->\n",
		"<!-- END GENERATED GALAXY TABLE -->", GalaxyTable,
	},
	{
		"<!-- BEGIN GENERATED CLUSTER RELATION TABLE (go test ./stix -run TestMappingDoc -update) -->\n",
		"<!-- END GENERATED CLUSTER RELATION TABLE -->", ClusterRelationTable,
	},
}

// TestMappingDocIsCurrent fails when a generated table in docs/MAPPING.md differs from the
// code; run `go test ./stix -run TestMappingDoc -update` to regenerate them.
func TestMappingDocIsCurrent(t *testing.T) {
	path := filepath.Join("..", "docs", "MAPPING.md")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	doc := string(data)
	stale := false
	for _, g := range generatedTables {
		begin := strings.Index(doc, g.begin)
		end := strings.Index(doc, g.end)
		if begin < 0 || end < begin {
			t.Fatalf("%s lacks the markers %q", path, strings.TrimSpace(g.begin))
		}
		table := g.render()
		if doc[begin+len(g.begin):end] == table {
			continue
		}
		stale = true
		doc = doc[:begin+len(g.begin)] + table + doc[end:]
	}
	if !stale {
		return
	}
	if *updateMapping {
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote the generated tables in %s", path)
		return
	}
	t.Errorf("a generated table in %s is stale: run go test ./stix -run TestMappingDoc -update", path)
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

func TestCompositeTableRendersEveryMode(t *testing.T) {
	table := CompositeTable()
	if strings.Contains(table, "error:") {
		t.Errorf("a sample value does not convert:\n%s", table)
	}
	if got, want := strings.Count(table, "\n")-2, len(CompositeTypes()); got != want {
		t.Errorf("table has %d rows, want %d", got, want)
	}
}
