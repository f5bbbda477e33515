// Package sharedref locates the project's read-only reference folder (`../shared` beside the
// module root: specs and the conformance corpus) for tests. A fresh clone of the project alone
// has no such folder, so tests that need it skip with a message saying so.
//
// It is imported by tests only and never reads anything itself.
package sharedref

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir returns <module root>/../shared, or skips the test when it is absent.
func Dir(t testing.TB) string {
	t.Helper()
	root := ModuleRoot(t)
	shared := filepath.Join(root, "..", "shared")
	if _, err := os.Stat(filepath.Join(shared, "corpus")); err != nil {
		t.Skipf("reference folder not present at %s (it lives beside the module root in the project's workspace): skipping", shared)
	}
	return shared
}

// ModuleRoot returns the directory holding go.mod, walking up from the working directory.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("module root (go.mod) not found above the working directory")
		}
		dir = parent
	}
}
