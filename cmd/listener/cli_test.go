package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/mispsentinel/listener/internal/cli"
)

var update = flag.Bool("update", false, "rewrite docs/CLI.md from the command tree")

// commandPaths returns the arguments naming every command of the tree, the root included.
func commandPaths(c *cobra.Command, prefix []string) [][]string {
	out := [][]string{prefix}
	for _, sub := range c.Commands() {
		out = append(out, commandPaths(sub, append(append([]string{}, prefix...), sub.Name()))...)
	}
	return out
}

// TestEveryCommandAnswersHelp walks the whole command tree: -h and --help print the usage on
// stdout and exit 0.
func TestEveryCommandAnswersHelp(t *testing.T) {
	paths := commandPaths(cli.Complete(newRootCmd()), nil)
	if len(paths) < 15 {
		t.Fatalf("only %d commands in the tree", len(paths))
	}
	for _, path := range paths {
		for _, help := range []string{"-h", "--help"} {
			args := append(append([]string{}, path...), help)
			code, out, errOut := runCommand(t, args...)
			if code != exitOK || !strings.Contains(out, "Usage:") {
				t.Errorf("listener %s = %d, want 0 and the usage on stdout\nstdout: %.200s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
			}
		}
	}
}

func TestCompletionScriptsGenerate(t *testing.T) {
	for shell, marker := range map[string]string{
		"bash": "__start_listener", "zsh": "#compdef listener", "fish": "complete -c listener", "powershell": "Register-ArgumentCompleter",
	} {
		code, out, errOut := runCommand(t, "completion", shell)
		if code != exitOK || !strings.Contains(out, marker) {
			t.Errorf("completion %s = %d, output lacks %q (%d bytes)\n%s", shell, code, marker, len(out), errOut)
		}
	}
}

func TestVersionAgrees(t *testing.T) {
	want := versionLine() + "\n"
	for _, args := range [][]string{{"--version"}, {"-v"}, {"version"}} {
		code, out, errOut := runCommand(t, args...)
		if code != exitOK || out != want {
			t.Errorf("listener %s = %d %q, want %q\n%s", strings.Join(args, " "), code, out, want, errOut)
		}
	}
}

// TestUsageErrors: unknown commands and flags are usage errors that name the closest valid
// name; a group without its subcommand is one too.
func TestUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		want []string
	}{
		{nil, []string{"Usage:", "Available Commands:"}},
		{[]string{"snyc"}, []string{`unknown command "snyc"`, "Did you mean this?", "sync"}},
		{[]string{"status", "--jsn"}, []string{"unknown flag: --jsn", "Did you mean this?", "--json"}},
		{[]string{"sync", "--dryrun"}, []string{"unknown flag: --dryrun", "--dry-run"}},
		{[]string{"config"}, []string{"missing subcommand: one of print"}},
		{[]string{"config", "-c", "x.yaml"}, []string{"missing subcommand"}},
		{[]string{"deadletters", "lst"}, []string{`unknown command "lst"`, "list"}},
		{[]string{"deadletters", "purge", "-c", "x.yaml"}, []string{`unknown command "purge"`}},
		{[]string{"run", "extra"}, []string{`unknown command "extra"`}},
		{[]string{"convert"}, []string{"no input file"}},
	}
	for _, tc := range cases {
		code, out, errOut := runCommand(t, tc.args...)
		if code != exitUsage {
			t.Errorf("listener %s = %d, want %d\n%s%s", strings.Join(tc.args, " "), code, exitUsage, out, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("listener %s: stderr lacks %q:\n%s", strings.Join(tc.args, " "), w, errOut)
			}
		}
	}
}

// TestFlagsAnywhere: flags after file names and the single-dash spelling of long flags.
func TestFlagsAnywhere(t *testing.T) {
	file := writeTemp(t, convertTestEvent)
	_, before, _ := runCommand(t, "convert", "--explain", file)
	for _, args := range [][]string{{"convert", file, "--explain"}, {"convert", "-explain", file}, {"convert", file, "-explain=true"}} {
		code, out, errOut := runCommand(t, args...)
		if code != exitOK || out != before || !strings.Contains(out, "\texported\t") {
			t.Errorf("listener %s = %d:\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
	}
}

// TestCLIDoc fails when docs/CLI.md no longer matches the command tree; regenerate with
// go test ./cmd/listener -run TestCLIDoc -update.
func TestCLIDoc(t *testing.T) {
	var b bytes.Buffer
	if err := cli.WriteReference(&b, cli.Complete(newRootCmd()), "go test ./cmd/listener -run TestCLIDoc -update"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "docs", "CLI.md")
	if *update {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	have, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (generate it: go test ./cmd/listener -run TestCLIDoc -update)", err)
	}
	if !bytes.Equal(have, b.Bytes()) {
		t.Errorf("docs/CLI.md is stale: go test ./cmd/listener -run TestCLIDoc -update")
	}
}
