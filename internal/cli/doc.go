package cli

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// WriteReference writes the Markdown reference of root's command tree: the exit-code table,
// which codes each command returns, then every command's usage and flags. regenerate is the
// command that rewrites the file, named in its header.
func WriteReference(w io.Writer, root *cobra.Command, regenerate string) error {
	var b bytes.Buffer
	cmds := available(root)
	fmt.Fprintf(&b, "# `%s` command line\n\n", root.Name())
	fmt.Fprintf(&b, "<!-- Generated from the command tree by `%s`; do not edit by hand. -->\n\n", regenerate)
	b.WriteString("Every command answers `-h`/`--help` with exit code 0. Flags may come before or after\n" +
		"arguments, and the single-dash spelling of a long flag (`-json`) is accepted as `--json`.\n" +
		"An unknown command or flag is a usage error that names the closest valid one.\n\n")
	b.WriteString("## Exit codes\n\n| Code | Name | Meaning |\n|---:|---|---|\n")
	for _, c := range ExitCodes {
		fmt.Fprintf(&b, "| %d | %s | %s |\n", c.Code, c.Name, c.Meaning)
	}
	b.WriteString("\n| Command | Exit codes |\n|---|---|\n")
	for _, c := range cmds {
		if c.Runnable() {
			fmt.Fprintf(&b, "| `%s` | %s |\n", c.CommandPath(), strings.Join(codesOf(c), ", "))
		}
	}
	b.WriteString("\n## Commands\n")
	for _, c := range cmds {
		fmt.Fprintf(&b, "\n### `%s`\n\n%s.\n\n```\n%s\n```\n", c.CommandPath(), strings.TrimSuffix(c.Short, "."), c.UseLine())
		if subs := subcommandNames(c); len(subs) > 0 {
			fmt.Fprintf(&b, "\nSubcommands: %s.\n", strings.Join(subs, ", "))
		}
		if flags := flagUsages(c); flags != "" {
			fmt.Fprintf(&b, "\nFlags:\n\n```\n%s```\n", flags)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// available returns root and every command under it a user can run or list, depth first in
// cobra's (alphabetical) order.
func available(root *cobra.Command) []*cobra.Command {
	out := []*cobra.Command{root}
	for _, c := range root.Commands() {
		if c.IsAvailableCommand() {
			out = append(out, available(c)...)
		}
	}
	return out
}

func subcommandNames(c *cobra.Command) []string {
	var names []string
	for _, s := range c.Commands() {
		if s.IsAvailableCommand() {
			names = append(names, "`"+s.Name()+"`")
		}
	}
	return names
}

// codesOf returns the exit codes c may return: OK, Usage and what Exits recorded.
func codesOf(c *cobra.Command) []string {
	codes := map[string]bool{fmt.Sprint(OK): true, fmt.Sprint(Usage): true}
	for _, s := range strings.Fields(c.Annotations[exitCodesAnnotation]) {
		codes[s] = true
	}
	var out []string
	for _, e := range ExitCodes {
		if codes[fmt.Sprint(e.Code)] {
			out = append(out, fmt.Sprint(e.Code))
		}
	}
	return out
}

// flagUsages lists c's own and inherited flags except --help, which every command has.
func flagUsages(c *cobra.Command) string {
	fs := pflag.NewFlagSet(c.Name(), pflag.ContinueOnError)
	add := func(f *pflag.Flag) {
		if f.Name != "help" && !f.Hidden && fs.Lookup(f.Name) == nil {
			fs.AddFlag(f)
		}
	}
	c.LocalFlags().VisitAll(add)
	c.InheritedFlags().VisitAll(add)
	return fs.FlagUsages()
}
