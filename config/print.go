package config

import (
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// Print writes the effective configuration as YAML: defaults filled in, environment
// overrides applied, each sink's conversion merged with the top-level one, and every secret
// redacted (a reference is shown as written, a literal as <secret>). Sinks made from the
// tenants JSON are listed with a comment naming their element, and tenants itself is then
// left out, so the output never lists a workspace twice; a keyvault:// tenants reference not
// yet resolved is printed as written.
func (c *Config) Print(w io.Writer) error {
	out := *c
	if c.tenantsExpanded {
		out.Tenants = Secret{} // its sinks are listed instead
	}
	var doc yaml.Node
	if err := doc.Encode(&out); err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	if sinks := lookup(&doc, "sinks"); sinks != nil && sinks.Kind == yaml.SequenceNode {
		for i, n := range sinks.Content {
			if k, ok := c.Sinks[i].FromTenants(); ok {
				n.HeadComment = fmt.Sprintf("from tenants[%d] (%s)", k, c.Tenants.redacted())
			}
		}
	}
	if written := c.Store.DirAsWritten(); written != "" {
		if dir := lookup(&doc, "store", "dir"); dir != nil {
			dir.LineComment = fmt.Sprintf("%s, relative to the configuration file's directory", written)
		}
	}
	if note := c.MISP.WindowNote(); note != "" {
		if filters := lookup(&doc, "misp", "event_filters"); filters != nil {
			filters.HeadComment = note
		}
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}
