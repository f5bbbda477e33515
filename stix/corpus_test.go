package stix

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mispsentinel/listener/internal/sharedref"
)

// corpusCase is one misp-stix conformance case.
type corpusCase struct {
	name       string
	input      []byte
	bundlePath string
}

func corpusCases(t testing.TB) []corpusCase {
	shared := sharedref.Dir(t)
	files, err := filepath.Glob(filepath.Join(shared, "corpus", "misp-stix", "*.misp.json"))
	if err != nil || len(files) == 0 {
		t.Skipf("no cases in %s", shared)
	}
	cases := make([]corpusCase, 0, len(files))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(filepath.Base(f), ".misp.json")
		cases = append(cases, corpusCase{name: name, input: data, bundlePath: strings.TrimSuffix(f, ".misp.json") + ".stix21.json"})
	}
	return cases
}

// stixObject is the part of a misp-stix bundle object the conformance test reads.
type stixObject struct {
	Type        string `json:"type"`
	ID          string `json:"id"`
	Pattern     string `json:"pattern"`
	PatternType string `json:"pattern_type"`
}

func readBundle(t testing.TB, path string) []stixObject {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read bundle: %v", err)
	}
	var b struct {
		Objects []stixObject `json:"objects"`
	}
	if err := json.Unmarshal(data, &b); err != nil {
		t.Fatalf("decode bundle %s: %v", path, err)
	}
	return b.Objects
}

// patternComparison is one "path = 'value'" comparison of a STIX pattern.
type patternComparison struct{ path, value string }

// comparisons extracts the string comparisons of a STIX pattern, unescaping the values. It
// reports ok=false when a literal is not terminated (the pattern is malformed).
func comparisons(pattern string) (out []patternComparison, ok bool) {
	rest := pattern
	for {
		i := strings.Index(rest, " = '")
		if i < 0 {
			return out, true
		}
		start := max(strings.LastIndexAny(rest[:i], "[( "), -1) + 1
		path := rest[start:i]
		rest = rest[i+4:]
		var v strings.Builder
		closed := false
		for j := 0; j < len(rest); j++ {
			c := rest[j]
			if c == '\\' && j+1 < len(rest) {
				v.WriteByte(rest[j+1])
				j++
				continue
			}
			if c == '\'' {
				rest = rest[j+1:]
				closed = true
				break
			}
			v.WriteByte(c)
		}
		if !closed {
			return out, false
		}
		out = append(out, patternComparison{path, v.String()})
	}
}
