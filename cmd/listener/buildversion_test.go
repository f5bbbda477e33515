package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuiltBinaryVersionAgrees builds the binary with the version and commit stamped as the
// release does (-ldflags -X; -trimpath is left out so the build reuses the test's compiled
// packages) and checks `--version` and `version` print the same, stamped line. A plain build
// is what TestVersionAgrees runs in-process; listener_build_info comes from the same
// version.Get (daemon's TestOpsEndpoints).
func TestBuiltBinaryVersionAgrees(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary: skipped with -short")
	}
	const pkg = "github.com/mispsentinel/listener/internal/version"
	for _, build := range []struct {
		name    string
		ldflags string
		want    string
	}{
		{"release", "-X " + pkg + ".Version=v9.8.7-test -X " + pkg + ".Commit=0123456789abcdef0123456789abcdef01234567",
			"listener v9.8.7-test (revision 0123456789abcdef0123456789abcdef01234567, go"},
	} {
		bin := filepath.Join(t.TempDir(), "listener")
		args := []string{"build", "-o", bin}
		if build.ldflags != "" {
			args = append(args, "-ldflags", build.ldflags)
		}
		if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
			t.Fatalf("%s build: %v\n%s", build.name, err, out)
		}
		flag, err := exec.Command(bin, "--version").Output()
		if err != nil {
			t.Fatalf("%s: listener --version: %v", build.name, err)
		}
		cmd, err := exec.Command(bin, "version").Output()
		if err != nil {
			t.Fatalf("%s: listener version: %v", build.name, err)
		}
		if string(flag) != string(cmd) || !strings.HasPrefix(string(flag), build.want) {
			t.Errorf("%s build: --version %q, version %q; want the same line starting %q", build.name, flag, cmd, build.want)
		}
	}
}
