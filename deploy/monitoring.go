package deploy

import (
	"bytes"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/omikuji/omikuji/internal/fortune"
)

//go:generate go run ./cmd/monitoring

// The Prometheus rules that keep checking the odds. Every scrape target of
// job "omikuji" is one endpoint of the Service (kube-proxy's own view),
// labelled with its fortune, its pod and its EndpointSlice ready condition:
// the expected share of a fortune is its ready endpoints over all ready
// endpoints, and its observed share comes from the pods' draw counters.
// docs/monitoring.md explains the statistics; TestFalseAlarmBound computes
// the false-alarm rate these constants give.
const (
	// Job is the job label of the omikuji targets; the scrape configs and
	// the ServiceMonitor set it.
	Job = "omikuji"
	// Window is how far back the shares are counted.
	Window = "10m"
	// DriftZ is the |z| above which a fortune's draw count is incompatible
	// with its expected share, once the window holds DriftMinDraws draws.
	DriftZ        = 6
	DriftMinDraws = 1000
	DriftFor      = "5m"
	// SkewZ is the z above which one pod takes more than 1/N of its
	// fortune's draws, once the fortune has SkewMinDraws draws.
	SkewZ        = 6
	SkewMinDraws = 200
	SkewFor      = "5m"
	// UnavailableFor is how long a fortune may have no ready endpoint.
	UnavailableFor = "1m"
)

// The generated files, relative to the deploy module.
const (
	RulesFile          = "prometheus/omikuji.rules.yml"
	PrometheusRuleFile = "kustomize/components/monitoring/prometheusrule.yaml"
)

// A RuleGroup and a Rule as Prometheus's rule files spell them (the
// PrometheusRule's spec.groups uses the same fields).
type RuleGroup struct {
	Name  string `yaml:"name"`
	Rules []Rule `yaml:"rules"`
}

type Rule struct {
	Record      string            `yaml:"record,omitempty"`
	Alert       string            `yaml:"alert,omitempty"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

// Rules returns the one rule group, built from the fortune catalogue. The
// rules run in order within the group, so each can use the ones above it.
func Rules() []RuleGroup {
	sel := fmt.Sprintf(`{job=%q}`, Job)
	w := Window
	var rules []Rule
	// The catalogue as series: a fortune with no pod at all still has a
	// row, with zero ready endpoints and zero draws.
	for _, f := range fortune.Catalogue {
		rules = append(rules, Rule{
			Record: "omikuji:catalogue:info",
			Expr:   "vector(1)",
			Labels: map[string]string{"fortune": f.ID, "slip": f.Label},
		})
	}
	readySel := strings.TrimSuffix(sel, "}") + `, ready="true"}`
	rules = append(rules,
		Rule{
			Record: "omikuji:ready_endpoint:pod",
			Expr:   "count by (fortune, pod) (up" + readySel + ")",
		},
		Rule{
			Record: "omikuji:ready_endpoints:count",
			Expr: "sum by (fortune) (omikuji:ready_endpoint:pod)\n" +
				"or on (fortune) 0 * sum by (fortune) (omikuji:catalogue:info)",
		},
		Rule{
			Record: "omikuji:expected_share:ratio",
			// No sample while nothing is ready: a NaN would poison the
			// average below for a whole window.
			Expr: "omikuji:ready_endpoints:count / on () group_left sum(omikuji:ready_endpoints:count)\n" +
				"and on () sum(omikuji:ready_endpoints:count) > 0",
		},
		// Over the window, a share that changed (a scale) counts for the
		// time it held: with draws at a steady rate, that is its weight.
		Rule{
			Record: "omikuji:expected_share:avg" + w,
			Expr:   "avg_over_time(omikuji:expected_share:ratio[" + w + "])",
		},
		Rule{
			Record: "omikuji:pod_draws:increase" + w,
			Expr:   "sum by (fortune, pod) (increase(omikuji_draws_total" + sel + "[" + w + "]))",
		},
		Rule{
			Record: "omikuji:draws:increase" + w,
			Expr: "sum by (fortune) (omikuji:pod_draws:increase" + w + ")\n" +
				"or on (fortune) 0 * sum by (fortune) (omikuji:catalogue:info)",
		},
		Rule{
			Record: "omikuji:draw_share:ratio" + w,
			Expr: "omikuji:draws:increase" + w + " / on () group_left sum(omikuji:draws:increase" + w + ")\n" +
				"and on () sum(omikuji:draws:increase" + w + ") > 0",
		},
		// Binomial z-score: each of the n draws lands on the fortune with
		// probability p, so its count x has mean np and variance np(1-p).
		Rule{
			Record: "omikuji:draws:zscore" + w,
			Expr: fmt.Sprintf("(\n  omikuji:draws:increase%[1]s\n  - scalar(sum(omikuji:draws:increase%[1]s)) * omikuji:expected_share:avg%[1]s\n)\n"+
				"/ sqrt(\n  scalar(sum(omikuji:draws:increase%[1]s))\n  * omikuji:expected_share:avg%[1]s * (1 - omikuji:expected_share:avg%[1]s)\n)", w),
		},
		// A pod's expected share of its fortune's draws: the time it was a
		// ready endpoint over the time all the fortune's pods were.
		Rule{
			Record: "omikuji:pod_expected_share:ratio" + w,
			Expr: fmt.Sprintf("count_over_time(omikuji:ready_endpoint:pod[%[1]s])\n"+
				"/ on (fortune) group_left sum by (fortune) (count_over_time(omikuji:ready_endpoint:pod[%[1]s]))", w),
		},
		Rule{
			Record: "omikuji:pod_draws:zscore" + w,
			Expr: fmt.Sprintf("(\n  omikuji:pod_draws:increase%[1]s\n  - omikuji:pod_expected_share:ratio%[1]s * on (fortune) group_left omikuji:draws:increase%[1]s\n)\n"+
				"/ sqrt(\n  omikuji:pod_expected_share:ratio%[1]s * on (fortune) group_left omikuji:draws:increase%[1]s\n  * (1 - omikuji:pod_expected_share:ratio%[1]s)\n)", w),
		},
		Rule{
			Alert: "OmikujiFortuneUnavailable",
			Expr:  "omikuji:ready_endpoints:count == 0 and on (fortune) omikuji:catalogue:info",
			For:   UnavailableFor,
			Labels: map[string]string{
				"severity": "critical",
			},
			Annotations: map[string]string{
				"summary":     "{{ $labels.fortune }} has no ready endpoint: its odds are 0",
				"description": "The Service routes to no pod of {{ $labels.fortune }}, so no draw can give it. See docs/monitoring.md#omikujifortuneunavailable.",
			},
		},
		Rule{
			Alert: "OmikujiOddsDrift",
			Expr: fmt.Sprintf("abs(omikuji:draws:zscore%[1]s) > %[2]d\nand on () sum(omikuji:draws:increase%[1]s) >= %[3]d",
				w, DriftZ, DriftMinDraws),
			For: DriftFor,
			Labels: map[string]string{
				"severity": "warning",
			},
			Annotations: map[string]string{
				"summary":     "{{ $labels.fortune }} is drawn at odds its ready endpoints do not give",
				"description": fmt.Sprintf("Over %s, the draws of {{ $labels.fortune }} are {{ $value | printf \"%%.1f\" }} standard deviations from its expected share. See docs/monitoring.md#omikujioddsdrift.", w),
			},
		},
		Rule{
			Alert: "OmikujiPodSkew",
			Expr: fmt.Sprintf("omikuji:pod_draws:zscore%[1]s > %[2]d\nand on (fortune) omikuji:draws:increase%[1]s >= %[3]d",
				w, SkewZ, SkewMinDraws),
			For: SkewFor,
			Labels: map[string]string{
				"severity": "warning",
			},
			Annotations: map[string]string{
				"summary":     "{{ $labels.pod }} takes more than its share of {{ $labels.fortune }}",
				"description": fmt.Sprintf("Over %s, {{ $labels.pod }} answered {{ $value | printf \"%%.1f\" }} standard deviations more of its fortune's draws than 1/N: a keep-alive client, a pooled proxy or session affinity pins draws to it. See docs/monitoring.md#omikujipodskew.", w),
			},
		},
	)
	return []RuleGroup{{Name: "omikuji", Rules: rules}}
}

const generated = "# Generated by `go generate` in deploy/ (cmd/monitoring) from the fortune\n" +
	"# catalogue in internal/fortune. Do not edit: TestMonitoringFilesAreGenerated\n" +
	"# fails when this file differs from what the generator writes.\n"

// RulesYAML is the plain Prometheus rule file.
func RulesYAML() ([]byte, error) {
	return marshal(generated, struct {
		Groups []RuleGroup `yaml:"groups"`
	}{Rules()})
}

// PrometheusRuleYAML is the same rules as a Prometheus Operator object.
// The release label is kube-prometheus-stack's default rule selector.
func PrometheusRuleYAML() ([]byte, error) {
	type metadata struct {
		Name      string            `yaml:"name"`
		Namespace string            `yaml:"namespace"`
		Labels    map[string]string `yaml:"labels"`
	}
	return marshal(generated, struct {
		APIVersion string   `yaml:"apiVersion"`
		Kind       string   `yaml:"kind"`
		Metadata   metadata `yaml:"metadata"`
		Spec       struct {
			Groups []RuleGroup `yaml:"groups"`
		} `yaml:"spec"`
	}{
		APIVersion: "monitoring.coreos.com/v1",
		Kind:       "PrometheusRule",
		Metadata: metadata{Name: "omikuji", Namespace: Namespace, Labels: map[string]string{
			"app.kubernetes.io/name":    "omikuji",
			"app.kubernetes.io/part-of": "omikuji",
			"release":                   "kube-prometheus-stack",
		}},
		Spec: struct {
			Groups []RuleGroup `yaml:"groups"`
		}{Rules()},
	})
}

// GeneratedFiles maps each generated file to its content.
func GeneratedFiles() (map[string][]byte, error) {
	rules, err := RulesYAML()
	if err != nil {
		return nil, err
	}
	object, err := PrometheusRuleYAML()
	if err != nil {
		return nil, err
	}
	return map[string][]byte{RulesFile: rules, PrometheusRuleFile: object}, nil
}

func marshal(header string, v any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(header)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
