package deploy

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/mispsentinel/listener/config"
)

// repoRoot is the repository root, seen from this package's directory.
const repoRoot = ".."

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHelmChartCarriesTheAlertRules: the chart's PrometheusRule inserts files/alerts.yaml
// (Helm reads only files inside the chart), which must be deploy/prometheus/alerts.yaml.
func TestHelmChartCarriesTheAlertRules(t *testing.T) {
	rules := readFile(t, filepath.Join("prometheus", "alerts.yaml"))
	chartCopy := readFile(t, filepath.Join("helm", "listener", "files", "alerts.yaml"))
	if !bytes.Equal(rules, chartCopy) {
		t.Fatal("deploy/helm/listener/files/alerts.yaml differs from deploy/prometheus/alerts.yaml; " +
			"copy it: cp deploy/prometheus/alerts.yaml deploy/helm/listener/files/alerts.yaml")
	}
	tmpl := string(readFile(t, filepath.Join("helm", "listener", "templates", "prometheusrule.yaml")))
	if !strings.Contains(tmpl, `.Files.Get "files/alerts.yaml"`) {
		t.Error("templates/prometheusrule.yaml does not insert files/alerts.yaml")
	}
}

// checkListenerConfig parses and validates a configuration the way `listener check --offline`
// does, with the secrets it references as env:NAME set to placeholders.
func checkListenerConfig(t *testing.T, where string, text []byte, secretEnv []string) {
	t.Helper()
	var environ []string
	for _, name := range secretEnv {
		environ = append(environ, name+"=placeholder-secret-value-0123456789")
	}
	cfg, err := config.Parse(text, environ)
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	if cfg.Store.Dir != "/var/lib/listener" {
		t.Errorf("%s: store.dir is %q, not the volume /var/lib/listener", where, cfg.Store.Dir)
	}
	if !strings.HasPrefix(cfg.Metrics.Listen, "0.0.0.0:") {
		t.Errorf("%s: metrics.listen %q is unreachable for probes and Prometheus", where, cfg.Metrics.Listen)
	}
}

var envRef = regexp.MustCompile(`env:([A-Za-z_][A-Za-z0-9_]*)`)

// TestHelmValuesConfigIsValid: the chart's default configuration is one the listener accepts,
// and every secret it references comes from a Secret (secretEnv), never a literal.
func TestHelmValuesConfigIsValid(t *testing.T) {
	var values struct {
		Config    map[string]any `yaml:"config"`
		SecretEnv []struct {
			Name       string `yaml:"name"`
			SecretName string `yaml:"secretName"`
			Key        string `yaml:"key"`
		} `yaml:"secretEnv"`
		Metrics struct {
			Port int `yaml:"port"`
		} `yaml:"metrics"`
	}
	if err := yaml.Unmarshal(readFile(t, filepath.Join("helm", "listener", "values.yaml")), &values); err != nil {
		t.Fatal(err)
	}
	text, err := yaml.Marshal(values.Config)
	if err != nil {
		t.Fatal(err)
	}
	var fromSecrets []string
	for _, s := range values.SecretEnv {
		if s.Name == "" || s.SecretName == "" || s.Key == "" {
			t.Errorf("secretEnv entry %+v needs name, secretName and key", s)
		}
		fromSecrets = append(fromSecrets, s.Name)
	}
	for _, m := range envRef.FindAllStringSubmatch(string(text), -1) {
		if !slices.Contains(fromSecrets, m[1]) {
			t.Errorf("values.yaml config references env:%s, which no secretEnv entry provides", m[1])
		}
	}
	checkListenerConfig(t, "values.yaml config", text, fromSecrets)
	if !strings.HasSuffix(values.Config["metrics"].(map[string]any)["listen"].(string), ":"+strconv.Itoa(values.Metrics.Port)) {
		t.Errorf("config.metrics.listen does not use metrics.port %d", values.Metrics.Port)
	}
	sts := string(readFile(t, filepath.Join("helm", "listener", "templates", "statefulset.yaml")))
	for _, want := range []string{"replicas: 1", "volumeClaimTemplates:", "path: /healthz", "path: /readyz",
		"secretKeyRef:", "mountPath: /var/lib/listener", "enableServiceLinks: false"} {
		if !strings.Contains(sts, want) {
			t.Errorf("templates/statefulset.yaml lacks %q", want)
		}
	}
}

// TestComposeFile checks docker-compose.yml's shape (`docker compose config` validates it
// fully where Docker Compose is installed): the listener with a state volume on the store
// directory, the configuration mounted read-only, secrets only from the environment file, and
// the environment overrides naming real configuration keys.
func TestComposeFile(t *testing.T) {
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			EnvFile     []struct {
				Path     string `yaml:"path"`
				Required bool   `yaml:"required"`
			} `yaml:"env_file"`
			Volumes []struct {
				Type     string `yaml:"type"`
				Source   string `yaml:"source"`
				Target   string `yaml:"target"`
				ReadOnly bool   `yaml:"read_only"`
			} `yaml:"volumes"`
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
	}
	text := readFile(t, filepath.Join(repoRoot, "docker-compose.yml"))
	if err := yaml.Unmarshal(text, &compose); err != nil {
		t.Fatal(err)
	}
	svc, ok := compose.Services["listener"]
	if !ok {
		t.Fatal("docker-compose.yml has no listener service")
	}
	if !slices.Equal(svc.Command, []string{"run", "-c", "/etc/listener/config.yaml"}) {
		t.Errorf("command %v", svc.Command)
	}
	var state, cfg bool
	for _, v := range svc.Volumes {
		switch v.Target {
		case "/var/lib/listener":
			_, declared := compose.Volumes[v.Source]
			state = v.Type == "volume" && declared
		case "/etc/listener/config.yaml":
			cfg = v.Type == "bind" && v.ReadOnly
		}
	}
	if !state {
		t.Error("no named volume on /var/lib/listener")
	}
	if !cfg {
		t.Error("config.yaml is not bind-mounted read-only at /etc/listener/config.yaml")
	}
	if len(svc.EnvFile) == 0 {
		t.Error("no env_file for the secrets")
	}
	// The overrides must be ones the listener knows: apply them to a minimal configuration.
	var environ []string
	for k, v := range svc.Environment {
		if strings.Contains(strings.ToLower(k), "secret") || strings.Contains(strings.ToLower(k), "key") ||
			strings.Contains(strings.ToLower(k), "password") || strings.Contains(strings.ToLower(k), "token") {
			t.Errorf("environment %s looks like a secret: keep secrets in the env_file", k)
		}
		environ = append(environ, k+"="+v)
	}
	minimal := []byte(`
misp:
  url: https://misp.example.org
  key: literal-placeholder-misp-key-0123456789
sinks:
  - name: soc
    workspace_id: 00000000-0000-0000-0000-000000000000
    identity:
      kind: managed_identity
`)
	parsed, err := config.Parse(minimal, environ)
	if err != nil {
		t.Fatalf("docker-compose.yml environment: %v", err)
	}
	if parsed.Store.Dir != "/var/lib/listener" || !strings.HasPrefix(parsed.Metrics.Listen, "0.0.0.0:") {
		t.Errorf("docker-compose.yml environment gives store.dir %q and metrics.listen %q", parsed.Store.Dir, parsed.Metrics.Listen)
	}
}

// releaseTargets reads the GOOS/GOARCH pairs .goreleaser.yaml builds.
func releaseTargets(t *testing.T) (targets []string, ldflags []string) {
	t.Helper()
	var gr struct {
		Builds []struct {
			Main    string   `yaml:"main"`
			Env     []string `yaml:"env"`
			Flags   []string `yaml:"flags"`
			Ldflags []string `yaml:"ldflags"`
			ModTime string   `yaml:"mod_timestamp"`
			Goos    []string `yaml:"goos"`
			Goarch  []string `yaml:"goarch"`
			Ignore  []struct {
				Goos   string `yaml:"goos"`
				Goarch string `yaml:"goarch"`
			} `yaml:"ignore"`
		} `yaml:"builds"`
		Checksum struct {
			Algorithm string `yaml:"algorithm"`
		} `yaml:"checksum"`
	}
	if err := yaml.Unmarshal(readFile(t, filepath.Join(repoRoot, ".goreleaser.yaml")), &gr); err != nil {
		t.Fatal(err)
	}
	if len(gr.Builds) != 1 {
		t.Fatalf(".goreleaser.yaml has %d builds, want 1", len(gr.Builds))
	}
	b := gr.Builds[0]
	if b.Main != "./cmd/listener" || !slices.Contains(b.Env, "CGO_ENABLED=0") || !slices.Contains(b.Flags, "-trimpath") ||
		b.ModTime != "{{ .CommitTimestamp }}" {
		t.Errorf(".goreleaser.yaml build is not the reproducible static ./cmd/listener: %+v", b)
	}
	if gr.Checksum.Algorithm != "sha256" {
		t.Errorf("checksum algorithm %q, want sha256", gr.Checksum.Algorithm)
	}
	for _, goos := range b.Goos {
		for _, goarch := range b.Goarch {
			if !slices.ContainsFunc(b.Ignore, func(i struct {
				Goos   string `yaml:"goos"`
				Goarch string `yaml:"goarch"`
			}) bool {
				return i.Goos == goos && i.Goarch == goarch
			}) {
				targets = append(targets, goos+"/"+goarch)
			}
		}
	}
	sort.Strings(targets)
	return targets, b.Ldflags
}

// TestReleaseTargetsAreCrossCompiledInCI: .ci/run cross-compiles exactly the targets the
// release builds, so a platform break shows before a release.
func TestReleaseTargetsAreCrossCompiledInCI(t *testing.T) {
	targets, _ := releaseTargets(t)
	want := []string{"darwin/arm64", "linux/amd64", "linux/arm64", "windows/amd64"}
	if !slices.Equal(targets, want) {
		t.Errorf(".goreleaser.yaml builds %v, want %v", targets, want)
	}
	m := regexp.MustCompile(`(?m)^RELEASE_TARGETS="([^"]*)"$`).FindSubmatch(readFile(t, filepath.Join(repoRoot, ".ci", "run")))
	if m == nil {
		t.Fatal(`.ci/run has no RELEASE_TARGETS="..." line`)
	}
	ci := strings.Fields(string(m[1]))
	sort.Strings(ci)
	if !slices.Equal(ci, targets) {
		t.Errorf(".ci/run cross-compiles %v; .goreleaser.yaml releases %v", ci, targets)
	}
}

// TestVersionStampingNamesRealVariables: the -X flags of the release and the Dockerfile set
// string variables that exist in internal/version (a renamed variable would be ignored by the
// linker without a word).
func TestVersionStampingNamesRealVariables(t *testing.T) {
	const pkg = "github.com/mispsentinel/listener/internal/version"
	fset := token.NewFileSet()
	vars := map[string]bool{}
	entries, err := os.ReadDir(filepath.Join(repoRoot, "internal", "version"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(repoRoot, "internal", "version", e.Name()), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); ok && id.Name == "string" && len(vs.Values) == 0 {
					for _, n := range vs.Names {
						vars[n.Name] = true
					}
				}
			}
		}
	}
	stamp := regexp.MustCompile(`-X ` + regexp.QuoteMeta(pkg) + `\.([A-Za-z_]+)=`)
	_, ldflags := releaseTargets(t)
	for where, text := range map[string]string{
		".goreleaser.yaml": strings.Join(ldflags, " "),
		"Dockerfile":       string(readFile(t, filepath.Join(repoRoot, "Dockerfile"))),
	} {
		found := stamp.FindAllStringSubmatch(text, -1)
		var names []string
		for _, f := range found {
			names = append(names, f[1])
			if !vars[f[1]] {
				t.Errorf("%s sets %s.%s, which is not an uninitialised string variable there", where, pkg, f[1])
			}
		}
		if !slices.Contains(names, "Version") {
			t.Errorf("%s does not stamp %s.Version", where, pkg)
		}
	}
	dockerfile := string(readFile(t, filepath.Join(repoRoot, "Dockerfile")))
	for _, label := range []string{"version", "revision", "created", "source", "licenses", "title"} {
		if !strings.Contains(dockerfile, "org.opencontainers.image."+label+"=") {
			t.Errorf("Dockerfile lacks the OCI label org.opencontainers.image.%s", label)
		}
	}
}

// dockerignore is .dockerignore read with Docker's rules: patterns are anchored at the context
// root, "**" spans directories, a pattern that matches a directory excludes what it holds,
// and a later "!" pattern takes a path back.
type dockerignore []struct {
	re      *regexp.Regexp
	include bool
}

func readDockerignore(t *testing.T) dockerignore {
	t.Helper()
	var d dockerignore
	for _, line := range strings.Split(string(readFile(t, filepath.Join(repoRoot, ".dockerignore"))), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		include := strings.HasPrefix(line, "!")
		pattern := strings.TrimPrefix(filepath.ToSlash(filepath.Clean(strings.TrimPrefix(line, "!"))), "/")
		var re strings.Builder
		for i := 0; i < len(pattern); i++ {
			switch c := pattern[i]; {
			case strings.HasPrefix(pattern[i:], "**/"):
				re.WriteString("(?:.*/)?")
				i += 2
			case strings.HasPrefix(pattern[i:], "**"):
				re.WriteString(".*")
				i++
			case c == '*':
				re.WriteString("[^/]*")
			case c == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		d = append(d, struct {
			re      *regexp.Regexp
			include bool
		}{regexp.MustCompile("^" + re.String() + "(?:/.*)?$"), include})
	}
	return d
}

func (d dockerignore) excludes(path string) bool {
	excluded := false
	for _, p := range d {
		if p.re.MatchString(path) {
			excluded = !p.include
		}
	}
	return excluded
}

// TestDockerignoreKeepsTheBuildInputs: the image build (`go build ./cmd/listener` after
// `COPY . .`) still finds every file it compiles, while the repository's history, docs and
// tests stay out of the context. No Docker is needed to see a pattern that cuts too much.
func TestDockerignoreKeepsTheBuildInputs(t *testing.T) {
	d := readDockerignore(t)
	for _, kept := range []string{"go.mod", "go.sum", "README.md"} {
		if d.excludes(kept) {
			t.Errorf(".dockerignore excludes %s", kept)
		}
	}
	for _, dropped := range []string{".git/HEAD", "docs/DEPLOYING.md", "deploy/helm/listener/values.yaml",
		"store/store_test.go", "stix/testdata/x.json", "CHANGELOG.md", "listener.env", "dist/listener"} {
		if !d.excludes(dropped) {
			t.Errorf(".dockerignore keeps %s in the build context", dropped)
		}
	}
	cmd := exec.Command("go", "list", "-deps", "-f",
		`{{if not .Standard}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{end}}`,
		"./cmd/listener")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "GOOS=linux", "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, file := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, file)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // a module dependency, fetched by go mod download
		}
		n++
		if d.excludes(filepath.ToSlash(rel)) {
			t.Errorf(".dockerignore excludes %s, which go build ./cmd/listener compiles", rel)
		}
	}
	if n < 20 {
		t.Fatalf("go list found %d of the module's files in ./cmd/listener's build", n)
	}
}

// The systemd unit does not restart on a configuration error (the bad-input exit code of
// docs/CLI.md) and carries no MemoryMax that Badger's memory-mapped tables would outgrow.
func TestSystemdUnitStopsOnConfigErrors(t *testing.T) {
	unit := string(readFile(t, filepath.Join(repoRoot, "deploy", "listener.service")))
	m := regexp.MustCompile(`(?m)^\| (\d+) \| bad input \|`).FindStringSubmatch(string(readFile(t, filepath.Join(repoRoot, "docs", "CLI.md"))))
	if m == nil {
		t.Fatal("docs/CLI.md names no bad-input exit code")
	}
	if !regexp.MustCompile(`(?m)^RestartPreventExitStatus=` + m[1] + `$`).MatchString(unit) {
		t.Errorf("listener.service lacks RestartPreventExitStatus=%s", m[1])
	}
	if regexp.MustCompile(`(?m)^MemoryMax=`).MatchString(unit) {
		t.Error("listener.service caps memory with MemoryMax")
	}
}

// TestHelmProbes: liveness and the startup probe ask /healthz (fails only when the process is
// wedged: a restart helps), readiness asks /readyz (MISP or the disk: a restart does not help).
// A startup probe on /readyz would restart a pod for ever while MISP is down.
func TestHelmProbes(t *testing.T) {
	sts := string(readFile(t, filepath.Join("helm", "listener", "templates", "statefulset.yaml")))
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "startupProbe": "/healthz", "readinessProbe": "/readyz"} {
		re := regexp.MustCompile(probe + `:\s*\n\s*httpGet:\s*\n\s*path: (\S+)`)
		m := re.FindStringSubmatch(sts)
		if m == nil || m[1] != path {
			t.Errorf("%s asks %v, want %s", probe, m, path)
		}
	}
}
