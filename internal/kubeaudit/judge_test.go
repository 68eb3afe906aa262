package kubeaudit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/omikuji/omikuji/internal/audit"
	"github.com/omikuji/omikuji/internal/proxyrules"
)

// The kit: 1/2/6/1 pods of four fortunes, pod i on node n1 when even, n2
// when odd, zones a and b.
func kit() (*Snapshot, []string) {
	s := &Snapshot{Service: &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "omikuji", Namespace: "omikuji"}}, Pods: map[string]*corev1.Pod{}}
	var names []string
	i := 0
	for _, f := range []struct {
		name string
		n    int
	}{{"great-fortune", 1}, {"middle-fortune", 2}, {"small-fortune", 6}, {"misfortune", 1}} {
		for k := range f.n {
			name := fmt.Sprintf("%s-7d9f8c6b5-%05d", f.name, k)
			node, zone := "n1", "a"
			if i%2 == 1 {
				node, zone = "n2", "b"
			}
			s.Pods[name] = &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"pod-template-hash": "7d9f8c6b5"},
					OwnerReferences: []metav1.OwnerReference{{Name: f.name + "-7d9f8c6b5", Controller: new(true)}}},
				Spec: corev1.PodSpec{NodeName: node},
				Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue,
					LastTransitionTime: metav1.NewTime(time.Date(2026, 12, 6, 10, 43, 0, 0, time.UTC))}}},
			}
			s.Endpoints = append(s.Endpoints, proxyrules.Endpoint{Pod: name, Node: node, Zone: zone, Ready: true, Serving: true})
			names = append(names, name)
			i++
		}
	}
	return s, names
}

// The pods' reports come from the real omikuji draw, built once, run with
// the arguments the runner gives the path's container (drawArgs), against
// a loopback server answering as the pods at random (seeded, one draw at a
// time, so every run sees the same sequence).
var omikuji struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if omikuji.dir != "" {
		os.RemoveAll(omikuji.dir)
	}
	os.Exit(code)
}

func omikujiBinary(t *testing.T) string {
	t.Helper()
	omikuji.once.Do(func() {
		if omikuji.dir, omikuji.err = os.MkdirTemp("", "kubeaudit-omikuji-"); omikuji.err != nil {
			return
		}
		omikuji.path = filepath.Join(omikuji.dir, "omikuji")
		out, err := exec.Command("go", "build", "-o", omikuji.path, "github.com/omikuji/omikuji/cmd/omikuji").CombinedOutput()
		if err != nil {
			omikuji.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if omikuji.err != nil {
		t.Fatal(omikuji.err)
	}
	return omikuji.path
}

// fortuneOf is the fortune a kit pod serves (a name of no kit pod: great).
func fortuneOf(pod string) string {
	for _, f := range []string{"great-fortune", "middle-fortune", "small-fortune", "misfortune"} {
		if strings.HasPrefix(pod, f+"-") {
			return f
		}
	}
	return "great-fortune"
}

// drawFrom runs the pod's omikuji draw for plan: n draws from a server
// answering as pods at random, seeded; what the judge reads.
func drawFrom(t *testing.T, plan PathPlan, seed uint64, n int, pods []string) podDraw {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	return drawWith(t, plan, n, func() string { return pods[rng.IntN(len(pods))] })
}

// drawWith is drawFrom with the server's choice of pod made by next.
func drawWith(t *testing.T, plan PathPlan, n int, next func() string) podDraw {
	t.Helper()
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		pod := next()
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"fortune":%q,"pod":%q}`, fortuneOf(pod), pod)
	}))
	defer srv.Close()
	args := drawArgs(plan, Draw{Draws: n, Concurrency: 1, Backend: "omikuji", Alpha: 0.001, MaxTime: 2 * time.Minute})
	args[len(args)-1] = srv.URL + "/"
	var out bytes.Buffer
	cmd := exec.Command(omikujiBinary(t), args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil && cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("omikuji %s: %v\n%s", strings.Join(args, " "), err, out.Bytes())
	}
	d, err := parseDraw(out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func planFor(s *Snapshot, node, zone string, mod func(*corev1.ServiceSpec)) PathPlan {
	svc := s.Service.DeepCopy()
	if mod != nil {
		mod(&svc.Spec)
	}
	return PathPlan{Path: proxyrules.ClusterIP, URL: "http://10.97.0.10:8080/", Expect: proxyrules.Expect(svc, s.Endpoints, node, zone, proxyrules.ClusterIP)}
}

func TestJudgeFairIsConsistent(t *testing.T) {
	s, pods := kit()
	plan := planFor(s, "n1", "a", nil)
	for seed := range uint64(3) {
		r := Judge("n1", "a", plan, drawFrom(t, plan, seed, 3000, pods), s, 0.001)
		if r.Verdict != Consistent || len(r.Discrepancies) > 0 {
			t.Fatalf("seed %d: %s %v (fit %v uniform %v)", seed, r.Verdict, r.Discrepancies, r.Fit, r.Uniformity)
		}
		// The pod's own tests, over every expected pod, ran to the end.
		if !r.Fit.Applicable || !r.Uniformity.Applicable || len(r.Expected) != 10 || !r.AnytimeDecides || r.Anytime.Fit.Rejected || r.Draws != 3000 || r.Stopped != "" {
			t.Fatalf("tests not applied: %+v", r)
		}
	}
}

// internalTrafficPolicy Local: node n2's own pods only, and the same draws
// judged against all ten pods fail.
func TestJudgeInternalLocal(t *testing.T) {
	s, _ := kit()
	local := func(sp *corev1.ServiceSpec) { sp.InternalTrafficPolicy = new(corev1.ServiceInternalTrafficPolicyLocal) }
	plan := planFor(s, "n2", "b", local)
	if len(plan.Expect.Endpoints) != 5 {
		t.Fatalf("n2 expects %v", plan.Expect.Pods())
	}
	if r := Judge("n2", "b", plan, drawFrom(t, plan, 1, 2000, plan.Expect.Pods()), s, 0.001); r.Verdict != Consistent || r.Draws != 2000 {
		t.Fatalf("against its own pods: %s %v", r.Verdict, r.Discrepancies)
	}
	// A node whose kube-proxy keeps to its own pods although every one is
	// expected: the pod stops as soon as its fit rejects.
	all := planFor(s, "n2", "b", nil)
	r := Judge("n2", "b", all, drawFrom(t, all, 1, 2000, plan.Expect.Pods()), s, 0.001)
	if r.Verdict != Inconsistent || !strings.Contains(strings.Join(r.Discrepancies, "\n"), "never reached pods") || r.Draws >= 200 || !strings.HasPrefix(r.Stopped, "decided after") || !r.Anytime.Fit.Rejected {
		t.Fatalf("against all ten: %s after %d draws (%s) %v", r.Verdict, r.Draws, r.Stopped, r.Discrepancies)
	}
	t.Logf("five of ten never reached: %s", r.Stopped)
}

// A stale node: it still reaches a pod that left the Service and never the
// new ones.
func TestJudgeStaleNode(t *testing.T) {
	s, pods := kit()
	old := pods[:9] // what n2's stale rules still balance over: 9 current pods …
	relabelled := "small-fortune-7d9f8c6b5-00005"
	s.Endpoints = s.Endpoints[:0]
	for _, p := range pods {
		if p != relabelled {
			s.Endpoints = append(s.Endpoints, proxyrules.Endpoint{Pod: p, Node: s.Pods[p].Spec.NodeName, Ready: true, Serving: true})
		}
	}
	for _, p := range []string{"great-fortune-7d9f8c6b5-00001", "great-fortune-7d9f8c6b5-00002"} { // scaled up
		s.Pods[p] = s.Pods["great-fortune-7d9f8c6b5-00000"].DeepCopy()
		s.Pods[p].Name = p
		s.Endpoints = append(s.Endpoints, proxyrules.Endpoint{Pod: p, Node: "n1", Ready: true, Serving: true})
	}
	plan := planFor(s, "n2", "b", nil)
	r := Judge("n2", "b", plan, drawFrom(t, plan, 5, 4000, old), s, 0.001)
	all := strings.Join(r.Discrepancies, "\n")
	if r.Verdict != Inconsistent || len(r.Unexpected) != 1 || r.Unexpected[0].Name != relabelled {
		t.Fatalf("%s, unexpected %+v", r.Verdict, r.Unexpected)
	}
	// The pod stops at the stale pod's first draw: too soon to say that the
	// new pods are never reached, but they are named.
	for _, want := range []string{
		"n2 still sends draws to pod " + relabelled, "a running pod that is no endpoint of the Service: its proxy rules are stale",
		"n2 had not reached pods great-fortune-7d9f8c6b5-00001 (ready since 10:43:00), great-fortune-7d9f8c6b5-00002 (ready since 10:43:00)",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("discrepancies lack %q:\n%s", want, all)
		}
	}
	if r.Fit.Passed || r.Fit.PValue != 0 || !r.Anytime.Fit.Rejected || r.Draws > 50 || !strings.Contains(r.Stopped, "fit rejects") {
		t.Errorf("fit %+v after %d draws (%s): a draw from no endpoint fails it outright", r.Fit, r.Draws, r.Stopped)
	}
	t.Logf("a stale pod: %s", r.Stopped)

	// Without the stale pod, the new pods alone are found never reached,
	// long before -n.
	r = Judge("n2", "b", plan, drawFrom(t, plan, 3, 4000, slices.DeleteFunc(slices.Clone(old), func(p string) bool { return p == relabelled })), s, 0.001)
	all = strings.Join(r.Discrepancies, "\n")
	if r.Verdict != Inconsistent || len(r.Unexpected) != 0 || r.Draws >= 1000 || !strings.HasPrefix(r.Stopped, "decided after") ||
		!strings.Contains(all, "n2 never reached pods great-fortune-7d9f8c6b5-00001 (ready since 10:43:00), great-fortune-7d9f8c6b5-00002 (ready since 10:43:00)") {
		t.Errorf("new pods never reached: %s after %d draws (%s):\n%s", r.Verdict, r.Draws, r.Stopped, all)
	}
	t.Logf("new pods never reached: %s", r.Stopped)
}

// A node that deals its pods out in turn (IPVS round-robin, say): every
// pod reached evenly, and the pod's independence test stops it early.
func TestJudgeRoundRobin(t *testing.T) {
	s, pods := kit()
	plan := planFor(s, "n1", "a", nil)
	i := 0
	r := Judge("n1", "a", plan, drawWith(t, plan, 2000, func() string { i++; return pods[i%len(pods)] }), s, 0.001)
	all := strings.Join(r.Discrepancies, "\n")
	if r.Verdict != Inconsistent || r.Draws >= 200 || !r.Anytime.Independence.Rejected || len(r.Unexpected) != 0 ||
		!strings.Contains(all, "anytime-valid independence of consecutive draws failed through the ClusterIP after") {
		t.Fatalf("round-robin: %s after %d draws (%s):\n%s", r.Verdict, r.Draws, r.Stopped, all)
	}
	t.Logf("round-robin: %s", all)
}

func TestJudgeCrossZone(t *testing.T) {
	s, pods := kit()
	for i := range s.Endpoints {
		s.Endpoints[i].ForZones = []string{s.Endpoints[i].Zone}
	}
	plan := planFor(s, "n1", "a", nil)
	r := Judge("n1", "a", plan, drawFrom(t, plan, 3, 2000, pods), s, 0.001)
	if r.Verdict != Inconsistent || len(r.Unexpected) != 1 || r.Unexpected[0].Zone != "b" ||
		!strings.Contains(strings.Join(r.Discrepancies, "\n"), "zone a's client reached pod "+r.Unexpected[0].Name+" in zone b") {
		t.Fatalf("%s %v", r.Verdict, r.Discrepancies)
	}
}

func TestJudgeAnswersMatchingNoPod(t *testing.T) {
	s, pods := kit()
	plan := planFor(s, "n1", "a", nil)
	r := Judge("n1", "a", plan, drawFrom(t, plan, 4, 2000, append(pods, "some-other-host")), s, 0.001)
	if r.Verdict != Inconsistent || !strings.Contains(strings.Join(r.Discrepancies, "\n"), `backend "some-other-host", which matches no pod in namespace omikuji`) {
		t.Fatalf("%s %v", r.Verdict, r.Discrepancies)
	}
}

func TestJudgeSticky(t *testing.T) {
	s, pods := kit()
	affinity := func(sp *corev1.ServiceSpec) { sp.SessionAffinity = corev1.ServiceAffinityClientIP }
	plan := planFor(s, "n1", "a", affinity)
	if r := Judge("n1", "a", plan, drawFrom(t, plan, 5, 300, pods[3:4]), s, 0.001); r.Verdict != Consistent || !r.Independence.Passed || !r.Independence.Applicable || r.Draws != 300 {
		t.Fatalf("one backend: %s %+v", r.Verdict, r.Independence)
	}
	if r := Judge("n1", "a", plan, drawFrom(t, plan, 6, 300, pods), s, 0.001); r.Verdict != Inconsistent || r.AnytimeDecides {
		t.Fatalf("every backend under affinity: %s", r.Verdict)
	}
}

func TestParseDraw(t *testing.T) {
	d, err := parseDraw([]byte("warning on stderr\n{\n  \"draws\": 3,\n  \"succeeded\": 3,\n  \"backends\": [{\"name\": \"p\", \"group\": \"g\", \"count\": 3}]\n}\nomikuji draw: a trailing line\n"))
	if err != nil || d.Drawn != 3 || len(d.Backends) != 1 || d.Backends[0].Count != 3 {
		t.Fatalf("%+v %v", d, err)
	}
	if _, err := parseDraw([]byte("exec /omikuji: no such file")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("err %v: want the output quoted", err)
	}
}

// What omikuji draw --json prints in the pod is what the judge reads.
func TestParseDrawReadsTheDrawReport(t *testing.T) {
	r := audit.Report{Drawn: 5, Succeeded: 4, Failed: 1, Failures: map[string]int{audit.FailTimeout: 1},
		Backends:      []audit.BackendRow{{Name: "p1", Group: "great-fortune", Count: 3}, {Name: "p2", Group: "misfortune", Count: 1}},
		Independence:  audit.Test{Name: "x", Applicable: true, PValue: 0.5, Passed: true},
		GoodnessOfFit: audit.Test{Name: "f", PValue: 0.25}, Uniformity: audit.Test{Name: "u", PValue: 0.125}, Stopped: "decided after 4",
		Anytime: audit.AnytimeResult{Draws: 4, Fit: audit.AnytimeTest{Rejected: true}}, AnytimeDecides: true, Verdict: audit.Inconsistent}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	d, err := parseDraw(append(b, '\n'))
	if err != nil || d.Drawn != 5 || d.Succeeded != 4 || d.Failed != 1 || d.Failures[audit.FailTimeout] != 1 || len(d.Backends) != 2 || d.Backends[0].Count != 3 || d.Independence.PValue != 0.5 ||
		d.Fit.PValue != 0.25 || d.Uniformity.PValue != 0.125 || d.Stopped != "decided after 4" || !d.Anytime.Fit.Rejected || !d.AnytimeDecides || d.Verdict != audit.Inconsistent {
		t.Fatalf("%+v %v", d, err)
	}
}
