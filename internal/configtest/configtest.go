// Package configtest holds the minimal offline configuration tests assemble a daemon from: MISP
// at an address nothing listens on, one Sentinel sink with a client-secret identity and the
// store in a test's temporary directory. Nothing is contacted while a daemon is only built
// from it. It is a fixed fixture, not the product's defaults, and is imported by tests only.
package configtest

import (
	"context"
	"testing"

	"github.com/mispsentinel/listener/config"
)

// YAML returns the minimal configuration with its store in storeDir and extra (top-level
// YAML keys the base does not set, such as webhook or zeromq) appended.
func YAML(storeDir, extra string) string {
	return `misp:
  url: https://127.0.0.1:9
  key: 0123456789abcdefghij0123456789ABCDEFGHIJ
sinks:
  - name: main
    workspace_id: 11111111-2222-4333-8444-555555555555
    identity:
      kind: client_secret
      tenant_id: aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee
      client_id: 99999999-8888-4777-8666-555555555555
      client_secret: test-client-secret
store:
  dir: ` + storeDir + "\n" + extra
}

// Offline parses, validates and resolves YAML with the store in a new temporary directory of
// t, the way `listener run` loads its file; any error fails the test.
func Offline(t testing.TB, extra string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(YAML(t.TempDir(), extra)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Resolve(context.Background(), config.Resolver{}); err != nil {
		t.Fatal(err)
	}
	return cfg
}
