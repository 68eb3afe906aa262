package kubeaudit

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/omikuji/omikuji/internal/audit"
)

// A Report is the whole audit: what --json prints. Its fields are the
// stable schema documented in docs/audit.md.
type Report struct {
	Namespace string       `json:"namespace"`
	Service   string       `json:"service"`
	Port      string       `json:"port"`
	Image     string       `json:"image"`
	Draws     int          `json:"draws_per_path"`
	Alpha     float64      `json:"alpha"`
	Started   time.Time    `json:"started"`
	Seconds   float64      `json:"seconds"` // command to verdict
	Nodes     []NodeReport `json:"nodes"`
	Skipped   []Skipped    `json:"skipped_nodes"`
	Verdict   string       `json:"verdict"` // consistent, inconsistent or inconclusive
	Summary   string       `json:"summary"`
}

// A NodeReport is one node's vantage point.
type NodeReport struct {
	Node    string       `json:"node"`
	Zone    string       `json:"zone"`
	Pod     string       `json:"pod"` // the audit pod that drew, deleted since
	Paths   []PathReport `json:"paths"`
	Moved   string       `json:"endpoints_moved,omitempty"` // why the result is inconclusive
	Verdict string       `json:"verdict"`
}

// finish sets each node's verdict and the overall one.
func (r *Report) finish() {
	var bad, moved []string
	for i := range r.Nodes {
		n := &r.Nodes[i]
		n.Verdict = Consistent
		for _, p := range n.Paths {
			if p.Verdict == Inconsistent {
				n.Verdict = Inconsistent
			}
		}
		if n.Moved != "" {
			n.Verdict = Inconclusive
			moved = append(moved, n.Node)
		} else if n.Verdict == Inconsistent {
			bad = append(bad, n.Node)
		}
	}
	switch {
	case len(bad) > 0:
		r.Verdict = Inconsistent
		r.Summary = fmt.Sprintf("INCONSISTENT on %s: the draws do not match what the cluster declares", strings.Join(bad, ", "))
	case len(moved) > 0:
		r.Verdict = Inconclusive
		r.Summary = fmt.Sprintf("INCONCLUSIVE: the endpoints changed while %s drew; run the audit again", strings.Join(moved, ", "))
	default:
		r.Verdict = Consistent
		r.Summary = fmt.Sprintf("consistent on every node (%d): each node's draws match what its kube-proxy should do", len(r.Nodes))
	}
	if len(r.Skipped) > 0 {
		var s []string
		for _, k := range r.Skipped {
			s = append(s, k.Node+" ("+k.Reason+")")
		}
		r.Summary += "; not audited: " + strings.Join(s, ", ")
	}
}

// ExitCode is 0 when consistent (or inconclusive: nothing shown wrong), 1
// when a node is inconsistent.
func (r Report) ExitCode() int {
	if r.Verdict == Inconsistent {
		return 1
	}
	return 0
}

// WriteText prints the report for a terminal.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Service %s/%s port %s, %d draws per path from each node, alpha %g\n", r.Namespace, r.Service, r.Port, r.Draws, r.Alpha)
	for _, n := range r.Nodes {
		zone := n.Zone
		if zone == "" {
			zone = "no zone"
		}
		fmt.Fprintf(&b, "\nnode %s (%s): %s\n", n.Node, zone, strings.ToUpper(n.Verdict))
		if n.Moved != "" {
			fmt.Fprintf(&b, "  inconclusive: %s\n", n.Moved)
		}
		for _, p := range n.Paths {
			fmt.Fprintf(&b, "  %s %s: %s\n", p.Path, p.URL, p.Verdict)
			fmt.Fprintf(&b, "    expects %s\n", p.Rule)
			fmt.Fprintf(&b, "    %-44s %-20s %9s %9s %7s\n", "pod", "workload", "expected", "observed", "draws")
			for _, e := range p.Expected {
				fmt.Fprintf(&b, "    %-44s %-20s %8.1f%% %8.1f%% %7d\n", clip(e.Name, 44), clip(e.Group, 20), 100*e.ExpectedShare, 100*e.ObservedShare, e.Count)
			}
			for _, u := range p.Unexpected {
				fmt.Fprintf(&b, "    %-44s %-20s %9s %8.1f%% %7d  ← %s\n", clip(u.Name, 44), clip(u.Group, 20), "never", 100*u.ObservedShare, u.Count, u.Status)
			}
			fmt.Fprintf(&b, "    %d draws, %d failed; fit %s, uniform %s, independence %s\n", p.Draws, p.Failed, pText(p.Fit.Applicable, p.Fit.PValue), pText(p.Uniformity.Applicable, p.Uniformity.PValue), pIndependence(p))
			if p.AnytimeDecides {
				fmt.Fprintf(&b, "    deciding, the anytime-valid tests: %s\n", anytimeText(p.Anytime))
			}
			if p.Stopped != "" {
				fmt.Fprintf(&b, "    stopped early: %s\n", p.Stopped)
			}
			for _, d := range p.Discrepancies {
				fmt.Fprintf(&b, "    ! %s\n", d)
			}
		}
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(&b, "\nnode %s: not audited, %s\n", s.Node, s.Reason)
	}
	fmt.Fprintf(&b, "\nVerdict: %s (%.1f s)\n", r.Summary, r.Seconds)
	_, err := io.WriteString(w, b.String())
	return err
}

// anytimeText is a path's anytime-valid p-values.
func anytimeText(a *audit.AnytimeResult) string {
	if a == nil {
		return "none"
	}
	return fmt.Sprintf("fit p ≤ %s, uniform p ≤ %s, independence p ≤ %s", formatP(a.Fit.PValue), formatP(a.Uniformity.PValue), formatP(a.Independence.PValue))
}

func pText(applicable bool, p float64) string {
	if !applicable {
		return "n/a"
	}
	return "p " + formatP(p)
}

func pIndependence(p PathReport) string {
	if p.Sticky {
		if p.Independence.Passed {
			return "n/a (sticky, as expected)"
		}
		return "NOT STICKY"
	}
	return pText(p.Independence.Applicable, p.Independence.PValue)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
