package main

import (
	"strings"
	"testing"
	"time"

	"github.com/mispsentinel/listener/sim/lab"
	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
)

// TestCheckDefenderSink checks that `listener check` proves a Defender sink's token and
// permission with a read-only call, and names the missing permission.
func TestCheckDefenderSink(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the simulators: skipped with -short")
	}
	for _, tc := range []struct {
		name  string
		roles map[string][]string
		want  string
		code  int
	}{
		{"granted", nil, `^ok    Defender for Endpoint https://127\.0\.0\.1:\d+ \(sink mde\) answers a read-only call with the identity's token$`, exitOK},
		{"no permission", map[string][]string{simsentinel.DefaultClientID: {}}, `^FAIL  Defender for Endpoint https://127\.0\.0\.1:\d+ \(sink mde\): .*HTTP 403.*Ti\.ReadWrite\.All`, exitFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := lab.Start(lab.Options{Dir: t.TempDir(), Linger: 100 * time.Millisecond,
				Sinks: []lab.SinkSpec{{Name: "soc"}, {Name: "mde", Kind: "defender"}}})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			l.Defender.SetRoles(tc.roles)
			code, out, errOut := runCommand(t, "check", "-c", l.ConfigPath, "--timeout", "20s")
			if code != tc.code {
				t.Fatalf("check = %d, want %d\n%s%s", code, tc.code, out, errOut)
			}
			wantLines(t, "check", out, tc.want)
			if !strings.Contains(out, "(sink soc) accepts uploads") {
				t.Errorf("the Sentinel sink beside it was not checked:\n%s", out)
			}
		})
	}
}
