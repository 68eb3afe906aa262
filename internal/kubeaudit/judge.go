package kubeaudit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/omikuji/omikuji/internal/audit"
	"github.com/omikuji/omikuji/internal/proxyrules"
)

// Verdicts of a path, a node and the whole audit.
const (
	Consistent   = audit.Consistent
	Inconsistent = audit.Inconsistent
	Inconclusive = audit.Inconclusive
)

// A PathReport is one node's draws through one path, judged.
type PathReport struct {
	Path          string          `json:"path"` // ClusterIP or NodePort
	URL           string          `json:"url"`
	Rule          string          `json:"rule"`               // why these endpoints, in plain words
	Policy        string          `json:"policy"`             // Cluster or Local
	Topology      string          `json:"topology,omitempty"` // PreferSameZone, PreferSameNode or ""
	Sticky        bool            `json:"sticky"`             // sessionAffinity ClientIP
	Draws         int             `json:"draws"`              // finished draws
	Succeeded     int             `json:"succeeded"`          //
	Failed        int             `json:"failed"`             //
	Failures      map[string]int  `json:"failures"`           // kind → count
	Expected      []BackendReport `json:"expected"`           // the endpoints this node should reach
	Unexpected    []BackendReport `json:"unexpected"`         // backends that answered but should not have
	Fit           audit.Test      `json:"goodness_of_fit"`
	Uniformity    audit.Test      `json:"uniformity"`
	Independence  audit.Test      `json:"independence"`
	Verdict       string          `json:"verdict"`
	Discrepancies []string        `json:"discrepancies"`
	// The pod's anytime-valid tests, which decide when it named the
	// expected pods (--until decided), and why it stopped early, if it did.
	Anytime        *audit.AnytimeResult `json:"anytime,omitempty"`
	AnytimeDecides bool                 `json:"anytime_decides,omitempty"`
	Stopped        string               `json:"stopped,omitempty"`

	podFailed bool // the pod's own verdict: inconsistent
}

// A BackendReport is one backend: an expected endpoint, or one that answered
// although it should not have.
type BackendReport struct {
	Name          string  `json:"name"`  // the pod name the backend answered with
	Group         string  `json:"group"` // its workload (Deployment), or "" when no pod has that name
	Node          string  `json:"node,omitempty"`
	Zone          string  `json:"zone,omitempty"`
	ExpectedShare float64 `json:"expected_share"` // 0..1; 0 for unexpected ones
	Count         int     `json:"count"`
	ObservedShare float64 `json:"observed_share"` // 0..1 of the successful draws
	Status        string  `json:"status"`         // what the cluster says of it now, in words
}

// podDraw is what omikuji draw --json prints in the pod (the fields used).
type podDraw struct {
	Drawn     int            `json:"draws"`
	Succeeded int            `json:"succeeded"`
	Failed    int            `json:"failed"`
	Failures  map[string]int `json:"failures"`
	Stopped   string         `json:"stopped"`
	Backends  []struct {
		Name  string `json:"name"`
		Count int    `json:"count"`
	} `json:"backends"`
	Fit            audit.Test          `json:"goodness_of_fit"`
	Uniformity     audit.Test          `json:"uniformity"`
	Independence   audit.Test          `json:"independence"`
	Anytime        audit.AnytimeResult `json:"anytime"`
	AnytimeDecides bool                `json:"anytime_decides"`
	Verdict        string              `json:"verdict"`
}

// parseDraw reads the JSON report out of a container's log (stderr lines
// may come before or after it).
func parseDraw(log []byte) (podDraw, error) {
	var d podDraw
	i := bytes.Index(log, []byte("{\n"))
	if i < 0 {
		return d, fmt.Errorf("no report in the pod's output: %s", tail(log))
	}
	if err := json.NewDecoder(bytes.NewReader(log[i:])).Decode(&d); err != nil {
		return d, fmt.Errorf("reading the pod's report: %v: %s", err, tail(log))
	}
	return d, nil
}

func tail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = "…" + s[len(s)-300:]
	}
	return strings.ToValidUTF8(s, "?")
}

// groupOf is a pod's workload: its controller's name less the pod template
// hash (a ReplicaSet's name is its Deployment's plus the hash), else the
// controller's name, else the pod's own.
func groupOf(pod *corev1.Pod) string {
	for _, o := range pod.OwnerReferences {
		if o.Controller != nil && *o.Controller {
			if h := pod.Labels["pod-template-hash"]; h != "" {
				if name, ok := strings.CutSuffix(o.Name, "-"+h); ok {
					return name
				}
			}
			return o.Name
		}
	}
	return pod.Name
}

// Judge compares one path's draws with the node's expectation.
//
// The expectation is that of kube-proxy: each expected endpoint equally
// likely, any other backend never. The pod drew with exactly that, --expect
// uniform:NAME,... (see drawArgs), so its own report judges it: fit,
// uniformity and independence as omikuji draw prints them, the
// anytime-valid ones deciding. The judge keeps what only the cluster knows:
// what each unexpected backend is (a stale pod, one in another zone or on
// another node, no pod at all) and since when a never-reached pod is ready.
// With session affinity the expectation is that one backend, an expected
// one, answers every draw.
func Judge(node, zone string, plan PathPlan, d podDraw, s *Snapshot, alpha float64) PathReport {
	e := plan.Expect
	r := PathReport{
		Path: string(plan.Path), URL: plan.URL, Rule: e.Rule, Policy: e.Policy, Topology: e.Topology, Sticky: e.Sticky,
		Draws: d.Drawn, Succeeded: d.Succeeded, Failed: d.Failed, Failures: d.Failures,
		Expected: []BackendReport{}, Unexpected: []BackendReport{}, Discrepancies: []string{},
	}
	if r.Failures == nil {
		r.Failures = map[string]int{}
	}
	counts := map[string]int{}
	for _, b := range d.Backends {
		counts[b.Name] += b.Count
	}
	share := func(c int) float64 {
		if d.Succeeded == 0 {
			return 0
		}
		return float64(c) / float64(d.Succeeded)
	}
	expected := map[string]bool{}
	for _, ep := range e.Endpoints {
		expected[ep.Pod] = true
		b := BackendReport{Name: ep.Pod, Group: ep.Pod, Node: ep.Node, Zone: ep.Zone, Count: counts[ep.Pod], Status: "ready endpoint"}
		if e.Terminating {
			b.Status = "serving, terminating endpoint"
		}
		if pod := s.Pods[ep.Pod]; pod != nil {
			b.Group = groupOf(pod)
		}
		b.ExpectedShare = 1 / float64(len(e.Endpoints))
		b.ObservedShare = share(b.Count)
		r.Expected = append(r.Expected, b)
	}
	for _, b := range d.Backends {
		if expected[b.Name] {
			continue
		}
		u := BackendReport{Name: b.Name, Count: b.Count, ObservedShare: share(b.Count)}
		u.Status = unexpectedStatus(b.Name, node, zone, e, s, &u)
		r.Unexpected = append(r.Unexpected, u)
	}
	slices.SortFunc(r.Expected, byGroupName)
	slices.SortFunc(r.Unexpected, byGroupName)

	switch {
	case e.Sticky:
		r.judgeSticky(node)
	case len(e.Endpoints) == 0:
		note := "no endpoint is expected through this path: any answer is one too many"
		r.Fit = audit.Test{Name: "chi-square goodness of fit", Applicable: d.Succeeded > 0, Passed: d.Succeeded == 0, Note: note}
		r.Uniformity = audit.Test{Name: "chi-square uniformity of backends within each group", Passed: true, NothingToTest: true, Note: note}
		r.Independence = d.Independence
	default:
		r.Fit, r.Uniformity, r.Independence = d.Fit, d.Uniformity, d.Independence
		r.Anytime, r.AnytimeDecides, r.Stopped = &d.Anytime, d.AnytimeDecides, d.Stopped
		r.podFailed = d.Verdict == audit.Inconsistent
	}
	r.describe(node, zone, e, s, alpha)
	return r
}

func byGroupName(a, b BackendReport) int {
	return strings.Compare(a.Group+"\x00"+a.Name, b.Group+"\x00"+b.Name)
}

// judgeSticky: one backend, an expected one, answers every successful draw.
func (r *PathReport) judgeSticky(node string) {
	note := "sessionAffinity ClientIP: one client sticks to one backend, so shares are not tested"
	r.Fit = audit.Test{Name: "chi-square goodness of fit", Passed: true, Note: note}
	r.Uniformity = audit.Test{Name: "chi-square uniformity of backends within each group", Passed: true, Note: note}
	r.Independence = audit.Test{Name: "stickiness", Passed: true}
	answered := 0
	for _, b := range r.Expected {
		if b.Count > 0 {
			answered++
		}
	}
	answered += len(r.Unexpected)
	switch {
	case r.Succeeded == 0:
		r.Independence.Note = "no successful draw"
	case answered == 1 && len(r.Unexpected) == 0:
		r.Independence.Applicable, r.Independence.PValue = true, 1
		r.Independence.Note = fmt.Sprintf("every one of %d draws from %s's pod reached the same backend, as session affinity promises", r.Succeeded, node)
	default:
		r.Independence.Applicable, r.Independence.Passed = true, false
		r.Independence.Note = fmt.Sprintf("%d backends answered one client; session affinity should keep it on one", answered)
	}
}

// unexpectedStatus says what the cluster knows of a backend that answered
// but is no endpoint this node should reach, and fills in its pod's facts.
func unexpectedStatus(name, node, zone string, e proxyrules.Expectation, s *Snapshot, b *BackendReport) string {
	pod := s.Pods[name]
	if pod == nil {
		return "matches no pod in the namespace"
	}
	b.Group, b.Node = groupOf(pod), pod.Spec.NodeName
	for _, ep := range s.Endpoints {
		if ep.Pod != name {
			continue
		}
		b.Zone = ep.Zone
		switch {
		case !ep.Ready:
			return "an endpoint that is not ready"
		case e.Policy == "Local":
			return "a ready endpoint on another node"
		case e.Topology == proxyrules.TopologySameZone:
			return "a ready endpoint hinted for another zone"
		case e.Topology == proxyrules.TopologySameNode:
			return "a ready endpoint hinted for another node"
		}
		return "a ready endpoint"
	}
	if pod.DeletionTimestamp != nil {
		return "a pod being deleted, no endpoint"
	}
	return "a running pod that is no endpoint of the Service"
}

// describe sets the verdict and says every discrepancy in plain words.
func (r *PathReport) describe(node, zone string, e proxyrules.Expectation, s *Snapshot, alpha float64) {
	via := r.Path
	for _, u := range r.Unexpected {
		switch {
		case strings.HasPrefix(u.Status, "matches no pod"):
			r.add("%s's pod was answered %d times through the %s by backend %q, which matches no pod in namespace %s", node, u.Count, via, u.Name, s.Service.Namespace)
		case strings.Contains(u.Status, "another zone"):
			r.add("zone %s's client reached pod %s in zone %s (%d draws through the %s) although every endpoint has a zone hint and this zone has its own", zone, u.Name, u.Zone, u.Count, via)
		case strings.Contains(u.Status, "another node"):
			r.add("%s's client reached pod %s on %s (%d draws through the %s) although %s", node, u.Name, u.Node, u.Count, via, localWhy(e))
		case strings.HasPrefix(u.Status, "a ready endpoint"):
			r.add("%s reached pod %s (%d draws through the %s), which kube-proxy should not choose here: %s", node, u.Name, u.Count, via, e.Rule)
		default:
			r.add("%s still sends draws to pod %s (%d through the %s), which is %s: its proxy rules are stale", node, u.Name, u.Count, via, u.Status+since(s.Pods[u.Name], false))
		}
	}
	var never []string
	for _, b := range r.Expected {
		if b.Count == 0 {
			never = append(never, b.Name+since(s.Pods[b.Name], true))
		}
	}
	if len(never) > 0 && r.Succeeded > 0 && !e.Sticky {
		p, _ := audit.MissingBackends(len(r.Expected)-len(never), len(r.Expected), r.Succeeded, alpha)
		switch {
		case p < alpha:
			r.add("%s never reached pod%s %s in %d draws through the %s (chance would miss them with p %s)", node, plural(len(never)), strings.Join(never, ", "), r.Succeeded, via, formatP(p))
		case r.Stopped != "":
			r.add("%s had not reached pod%s %s when its draws through the %s stopped after %d, too few to tell", node, plural(len(never)), strings.Join(never, ", "), via, r.Succeeded)
		}
	}
	if len(r.Expected) == 0 && r.Succeeded > 0 && len(r.Unexpected) == 0 {
		r.add("%s expects no endpoint through the %s, yet %d draws were answered", node, via, r.Succeeded)
	}
	if r.Draws > 0 && r.Succeeded == 0 && len(r.Expected) > 0 {
		r.add("no draw through the %s succeeded (%s)", via, failureList(r.Failures))
	} else if r.Failed > 0 {
		r.add("%d of %d draws through the %s failed (%s)", r.Failed, r.Draws, via, failureList(r.Failures))
	}
	// Unexpected and never-reached backends, said above, are what fails the
	// fit and the uniformity; independence is another matter.
	explained := len(r.Unexpected) > 0 || len(never) > 0
	if r.AnytimeDecides {
		for i, t := range []audit.AnytimeTest{r.Anytime.Fit, r.Anytime.Uniformity, r.Anytime.Independence} {
			if t.Rejected && (i == 2 || !explained) {
				r.add("%s failed through the %s after %d draws (p ≤ %s)", t.Name, via, r.Anytime.Draws, formatP(t.PValue))
			}
		}
	} else if !explained {
		for _, t := range []audit.Test{r.Fit, r.Uniformity, r.Independence} {
			if t.Applicable && !t.Passed {
				r.add("%s failed through the %s (p %s): %s", t.Name, via, formatP(t.PValue), t.Note)
			}
		}
	}
	r.Verdict = Consistent
	tests := !r.Fit.Passed || !r.Uniformity.Passed || !r.Independence.Passed
	if r.AnytimeDecides {
		tests = r.podFailed
	}
	failed := tests || len(r.Unexpected) > 0 ||
		(r.Draws > 0 && r.Succeeded == 0 && len(r.Expected) > 0) || (len(r.Expected) == 0 && r.Succeeded > 0)
	if failed {
		r.Verdict = Inconsistent
	}
}

func (r *PathReport) add(format string, a ...any) {
	r.Discrepancies = append(r.Discrepancies, fmt.Sprintf(format, a...))
}

func localWhy(e proxyrules.Expectation) string {
	if e.Topology == proxyrules.TopologySameNode {
		return "every endpoint has a node hint and this node has its own"
	}
	return "internalTrafficPolicy Local keeps this node's traffic on its own pods"
}

// since says when a pod became ready (ready) or stopped being one.
func since(pod *corev1.Pod, ready bool) string {
	if pod == nil {
		return ""
	}
	if pod.DeletionTimestamp != nil && !ready {
		return " (deleted " + pod.DeletionTimestamp.UTC().Format(time.TimeOnly) + ")"
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && ready {
			return " (ready since " + c.LastTransitionTime.UTC().Format(time.TimeOnly) + ")"
		}
	}
	return ""
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func failureList(f map[string]int) string {
	var parts []string
	for k, v := range f {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// formatP prints a p-value as the draw report does.
func formatP(p float64) string {
	switch {
	case p == 0:
		return "< 1e-300"
	case p < 0.001:
		return fmt.Sprintf("%.2g", p)
	}
	return fmt.Sprintf("%.3g", p)
}
