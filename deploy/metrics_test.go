package deploy

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"go.yaml.in/yaml/v3"

	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/internal/configtest"
)

// exposedMetrics assembles a daemon the way `listener run` does (daemon.New with a registry)
// from a minimal offline configuration, and returns every metric name it registers with the
// label names of each. Nothing is contacted: New only builds clients.
func exposedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	cfg := configtest.Offline(t, `zeromq:
  enabled: true
  endpoint: tcp://127.0.0.1:9
webhook:
  enabled: true
  auth_token: a-long-random-webhook-token-for-the-test
`)
	log := logrus.New()
	log.SetOutput(io.Discard)
	reg := prometheus.NewRegistry()
	d, err := daemon.New(cfg, daemon.Options{Registry: reg, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })

	// Describe lists every registered metric, also the vectors no sample was recorded in yet
	// (Gather would leave those out).
	descs := make(chan *prometheus.Desc)
	go func() {
		reg.Describe(descs)
		close(descs)
	}()
	metrics := map[string][]string{}
	for desc := range descs {
		name, labels, err := parseDesc(desc.String())
		if err != nil {
			t.Fatal(err)
		}
		metrics[name] = labels
	}
	if len(metrics) < 20 {
		t.Fatalf("the daemon's registry describes %d metrics; expected the listener's and the Go and process collectors'", len(metrics))
	}
	return metrics
}

var (
	descName      = regexp.MustCompile(`^Desc\{fqName: "([^"]+)"`)
	descConst     = regexp.MustCompile(`constLabels: \{(.*)\}, variableLabels: \{([^}]*)\}\}$`)
	descConstName = regexp.MustCompile(`(?:^|,)([a-zA-Z_][a-zA-Z0-9_]*)=`)
)

// parseDesc takes the metric name and label names from a Desc's String: client_golang offers no
// accessor for them.
func parseDesc(s string) (string, []string, error) {
	m := descName.FindStringSubmatch(s)
	c := descConst.FindStringSubmatch(s)
	if m == nil || c == nil {
		return "", nil, &descError{s}
	}
	var labels []string
	for _, cl := range descConstName.FindAllStringSubmatch(c[1], -1) {
		labels = append(labels, cl[1])
	}
	for _, vl := range strings.Split(c[2], ",") {
		if vl = strings.TrimSuffix(strings.TrimPrefix(vl, "c("), ")"); vl != "" {
			labels = append(labels, vl)
		}
	}
	return m[1], labels, nil
}

type descError struct{ s string }

func (e *descError) Error() string { return "unexpected prometheus.Desc format: " + e.s }

// targetLabels are the labels Prometheus adds to every scraped series.
var targetLabels = []string{"job", "instance"}

// lookup returns the labels a series name may carry: the metric's own, or a histogram's
// _bucket/_sum/_count series.
func lookup(metrics map[string][]string, name string) ([]string, bool) {
	if labels, ok := metrics[name]; ok {
		return append(labels, targetLabels...), true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if labels, ok := metrics[base]; ok {
				labels = append(labels, targetLabels...)
				if suffix == "_bucket" {
					labels = append(labels, "le")
				}
				return labels, true
			}
		}
	}
	return nil, false
}

// promqlKeywords are identifiers in PromQL that are not metric names when not followed by "(".
var promqlKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "by": true,
	"without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"inf": true, "nan": true, "atan2": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true,
	"stdvar": true, "count": true, "count_values": true, "bottomk": true, "topk": true,
	"quantile": true, "limitk": true, "limit_ratio": true,
}

var promqlToken = regexp.MustCompile(`\s+|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`" +
	`|\$\{?[a-zA-Z_][a-zA-Z0-9_]*\}?|(?:\d+(?:ms|s|m|h|d|w|y))+|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?` +
	`|[a-zA-Z_:][a-zA-Z0-9_:]*|=~|!~|!=|==|>=|<=|.`)

// selector is one metric named in a PromQL expression, with the labels its matchers use.
type selector struct {
	metric string
	labels []string
}

// parsePromQL finds the metric names, matcher labels and grouping labels of a PromQL
// expression (Grafana variables allowed). It is a lexer, not a parser: enough to check names.
func parsePromQL(expr string) (sels []selector, grouping []string) {
	var toks []string
	for _, tok := range promqlToken.FindAllString(expr, -1) {
		if strings.TrimSpace(tok) != "" {
			toks = append(toks, tok)
		}
	}
	isIdent := regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`).MatchString
	for i := 0; i < len(toks); i++ {
		tok := toks[i]
		next := ""
		if i+1 < len(toks) {
			next = toks[i+1]
		}
		switch {
		case tok == "[": // a range or subquery: durations and Grafana variables only
			for i < len(toks) && toks[i] != "]" {
				i++
			}
		case (tok == "by" || tok == "without" || tok == "on" || tok == "ignoring" ||
			tok == "group_left" || tok == "group_right") && next == "(":
			for i += 2; i < len(toks) && toks[i] != ")"; i++ {
				if toks[i] != "," {
					grouping = append(grouping, toks[i])
				}
			}
		case !isIdent(tok) || promqlKeywords[tok] || next == "(":
			// operators, literals, keywords, functions
		default:
			sel := selector{metric: tok}
			if next == "{" {
				for i += 2; i < len(toks) && toks[i] != "}"; i++ {
					if isIdent(toks[i]) && i+1 < len(toks) && strings.Contains("= =~ != !~", toks[i+1]) && toks[i+1] != "" {
						sel.labels = append(sel.labels, toks[i])
					}
				}
			}
			sels = append(sels, sel)
		}
	}
	return sels, grouping
}

// checkExpr reports each metric or label in expr that the daemon does not expose, and returns
// the series names it uses.
func checkExpr(t *testing.T, metrics map[string][]string, where, expr string) []string {
	t.Helper()
	sels, grouping := parsePromQL(expr)
	if len(sels) == 0 {
		t.Errorf("%s: no metric found in %q", where, expr)
	}
	known := map[string]bool{"le": true}
	for _, l := range targetLabels {
		known[l] = true
	}
	var names []string
	for _, s := range sels {
		names = append(names, s.metric)
		labels, ok := lookup(metrics, s.metric)
		if !ok {
			t.Errorf("%s: metric %s is not one the daemon exposes (expression %q)", where, s.metric, expr)
			continue
		}
		for _, l := range labels {
			known[l] = true
		}
		for _, l := range s.labels {
			if !slices.Contains(labels, l) {
				t.Errorf("%s: %s has no label %q (it has %v)", where, s.metric, l, labels)
			}
		}
	}
	for _, l := range grouping {
		if !known[l] {
			t.Errorf("%s: grouping label %q is on none of the metrics of %q", where, l, expr)
		}
	}
	return names
}

func TestParsePromQL(t *testing.T) {
	sels, grouping := parsePromQL(`sum by (sink, reason) (rate(listener_upload_retries_total{job=~"$job",reason=~"a|b"}[$__rate_interval])) * 60 ` +
		`+ on (job) (time() - listener_x > 25 * 3600) unless histogram_quantile(0.5, y_bucket offset 5m)`)
	var got []string
	for _, s := range sels {
		got = append(got, s.metric+"{"+strings.Join(s.labels, ",")+"}")
	}
	want := []string{"listener_upload_retries_total{job,reason}", "listener_x{}", "y_bucket{}"}
	if !slices.Equal(got, want) {
		t.Errorf("selectors %v, want %v", got, want)
	}
	if !slices.Equal(grouping, []string{"sink", "reason", "job"}) {
		t.Errorf("grouping %v", grouping)
	}
}

// alertRules is the part of a Prometheus rules file the tests read.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readRules(t *testing.T, path string) alertRules {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r alertRules
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return r
}

// TestAlertRulesUseExposedMetrics checks every expression of deploy/prometheus/alerts.yaml
// against the daemon's registry, and that each alert says how bad it is and what to do.
func TestAlertRulesUseExposedMetrics(t *testing.T) {
	metrics := exposedMetrics(t)
	rules := readRules(t, filepath.Join("prometheus", "alerts.yaml"))
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			where := "alerts.yaml " + r.Alert + r.Record
			checkExpr(t, metrics, where, r.Expr)
			if r.Alert == "" {
				continue
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", where, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: needs a summary and a description", where)
			}
		}
	}
	if n == 0 {
		t.Fatal("no rules in alerts.yaml")
	}
}

// TestEveryAlertHasFiringAndSilentCases reads the promtool test file: each alert of
// alerts.yaml needs an evaluation where it fires and one where it does not (promtool itself
// runs them in .ci/run).
func TestEveryAlertHasFiringAndSilentCases(t *testing.T) {
	rules := readRules(t, filepath.Join("prometheus", "alerts.yaml"))
	b, err := os.ReadFile(filepath.Join("prometheus", "alerts_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var tests struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(b, &tests); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tests.RuleFiles, []string{"alerts.yaml"}) {
		t.Errorf("alerts_test.yaml tests rule files %v, want [alerts.yaml]", tests.RuleFiles)
	}
	firing, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				firing[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
	}
	alerts := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts[r.Alert] = true
			if !firing[r.Alert] {
				t.Errorf("alert %s has no test case where it fires", r.Alert)
			}
			if !silent[r.Alert] {
				t.Errorf("alert %s has no test case where it stays silent", r.Alert)
			}
		}
	}
	for name := range firing {
		if !alerts[name] {
			t.Errorf("alerts_test.yaml tests %s, which alerts.yaml does not define", name)
		}
	}
}

// dashboardQueries returns every PromQL expression of a Grafana dashboard: panel targets
// (rows' nested panels included) and the selectors of label_values() variables.
func dashboardQueries(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		ID      int    `json:"id"`
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var dash struct {
		UID        string            `json:"uid"`
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if dash.UID == "" {
		t.Errorf("%s: no uid", path)
	}
	queries := map[string]string{}
	ids := map[int]bool{}
	var walk func([]json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatal(err)
			}
			if ids[p.ID] {
				t.Errorf("%s: panel id %d used twice", path, p.ID)
			}
			ids[p.ID] = true
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", path, p.Title)
			}
			for i, tg := range p.Targets {
				queries[p.Title+" #"+string(rune('A'+i))] = tg.Expr
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(string)
		if m, ok := v.Query.(map[string]any); ok {
			q, _ = m["query"].(string)
		}
		lv := labelValues.FindStringSubmatch(q)
		if lv == nil {
			t.Errorf("%s: variable %s: query %q is not label_values(selector, label)", path, v.Name, q)
			continue
		}
		// The label the variable lists must be grouped on, so the check sees it.
		queries["variable "+v.Name] = "max by (" + lv[2] + ") (" + lv[1] + ")"
	}
	return queries
}

// TestDashboardUsesExposedMetrics checks every query of deploy/grafana/listener.json against
// the daemon's registry, and that the dashboard shows what issue 12 asks of it.
func TestDashboardUsesExposedMetrics(t *testing.T) {
	metrics := exposedMetrics(t)
	queries := dashboardQueries(t, filepath.Join("grafana", "listener.json"))
	used := map[string]bool{}
	keys := make([]string, 0, len(queries))
	for k := range queries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, where := range keys {
		for _, name := range checkExpr(t, metrics, "listener.json "+where, queries[where]) {
			used[name] = true
		}
	}
	for topic, name := range map[string]string{
		"outbox depth per sink":              "listener_outbox_depth",
		"sink stopped or failing":            "listener_sink_up",
		"outbox age per sink":                "listener_last_upload_timestamp_seconds",
		"uploads per sink":                   "listener_indicators_uploaded_total",
		"rejections per sink":                "listener_indicators_rejected_total",
		"429 and 5xx rates":                  "listener_upload_retries_total",
		"quota use (requests per minute)":    "listener_upload_duration_seconds_count",
		"delivery latency":                   "listener_upload_duration_seconds_bucket",
		"notices per source":                 "listener_event_notices_applied_total",
		"reconcile duration":                 "listener_reconcile_duration_seconds_bucket",
		"reconcile result":                   "listener_reconcile_runs_total",
		"dead letters":                       "listener_dead_letters",
		"ZeroMQ connection state":            "listener_zeromq_connected",
		"ZeroMQ messages beyond a heartbeat": "listener_zeromq_last_message_timestamp_seconds",
		"version":                            "listener_build_info",
	} {
		if !used[name] {
			t.Errorf("the dashboard shows no %s (%s)", topic, name)
		}
	}
}

// TestDashboardQueriesParse has promtool parse every dashboard query, with the Grafana
// variables replaced, as a recording rule. promtool comes from Debian's prometheus package;
// .ci/run installs it, so under CI its absence fails the test.
func TestDashboardQueriesParse(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is not installed (.ci/run installs it: apt-get install prometheus)")
		}
		t.Skip("promtool is not installed (apt-get install prometheus); .ci/run runs this test with it")
	}
	queries := dashboardQueries(t, filepath.Join("grafana", "listener.json"))
	vars := strings.NewReplacer("$__rate_interval", "5m", "$job", ".*", "$instance", ".*", "$sink", ".*")
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for _, q := range queries {
		rules = append(rules, rule{Record: "dashboard:query", Expr: vars.Replace(q)})
	}
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules on the dashboard's queries: %v\n%s", err, out)
	}
}
