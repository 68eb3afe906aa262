package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/omikuji/omikuji/internal/audit"
	"github.com/omikuji/omikuji/internal/fortune"
	"github.com/omikuji/omikuji/test/e2e/cluster"
)

// The checks that need more than one node: where the pods run, the
// node-local traffic policy, and a node drain.

func (e *env) nodePortName(n *cluster.Node) string { return "NodePort " + n.IP }

// lastNode is the node the policy and drain checks act on. The test runs on
// node 1, so to every other node it is an outside client; kube-proxy sends a
// node's own traffic to every endpoint whatever the traffic policy.
func (e *env) lastNode() *cluster.Node { return e.c.Nodes[len(e.c.Nodes)-1] }

// checkSpread: the topology spread put ready pods on every node.
func (e *env) checkSpread(ctx context.Context, t *testing.T) {
	t.Helper()
	podNodes, err := e.k.podNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	perNode := map[string]int{}
	for _, node := range podNodes {
		perNode[node]++
	}
	var spread []string
	for _, n := range e.c.Nodes {
		spread = append(spread, fmt.Sprintf("%s %d", n.Name, perNode[n.Name]))
		if perNode[n.Name] == 0 {
			t.Errorf("no ready pod on node %s: pods per node %v", n.Name, perNode)
		}
	}
	t.Logf("ready pods per node: %s", strings.Join(spread, ", "))
}

// checkNodesSeen: the pods that answered an audit run on every node.
func (e *env) checkNodesSeen(t *testing.T, target string, r audit.Report, podNodes map[string]string) {
	t.Helper()
	seen := map[string]int{}
	for _, row := range r.Groups {
		for _, p := range row.PodNames {
			seen[podNodes[p]]++
		}
	}
	for _, n := range e.c.Nodes {
		if seen[n.Name] == 0 {
			t.Errorf("%s: no answer from a pod on node %s (pods seen per node %v)", target, n.Name, seen)
		}
	}
}

// checkLocalPolicy: with externalTrafficPolicy: Local, a node's NodePort
// picks only among that node's pods, so the audit through it fails and its
// report names the policy; patched back to Cluster, the audit passes.
func (e *env) checkLocalPolicy(ctx context.Context, t *testing.T, mode string) {
	if len(e.c.Nodes) < 2 {
		t.Skip("one node: a node-local policy has no other node to leave out")
	}
	want := fortune.DefaultReplicas()
	e.serviceReady(ctx, t, want)
	// With every pod on one node, Local would leave nothing out.
	if e.checkSpread(ctx, t); t.Failed() {
		t.FailNow()
	}
	n := e.lastNode()
	url := n.URL(nodePort)
	podNodes, err := e.k.podNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	local := map[string]bool{}
	for p, node := range podNodes {
		if node == n.Name {
			local[p] = true
		}
	}
	patch := func(policy string) {
		if _, err := e.c.Kubectl(ctx, "-n", namespace, "patch", "service", serviceName,
			"-p", fmt.Sprintf(`{"spec":{"externalTrafficPolicy":%q}}`, policy)); err != nil {
			t.Fatal(err)
		}
	}
	restored := false
	t.Cleanup(func() {
		if !restored {
			patch("Cluster")
			e.serviceReady(ctx, t, want)
		}
	})
	patch("Local")
	// Wait until the node's kube-proxy applies it: a run of draws answered
	// only by the node's own pods.
	if err := waitOnlyFrom(ctx, url, local, 100, time.Minute); err != nil {
		t.Fatal(err)
	}
	e.forgetConnections(ctx, t)
	r, code := e.draw(ctx, t, url, policyN, want)
	e.report.draw(mode, e.nodePortName(n)+", externalTrafficPolicy Local", want, r)
	causes := strings.Join(r.LikelyCauses, " ")
	e.report.Policies = append(e.report.Policies, policyReport{
		Mode: mode, Node: n.Name, LocalPods: len(local), Exit: code, Verdict: r.Verdict, Summary: r.Summary, Causes: causes,
	})
	t.Logf("through %s with externalTrafficPolicy Local (%d of %d pods on that node): exit %d, %s\nlikely causes: %s",
		n.Name, len(local), want.Total(), code, r.Summary, causes)
	if code != 1 || r.Verdict != audit.Inconsistent || r.Failed != 0 {
		t.Errorf("with externalTrafficPolicy Local through %s: exit %d, verdict %s, %d draws failed; want exit 1, inconsistent, none failed", n.Name, code, r.Verdict, r.Failed)
	}
	for _, want := range []string{"a node-local traffic policy", "externalTrafficPolicy: Local"} {
		if !strings.Contains(causes, want) {
			t.Errorf("the report's likely causes do not name %q: %q", want, causes)
		}
	}
	for _, row := range r.Groups {
		for _, p := range row.PodNames {
			if !local[p] {
				t.Errorf("pod %s on node %s answered through %s with externalTrafficPolicy Local", p, podNodes[p], n.Name)
			}
		}
	}

	patch("Cluster")
	restored = true
	e.serviceReady(ctx, t, want) // every pod answers through every node again
	r, code = e.draw(ctx, t, url, draws, want)
	e.report.draw(mode, e.nodePortName(n)+", Cluster again", want, r)
	if code != 0 || !r.Pass || r.Failed != 0 {
		t.Errorf("patched back to Cluster, through %s: exit %d, verdict %s, %d draws failed: %s", n.Name, code, r.Verdict, r.Failed, r.Summary)
	}
	e.checkNodesSeen(t, e.nodePortName(n)+", Cluster again", r, podNodes)
}

// waitOnlyFrom draws until run draws in a row were answered by pods in pods.
func waitOnlyFrom(ctx context.Context, url string, pods map[string]bool, run int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	streak := 0
	var last error
	for streak < run {
		name, err := drawOne(ctx, url)
		if ctx.Err() != nil {
			return fmt.Errorf("%s: not %d draws in a row from the node's own pods after %s (last error %v)", url, run, timeout, last)
		}
		if err != nil || !pods[name] {
			last, streak = err, 0
			if err != nil {
				time.Sleep(100 * time.Millisecond) // see waitAnswering
			}
			continue
		}
		streak++
	}
	return nil
}

// checkDrain: kubectl drain of the last node while a stream of draws runs
// through node 1 loses no draw; after uncordon and a rollout the pods are
// back on every node and the audit passes through every node.
func (e *env) checkDrain(ctx context.Context, t *testing.T, mode string) {
	if len(e.c.Nodes) < 2 {
		t.Skip("one node: nothing to drain to")
	}
	want := fortune.DefaultReplicas()
	pdbs := e.kitPDBs(ctx, t)
	e.serviceReady(ctx, t, want)
	n := e.lastNode()
	t.Cleanup(func() { _, _ = e.c.Kubectl(ctx, "uncordon", n.Name) })

	s := startStream(ctx, e.nodeURL, 4)
	defer s.stop()
	time.Sleep(2 * time.Second) // a baseline before anything changes

	n0, start := s.done.Load(), time.Now()
	s.event("drain " + n.Name)
	// Evictions honour the PodDisruptionBudgets: kubectl retries an
	// eviction that would take a second pod of a fortune down at once.
	if out, err := e.c.Kubectl(ctx, "drain", n.Name, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=4m"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	s.event("drained")
	if _, err := e.k.waitSettled(ctx, want, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	s.event("settled")
	drainDraws, drainTime := s.done.Load()-n0, time.Since(start)
	podNodes, err := e.k.podNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for p, node := range podNodes {
		if node == n.Name {
			t.Errorf("pod %s still runs on the drained node %s", p, n.Name)
		}
	}

	n1, start := s.done.Load(), time.Now()
	if _, err := e.c.Kubectl(ctx, "uncordon", n.Name); err != nil {
		t.Fatal(err)
	}
	s.event("uncordon, rollout restart")
	deployments := fortune.IDs()
	if _, err := e.c.Kubectl(ctx, append([]string{"-n", namespace, "rollout", "restart", "deployment"}, deployments...)...); err != nil {
		t.Fatal(err)
	}
	for _, d := range deployments {
		if _, err := e.c.Kubectl(ctx, "-n", namespace, "rollout", "status", "deployment/"+d, "--timeout=3m"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.k.waitSettled(ctx, want, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	s.event("rollouts complete, settled")
	rolloutDraws, rolloutTime := s.done.Load()-n1, time.Since(start)
	time.Sleep(2 * time.Second)
	streamed := s.stop()
	failed, when := failures(streamed)
	e.report.Drains = append(e.report.Drains, drainReport{
		Mode: mode, Node: n.Name, PDBs: pdbs, Draws: len(streamed), Failed: failed, Slow: slow(streamed, time.Second),
		Failures: when, Timeline: s.timeline(),
		DuringDrain: drainDraws, DrainSeconds: drainTime.Seconds(),
		DuringRollout: rolloutDraws, RolloutSeconds: rolloutTime.Seconds(),
	})
	t.Logf("%d draws through %s: %d while %s drained (%.1f s), %d during uncordon and rollout (%.1f s); %d failed; PDBs %s\ntimeline: %s",
		len(streamed), e.c.Nodes[0].Name, drainDraws, n.Name, drainTime.Seconds(), rolloutDraws, rolloutTime.Seconds(), failed, pdbs, s.timeline())
	if failed != 0 {
		t.Errorf("%d of %d draws failed: %s\ntimeline: %s", failed, len(streamed), when, s.timeline())
	}
	if drainDraws < 100 || rolloutDraws < 100 {
		t.Errorf("too few draws to show anything: %d during the drain, %d during the rollout", drainDraws, rolloutDraws)
	}

	e.checkSpread(ctx, t) // the rollout brought pods back to the node
	e.serviceReady(ctx, t, want)
	if podNodes, err = e.k.podNodes(ctx); err != nil {
		t.Fatal(err)
	}
	for _, node := range e.c.Nodes {
		r, code := e.draw(ctx, t, node.URL(nodePort), draws, want)
		name := e.nodePortName(node) + ", after drain and rollout"
		e.report.draw(mode, name, want, r)
		if code != 0 || !r.Pass || r.Failed != 0 {
			t.Errorf("%s: exit %d, verdict %s, %d draws failed: %s", name, code, r.Verdict, r.Failed, r.Summary)
		}
		e.checkNodesSeen(t, name, r, podNodes)
	}
}

// kitPDBs checks that the deploy kit gave every fortune a
// PodDisruptionBudget with maxUnavailable: 1, the budgets the drain must
// honour, and names them.
func (e *env) kitPDBs(ctx context.Context, t *testing.T) string {
	t.Helper()
	var list struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Spec struct {
				MaxUnavailable any `json:"maxUnavailable"`
				Selector       struct {
					MatchLabels map[string]string `json:"matchLabels"`
				} `json:"selector"`
			} `json:"spec"`
		}
	}
	if err := e.k.json(ctx, &list, "-n", namespace, "get", "poddisruptionbudgets"); err != nil {
		t.Fatal(err)
	}
	budgets := map[string]string{}
	for _, p := range list.Items {
		if id := p.Spec.Selector.MatchLabels[fortuneLabel]; id != "" && fmt.Sprint(p.Spec.MaxUnavailable) == "1" {
			budgets[id] = p.Metadata.Name
		}
	}
	var names []string
	for _, id := range fortune.IDs() {
		if budgets[id] == "" {
			t.Fatalf("no PodDisruptionBudget with maxUnavailable: 1 selects %s's pods (the deploy kit has one per fortune)", id)
		}
		names = append(names, budgets[id])
	}
	return "from the deploy kit: " + strings.Join(names, ", ")
}
