package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mispsentinel/listener/internal/sharedref"
	"github.com/mispsentinel/listener/misp"
)

// TestExplainGivesEveryCorpusAttributeADecision runs `listener convert --explain` over every
// MISP event of the misp-stix conformance corpus and checks that each attribute, object
// attributes included, gets exactly one line: exported with its indicator ids, or skipped with
// a reason.
func TestExplainGivesEveryCorpusAttributeADecision(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(sharedref.Dir(t), "corpus", "misp-stix", "*.misp.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus events found: %v", err)
	}
	attributes, exported, skipped, clusters := 0, 0, 0, 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := misp.DecodeEvent(data)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
			continue
		}
		var stdout, stderr bytes.Buffer
		if code := dispatch(context.Background(), []string{"convert", "--explain", f}, &stdout, &stderr); code != exitOK {
			t.Errorf("%s: exit %d: %s", filepath.Base(f), code, stderr.String())
			continue
		}
		lines := strings.Split(strings.TrimRight(stdout.String(), "\n"), "\n")
		if stdout.Len() == 0 {
			lines = nil
		}
		attrLines := 0
		for _, line := range lines {
			if fields := strings.Split(line, "\t"); len(fields) < 2 || fields[1] != "galaxy" {
				attrLines++
			} else {
				clusters++
			}
		}
		if attrLines != ev.AttributeCount() {
			t.Errorf("%s: %d explain lines for %d attributes", filepath.Base(f), attrLines, ev.AttributeCount())
			continue
		}
		attributes += attrLines
		for _, line := range lines {
			fields := strings.Split(line, "\t")
			switch {
			case len(fields) >= 7 && fields[5] == "exported" && strings.Contains(fields[6], "--"):
				exported++
			case len(fields) >= 7 && fields[5] == "skipped" && fields[6] != "":
				skipped++
			default:
				t.Errorf("%s: line without a decision and reason: %q", filepath.Base(f), line)
			}
		}
	}
	t.Logf("%d corpus events, %d attributes and %d galaxy clusters: %d exported, %d skipped with a reason", len(files), attributes, clusters, exported, skipped)
}
