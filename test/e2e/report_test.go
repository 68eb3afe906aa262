package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/omikuji/omikuji/internal/audit"
	"github.com/omikuji/omikuji/internal/fortune"
	"github.com/omikuji/omikuji/test/e2e/cluster"
)

// runReport collects what docs/e2e.md records: timings per phase, every
// audited draw and the no-draw-lost streams. It is logged at the end and
// written as JSON to $E2E_REPORT when that is set.
type runReport struct {
	Started  time.Time        `json:"started"`
	Phases   []cluster.Timing `json:"phases"`
	Up       []cluster.Timing `json:"cluster_up"`
	Draws    []drawReport     `json:"draws"`
	Streams  []streamReport   `json:"streams"`
	Policies []policyReport   `json:"local_policy"`
	Drains   []drainReport    `json:"drains"`
	Audits   []auditReport    `json:"plugin_audits"`
}

// auditReport is one run of kubectl omikuji audit.
type auditReport struct {
	Mode, What string
	Exit       int
	Verdict    string
	Seconds    float64 // command to verdict
	Nodes      []string
}

// policyReport is the audit through one node with externalTrafficPolicy
// Local.
type policyReport struct {
	Mode, Node string
	LocalPods  int // pods on that node
	Exit       int
	Verdict    string
	Summary    string
	Causes     string
}

// drainReport is the stream through node 1 while another node drains.
type drainReport struct {
	Mode, Node     string
	PDBs           string // whose PodDisruptionBudgets
	Draws, Failed  int
	Slow           int
	Failures       string
	Timeline       string
	DuringDrain    int64
	DrainSeconds   float64
	DuringRollout  int64
	RolloutSeconds float64
}

type drawReport struct {
	Mode, Target string
	Expect       string
	Counts       string
	Pods         string
	Succeeded    int
	Failed       int
	PGoodness    float64
	PUniform     float64
	PIndepend    float64
	Verdict      string
}

type streamReport struct {
	Mode           string
	Draws, Failed  int
	Slow           int    // answered, but after more than a second
	Failures       string // each failed draw: when, how long, its error
	Timeline       string // what the cluster was doing, since the stream began
	DuringDelete   int64
	DeleteSeconds  float64
	DuringRestart  int64
	RestartSeconds float64
}

// phase times fn; a failing phase ends the test.
func (r *runReport) phase(t *testing.T, name string, fn func() error) {
	t.Helper()
	start := time.Now()
	err := fn()
	r.phaseDone(name, start)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func (r *runReport) phaseDone(name string, start time.Time) {
	d := time.Since(start).Round(10 * time.Millisecond)
	r.Phases = append(r.Phases, cluster.Timing{Phase: name, Duration: d})
	fmt.Fprintf(os.Stderr, "e2e: phase %-40s %7.1f s\n", name, d.Seconds())
}

func (r *runReport) draw(mode, target string, expect fortune.Counts, a audit.Report) {
	var counts, pods []string
	for _, row := range a.Groups {
		counts = append(counts, fmt.Sprint(row.Count))
		pods = append(pods, fmt.Sprint(row.Pods))
	}
	r.Draws = append(r.Draws, drawReport{
		Mode: mode, Target: target, Expect: expect.String(),
		Counts: strings.Join(counts, "/"), Pods: strings.Join(pods, "/"),
		Succeeded: a.Succeeded, Failed: a.Failed,
		PGoodness: a.GoodnessOfFit.PValue, PUniform: a.Uniformity.PValue, PIndepend: a.Independence.PValue, Verdict: a.Verdict,
	})
}

// write logs the summary as markdown tables (pasted into docs/e2e.md) and
// saves the JSON if asked to.
func (r *runReport) write(t *testing.T) {
	var b strings.Builder
	fmt.Fprintf(&b, "e2e summary (%s)\n\n| phase | seconds |\n|---|---:|\n", r.Started.Format(time.RFC3339))
	for _, p := range r.Phases {
		fmt.Fprintf(&b, "| %s | %.1f |\n", p.Phase, p.Duration.Seconds())
	}
	fmt.Fprintf(&b, "\n| cluster up step | seconds |\n|---|---:|\n")
	for _, p := range r.Up {
		fmt.Fprintf(&b, "| %s | %.1f |\n", p.Phase, p.Duration.Seconds())
	}
	fmt.Fprintf(&b, "\n| mode | target | expected | drawn (%s) | pods | goodness of fit p | per-pod uniformity p | independence p | verdict |\n|---|---|---|---|---|---:|---:|---:|---|\n",
		strings.Join(fortune.IDs(), "/"))
	for _, d := range r.Draws {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %.3g | %.3g | %.3g | %s |\n",
			d.Mode, d.Target, d.Expect, d.Counts, d.Pods, d.PGoodness, d.PUniform, d.PIndepend, d.Verdict)
	}
	fmt.Fprintf(&b, "\n| mode | draws in stream | failed | slower than 1 s | during pod delete | during rollout restart |\n|---|---:|---:|---:|---|---|\n")
	for _, s := range r.Streams {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d in %.1f s | %d in %.1f s |\n",
			s.Mode, s.Draws, s.Failed, s.Slow, s.DuringDelete, s.DeleteSeconds, s.DuringRestart, s.RestartSeconds)
	}
	if len(r.Drains) > 0 {
		fmt.Fprintf(&b, "\n| mode | drained node | PodDisruptionBudgets | draws in stream | failed | slower than 1 s | during drain | during uncordon + rollout |\n|---|---|---|---:|---:|---:|---|---|\n")
	}
	for _, d := range r.Drains {
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %d | %d in %.1f s | %d in %.1f s |\n",
			d.Mode, d.Node, d.PDBs, d.Draws, d.Failed, d.Slow, d.DuringDrain, d.DrainSeconds, d.DuringRollout, d.RolloutSeconds)
	}
	for _, p := range r.Policies {
		fmt.Fprintf(&b, "\n%s, externalTrafficPolicy Local through %s (%d pods there): exit %d, %s\n  %s\n  likely causes: %s\n",
			p.Mode, p.Node, p.LocalPods, p.Exit, p.Verdict, p.Summary, p.Causes)
	}
	// The last lines of a CI log are often all that is kept: say here what
	// failed and when, against what the cluster was doing.
	for _, s := range r.Streams {
		if s.Failed > 0 {
			fmt.Fprintf(&b, "\n%s stream, failed draws: %s\n%s stream, timeline: %s\n", s.Mode, s.Failures, s.Mode, s.Timeline)
		}
	}
	for _, d := range r.Drains {
		if d.Failed > 0 {
			fmt.Fprintf(&b, "\n%s drain stream, failed draws: %s\n%s drain stream, timeline: %s\n", d.Mode, d.Failures, d.Mode, d.Timeline)
		}
	}
	fmt.Fprint(os.Stderr, b.String())
	if path := os.Getenv("E2E_REPORT"); path != "" {
		data, err := json.MarshalIndent(r, "", "  ")
		if err == nil {
			err = os.WriteFile(path, data, 0o644)
		}
		if err != nil {
			t.Errorf("E2E_REPORT: %v", err)
		}
	}
}
