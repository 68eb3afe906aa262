package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"

	"github.com/omikuji/omikuji/internal/fortune"
)

const (
	scrapeConfigFile = "prometheus/prometheus.yml"
	ruleTestFile     = "prometheus/tests/omikuji.test.yml"
	dashboardFile    = "grafana/omikuji.json"
)

// The committed rule files are exactly what the generator writes from the
// catalogue.
func TestMonitoringFilesAreGenerated(t *testing.T) {
	files, err := GeneratedFiles()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what the generator writes from internal/fortune: run `go generate` in deploy/", name)
		}
	}
}

// The catalogue rows name every fortune, in order, and nothing else.
func TestRulesCarryTheCatalogue(t *testing.T) {
	var ids []string
	for _, r := range Rules()[0].Rules {
		if r.Record == "omikuji:catalogue:info" {
			ids = append(ids, r.Labels["fortune"])
		}
	}
	if !slices.Equal(ids, fortune.IDs()) {
		t.Errorf("catalogue rows %v, want %v", ids, fortune.IDs())
	}
}

// requireTool finds an external tool: missing, it skips the test on a
// workstation but fails it in CI, which must never skip silently.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found; CI=true, so this is a failure, not a skip (scripts/deps.sh installs it)", name)
	}
	t.Skipf("%s not found; skipping (scripts/deps.sh installs it; CI=true makes this fail)", name)
	return ""
}

// promtool checks the rule file and the example configuration, and runs the
// rule unit tests: a fair balancer, a pinned pod, a missing fortune, the
// shares of another replica count, a quiet shrine and a live scale.
func TestPromtool(t *testing.T) {
	promtool := requireTool(t, "promtool")
	for _, args := range [][]string{
		{"check", "rules", RulesFile},
		{"check", "config", promtoolConfig(t)},
		{"test", "rules", ruleTestFile},
	} {
		t.Run(strings.Join(args[:2], "-"), func(t *testing.T) {
			out, err := exec.Command(promtool, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
		})
	}
}

// promtoolConfig is prometheus.yml for Debian's promtool, which is built
// without kubernetes service discovery: the same job with an HTTP discovery
// in its place, so that everything else (the relabelings, the rule file) is
// checked as shipped. The e2e runs the kubernetes discovery for real.
func promtoolConfig(t *testing.T) string {
	data, err := os.ReadFile(scrapeConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	const sd = "    kubernetes_sd_configs:\n      - role: endpointslice\n        namespaces:\n          names: [omikuji]\n"
	if !strings.Contains(text, sd) {
		t.Fatalf("%s: no kubernetes_sd_configs entry %q", scrapeConfigFile, sd)
	}
	rules, err := filepath.Abs(RulesFile)
	if err != nil {
		t.Fatal(err)
	}
	text = strings.Replace(text, sd, "    http_sd_configs:\n      - url: http://127.0.0.1:9/targets\n", 1)
	text = strings.Replace(text, "  - "+filepath.Base(RulesFile)+"\n", "  - "+rules+"\n", 1)
	path := filepath.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Every rule and every dashboard panel parses with Prometheus's own parser;
// raw metrics are selected by the omikuji job, and recorded series used by
// the dashboard are ones the rules record.
func TestRulesAndDashboardParse(t *testing.T) {
	recorded := map[string]bool{}
	for _, r := range Rules()[0].Rules {
		if r.Record != "" {
			recorded[r.Record] = true
		}
		if r.Alert != "" && r.For != "" {
			if _, err := time.ParseDuration(r.For); err != nil {
				t.Errorf("alert %s: for %q: %v", r.Alert, r.For, err)
			}
		}
		checkExpr(t, "rule "+r.Record+r.Alert, r.Expr, recorded)
	}
	for _, want := range []string{"omikuji:draws:increase10m", "omikuji:draw_share:ratio10m", "omikuji:expected_share:ratio"} {
		if !recorded[want] {
			t.Errorf("no recording rule %s", want)
		}
	}

	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	exprs := 0
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			checkExpr(t, "panel "+p.Title, q.Expr, recorded)
			exprs++
		}
	}
	joined := string(data)
	for _, want := range []string{"omikuji:draw_share:ratio10m", "omikuji:expected_share:ratio", "omikuji_draws_total", "ALERTS"} {
		if !strings.Contains(joined, want) {
			t.Errorf("%s: no panel queries %s", dashboardFile, want)
		}
	}
	t.Logf("%d rules and %d dashboard queries parse", len(Rules()[0].Rules), exprs)
}

// checkExpr parses expr and checks its selectors: omikuji_draws_total and up
// with job="omikuji", omikuji:* only as recorded (so far) by the rules.
func checkExpr(t *testing.T, what, expr string, recorded map[string]bool) {
	t.Helper()
	e, err := parser.ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: %q does not parse: %v", what, expr, err)
		return
	}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		switch {
		case strings.HasPrefix(vs.Name, "omikuji:"):
			if !recorded[vs.Name] {
				t.Errorf("%s: %s is not recorded by an earlier rule", what, vs.Name)
			}
		case vs.Name == "omikuji_draws_total" || vs.Name == "up":
			job := ""
			for _, m := range vs.LabelMatchers {
				if m.Name == "job" {
					job = m.Value
				}
			}
			if job != Job {
				t.Errorf("%s: %s selects job %q, want %q", what, vs, job, Job)
			}
		}
		return nil
	})
}

// The monitoring component: a ServiceMonitor and a PrometheusRule, strictly
// decoded into the Prometheus Operator's types, with kube-prometheus-stack's
// release label; the rule object carries the same rules as the plain file,
// and the ServiceMonitor labels targets as the plain scrape config does.
func TestMonitoringComponent(t *testing.T) {
	kit := build(t, "testdata/components")
	if len(kit.ServiceMonitors) != 1 || len(kit.PrometheusRules) != 1 {
		t.Fatalf("%d ServiceMonitors and %d PrometheusRules, want 1 of each", len(kit.ServiceMonitors), len(kit.PrometheusRules))
	}
	sm, pr := kit.ServiceMonitors[0], kit.PrometheusRules[0]
	for _, o := range []interface{ GetLabels() map[string]string }{&sm, &pr} {
		if o.GetLabels()["release"] == "" {
			t.Errorf("%T has no release label: kube-prometheus-stack selects by it", o)
		}
	}
	if pr.Namespace != Namespace {
		t.Errorf("PrometheusRule in namespace %q, want %q", pr.Namespace, Namespace)
	}

	// Same rules as the plain file, field by field.
	want := Rules()
	if len(pr.Spec.Groups) != len(want) {
		t.Fatalf("PrometheusRule has %d groups, want %d", len(pr.Spec.Groups), len(want))
	}
	for i, g := range pr.Spec.Groups {
		if g.Name != want[i].Name || len(g.Rules) != len(want[i].Rules) {
			t.Fatalf("group %d: %s with %d rules, want %s with %d", i, g.Name, len(g.Rules), want[i].Name, len(want[i].Rules))
		}
		for j, r := range g.Rules {
			w := want[i].Rules[j]
			forGot := ""
			if r.For != nil {
				forGot = string(*r.For)
			}
			if r.Record != w.Record || r.Alert != w.Alert || r.Expr.String() != w.Expr || forGot != w.For ||
				!mapsEqual(r.Labels, w.Labels) || !mapsEqual(r.Annotations, w.Annotations) {
				t.Errorf("group %s rule %d (%s%s) differs from the plain rule file's", g.Name, j, w.Record, w.Alert)
			}
		}
	}

	// The ServiceMonitor and the plain config scrape the Service's endpoints
	// on the same port, and label targets job, ready and fortune alike.
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("ServiceMonitor: %d endpoints, want 1", len(sm.Spec.Endpoints))
	}
	ep := sm.Spec.Endpoints[0]
	targets := map[string]monitoringv1.RelabelConfig{}
	for _, r := range ep.RelabelConfigs {
		targets[r.TargetLabel] = r
	}
	if r := targets["job"]; r.Replacement == nil || *r.Replacement != Job {
		t.Errorf("ServiceMonitor: no relabeling sets job=%q", Job)
	}
	if r := targets["ready"]; !slices.Contains(r.SourceLabels, "__meta_kubernetes_endpointslice_endpoint_conditions_ready") ||
		!slices.Contains(r.SourceLabels, "__meta_kubernetes_endpoint_ready") {
		t.Errorf("ServiceMonitor: the ready label does not come from the endpoint's ready condition: %+v", r)
	}
	if r := targets["fortune"]; !slices.Equal(r.SourceLabels, []monitoringv1.LabelName{"__meta_kubernetes_pod_label_omikuji_fortune"}) {
		t.Errorf("ServiceMonitor: the fortune label does not come from the pod label %s: %+v", FortuneLabel, r)
	}

	// Both scrape the pods' port named metrics, by its number.
	want9090 := metricsPort(t, kit)
	if r := targets["__address__"]; r.Replacement == nil || *r.Replacement != want9090 {
		t.Errorf("ServiceMonitor: the address is not rewritten to the metrics port (%s): %+v", want9090, r)
	}
	if !strings.Contains(string(mustRead(t, scrapeConfigFile)), "replacement: "+want9090+"\n") {
		t.Errorf("%s: no relabeling rewrites the address to the metrics port (%s)", scrapeConfigFile, want9090)
	}

	cfg := readScrapeConfig(t)
	if len(cfg.ScrapeConfigs) != 1 || cfg.ScrapeConfigs[0].JobName != Job {
		t.Fatalf("%s: want one scrape job %q", scrapeConfigFile, Job)
	}
	job := cfg.ScrapeConfigs[0]
	if job.MetricsPath != ep.Path {
		t.Errorf("%s scrapes %s, the ServiceMonitor %s", scrapeConfigFile, job.MetricsPath, ep.Path)
	}
	keep := job.RelabelConfigs[0]
	if keep.Action != "keep" || keep.Regex != ServiceName+";"+ep.Port {
		t.Errorf("%s: the first relabeling keeps %q, want the ServiceMonitor's Service and port %q", scrapeConfigFile, keep.Regex, ServiceName+";"+ep.Port)
	}
	if !slices.Contains(cfg.RuleFiles, filepath.Base(RulesFile)) {
		t.Errorf("%s: rule_files %v do not load %s", scrapeConfigFile, cfg.RuleFiles, filepath.Base(RulesFile))
	}
}

// metricsPort is "$1:<port>" for the containerPort named metrics, the same
// on every fortune.
func metricsPort(t *testing.T, kit *Kit) string {
	t.Helper()
	ports := map[int32]bool{}
	for _, d := range kit.Deployments {
		for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
			if p.Name == "metrics" {
				ports[p.ContainerPort] = true
			}
		}
	}
	if len(ports) != 1 {
		t.Fatalf("containerPorts named metrics: %v, want one number on every fortune", ports)
	}
	for p := range ports {
		return fmt.Sprintf("$1:%d", p)
	}
	return ""
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

type scrapeConfig struct {
	RuleFiles     []string `json:"rule_files"`
	ScrapeConfigs []struct {
		JobName        string `json:"job_name"`
		MetricsPath    string `json:"metrics_path"`
		RelabelConfigs []struct {
			Action string `json:"action"`
			Regex  string `json:"regex"`
		} `json:"relabel_configs"`
	} `json:"scrape_configs"`
}

func readScrapeConfig(t *testing.T) scrapeConfig {
	t.Helper()
	data, err := os.ReadFile(scrapeConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	var cfg scrapeConfig
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("%s: %v", scrapeConfigFile, err)
	}
	return cfg
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
