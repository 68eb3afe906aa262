package kubeaudit

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/omikuji/omikuji/internal/proxyrules"
)

// A NodePlan is what one node's pod draws and what it should see.
type NodePlan struct {
	Node  string
	Zone  string
	Paths []PathPlan
}

// A PathPlan is one path from a pod on the node to the Service.
type PathPlan struct {
	Path   proxyrules.Path
	URL    string // what the pod draws from
	Expect proxyrules.Expectation
}

// A Skipped node gets no pod, and the report says why.
type Skipped struct {
	Node   string `json:"node"`
	Reason string `json:"reason"`
}

// Plan picks the nodes a pod can run on (the audit pods tolerate no taint)
// and works out each one's expectation for the ClusterIP and, when the
// Service has one, the node's own NodePort.
func Plan(s *Snapshot) ([]NodePlan, []Skipped) {
	var plans []NodePlan
	var skipped []Skipped
	for i := range s.Nodes {
		n := &s.Nodes[i]
		if why := unschedulable(n); why != "" {
			skipped = append(skipped, Skipped{Node: n.Name, Reason: why})
			continue
		}
		p := NodePlan{Node: n.Name, Zone: Zone(n)}
		p.Paths = append(p.Paths, PathPlan{
			Path:   proxyrules.ClusterIP,
			URL:    "http://" + net.JoinHostPort(s.Service.Spec.ClusterIP, strconv.Itoa(int(s.Port.Port))) + "/",
			Expect: proxyrules.Expect(s.Service, s.Endpoints, n.Name, p.Zone, proxyrules.ClusterIP),
		})
		if ip := NodeIP(n); s.Port.NodePort != 0 && ip != "" {
			p.Paths = append(p.Paths, PathPlan{
				Path:   proxyrules.NodePort,
				URL:    "http://" + net.JoinHostPort(ip, strconv.Itoa(int(s.Port.NodePort))) + "/",
				Expect: proxyrules.Expect(s.Service, s.Endpoints, n.Name, p.Zone, proxyrules.NodePort),
			})
		}
		plans = append(plans, p)
	}
	slices.SortFunc(plans, func(a, b NodePlan) int { return strings.Compare(a.Node, b.Node) })
	return plans, skipped
}

// unschedulable says why a pod without tolerations cannot run on n, or "".
func unschedulable(n *corev1.Node) string {
	if n.Spec.Unschedulable {
		return "cordoned (spec.unschedulable)"
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status != corev1.ConditionTrue {
			return "not Ready"
		}
	}
	var taints []string
	for _, t := range n.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
			taints = append(taints, fmt.Sprintf("%s:%s", t.Key, t.Effect))
		}
	}
	if len(taints) > 0 {
		return "tainted " + strings.Join(taints, ", ")
	}
	return ""
}

// Moved compares two expectations of one node and path: the same endpoints,
// or a sentence saying what changed.
func Moved(before, after proxyrules.Expectation) string {
	b, a := before.Pods(), after.Pods()
	slices.Sort(b)
	slices.Sort(a)
	if slices.Equal(a, b) && before.Sticky == after.Sticky {
		return ""
	}
	var gone, came []string
	for _, p := range b {
		if !slices.Contains(a, p) {
			gone = append(gone, p)
		}
	}
	for _, p := range a {
		if !slices.Contains(b, p) {
			came = append(came, p)
		}
	}
	var parts []string
	if len(gone) > 0 {
		parts = append(parts, "left: "+strings.Join(gone, ", "))
	}
	if len(came) > 0 {
		parts = append(parts, "joined: "+strings.Join(came, ", "))
	}
	if len(parts) == 0 {
		parts = append(parts, "session affinity changed")
	}
	return "the endpoints changed while drawing (" + strings.Join(parts, "; ") + ")"
}
