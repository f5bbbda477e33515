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
		{"unknown flag", []string{"--fast"}, exitUsage, "unknown flag: --fast"},
		{"unknown measurement", []string{"--only", "conversion,warp"}, exitUsage, `unknown measurement "warp"`},
		{"negative size", []string{"--reconcile-attributes", "-5"}, exitUsage, "must not be negative"},
		{"help", []string{"-h"}, exitOK, "--json FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := dispatch(context.Background(), append([]string{"bench"}, tt.args...), &stdout, &stderr); code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.wantCode, stderr.String())
			}
			if out := stdout.String() + stderr.String(); !strings.Contains(out, tt.wantErr) {
				t.Errorf("output %q lacks %q", out, tt.wantErr)
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
	code := dispatch(context.Background(), []string{"bench", "--quick", "--only", "conversion", "--json", jsonPath}, &stdout, &stderr)
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
		if code := dispatch(context.Background(), append([]string{"soak"}, args...), &stdout, &stderr); code != exitUsage {
			t.Errorf("soak %v: exit %d, want %d; stderr: %s", args, code, exitUsage, stderr.String())
		}
	}
}

// TestEveryCommandAnswersHelp: -h on every command of listener-lab prints the usage and exits 0.
func TestEveryCommandAnswersHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"bench", "-h"}, {"soak", "--help"}, {"help"}} {
		var stdout, stderr bytes.Buffer
		if code := dispatch(context.Background(), args, &stdout, &stderr); code != exitOK || !strings.Contains(stdout.String(), "Usage:") {
			t.Errorf("listener-lab %v = %d\n%s%s", args, code, stdout.String(), stderr.String())
		}
	}
}
