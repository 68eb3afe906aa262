// Package e2e proves the odds on a real Kubernetes cluster built from
// upstream sources (see package cluster), of two nodes unless -nodes says
// otherwise: the local overlay applied with kubectl, the omikuji image
// imported into every node's containerd, and `omikuji draw` auditing what
// kube-proxy does, in iptables mode and then in nftables mode.
//
// It needs root. Run it with `make e2e` from the repository root.
package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/omikuji/omikuji/internal/audit"
	"github.com/omikuji/omikuji/internal/fortune"
	"github.com/omikuji/omikuji/test/e2e/cluster"
)

var (
	keep  = flag.Bool("keep", false, "leave the cluster up afterwards (remove it with: go run ./cmd/cluster down)")
	nodes = flag.Int("nodes", 2, "nodes in the cluster; 1 where network namespaces cannot be made (skips the checks that need two)")
)

// Draw settings. The audit's two tests must pass at alpha = 1e-6, so a
// correct balancer fails a run about once in a million per test, while the
// failures the checks expect (wrong odds, session affinity) give p-values
// below 1e-100 at these sample sizes. Draws run one at a time: the audit
// reads draws in the order they started, which with -c 1 is exactly the
// order kube-proxy chose pods, whatever a busy 2-core node does to the order
// of the answers (see docs/decisions/0008-audit-orders-draws-by-start.md).
const (
	alpha       = "1e-6"
	draws       = 10000
	affinityN   = 2000
	policyN     = 2000
	concurrency = "1"
)

// env is what every check uses.
type env struct {
	c       *cluster.Cluster
	k       kube
	omikuji string // the omikuji binary, built from this repository
	nodeURL string // the NodePort on node 1's IP
	report  *runReport
	plugin  plugin
}

// nodeURLs are the NodePort on every node's IP, in node order.
func (e *env) nodeURLs() []string {
	var urls []string
	for _, n := range e.c.Nodes {
		urls = append(urls, n.URL(nodePort))
	}
	return urls
}

func TestOdds(t *testing.T) {
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("-short: skipping the real-cluster e2e (it needs root and takes minutes)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if deadline, ok := t.Deadline(); ok {
		// Leave time to tear down before `go test -timeout` kills us
		// without running cleanups.
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(-3*time.Minute))
		defer cancel()
	}
	if err := cluster.Preflight(ctx, ""); err != nil {
		t.Fatal(err) // never a skip: CI must not pass without running this
	}
	rep := &runReport{Started: time.Now().UTC()}
	t.Cleanup(func() { rep.write(t) }) // registered first: runs after teardown

	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	var binDir string
	rep.phase(t, "upstream Kubernetes binaries (build or cache)", func() error {
		binDir, err = cluster.Build(ctx, cluster.BuildOptions{
			UpstreamDir: filepath.Join(repo, "test", "e2e", "upstream"),
			CacheRoot:   os.Getenv("OMIKUJI_E2E_CACHE"), // empty: /var/cache/omikuji-e2e
			Log:         testWriter{t},
		})
		return err
	})
	omikuji := filepath.Join(work, "omikuji")
	image := filepath.Join(work, "omikuji-image.tar")
	rep.phase(t, "build omikuji binary and image", func() error {
		if err := goCmd(ctx, repo, "build", "-o", omikuji, "./cmd/omikuji"); err != nil {
			return err
		}
		return goCmd(ctx, repo, "run", "./tools/image", "build", "-o", image, "--tag", "omikuji:dev")
	})

	var c *cluster.Cluster
	rep.phase(t, fmt.Sprintf("cluster up (%d nodes, kube-proxy iptables)", *nodes), func() error {
		c, err = cluster.Up(ctx, cluster.Options{ProxyMode: "iptables", Nodes: *nodes, BinDir: binDir, Log: testWriter{t}})
		return err
	})
	rep.Up = c.Timings
	down := sync.OnceValue(func() error {
		if *keep {
			t.Logf("cluster left up (-keep): export KUBECONFIG=%s", c.Kubeconfig())
			return nil
		}
		start := time.Now()
		err := c.Down()
		rep.Phases = append(rep.Phases, cluster.Timing{Phase: "cluster down", Duration: time.Since(start).Round(10 * time.Millisecond)})
		return err
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("component logs (last lines):\n%s", c.Logs(15))
			if dir, err := c.SaveLogs(); err == nil {
				t.Logf("all component logs kept in %s", dir)
			}
		}
		if err := down(); err != nil {
			t.Error(err)
		}
	})
	// Ctrl-C or a kill still takes the cluster down.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		if s, ok := <-sigs; ok {
			fmt.Fprintf(os.Stderr, "e2e: %v: tearing the cluster down\n", s)
			cancel()
			if err := down(); err != nil {
				fmt.Fprintln(os.Stderr, "e2e:", err)
			}
			os.Exit(1)
		}
	}()

	rep.phase(t, "import image, apply overlays/local", func() error {
		if err := c.ImportImage(ctx, image); err != nil {
			return err
		}
		_, err := c.Kubectl(ctx, "apply", "-k", filepath.Join(repo, "deploy", "kustomize", "overlays", "local"))
		return err
	})
	e := &env{c: c, k: kube{c}, omikuji: omikuji, nodeURL: c.Nodes[0].URL(nodePort), report: rep}
	rep.phase(t, "all pods ready and answering", func() error {
		ready, err := e.k.waitSettled(ctx, fortune.DefaultReplicas(), 3*time.Minute)
		if err != nil {
			return err
		}
		for _, url := range e.nodeURLs() {
			if err := waitAnswering(ctx, url, ready, time.Minute); err != nil {
				return err
			}
		}
		return nil
	})

	rep.phase(t, "build kubectl-omikuji, apply deploy/rbac", func() error { return e.setupPlugin(ctx, repo, work) })
	t.Run("6-pod-security-restricted", func(t *testing.T) { e.checkPodSecurity(ctx, t) })
	t.Run("10-kubectl-omikuji-input", func(t *testing.T) { e.checkPluginInput(ctx, t) })
	for _, mode := range []string{"iptables", "nftables"} {
		if c.ProxyMode != mode {
			rep.phase(t, "switch kube-proxy to "+mode, func() error { return c.SetProxyMode(ctx, mode) })
		}
		ok := t.Run(mode, func(t *testing.T) {
			start := time.Now()
			defer func() { rep.phaseDone("checks in "+mode, start) }()
			t.Run("0-proxy-mode", func(t *testing.T) { e.checkProxyMode(ctx, t, mode) })
			t.Run("1-ready-and-endpoints", func(t *testing.T) { e.checkReady(ctx, t) })
			t.Run("2-draw-odds", func(t *testing.T) { e.checkOdds(ctx, t, mode) })
			t.Run("3-scale-live", func(t *testing.T) { e.checkScale(ctx, t, mode) })
			t.Run("4-no-draw-lost", func(t *testing.T) { e.checkNoDrawLost(ctx, t, mode) })
			t.Run("5-session-affinity", func(t *testing.T) { e.checkAffinity(ctx, t, mode) })
			t.Run("8-external-traffic-policy-local", func(t *testing.T) { e.checkLocalPolicy(ctx, t, mode) })
			t.Run("9-drain-node", func(t *testing.T) { e.checkDrain(ctx, t, mode) })
			t.Run("11-kubectl-omikuji-audit", func(t *testing.T) { e.checkPlugin(ctx, t, mode) })
		})
		if !ok {
			break // the next mode would start from an unknown state
		}
	}
	t.Run("7-prometheus", func(t *testing.T) { e.checkPrometheus(ctx, t, repo) })
}

// serviceReady waits until exactly want pods are ready and listed in the
// EndpointSlices, and every one of them answers through every node's
// NodePort and the ClusterIP; then it clears the connection-tracking entries
// those waits may have left, so that a measurement starts from a clean
// kernel state.
func (e *env) serviceReady(ctx context.Context, t *testing.T, want fortune.Counts) (ready map[string]string, clusterURL string) {
	t.Helper()
	ready, err := e.k.waitSettled(ctx, want, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ip, err := e.k.clusterIP(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clusterURL = fmt.Sprintf("http://%s:%d/", ip, servicePort)
	for _, url := range append(e.nodeURLs(), clusterURL) {
		if err := waitAnswering(ctx, url, ready, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	e.forgetConnections(ctx, t)
	return ready, clusterURL
}

// forgetConnections deletes, on every node, the connection-tracking entries
// to every NodePort and to the ClusterIP.
func (e *env) forgetConnections(ctx context.Context, t *testing.T) {
	t.Helper()
	ip, err := e.k.clusterIP(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.c.ForgetConnections(ctx, ip, servicePort); err != nil {
		t.Fatal(err)
	}
	for _, n := range e.c.Nodes {
		if err := e.c.ForgetConnections(ctx, n.IP, nodePort); err != nil {
			t.Fatal(err)
		}
	}
}

// checkPodSecurity: the namespace enforces the restricted standard, it
// admitted every pod of the overlay, and it really rejects a pod that breaks
// the standard (server-side dry run, so nothing is created).
func (e *env) checkPodSecurity(ctx context.Context, t *testing.T) {
	out, err := e.c.Kubectl(ctx, "get", "namespace", namespace, "-o", `jsonpath={.metadata.labels.pod-security\.kubernetes\.io/enforce}`)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != "restricted" {
		t.Fatalf("namespace %s: pod-security.kubernetes.io/enforce = %q, want restricted", namespace, got)
	}
	_, counts, err := e.k.readyPods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts.Total() != fortune.DefaultReplicas().Total() {
		t.Errorf("restricted namespace runs %d ready pods, want %d", counts.Total(), fortune.DefaultReplicas().Total())
	}
	const rootPod = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"psa-probe"},
	  "spec":{"containers":[{"name":"c","image":"omikuji:dev","imagePullPolicy":"Never"}]}}`
	try := func(ns string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "kubectl", "--kubeconfig", e.c.Kubeconfig(), "-n", ns,
			"create", "--dry-run=server", "-f", "-")
		cmd.Stdin = strings.NewReader(rootPod)
		return cmd.CombinedOutput()
	}
	if out, err := try(namespace); err == nil || !strings.Contains(string(out), `violates PodSecurity "restricted`) {
		t.Errorf("a pod without a restricted security context was not rejected in %s: err=%v\n%s", namespace, err, out)
	}
	// The same pod is admitted where no level is enforced: the label is what
	// rejects it.
	if out, err := try("default"); err != nil {
		t.Errorf("control: the same pod in namespace default: %v\n%s", err, out)
	}
}

// checkProxyMode: on every node, kube-proxy reports the mode and only that
// mode's rules exist in the node's network namespace.
func (e *env) checkProxyMode(ctx context.Context, t *testing.T, mode string) {
	for _, n := range e.c.Nodes {
		got, err := e.c.ProxyModeReported(ctx, n)
		if err != nil || got != mode {
			t.Fatalf("node %s: kube-proxy /proxyMode = %q (%v), want %q", n.Name, got, err, mode)
		}
		// The rules of the other mode are gone, so this mode alone decides.
		nft, err := n.Run(ctx, "nft", "list", "tables")
		if err != nil {
			t.Fatal(err)
		}
		ipt, err := n.Run(ctx, "iptables-save", "-t", "nat")
		if err != nil {
			t.Fatal(err)
		}
		hasNft := strings.Contains(string(nft), "table ip kube-proxy")
		hasIpt := strings.Contains(string(ipt), ":KUBE-SERVICES")
		if (mode == "nftables") != hasNft || (mode == "iptables") != hasIpt {
			t.Fatalf("node %s, mode %s: nft table ip kube-proxy present=%v, iptables KUBE-SERVICES present=%v", n.Name, mode, hasNft, hasIpt)
		}
	}
}

// checkReady: all ten pods ready, and the Service's EndpointSlices list
// exactly their ten addresses; the topology spread put pods on every node.
func (e *env) checkReady(ctx context.Context, t *testing.T) {
	want := fortune.DefaultReplicas()
	ready, err := e.k.waitSettled(ctx, want, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	eps, err := e.k.endpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ready) != want.Total() || len(eps) != want.Total() {
		t.Fatalf("%d ready pods and %d ready endpoints, want %d of each", len(ready), len(eps), want.Total())
	}
	t.Logf("%d pods ready, EndpointSlices list %d ready endpoints", len(ready), len(eps))
	e.checkSpread(ctx, t)
}

// checkOdds: draws through every node's NodePort and through the ClusterIP
// match the catalogue's odds and every pod answers, on whichever node it
// runs: a connection to one node's NodePort lands on pods of every node.
func (e *env) checkOdds(ctx context.Context, t *testing.T, mode string) {
	want := fortune.DefaultReplicas()
	_, clusterURL := e.serviceReady(ctx, t, want)
	podNodes, err := e.k.podNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type target struct{ name, url string }
	var targets []target
	for _, n := range e.c.Nodes {
		targets = append(targets, target{e.nodePortName(n), n.URL(nodePort)})
	}
	for _, target := range append(targets, target{"ClusterIP", clusterURL}) {
		r, code := e.draw(ctx, t, target.url, draws, want)
		e.checkNodesSeen(t, target.name, r, podNodes)
		e.report.draw(mode, target.name, want, r)
		// Pass covers all three tests; uniformity is named on its own
		// because it is kube-proxy's own promise: each ready pod of a
		// fortune gets an equal share of that fortune's draws.
		if code != 0 || !r.Pass || !r.Uniformity.Passed || r.Verdict != audit.Consistent || r.Failed != 0 || r.Succeeded != draws {
			t.Errorf("%s %s: exit %d, verdict %s, %d of %d draws failed %v: %s", mode, target.name, code, r.Verdict, r.Failed, r.Drawn, r.Failures, r.Summary)
		}
		for _, row := range r.Groups {
			if row.Pods != want[row.ID] {
				t.Errorf("%s %s: %s answered from %d distinct pods, want %d", mode, target.name, row.ID, row.Pods, want[row.ID])
			}
		}
	}
}

// checkScale: scaling great-fortune to 4 changes the odds live: the audit
// passes against 4/2/6/1 and fails against the catalogue's odds.
func (e *env) checkScale(ctx context.Context, t *testing.T, mode string) {
	def := fortune.DefaultReplicas()
	scaled := fortune.DefaultReplicas()
	scaled["great-fortune"] = 4
	t.Cleanup(func() { e.scale(ctx, t, "great-fortune", def) })
	e.scale(ctx, t, "great-fortune", scaled)
	e.serviceReady(ctx, t, scaled)
	r, code := e.draw(ctx, t, e.nodeURL, draws, scaled)
	e.report.draw(mode, "NodePort after scale", scaled, r)
	if code != 0 || r.Verdict != audit.Consistent || r.Failed != 0 {
		t.Errorf("against %s: exit %d, verdict %s, %d draws failed %v: %s", scaled, code, r.Verdict, r.Failed, r.Failures, r.Summary)
	}
	for _, row := range r.Groups {
		if row.Pods != scaled[row.ID] {
			t.Errorf("%s answered from %d pods, want %d", row.ID, row.Pods, scaled[row.ID])
		}
	}
	old, code := e.draw(ctx, t, e.nodeURL, draws, def)
	e.report.draw(mode, "NodePort after scale, old odds", def, old)
	if code != 1 || old.Verdict != audit.Inconsistent || old.GoodnessOfFit.Passed || old.Failed != 0 {
		t.Errorf("against the old odds %s: exit %d, verdict %s, goodness of fit p = %g; want it to fail", def, code, old.Verdict, old.GoodnessOfFit.PValue)
	}
}

func (e *env) scale(ctx context.Context, t *testing.T, id string, want fortune.Counts) {
	t.Helper()
	if _, err := e.c.Kubectl(ctx, "-n", namespace, "scale", "deployment", id, fmt.Sprintf("--replicas=%d", want[id])); err != nil {
		t.Fatal(err)
	}
	if _, err := e.k.waitSettled(ctx, want, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
}

// checkNoDrawLost: a continuous stream of draws, each on a new connection,
// all answer 200 while a pod is deleted and while every Deployment is
// restarted.
func (e *env) checkNoDrawLost(ctx context.Context, t *testing.T, mode string) {
	want := fortune.DefaultReplicas()
	before, _ := e.serviceReady(ctx, t, want)
	s := startStream(ctx, e.nodeURL, 4)
	defer s.stop()
	time.Sleep(2 * time.Second) // a baseline before anything changes

	victim := ""
	for name := range before {
		if strings.HasPrefix(name, "small-fortune-") {
			victim = name
			break
		}
	}
	n0, start := s.done.Load(), time.Now()
	s.event("delete pod " + victim)
	// kubectl delete waits until the pod is gone: SIGTERM, drain, exit.
	if _, err := e.c.Kubectl(ctx, "-n", namespace, "delete", "pod", victim); err != nil {
		t.Fatal(err)
	}
	s.event("pod gone")
	if _, err := e.k.waitSettled(ctx, want, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	s.event("settled")
	deleteDraws, deleteTime := s.done.Load()-n0, time.Since(start)

	n1, start := s.done.Load(), time.Now()
	deployments := fortune.IDs()
	s.event("rollout restart")
	if _, err := e.c.Kubectl(ctx, append([]string{"-n", namespace, "rollout", "restart", "deployment"}, deployments...)...); err != nil {
		t.Fatal(err)
	}
	for _, d := range deployments {
		if _, err := e.c.Kubectl(ctx, "-n", namespace, "rollout", "status", "deployment/"+d, "--timeout=3m"); err != nil {
			t.Fatal(err)
		}
	}
	s.event("rollouts complete")
	after, err := e.k.waitSettled(ctx, want, 2*time.Minute) // old pods gone too
	if err != nil {
		t.Fatal(err)
	}
	s.event("settled, old pods gone")
	restartDraws, restartTime := s.done.Load()-n1, time.Since(start)
	time.Sleep(2 * time.Second) // and a tail after the last old pod left
	draws := s.stop()
	failed, when := failures(draws)
	e.report.Streams = append(e.report.Streams, streamReport{
		Mode: mode, Draws: len(draws), Failed: failed, Failures: when, Timeline: s.timeline(),
		DuringDelete: deleteDraws, DeleteSeconds: deleteTime.Seconds(),
		DuringRestart: restartDraws, RestartSeconds: restartTime.Seconds(),
	})
	slowDraws := slow(draws, time.Second)
	e.report.Streams[len(e.report.Streams)-1].Slow = slowDraws
	t.Logf("%d draws in the stream: %d while a pod was deleted (%.1f s), %d during rollout restart of %d Deployments (%.1f s); %d failed, %d took over 1 s",
		len(draws), deleteDraws, deleteTime.Seconds(), restartDraws, len(deployments), restartTime.Seconds(), failed, slowDraws)
	if failed != 0 {
		t.Errorf("%d of %d draws failed: %s\ntimeline: %s", failed, len(draws), when, s.timeline())
	}
	if deleteDraws < 100 || restartDraws < 100 {
		t.Errorf("too few draws to show anything: %d during the delete, %d during the restart", deleteDraws, restartDraws)
	}
	// The stream spanned the restart: it was answered by pods from before
	// and by the pods that replaced them.
	seen := map[string]bool{}
	for _, d := range draws {
		seen[d.pod] = true
	}
	var oldSeen, newSeen int
	for name := range before {
		if seen[name] {
			oldSeen++
		}
	}
	for name := range after {
		if seen[name] {
			newSeen++
		}
		if _, ok := before[name]; ok {
			t.Errorf("pod %s survived the rollout restart", name)
		}
	}
	if oldSeen == 0 || newSeen != len(after) {
		t.Errorf("the stream was answered by %d pods from before and %d of %d after the restart", oldSeen, newSeen, len(after))
	}
}

// checkAffinity: with sessionAffinity ClientIP every draw from this client
// lands on one pod, so the audit fails with one fortune.
func (e *env) checkAffinity(ctx context.Context, t *testing.T, mode string) {
	want := fortune.DefaultReplicas()
	e.serviceReady(ctx, t, want)
	patch := func(affinity string) {
		if _, err := e.c.Kubectl(ctx, "-n", namespace, "patch", "service", serviceName,
			"-p", fmt.Sprintf(`{"spec":{"sessionAffinity":%q}}`, affinity)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		patch("None")
		e.serviceReady(ctx, t, want)
	})
	patch("ClientIP")
	// Wait until kube-proxy pins us: 50 draws in a row from one pod.
	if err := waitPinned(ctx, e.nodeURL, 50, time.Minute); err != nil {
		t.Fatal(err)
	}
	r, code := e.draw(ctx, t, e.nodeURL, affinityN, want)
	e.report.draw(mode, "NodePort, sessionAffinity ClientIP", want, r)
	nonzero := 0
	for _, row := range r.Groups {
		if row.Count > 0 {
			nonzero++
		}
	}
	if code != 1 || r.Verdict != audit.Inconsistent || nonzero != 1 {
		t.Errorf("with ClientIP affinity: exit %d, verdict %s, %d fortunes drawn; want exit 1, inconsistent, 1 fortune", code, r.Verdict, nonzero)
	}
}

func waitPinned(ctx context.Context, url string, run int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last, streak := "", 0
	for streak < run {
		name, err := drawOne(ctx, url)
		if ctx.Err() != nil {
			return fmt.Errorf("draws not pinned to one pod after %s (last error %v)", timeout, err)
		}
		if err != nil || name != last {
			last, streak = name, 0
		}
		streak++
	}
	return nil
}

// draw runs `omikuji draw` and decodes its JSON report.
func (e *env) draw(ctx context.Context, t *testing.T, url string, n int, expect fortune.Counts) (audit.Report, int) {
	t.Helper()
	cmd := exec.CommandContext(ctx, e.omikuji, "draw", url, "-n", fmt.Sprint(n), "-c", concurrency,
		"--expect", expect.String(), "--alpha", alpha, "--json")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var r audit.Report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("omikuji draw %s (exit %d): %v\n%s\n%s", url, code, err, out, stderr.String())
	}
	counts := make([]string, len(r.Groups))
	for i, row := range r.Groups {
		counts[i] = fmt.Sprintf("%s %d (%d pods)", row.ID, row.Count, row.Pods)
	}
	t.Logf("omikuji draw %s -n %d --expect %s: %s; goodness of fit p = %.3g, per-pod uniformity p = %.3g, independence p = %.3g, exit %d",
		url, n, expect, strings.Join(counts, ", "), r.GoodnessOfFit.PValue, r.Uniformity.PValue, r.Independence.PValue, code)
	return r, code
}

func goCmd(ctx context.Context, dir string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// testWriter sends progress lines to the test log as they happen.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
