package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// FieldError is one configuration problem, tied to the key it concerns: a YAML path such as
// sinks[1].workspace_id, an environment variable such as LISTENER_MISP_URL, or an element
// of the tenants JSON such as tenants[2].workspaceId.
type FieldError struct {
	Path string
	Msg  string
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Msg }

// Errors is every problem found by Load, Validate or Resolve, in the order found.
type Errors []*FieldError

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func (es *Errors) add(path, format string, args ...any) {
	*es = append(*es, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// orNil returns es as an error, or nil when there are none.
func (es Errors) orNil() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// maxConfigBytes bounds the configuration file.
const maxConfigBytes = 4 << 20

// Load reads the YAML file at path and applies the environment overrides found in environ
// (os.Environ() format). It does not validate: call Validate, then Resolve. Errors name the
// key path (or environment variable) of every problem found.
func Load(path string, environ []string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	if len(data) > maxConfigBytes {
		return nil, fmt.Errorf("read config %s: larger than %d bytes", path, maxConfigBytes)
	}
	cfg, err := Parse(data, environ)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if err := cfg.resolveStoreDir(path); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// resolveStoreDir makes a relative store.dir (from the file or LISTENER_STORE_DIR) relative
// to the directory of the configuration file at path, so that `status` run from elsewhere
// reads the daemon's store instead of creating an empty one in its working directory.
func (c *Config) resolveStoreDir(path string) error {
	dir := c.Store.Dir
	if strings.TrimSpace(dir) == "" || filepath.IsAbs(dir) {
		return nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("store.dir: resolve %q against the configuration file's directory: %w", dir, err)
	}
	c.Store.dirAsWritten = dir
	c.Store.Dir = filepath.Join(filepath.Dir(abs), dir)
	return nil
}

// Parse is Load for a configuration already in memory. Empty data yields the defaults plus
// the environment overrides.
func Parse(data []byte, environ []string) (*Config, error) {
	cfg := Default()
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("parse yaml: %w", err)
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	var errs Errors
	lines := map[int]string{}
	if root.Kind != 0 {
		checkKeys(doc, reflect.TypeOf(cfg), "", &errs, lines)
		if len(errs) > 0 {
			return nil, errs
		}
		clearGivenMaps(doc, reflect.ValueOf(&cfg).Elem())
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return nil, withPaths(err, lines)
		}
	}

	env := environMap(environ, true)
	envValues := environMap(environ, false)
	notSinkConversion := func(path string) bool { return !sinkConversionPath.MatchString(path) }
	applyEnv(reflect.ValueOf(&cfg).Elem(), "", env, notSinkConversion, &errs)
	for i := range cfg.Sinks {
		var node *yaml.Node
		if root.Kind != 0 {
			node = lookup(doc, "sinks", strconv.Itoa(i), "conversion")
		}
		conv, err := overlayConversion(cfg.Conversion, node)
		if err != nil {
			return nil, withPaths(err, lines)
		}
		cfg.Sinks[i].Conversion = conv
	}
	applyEnv(reflect.ValueOf(&cfg).Elem(), "", env, sinkConversionPath.MatchString, &errs)
	checkUnknownEnv(env, &errs)
	if len(errs) > 0 {
		return nil, errs
	}

	// The tenants JSON is expanded now unless it lives in Key Vault (then Resolve does it):
	// reading an environment variable or a local file is no more I/O than reading this file.
	if cfg.Tenants.source != sourceKeyVault {
		local := Resolver{LookupEnv: func(name string) (string, bool) {
			v, ok := envValues[name]
			return v, ok
		}}
		if err := cfg.expandTenants(context.Background(), local); err != nil {
			return nil, err
		}
	}
	for i := range cfg.Sinks {
		cfg.Sinks[i].fillDerived()
	}
	return &cfg, nil
}

var sinkConversionPath = regexp.MustCompile(`^sinks\[\d+\]\.conversion(\.|$)`)

// UnmarshalYAML starts every sink from defaultSink, so keys a sink leaves out keep their
// defaults.
func (s *Sink) UnmarshalYAML(n *yaml.Node) error {
	type plain Sink
	p := plain(defaultSink())
	for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "kind" && n.Content[i+1].Value == SinkDefender {
			p = plain(defaultDefenderSink())
		}
	}
	if err := n.Decode(&p); err != nil {
		return err
	}
	*s = Sink(p)
	return nil
}

// overlayConversion returns a copy of global with the keys present in node replaced.
func overlayConversion(global Conversion, node *yaml.Node) (Conversion, error) {
	c := cloneConversion(global)
	if node == nil || node.Kind != yaml.MappingNode {
		return c, nil
	}
	v := reflect.ValueOf(&c).Elem()
	for i := 0; i+1 < len(node.Content); i += 2 {
		if f, ok := fieldByKey(v.Type(), node.Content[i].Value); ok {
			v.FieldByIndex(f.Index).SetZero() // replace lists and maps, do not merge them
		}
	}
	if err := node.Decode(&c); err != nil {
		return Conversion{}, err
	}
	return c, nil
}

func cloneConversion(c Conversion) Conversion {
	out := c
	out.DaysToExpireByType = maps.Clone(c.DaysToExpireByType)
	out.TagsIgnore = slices.Clone(c.TagsIgnore)
	out.AllowedTaxonomies = slices.Clone(c.AllowedTaxonomies)
	out.PatternTypes = slices.Clone(c.PatternTypes)
	out.CompositeByType = maps.Clone(c.CompositeByType)
	return out
}

// clearGivenMaps sets to nil every map field of v whose key the mapping node n gives, so the
// decoder replaces a default map instead of merging into it.
func clearGivenMaps(n *yaml.Node, v reflect.Value) {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil || n.Kind != yaml.MappingNode || v.Kind() != reflect.Struct || v.Type() == secretType {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		f, ok := fieldByKey(v.Type(), n.Content[i].Value)
		if !ok {
			continue
		}
		fv := v.FieldByIndex(f.Index)
		if fv.Kind() == reflect.Map {
			fv.SetZero()
		} else {
			clearGivenMaps(n.Content[i+1], fv)
		}
	}
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	secretType   = reflect.TypeOf(Secret{})
)

// yamlKey returns the YAML key of a struct field, or "" if it has none.
func yamlKey(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		if f := t.Field(i); yamlKey(f) == key && key != "" {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// retiredKeys are keys of earlier versions whose behaviour is now fixed, each with what the
// listener does instead, so that a configuration carrying one is told why rather than
// accepted with a key that would silently do nothing.
var retiredKeys = map[reflect.Type]map[string]string{
	reflect.TypeFor[Conversion](): {
		"flatten_attributes": "the attributes inside MISP objects are always exported, each by its type " +
			"(misp2sentinel's misp_flatten_attributes: true)",
		"composite_attributes": "composite attributes are configured with composite (all, first, compound or profile) " +
			"and composite_by_type (per MISP type), as docs/MAPPING.md describes",
	},
}

// checkKeys reports every mapping key that names no field, with its full path, and records
// the path of every value's line for withPaths.
func checkKeys(n *yaml.Node, t reflect.Type, path string, errs *Errors, lines map[int]string) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if path != "" {
		if _, seen := lines[n.Line]; !seen {
			lines[n.Line] = path
		}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == secretType || t == durationType:
		return
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" {
				continue // merge keys are checked by the decoder
			}
			f, ok := fieldByKey(t, k.Value)
			if why, retired := retiredKeys[t][k.Value]; !ok && retired {
				errs.add(joinPath(path, k.Value), "is no longer a setting (line %d): %s; remove it", k.Line, why)
				continue
			}
			if !ok {
				errs.add(joinPath(path, k.Value), "unknown key (line %d)", k.Line)
				continue
			}
			lines[k.Line] = joinPath(path, k.Value)
			checkKeys(v, f.Type, joinPath(path, k.Value), errs, lines)
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, e := range n.Content {
			checkKeys(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs, lines)
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := joinPath(path, n.Content[i].Value)
			lines[n.Content[i].Line] = p
			checkKeys(n.Content[i+1], t.Elem(), p, errs, lines)
		}
	}
}

// lookup follows keys (mapping keys, or decimal indices into sequences) from n.
func lookup(n *yaml.Node, keys ...string) *yaml.Node {
	for _, key := range keys {
		for n != nil && n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		if n == nil {
			return nil
		}
		switch n.Kind {
		case yaml.MappingNode:
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == key {
					next = n.Content[i+1]
				}
			}
			n = next
		case yaml.SequenceNode:
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(n.Content) {
				return nil
			}
			n = n.Content[i]
		default:
			return nil
		}
	}
	return n
}

var yamlLinePrefix = regexp.MustCompile(`^line (\d+): (.*)$`)

// withPaths turns the yaml decoder's "line N: problem" messages into FieldErrors naming the
// key on that line.
func withPaths(err error, lines map[int]string) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("decode yaml: %w", err)
	}
	var errs Errors
	for _, msg := range te.Errors {
		m := yamlLinePrefix.FindStringSubmatch(msg)
		if m == nil {
			errs.add("(file)", "%s", msg)
			continue
		}
		line, _ := strconv.Atoi(m[1])
		path, ok := lines[line]
		if !ok {
			path = "(file)"
		}
		errs.add(path, "%s (line %d)", m[2], line)
	}
	return errs
}
