package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A relative store.dir names a directory beside the configuration file, whatever the working
// directory, and `config print` shows both the resolved path and what was written.
func TestRelativeStoreDirResolvesAgainstTheConfigFile(t *testing.T) {
	confDir := t.TempDir()
	path := filepath.Join(confDir, "listener.yaml")
	if err := os.WriteFile(path, []byte("store: {dir: ./state}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir()) // another working directory
	cfg, err := Load(filepath.Join(confDir, "listener.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(confDir, "state"); cfg.Store.Dir != want {
		t.Errorf("store.dir = %q, want %q", cfg.Store.Dir, want)
	}
	if cfg.Store.DirAsWritten() != "./state" {
		t.Errorf("DirAsWritten = %q, want ./state", cfg.Store.DirAsWritten())
	}
	var out bytes.Buffer
	if err := cfg.Print(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), filepath.Join(confDir, "state")) || !strings.Contains(out.String(), "./state, relative to the configuration file's directory") {
		t.Errorf("config print does not show the resolved store.dir and what was written:\n%s", out.String())
	}

	// A relative LISTENER_STORE_DIR is resolved the same way; an absolute one is kept.
	cfg, err = Load(path, []string{"LISTENER_STORE_DIR=data"})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(confDir, "data"); cfg.Store.Dir != want {
		t.Errorf("store.dir from the environment = %q, want %q", cfg.Store.Dir, want)
	}
	abs := filepath.Join(t.TempDir(), "abs")
	cfg, err = Load(path, []string{"LISTENER_STORE_DIR=" + abs})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Store.Dir != abs || cfg.Store.DirAsWritten() != "" {
		t.Errorf("absolute store.dir = %q (as written %q), want %q kept", cfg.Store.Dir, cfg.Store.DirAsWritten(), abs)
	}
}
