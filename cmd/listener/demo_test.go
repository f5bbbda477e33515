package main

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/sim/lab"
)

// TestDemo runs `listener demo` in-process with small sizes and checks that it exits 0 and
// that its summary's LIVE and REVOKED figures are what the Sentinel simulator holds, counted
// here independently from the simulator's raw records.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole demo: skipped with -short")
	}
	type counts struct{ live, revoked, indicators int }
	recorded := map[string]counts{}
	demoInspect = func(l *lab.Lab, cfg *config.Config) {
		for i, spec := range l.Opts.Sinks {
			var c counts
			if spec.Kind == config.SinkDefender {
				c.live = l.ActualDefender(spec).Count() // MDE deletes: nothing revoked stays
				recorded[spec.Name] = c
				continue
			}
			for _, r := range l.Sentinel.Objects(spec.WorkspaceID) {
				if r.Type != "indicator" || r.SourceSystem != cfg.Sinks[i].SourceSystem {
					continue
				}
				c.indicators++
				if r.Revoked {
					c.revoked++
				} else {
					c.live++
				}
			}
			recorded[spec.Name] = c
		}
	}
	t.Cleanup(func() { demoInspect = nil })

	code, out, errOut := runCommand(t, "demo", "-events", "6", "-webhooks", "1", "-attributes", "3")
	t.Log("\n" + out)
	if code != exitOK {
		t.Fatalf("demo = %d\n%s", code, errOut)
	}
	if len(recorded) != len(demoSinks) {
		t.Fatalf("the demo's lab was not inspected: %v", recorded)
	}

	// SINK WORKSPACE LIVE REVOKED EXPECTED MATCH OUTBOX DEAD
	row := regexp.MustCompile(`(?m)^(\S+) +([0-9a-f-]{36}) +(\d+) +(\d+) +(\d+) +(yes|NO) +(\d+) +(\d+)$`)
	rows := row.FindAllStringSubmatch(out[strings.Index(out, "Summary"):], -1)
	if len(rows) != len(demoSinks) {
		t.Fatalf("summary has %d sink rows, want %d", len(rows), len(demoSinks))
	}
	totalLive, totalRevoked := 0, 0
	for _, r := range rows {
		name := r[1]
		live, _ := strconv.Atoi(r[3])
		revoked, _ := strconv.Atoi(r[4])
		expected, _ := strconv.Atoi(r[5])
		got, ok := recorded[name]
		if !ok {
			t.Errorf("summary names unknown sink %q", name)
			continue
		}
		if live != got.live || revoked != got.revoked {
			t.Errorf("sink %s: summary says %d live, %d revoked; the simulator holds %d live, %d revoked", name, live, revoked, got.live, got.revoked)
		}
		if r[6] != "yes" || expected != live {
			t.Errorf("sink %s: summary row %q does not show a match", name, r[0])
		}
		if r[7] != "0" || r[8] != "0" {
			t.Errorf("sink %s: outbox %s, dead letters %s after the demo", name, r[7], r[8])
		}
		totalLive += live
		totalRevoked += revoked
	}
	if totalLive == 0 || totalRevoked == 0 {
		t.Errorf("the demo ends with %d live and %d revoked indicators; want some of each", totalLive, totalRevoked)
	}
	wantLines(t, "demo", out,
		`Sentinel answered [1-9]\d* request\(s\) with 429; the pusher waited as told and lost nothing$`,
		`^Sentinel simulator: \d+ upload requests, \d+ objects accepted, [1-9]\d* answered 429, \d+ tokens issued$`)
}
