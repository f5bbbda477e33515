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

func TestBenchFlags(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"unknown flag", []string{"--fast"}, exitUsage, "flag provided but not defined"},
		{"unknown measurement", []string{"--only", "conversion,warp"}, exitUsage, `unknown measurement "warp"`},
		{"negative size", []string{"--reconcile-attributes", "-5"}, exitUsage, "must not be negative"},
		{"help", []string{"-h"}, exitOK, "-json FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := runBench(context.Background(), tt.args, &stdout, &stderr); code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.wantErr)
			}
		})
	}
}

// TestBenchConversionWritesTableAndJSON runs the one measurement that needs no child process
// and checks the table and the JSON agree. Whether the figure passes depends on the machine,
// so only the exit code's consistency with the JSON is checked.
func TestBenchConversionWritesTableAndJSON(t *testing.T) {
	jsonPath := filepath.Join(t.TempDir(), "bench.json")
	var stdout, stderr bytes.Buffer
	code := runBench(context.Background(), []string{"--quick", "--only", "conversion", "--json", jsonPath}, &stdout, &stderr)
	if code != exitOK && code != exitFailure {
		t.Fatalf("exit %d; stderr: %s", code, stderr.String())
	}
	data, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		AllPass bool `json:"all_pass"`
		Figures []struct {
			Key     string  `json:"key"`
			Value   float64 `json:"value"`
			Display string  `json:"display"`
		} `json:"figures"`
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, data)
	}
	if len(rep.Figures) != 1 || rep.Figures[0].Key != "conversion_attributes_per_s" || rep.Figures[0].Value <= 0 {
		t.Fatalf("figures = %+v", rep.Figures)
	}
	if !strings.Contains(stdout.String(), rep.Figures[0].Display) || !strings.Contains(stdout.String(), "--quick") {
		t.Errorf("table does not show the JSON's figure %q:\n%s", rep.Figures[0].Display, stdout.String())
	}
	if (code == exitOK) != rep.AllPass {
		t.Errorf("exit %d but all_pass %v", code, rep.AllPass)
	}
}

func TestSoakFlags(t *testing.T) {
	for _, args := range [][]string{{"--duration", "0s"}, {"--settle", "-1s"}, {"--bogus"}} {
		var stdout, stderr bytes.Buffer
		if code := runSoak(context.Background(), args, &stdout, &stderr); code != exitUsage {
			t.Errorf("soak %v: exit %d, want %d; stderr: %s", args, code, exitUsage, stderr.String())
		}
	}
}
