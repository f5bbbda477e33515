package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestProductBinaryLinksNoHarness: the benchmark and soak harnesses live in listener-lab, and
// nothing the demo uses pulls in net/http/httptest.
func TestProductBinaryLinksNoHarness(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list -deps listed only %d packages", len(deps))
	}
	for _, d := range deps {
		if d == "net/http/httptest" || strings.HasSuffix(d, "/sim/bench") || strings.HasSuffix(d, "/sim/soak") {
			t.Errorf("cmd/listener links %s", d)
		}
	}
}
