package lab

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary act as the listener child that TestBinaryCommand starts.
func TestMain(m *testing.M) {
	if IsChild() {
		os.Exit(RunChild(os.Args[1:], os.Stderr))
	}
	os.Exit(m.Run())
}

func TestChildReportsBadConfigurationAndPeakRSS(t *testing.T) {
	dir := t.TempDir()
	p, err := StartProcess(TestBinaryCommand("sync", "-c", filepath.Join(dir, "missing.yaml")), filepath.Join(dir, "child.log"))
	if err != nil {
		t.Fatal(err)
	}
	err = p.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("child exit = %v, want exit code 3 for a missing configuration", err)
	}
	if !strings.Contains(p.LogTail(5), "lab child:") {
		t.Errorf("log tail %q does not say why the child failed", p.LogTail(5))
	}
	if peak, err := p.PeakRSS(); err != nil || peak <= 0 {
		t.Errorf("PeakRSS = %d, %v; want a positive size", peak, err)
	}
}

func TestChildRejectsUnknownCommand(t *testing.T) {
	dir := t.TempDir()
	p, err := StartProcess(TestBinaryCommand("serve"), filepath.Join(dir, "child.log"))
	if err != nil {
		t.Fatal(err)
	}
	var exit *exec.ExitError
	if err := p.Wait(); !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("child exit = %v, want exit code 2", err)
	}
}

func TestStopAndKill(t *testing.T) {
	dir := t.TempDir()
	// A process that ignores nothing: SIGTERM ends it at once.
	p, err := StartProcess(exec.Command("sleep", "60"), filepath.Join(dir, "sleep.log"))
	if err != nil {
		t.Skipf("no sleep binary: %v", err)
	}
	if _, err := p.PeakRSS(); err == nil {
		t.Error("PeakRSS of a running process did not fail")
	}
	if m, err := p.Memory(); err != nil || m.RSS <= 0 {
		t.Errorf("Memory = %+v, %v", m, err)
	}
	if err := p.Stop(10 * time.Second); err == nil {
		t.Error("Stop of a process ended by SIGTERM returned no exit error")
	}
	select {
	case <-p.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}

	q, err := StartProcess(exec.Command("sleep", "60"), filepath.Join(dir, "sleep2.log"))
	if err != nil {
		t.Fatal(err)
	}
	q.Kill()
	if err := q.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Wait after Kill = %v, want killed", err)
	}
}

func TestReadMemory(t *testing.T) {
	m, err := ReadMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS <= 0 || m.Anon <= 0 || m.Peak < m.RSS || m.Anon+m.File > m.RSS+1<<20 {
		t.Errorf("implausible memory of this process: %+v", m)
	}
	if _, err := ReadMemory(-1); err == nil {
		t.Error("ReadMemory(-1) did not fail")
	}
}

func TestLiveDiffCount(t *testing.T) {
	tests := []struct {
		want, got              Live
		wantMissing, wantExtra int
	}{
		{Live{}, Live{}, 0, 0},
		{Live{"a": 1, "b": 2}, Live{"a": 1, "b": 2}, 0, 0},
		{Live{"a": 1, "b": 2}, Live{"a": 1}, 2, 0},
		{Live{"a": 1}, Live{"a": 3, "c": 1}, 0, 3},
		{Live{"a": 2, "b": 1}, Live{"a": 1, "c": 1}, 2, 1},
	}
	for _, tt := range tests {
		m, e := tt.want.DiffCount(tt.got)
		if m != tt.wantMissing || e != tt.wantExtra {
			t.Errorf("%v.DiffCount(%v) = %d, %d; want %d, %d", tt.want, tt.got, m, e, tt.wantMissing, tt.wantExtra)
		}
	}
}
