package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const convertTestEvent = `{"Event":{"uuid":"5f3c1a2b-1111-4222-8333-444455556666","info":"cli test","timestamp":"1603642920",
 "Orgc":{"name":"CIRCL","uuid":"55f6ea5e-2c60-40e5-964f-47a8950d210f"},
 "Attribute":[
  {"uuid":"0a8b5b2e-7c1d-4e5f-9a6b-1c2d3e4f5a6b","type":"domain|ip","value":"evil.example|198.51.100.7","to_ids":true,"timestamp":"1603642920"},
  {"uuid":"1a8b5b2e-7c1d-4e5f-9a6b-1c2d3e4f5a6b","type":"domain","value":"quiet.example","to_ids":false,"timestamp":"1603642920"}]}}`

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "event.json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConvertPrintsOneBundle(t *testing.T) {
	for _, tc := range []struct {
		profile  string
		patterns []string
	}{
		{"sentinel", []string{"[domain-name:value = 'evil.example']", "[ipv4-addr:value = '198.51.100.7']"}},
		{"misp-stix", []string{"[domain-name:value = 'evil.example' AND domain-name:resolves_to_refs[*].value = '198.51.100.7']"}},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := dispatch(context.Background(), []string{"convert", "--profile", tc.profile, writeTemp(t, convertTestEvent)}, &stdout, &stderr)
			if code != exitOK {
				t.Fatalf("exit %d, stderr: %s", code, stderr.String())
			}
			var bundle struct {
				Type    string `json:"type"`
				ID      string `json:"id"`
				Objects []struct {
					Type    string `json:"type"`
					Pattern string `json:"pattern"`
				} `json:"objects"`
			}
			if err := json.Unmarshal(stdout.Bytes(), &bundle); err != nil {
				t.Fatalf("stdout is not one JSON bundle: %v\n%s", err, stdout.String())
			}
			if bundle.Type != "bundle" || !strings.HasPrefix(bundle.ID, "bundle--") {
				t.Errorf("bundle header = %q %q", bundle.Type, bundle.ID)
			}
			var patterns []string
			for _, o := range bundle.Objects {
				if o.Type == "indicator" {
					patterns = append(patterns, o.Pattern)
				}
			}
			if strings.Join(patterns, "\n") != strings.Join(tc.patterns, "\n") {
				t.Errorf("patterns = %q, want %q", patterns, tc.patterns)
			}
			if bundle.Objects[0].Type != "identity" {
				t.Errorf("first object is %s, want the creator identity", bundle.Objects[0].Type)
			}
		})
	}
}

func TestConvertExplainGivesEveryAttributeADecision(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := dispatch(context.Background(), []string{"convert", "--explain", writeTemp(t, convertTestEvent)}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d, stderr: %s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), stdout.String())
	}
	if !strings.Contains(lines[0], "\texported\tindicator--") {
		t.Errorf("line 1 = %q, want exported", lines[0])
	}
	if !strings.Contains(lines[1], "\tskipped\tnot_ids\t") {
		t.Errorf("line 2 = %q, want skipped not_ids", lines[1])
	}
}

func TestConvertReadsStdin(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdin
	os.Stdin = r
	t.Cleanup(func() { os.Stdin = old })
	go func() {
		w.WriteString(convertTestEvent)
		w.Close()
	}()
	var stdout, stderr bytes.Buffer
	if code := dispatch(context.Background(), []string{"convert", "-"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d, stderr: %s", code, stderr.String())
	}
	if !bytes.Contains(stdout.Bytes(), []byte(`"type":"bundle"`)) {
		t.Errorf("no bundle on stdout: %s", stdout.String())
	}
}

func TestConvertRejectsBadInput(t *testing.T) {
	cases := []struct {
		name string
		args func(t *testing.T) []string
		code int
		want string
	}{
		{"no file", func(*testing.T) []string { return nil }, exitUsage, "no input file"},
		{"bad profile", func(t *testing.T) []string { return []string{"--profile", "graph", "x"} }, exitUsage, "unknown profile"},
		{"missing file", func(t *testing.T) []string { return []string{filepath.Join(t.TempDir(), "nope.json")} }, exitBadInput, "open input"},
		{"malformed json", func(t *testing.T) []string { return []string{writeTemp(t, `{"Event":{"uuid":"a"`)} }, exitBadInput, "unexpected end"},
		{"bad field", func(t *testing.T) []string {
			return []string{writeTemp(t, `{"Event":{"uuid":"a","Attribute":[{"to_ids":"maybe"}]}}`)}
		}, exitBadInput, "Event.Attribute[0].to_ids"},
		{"not an event", func(t *testing.T) []string { return []string{writeTemp(t, `{"hello":"world"}`)} }, exitBadInput, "no MISP event"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := dispatch(context.Background(), append([]string{"convert"}, tc.args(t)...), &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q does not mention %q", stderr.String(), tc.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout not empty on error: %s", stdout.String())
			}
		})
	}
}
