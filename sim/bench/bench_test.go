package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mispsentinel/listener/sim/lab"
)

// TestMain lets the test binary act as the listener the reconcile and idle measurements start.
func TestMain(m *testing.M) {
	if lab.IsChild() {
		os.Exit(lab.RunChild(os.Args[1:], os.Stderr))
	}
	os.Exit(m.Run())
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestRunEveryMeasurement runs every measurement at tiny sizes and checks that each produced
// its figures without error and that the figures that are not speeds hold: nothing uploaded
// on the unchanged sync, no 429, latencies measured. Speed targets are not asserted here.
func TestRunEveryMeasurement(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the daemon against the simulators: skipped with -short")
	}
	sizes := Sizes{
		ConversionAttributes: 300, ConversionSeconds: 0.1,
		UploadEvents: 12, UploadTimeScale: 6,
		LatencyEvents: 4, LatencyGap: 100 * time.Millisecond,
		ReconcileAttributes: 2_000,
		IdleSettle:          200 * time.Millisecond,
	}
	rep, err := Run(context.Background(), Options{Sizes: &sizes, Command: lab.TestBinaryCommand, Dir: t.TempDir(), Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[string]Figure{}
	for _, f := range rep.Figures {
		if f.Error != "" {
			t.Errorf("%s: %s", f.Name, f.Error)
		}
		byKey[f.Key] = f
	}
	for _, key := range []string{"conversion_attributes_per_s", "upload_quota_utilisation", "latency_p50_s", "latency_p99_s",
		"steady_state_uploads_per_indicator", "reconcile_wall_s", "reconcile_peak_rss_bytes", "idle_rss_bytes"} {
		f, ok := byKey[key]
		if !ok {
			t.Errorf("figure %s missing", key)
			continue
		}
		if f.Value < 0 || (key != "steady_state_uploads_per_indicator" && f.Value == 0) {
			t.Errorf("%s = %v", key, f.Value)
		}
	}
	if f := byKey["steady_state_uploads_per_indicator"]; !f.Pass || f.Value != 0 {
		t.Errorf("unchanged sync uploaded: %+v", f)
	}
	if f := byKey["reconcile_wall_s"]; !strings.Contains(f.Detail, "changed=0") || !strings.Contains(f.Detail, "uploaded=0") {
		t.Errorf("reconcile detail lacks the child's summary of an unchanged sync: %s", f.Detail)
	}
	if f := byKey["upload_quota_utilisation"]; !strings.Contains(f.Display, "0 × 429") {
		t.Errorf("upload figure %q: want no 429", f.Display)
	}
	if p50, p99 := byKey["latency_p50_s"].Value, byKey["latency_p99_s"].Value; p50 > p99 {
		t.Errorf("p50 %v > p99 %v", p50, p99)
	}

	var table, js bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"FIGURE", "conversion, one core", "misp-stix ≈ 510", "uploads per unchanged indicator"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Figures) != len(rep.Figures) || back.Machine.CPUs == 0 {
		t.Errorf("JSON round trip lost figures or the machine: %+v", back)
	}
}

func TestRunRejectsUnknownMeasurement(t *testing.T) {
	if _, err := Run(context.Background(), Options{Only: []string{"conversion", "speed"}}); err == nil || !strings.Contains(err.Error(), `"speed"`) {
		t.Fatalf("err = %v, want it to name the unknown measurement", err)
	}
}

func TestChildMeasurementsNeedACommand(t *testing.T) {
	rep, err := Run(context.Background(), Options{Only: []string{"idle"}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Figures) != 1 || rep.Figures[0].Error == "" || rep.AllPass {
		t.Fatalf("figures = %+v, want one failed figure", rep.Figures)
	}
}

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		values []time.Duration
		p      float64
		want   time.Duration
	}{
		{nil, 50, 0},
		{ms(7), 99, 7 * time.Millisecond},
		{ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{ms(1, 2, 3, 4), 99, 4 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90, 9 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 100, 10 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := percentile(tt.values, tt.p); got != tt.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", tt.values, tt.p, got, tt.want)
		}
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -45000: "-45,000"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
