package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mispsentinel/listener/internal/sharedref"
)

const (
	translationBegin = "<!-- BEGIN TRANSLATED CONFIG.PY.DEFAULT -->"
	translationEnd   = "<!-- END TRANSLATED CONFIG.PY.DEFAULT -->"
)

// translatedConfig returns the YAML block docs/MIGRATING.md gives as the translation of
// misp2sentinel's config.py.default, and the whole page.
func translatedConfig(t *testing.T) (block, page string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(sharedref.ModuleRoot(t), "docs", "MIGRATING.md"))
	if err != nil {
		t.Fatal(err)
	}
	page = string(data)
	begin, end := strings.Index(page, translationBegin), strings.Index(page, translationEnd)
	if begin < 0 || end < begin {
		t.Fatalf("docs/MIGRATING.md lacks the %s ... %s block", translationBegin, translationEnd)
	}
	block = page[begin+len(translationBegin) : end]
	block = strings.TrimSpace(block)
	block = strings.TrimPrefix(block, "```yaml")
	block = strings.TrimSuffix(block, "```")
	return block, page
}

// TestMigratingTranslationPassesCheck is issue 15's acceptance line: misp2sentinel's
// config.py.default translated by following docs/MIGRATING.md passes `listener check`.
func TestMigratingTranslationPassesCheck(t *testing.T) {
	block, _ := translatedConfig(t)
	t.Setenv("MISP_KEY", "test-misp-key")
	t.Setenv("SENTINEL_CLIENT_SECRET", "test-client-secret")
	var stdout, stderr bytes.Buffer
	code := dispatch(context.Background(), []string{"check", "--offline", "-c", writeTemp(t, block)}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("check --offline: exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "publish_timestamp") {
		t.Errorf("check does not name the window key publish_timestamp:\n%s", stdout.String())
	}
}

// TestMigratingTranslationCoversEveryKey checks that the translated block names every option
// of misp2sentinel's configuration (shared/spec/misp2sentinel-behaviour.md §1.1-§1.4, the
// keys of config.py.default and its fallbacks), translated or with the reason it needs no
// key, and that the page names every Azure Function app setting (§5).
func TestMigratingTranslationCoversEveryKey(t *testing.T) {
	block, page := translatedConfig(t)
	spec, err := os.ReadFile(filepath.Join(sharedref.ModuleRoot(t), "..", "shared", "spec", "misp2sentinel-behaviour.md"))
	if os.IsNotExist(err) {
		t.Skip("reference folder ../shared is absent; cannot check the translation against the misp2sentinel inventory")
	}
	if err != nil {
		t.Fatal(err)
	}
	text := string(spec)
	section := func(from, to string) string {
		start, end := strings.Index(text, from), strings.Index(text, to)
		if start < 0 || end < start {
			t.Fatalf("the inventory has no section %q", strings.TrimSpace(from))
		}
		return text[start:end]
	}
	option := regexp.MustCompile("`([^`]+)`")
	names := func(sec string) []string {
		var out []string
		for _, line := range strings.Split(sec, "\n") {
			line = strings.TrimSpace(line)
			if !strings.HasPrefix(line, "| `") {
				continue
			}
			for _, m := range option.FindAllStringSubmatch(strings.Split(line, "|")[1], -1) {
				out = append(out, strings.Trim(m[1], "[]'"))
			}
		}
		return out
	}
	keys := names(section("\n### 1.1", "\n### 1.5"))
	if len(keys) < 38 {
		t.Fatalf("found only %d options in §1.1-§1.4; has the inventory's layout changed?", len(keys))
	}
	for _, k := range keys {
		if !strings.Contains(block, k) {
			t.Errorf("the translated config.py.default in docs/MIGRATING.md does not name %s", k)
		}
	}
	settings := names(section("\n## 5.", "\n## 6."))
	if len(settings) < 10 {
		t.Fatalf("found only %d Azure Function settings in §5", len(settings))
	}
	for _, s := range settings {
		if !strings.Contains(page, s) {
			t.Errorf("docs/MIGRATING.md does not name the Azure Function setting %s", s)
		}
	}
}

// TestAdoptFlags checks the command's usage errors, before any configuration is read.
func TestAdoptFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"adopt", "-c", "x.yaml"}, exitUsage, `required flag(s) "from" not set`},
		{[]string{"adopt", "-c", "x.yaml", "--from", "opencti"}, exitUsage, "the only tool known is misp2sentinel"},
		{[]string{"adopt", "-c", "x.yaml", "--from", "misp2sentinel", "--delete"}, exitUsage, "--delete needs --apply"},
	} {
		var stdout, stderr bytes.Buffer
		code := dispatch(context.Background(), tc.args, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tc.args, code, stderr.String(), tc.code, tc.want)
		}
	}
}
