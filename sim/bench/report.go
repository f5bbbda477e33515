package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Figure is one measured figure beside its target and the reference tools' figure.
type Figure struct {
	// Key names the figure stably for tracking over time, e.g. "conversion_attributes_per_s".
	Key string `json:"key"`
	// Name is the figure as the table shows it.
	Name string `json:"figure"`
	// Value is the measurement in Unit; Display is it formatted for people.
	Value   float64 `json:"value"`
	Unit    string  `json:"unit"`
	Display string  `json:"display"`
	// Target is the ARCHITECTURE.md target, Pass whether Value meets it. A figure without a
	// target (Target "") is informational and counts as passing.
	Target string `json:"target"`
	Pass   bool   `json:"pass"`
	// Reference is what misp2sentinel / misp-stix achieve on the same figure.
	Reference string `json:"reference,omitempty"`
	// Detail says how it was measured and what else was seen.
	Detail string `json:"detail,omitempty"`
	// Error is set when the measurement itself failed; Pass is then false.
	Error string `json:"error,omitempty"`
}

// Machine describes where a run happened.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	MemoryMB  int    `json:"memory_mb"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
}

// Report is one benchmark run.
type Report struct {
	Started  time.Time `json:"started"`
	Seconds  float64   `json:"seconds"`
	Quick    bool      `json:"quick"`
	Machine  Machine   `json:"machine"`
	Figures  []Figure  `json:"figures"`
	AllPass  bool      `json:"all_pass"`
	Sizes    Sizes     `json:"sizes"`
	LoadAvg  string    `json:"load_average,omitempty"`
	Warnings []string  `json:"warnings,omitempty"`
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report as an aligned table followed by the details.
func (r *Report) WriteTable(w io.Writer) error {
	m := r.Machine
	fmt.Fprintf(w, "listener bench, %s, %d CPUs (%s), %d MB RAM, %s %s/%s, %.0f s",
		r.Started.UTC().Format("2006-01-02 15:04 MST"), m.CPUs, m.CPUModel, m.MemoryMB, m.GoVersion, m.OS, m.Arch, r.Seconds)
	if r.LoadAvg != "" {
		fmt.Fprintf(w, ", load average before the run %s", r.LoadAvg)
	}
	fmt.Fprintln(w)
	if r.Quick {
		fmt.Fprintln(w, "--quick: smaller sizes than the targets name; a smoke test, not the benchmark")
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tLISTENER\tTARGET\tRESULT\tREFERENCE (misp2sentinel / misp-stix)")
	for _, f := range r.Figures {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.Name, orDash(f.Display), orDash(f.Target), f.verdict(), orDash(f.Reference))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, f := range r.Figures {
		switch {
		case f.Error != "":
			fmt.Fprintf(w, "- %s: ERROR %s\n", f.Name, f.Error)
		case f.Detail != "":
			fmt.Fprintf(w, "- %s: %s\n", f.Name, f.Detail)
		}
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "! %s\n", warn)
	}
	_, err := fmt.Fprintf(w, "\n%s\n", map[bool]string{true: "every target met", false: "some targets not met (see RESULT)"}[r.AllPass])
	return err
}

func (f Figure) verdict() string {
	switch {
	case f.Error != "":
		return "error"
	case f.Target == "":
		return "(info)"
	case f.Pass:
		return "pass"
	default:
		return "falls short"
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// DescribeMachine reads the CPU count, CPU model and memory of this machine.
func DescribeMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	m.CPUModel = procField("/proc/cpuinfo", "model name")
	if kb, err := strconv.Atoi(strings.TrimSuffix(procField("/proc/meminfo", "MemTotal"), " kB")); err == nil {
		m.MemoryMB = kb / 1024
	}
	if m.CPUModel == "" {
		m.CPUModel = "unknown CPU"
	}
	return m
}

// procField returns the value of the first "key: value" line of a /proc file with that key.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	fields := strings.Fields(string(data))
	if len(fields) < 3 {
		return ""
	}
	return strings.Join(fields[:3], " ")
}

// percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of sorted values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted)) + 0.999999999)
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// thousands formats n with thousands separators.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func megabytes(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }
