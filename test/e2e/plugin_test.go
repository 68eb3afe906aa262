package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/omikuji/omikuji/internal/audit"
	"github.com/omikuji/omikuji/internal/fortune"
	"github.com/omikuji/omikuji/internal/kubeaudit"
	"github.com/omikuji/omikuji/test/e2e/cluster"
)

// The kubectl plugin on the real cluster: `kubectl omikuji audit`, run
// through kubectl's plugin mechanism with credentials bound to the roles in
// deploy/rbac alone, must give each node the verdict kube-proxy's rules
// call for.

const pluginDraws = "2000"

// plugin is how the checks run the plugin.
type plugin struct {
	dir        string // holds kubectl-omikuji, put first on PATH
	kubeconfig string // a service account bound to deploy/rbac's roles only
}

// setupPlugin builds the plugin, applies deploy/rbac and writes a
// kubeconfig for a service account bound to those roles and nothing else.
func (e *env) setupPlugin(ctx context.Context, repo, work string) error {
	dir := filepath.Join(work, "plugin")
	if err := goCmd(ctx, repo, "build", "-o", filepath.Join(dir, "kubectl-omikuji"), "./cmd/kubectl-omikuji"); err != nil {
		return err
	}
	steps := [][]string{
		{"apply", "-f", filepath.Join(repo, "deploy", "rbac", "kubectl-omikuji.yaml")},
		{"-n", "default", "create", "serviceaccount", "auditor"},
		{"-n", namespace, "create", "rolebinding", "auditor", "--clusterrole=omikuji-audit", "--serviceaccount=default:auditor"},
		{"create", "clusterrolebinding", "auditor", "--clusterrole=omikuji-audit-cluster", "--serviceaccount=default:auditor"},
		{"-n", "default", "create", "serviceaccount", "nobody"}, // bound to nothing: the RBAC refusal
	}
	for _, s := range steps {
		if _, err := e.c.Kubectl(ctx, s...); err != nil {
			return err
		}
	}
	var raw struct {
		Clusters []struct {
			Cluster struct {
				Server string `json:"server"`
				CA     string `json:"certificate-authority-data"`
			} `json:"cluster"`
		} `json:"clusters"`
	}
	out, err := e.c.Kubectl(ctx, "config", "view", "--raw", "--minify", "--flatten", "-o", "json")
	if err != nil {
		return err
	}
	if err := json.Unmarshal(out, &raw); err != nil || len(raw.Clusters) != 1 {
		return fmt.Errorf("admin kubeconfig: %v %s", err, out)
	}
	e.plugin = plugin{dir: dir}
	for _, sa := range []string{"auditor", "nobody"} {
		token, err := e.c.Kubectl(ctx, "-n", "default", "create", "token", sa, "--duration=2h")
		if err != nil {
			return err
		}
		kc := filepath.Join(work, sa+".kubeconfig")
		cfg := fmt.Sprintf("apiVersion: v1\nkind: Config\nclusters: [{name: e2e, cluster: {server: %q, certificate-authority-data: %q}}]\n"+
			"users: [{name: %s, user: {token: %q}}]\ncontexts: [{name: %s, context: {cluster: e2e, user: %s, namespace: %s}}]\ncurrent-context: %s\n",
			raw.Clusters[0].Cluster.Server, raw.Clusters[0].Cluster.CA, sa, strings.TrimSpace(string(token)), sa, sa, namespace, sa)
		if err := os.WriteFile(kc, []byte(cfg), 0o600); err != nil {
			return err
		}
		if sa == "auditor" {
			e.plugin.kubeconfig = kc
		}
	}
	return nil
}

// kubectlOmikuji runs `kubectl omikuji args...` as the auditor (or with the
// kubeconfig given in env) and returns its exit code and output.
func (e *env) kubectlOmikuji(ctx context.Context, env []string, args ...string) (int, []byte, string, error) {
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"omikuji"}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+e.plugin.dir+":"+os.Getenv("PATH"), "KUBECONFIG="+e.plugin.kubeconfig)
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), stdout.Bytes(), stderr.String(), nil
	}
	return 0, stdout.Bytes(), stderr.String(), err
}

// runAudit audits the omikuji Service as the auditor, checks that no audit
// pod is left, and returns the report.
func (e *env) runAudit(ctx context.Context, t *testing.T, mode, what string, args ...string) (kubeaudit.Report, int) {
	t.Helper()
	start := time.Now()
	code, out, stderr, err := e.kubectlOmikuji(ctx, nil, append([]string{"audit", "svc/" + serviceName, "-n", namespace, "--json", "--draws", pluginDraws}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	var r kubeaudit.Report
	if jerr := json.Unmarshal(out, &r); jerr != nil {
		t.Fatalf("kubectl omikuji audit (%s): exit %d, %v\nstderr: %s", what, code, jerr, stderr)
	}
	e.noAuditPods(ctx, t)
	e.report.Audits = append(e.report.Audits, auditReport{Mode: mode, What: what, Exit: code, Verdict: r.Verdict, Seconds: time.Since(start).Seconds(), Nodes: nodeLines(r)})
	t.Logf("kubectl omikuji audit, %s: exit %d in %.1f s: %s\n%s", what, code, time.Since(start).Seconds(), r.Summary, strings.Join(nodeLines(r), "\n"))
	return r, code
}

// nodeLines is one line per node and path: expected pods, observed counts,
// p-values, verdict, discrepancies.
func nodeLines(r kubeaudit.Report) []string {
	var lines []string
	for _, n := range r.Nodes {
		for _, p := range n.Paths {
			var obs []string
			for _, b := range p.Expected {
				obs = append(obs, fmt.Sprint(b.Count))
			}
			for _, u := range p.Unexpected {
				obs = append(obs, fmt.Sprintf("%s:%d!", u.Name, u.Count))
			}
			lines = append(lines, fmt.Sprintf("  %s (%s) %s: %d expected, drawn %s; fit %s, uniform %s, independence %s; %s %s",
				n.Node, n.Zone, p.Path, len(p.Expected), strings.Join(obs, "/"), pValue(p.Fit), pValue(p.Uniformity), pValue(p.Independence), p.Verdict, strings.Join(p.Discrepancies, "; ")))
		}
	}
	return lines
}

// pValue is a test's p-value, or n/a when the draws were too few for it.
func pValue(t audit.Test) string {
	if !t.Applicable {
		return "n/a"
	}
	return fmt.Sprintf("p %.3g", t.PValue)
}

// noAuditPods: nothing the plugin created is left in the cluster.
func (e *env) noAuditPods(ctx context.Context, t *testing.T) {
	t.Helper()
	out, err := e.c.Kubectl(ctx, "get", "pods", "-A", "-l", kubeaudit.LabelName+"="+kubeaudit.PodAppName, "-o", "name")
	if err != nil {
		t.Fatal(err)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Errorf("audit pods left behind: %s", s)
	}
}

// patchService patches the Service and waits until every kube-proxy (but
// skip) has synced after it.
func (e *env) patchService(ctx context.Context, t *testing.T, patch string, skip ...*cluster.Node) {
	t.Helper()
	at := time.Now()
	if _, err := e.c.Kubectl(ctx, "-n", namespace, "patch", "service", serviceName, "-p", patch); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // kube-proxy's minimum sync interval
	if err := e.c.WaitProxySynced(ctx, at, skip...); err != nil {
		t.Fatal(err)
	}
}

func (e *env) checkPlugin(ctx context.Context, t *testing.T, mode string) {
	want := fortune.DefaultReplicas()
	e.serviceReady(ctx, t, want)

	t.Run("service", func(t *testing.T) {
		r, code := e.runAudit(ctx, t, mode, "the omikuji Service")
		if code != 0 || r.Verdict != kubeaudit.Consistent || len(r.Nodes) != len(e.c.Nodes) {
			t.Fatalf("exit %d, %s on %d nodes; want 0, consistent on every node", code, r.Summary, len(r.Nodes))
		}
		for _, n := range r.Nodes {
			if len(n.Paths) != 2 {
				t.Errorf("node %s: %d paths, want the ClusterIP and its NodePort", n.Node, len(n.Paths))
			}
			for _, p := range n.Paths {
				if len(p.Expected) != want.Total() || p.Failed != 0 {
					t.Errorf("node %s %s: %d expected pods, %d failed draws; want %d, 0", n.Node, p.Path, len(p.Expected), p.Failed, want.Total())
				}
			}
		}
	})
	if len(e.c.Nodes) < 2 {
		return
	}

	t.Run("internal-traffic-policy-local", func(t *testing.T) {
		e.patchService(ctx, t, `{"spec":{"internalTrafficPolicy":"Local"}}`)
		defer e.patchService(ctx, t, `{"spec":{"internalTrafficPolicy":"Cluster"}}`)
		r, code := e.runAudit(ctx, t, mode, "internalTrafficPolicy Local")
		if code != 0 || r.Verdict != kubeaudit.Consistent {
			t.Fatalf("exit %d: %s", code, r.Summary)
		}
		pods, err := e.k.pods(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range r.Nodes {
			p := n.Paths[0]
			if p.Path != "ClusterIP" || p.Policy != "Local" {
				t.Fatalf("node %s: first path %s policy %s", n.Node, p.Path, p.Policy)
			}
			counts := map[string]int{}
			for _, b := range p.Expected {
				counts[b.Name] = b.Count
				if b.Node != n.Node {
					t.Errorf("node %s expects pod %s on node %s under internalTrafficPolicy Local", n.Node, b.Name, b.Node)
				}
			}
			// The same draws judged against all ten pods: each fortune's
			// pods, the other node's at 0, and the catalogue's odds.
			byFortune := map[string][]int{}
			for _, pod := range pods {
				f := pod.Metadata.Labels[fortuneLabel]
				byFortune[f] = append(byFortune[f], counts[pod.Metadata.Name])
			}
			var perFortune [][]int
			var observed, weights []int
			for _, f := range []string{"great-fortune", "middle-fortune", "small-fortune", "misfortune"} {
				sum := 0
				for _, c := range byFortune[f] {
					sum += c
				}
				perFortune = append(perFortune, byFortune[f])
				observed, weights = append(observed, sum), append(weights, want[f])
			}
			fit, uniform := audit.GoodnessOfFit(observed, weights, 1e-6), audit.Uniformity(perFortune, 1e-6)
			t.Logf("node %s's ClusterIP draws against all ten pods: fit p %.3g, uniform p %.3g", n.Node, fit.PValue, uniform.PValue)
			if fit.Passed && uniform.Passed {
				t.Errorf("node %s's draws (%v) pass against all ten pods; only its own %d should", n.Node, counts, len(p.Expected))
			}
		}
	})

	t.Run("prefer-same-zone", func(t *testing.T) {
		e.patchService(ctx, t, `{"spec":{"trafficDistribution":"PreferSameZone"}}`)
		defer func() {
			e.patchService(ctx, t, `{"spec":{"trafficDistribution":null}}`)
			e.waitHints(ctx, t, false)
		}()
		e.waitHints(ctx, t, true)
		time.Sleep(3 * time.Second) // kube-proxy syncs at most once a second after the hints change
		r, code := e.runAudit(ctx, t, mode, "trafficDistribution PreferSameZone")
		if code != 0 || r.Verdict != kubeaudit.Consistent {
			t.Fatalf("exit %d: %s", code, r.Summary)
		}
		for _, n := range r.Nodes {
			for _, p := range n.Paths {
				if p.Topology != "PreferSameZone" {
					t.Errorf("node %s %s: topology %q, want PreferSameZone", n.Node, p.Path, p.Topology)
				}
				for _, b := range p.Expected {
					if b.Zone != n.Zone {
						t.Errorf("node %s (zone %s) expects pod %s in zone %s", n.Node, n.Zone, b.Name, b.Zone)
					}
				}
			}
		}
	})

	t.Run("session-affinity", func(t *testing.T) {
		e.patchService(ctx, t, `{"spec":{"sessionAffinity":"ClientIP"}}`)
		defer e.patchService(ctx, t, `{"spec":{"sessionAffinity":"None"}}`)
		r, code := e.runAudit(ctx, t, mode, "sessionAffinity ClientIP")
		if code != 0 || r.Verdict != kubeaudit.Consistent {
			t.Fatalf("exit %d: %s", code, r.Summary)
		}
		for _, n := range r.Nodes {
			for _, p := range n.Paths {
				if !p.Sticky || !p.Independence.Passed {
					t.Errorf("node %s %s: sticky %v, %s", n.Node, p.Path, p.Sticky, p.Independence.Note)
				}
			}
		}
	})

	t.Run("stale-node", func(t *testing.T) { e.checkStaleNode(ctx, t, mode) })
}

// waitHints waits until every endpoint has a zone hint (on) or none has.
func (e *env) waitHints(ctx context.Context, t *testing.T, on bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var list struct {
			Items []struct {
				Endpoints []struct {
					Hints *struct {
						ForZones []struct{ Name string } `json:"forZones"`
					} `json:"hints"`
				} `json:"endpoints"`
			}
		}
		if err := e.k.json(ctx, &list, "-n", namespace, "get", "endpointslices", "-l", "kubernetes.io/service-name="+serviceName); err != nil {
			t.Fatal(err)
		}
		hinted, all := 0, 0
		for _, s := range list.Items {
			for _, ep := range s.Endpoints {
				all++
				if ep.Hints != nil && len(ep.Hints.ForZones) > 0 {
					hinted++
				}
			}
		}
		if on && hinted == all && all > 0 || !on && hinted == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d endpoints have zone hints after a minute (want all: %v)", hinted, all, on)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// checkStaleNode: with the last node's kube-proxy stopped, take a pod out of
// the Service while it keeps answering and scale a fortune up. The audit
// fails that node, naming the pod it still reaches and the new pods it
// never reaches, and passes node 1. With kube-proxy back, both pass.
func (e *env) checkStaleNode(ctx context.Context, t *testing.T, mode string) {
	want := fortune.DefaultReplicas()
	n := e.lastNode()
	pods, err := e.k.pods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var retired string
	for _, p := range pods {
		if p.Metadata.Labels[fortuneLabel] == "small-fortune" {
			retired = p.Metadata.Name
			break
		}
	}
	relabel := func(component string) {
		if _, err := e.c.Kubectl(ctx, "-n", namespace, "label", "pod", retired, "--overwrite", "app.kubernetes.io/component="+component); err != nil {
			t.Fatal(err)
		}
	}
	proxyStopped := false
	t.Cleanup(func() {
		if proxyStopped {
			if err := e.c.StartProxy(ctx, n); err != nil {
				t.Error(err)
			}
		}
		relabel("fortune")
		e.scale(ctx, t, "great-fortune", want)
	})
	if err := e.c.StopProxy(n); err != nil {
		t.Fatal(err)
	}
	proxyStopped = true
	at := time.Now()
	relabel("retired")
	scaled := fortune.DefaultReplicas()
	scaled["great-fortune"] = 3
	scaled["small-fortune"]--
	if _, err := e.c.Kubectl(ctx, "-n", namespace, "scale", "deployment", "great-fortune", "--replicas=3"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.k.waitSettled(ctx, scaled, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if err := e.c.WaitProxySynced(ctx, at, n); err != nil {
		t.Fatal(err)
	}
	after, err := e.k.pods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var added []string
	for _, p := range after {
		if p.Metadata.Labels[fortuneLabel] == "great-fortune" && !slices.ContainsFunc(pods, func(o pod) bool { return o.Metadata.Name == p.Metadata.Name }) {
			added = append(added, p.Metadata.Name)
		}
	}
	r, code := e.runAudit(ctx, t, mode, "a stale node "+n.Name)
	if code != 1 || r.Verdict != kubeaudit.Inconsistent {
		t.Errorf("exit %d, %s; want 1, inconsistent", code, r.Summary)
	}
	for _, nr := range r.Nodes {
		all := ""
		for _, p := range nr.Paths {
			all += strings.Join(p.Discrepancies, "\n") + "\n"
		}
		if nr.Node != n.Name {
			if nr.Verdict != kubeaudit.Consistent {
				t.Errorf("node %s, whose kube-proxy runs: %s\n%s", nr.Node, nr.Verdict, all)
			}
			continue
		}
		if nr.Verdict != kubeaudit.Inconsistent {
			t.Errorf("node %s, kube-proxy stopped: %s", nr.Node, nr.Verdict)
		}
		if !strings.Contains(all, "still sends draws to pod "+retired) || !strings.Contains(all, "proxy rules are stale") {
			t.Errorf("node %s's report does not name the retired pod %s as stale:\n%s", nr.Node, retired, all)
		}
		// The node's pod stops at the retired pod's first draw (--until
		// decided), usually too soon to tell that the new pods are never
		// reached: the report names them as not reached so far.
		for _, a := range added {
			if !strings.Contains(all, a) || !(strings.Contains(all, "never reached") || strings.Contains(all, "had not reached")) {
				t.Errorf("node %s's report does not name the new pod %s as not reached:\n%s", nr.Node, a, all)
			}
		}
		for _, p := range nr.Paths {
			if !strings.HasPrefix(p.Stopped, "decided after") {
				t.Errorf("node %s %s: %d draws, stopped %q; want an early stop on the retired pod", nr.Node, p.Path, p.Draws, p.Stopped)
			}
		}
	}

	if err := e.c.StartProxy(ctx, n); err != nil {
		t.Fatal(err)
	}
	proxyStopped = false
	r, code = e.runAudit(ctx, t, mode, "node "+n.Name+"'s kube-proxy restarted")
	if code != 0 || r.Verdict != kubeaudit.Consistent {
		t.Errorf("after restarting %s's kube-proxy: exit %d, %s", n.Name, code, r.Summary)
	}
}

// wantRefusal runs the plugin, which must exit 2 saying every one of want,
// and leave no audit pod behind.
func (e *env) wantRefusal(ctx context.Context, t *testing.T, env, args []string, want ...string) {
	t.Helper()
	code, _, stderr, err := e.kubectlOmikuji(ctx, env, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubectl omikuji %s: exit %d: %s", strings.Join(args, " "), code, strings.TrimSpace(stderr))
	if code != 2 {
		t.Errorf("%v: exit %d, want 2", args, code)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("%v: stderr lacks %q: %s", args, w, stderr)
		}
	}
	e.noAuditPods(ctx, t)
}

// checkPluginInput: bad input exits 2 with a message naming the problem and
// the fix, and an interrupted audit leaves nothing behind.
func (e *env) checkPluginInput(ctx context.Context, t *testing.T) {
	nobody := "KUBECONFIG=" + strings.Replace(e.plugin.kubeconfig, "auditor", "nobody", 1)
	for _, tc := range []struct {
		env  []string
		args []string
		want []string
	}{
		{nil, []string{"audit", "svc/nope", "-n", namespace}, []string{`no Service "nope" in namespace "omikuji"`}},
		{nil, []string{"audit", "svc/omikuji", "-n", "nowhere"}, []string{`no namespace "nowhere"`}},
		{[]string{nobody}, []string{"audit", "svc/omikuji", "-n", namespace}, []string{"RBAC refused to get services in namespace omikuji", "deploy/rbac/kubectl-omikuji.yaml"}},
		{nil, []string{"audit", "svc/omikuji", "-n", namespace, "--image", "registry.invalid/omikuji:missing", "--pull-timeout", "90s"}, []string{`"registry.invalid/omikuji:missing"`, "ErrImagePull", "--image"}},
		{nil, []string{"audit", "svc/kubernetes", "-n", "default"}, []string{"RBAC refused"}},
	} {
		e.wantRefusal(ctx, t, tc.env, tc.args, tc.want...)
	}

	// A Service without a selector, one whose selector matches no pod, and
	// a cluster whose every node is cordoned.
	for _, args := range [][]string{
		{"-n", namespace, "create", "service", "clusterip", "by-hand", "--tcp=80"},
		{"-n", namespace, "patch", "service", "by-hand", "--type=json", "-p", `[{"op":"remove","path":"/spec/selector"}]`},
		{"-n", namespace, "create", "service", "clusterip", "no-pods", "--tcp=80"}, // selects app=no-pods: nothing
	} {
		if out, err := e.c.Kubectl(ctx, args...); err != nil {
			t.Fatalf("kubectl %v: %v: %s", args, err, out)
		}
	}
	defer e.c.Kubectl(context.WithoutCancel(ctx), "-n", namespace, "delete", "service", "by-hand", "no-pods", "--ignore-not-found") //nolint:errcheck // best effort; the namespace goes with the cluster
	for _, n := range e.c.Nodes {
		if out, err := e.c.Kubectl(ctx, "cordon", n.Name); err != nil {
			t.Fatalf("kubectl cordon %s: %v: %s", n.Name, err, out)
		}
		defer e.c.Kubectl(context.WithoutCancel(ctx), "uncordon", n.Name) //nolint:errcheck // checked below
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"audit", "svc/by-hand", "-n", namespace}, []string{"has no selector", "audit a Service that selects pods"}},
		{[]string{"audit", "svc/no-pods", "-n", namespace}, []string{"has no ready endpoints", "kubectl get endpointslices"}},
		{[]string{"audit", "svc/omikuji", "-n", namespace}, []string{"no node can run the audit pods", e.c.Nodes[0].Name + ": cordoned", "uncordon a node"}},
	} {
		e.wantRefusal(ctx, t, nil, tc.args, tc.want...)
	}
	for _, n := range e.c.Nodes {
		if out, err := e.c.Kubectl(ctx, "uncordon", n.Name); err != nil {
			t.Fatalf("kubectl uncordon %s: %v: %s", n.Name, err, out)
		}
	}

	// Ctrl-C while the pods draw.
	cmd := exec.CommandContext(ctx, "kubectl", "omikuji", "audit", "svc/omikuji", "-n", namespace, "--draws", "1000000", "-c", "1")
	cmd.Env = append(os.Environ(), "PATH="+e.plugin.dir+":"+os.Getenv("PATH"), "KUBECONFIG="+e.plugin.kubeconfig)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(stderr.String(), "started omikuji-audit-") || e.auditPodsRunning(ctx, t) < len(e.c.Nodes) {
		if time.Now().After(deadline) {
			t.Fatalf("no audit pod running after a minute: %s", stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	// kubectl passes the signal on to the plugin it runs.
	_ = cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(stderr.String(), "interrupted; the audit pods were deleted") {
		t.Errorf("Ctrl-C: %v, stderr %s", err, stderr.String())
	}
	e.noAuditPods(ctx, t)
}

func (e *env) auditPodsRunning(ctx context.Context, t *testing.T) int {
	out, err := e.c.Kubectl(ctx, "get", "pods", "-A", "-l", kubeaudit.LabelName+"="+kubeaudit.PodAppName, "--field-selector=status.phase=Running", "-o", "name")
	if err != nil {
		t.Fatal(err)
	}
	return len(strings.Fields(string(out)))
}
