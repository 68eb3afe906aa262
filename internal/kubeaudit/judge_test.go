package kubeaudit

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
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

// drawFrom simulates n draws spread at random over pods (seeded).
func drawFrom(seed uint64, n int, pods []string) podDraw {
	rng := rand.New(rand.NewPCG(seed, 1))
	counts := map[string]int{}
	seq := make([]int, n)
	for i := range n {
		k := rng.IntN(len(pods))
		counts[pods[k]]++
		seq[i] = k
	}
	d := podDraw{Drawn: n, Succeeded: n, Failures: map[string]int{}}
	for _, p := range pods {
		if counts[p] > 0 {
			d.Backends = append(d.Backends, struct {
				Name  string `json:"name"`
				Count int    `json:"count"`
			}{p, counts[p]})
		}
	}
	d.Independence = audit.Independence(seq, len(pods), 0.001)
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
	for seed := range uint64(20) {
		r := Judge("n1", "a", planFor(s, "n1", "a", nil), drawFrom(seed, 5000, pods), s, 0.001)
		if r.Verdict != Consistent || len(r.Discrepancies) > 0 {
			t.Fatalf("seed %d: %s %v (fit %v uniform %v)", seed, r.Verdict, r.Discrepancies, r.Fit, r.Uniformity)
		}
		if !r.Fit.Applicable || !r.Uniformity.Applicable || len(r.Expected) != 10 {
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
	d := drawFrom(1, 3000, plan.Expect.Pods())
	if r := Judge("n2", "b", plan, d, s, 0.001); r.Verdict != Consistent {
		t.Fatalf("against its own pods: %s %v", r.Verdict, r.Discrepancies)
	}
	r := Judge("n2", "b", planFor(s, "n2", "b", nil), d, s, 0.001)
	if r.Verdict != Inconsistent || !strings.Contains(strings.Join(r.Discrepancies, "\n"), "never reached pods") {
		t.Fatalf("against all ten: %s %v", r.Verdict, r.Discrepancies)
	}
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
	r := Judge("n2", "b", planFor(s, "n2", "b", nil), drawFrom(2, 4000, old), s, 0.001)
	all := strings.Join(r.Discrepancies, "\n")
	if r.Verdict != Inconsistent || len(r.Unexpected) != 1 || r.Unexpected[0].Name != relabelled {
		t.Fatalf("%s, unexpected %+v", r.Verdict, r.Unexpected)
	}
	for _, want := range []string{
		"n2 still sends draws to pod " + relabelled, "a running pod that is no endpoint of the Service: its proxy rules are stale",
		"never reached pods great-fortune-7d9f8c6b5-00001 (ready since 10:43:00), great-fortune-7d9f8c6b5-00002",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("discrepancies lack %q:\n%s", want, all)
		}
	}
	if r.Fit.Passed || r.Fit.PValue != 0 {
		t.Errorf("fit %+v: a draw from no endpoint fails it outright", r.Fit)
	}
}

func TestJudgeCrossZone(t *testing.T) {
	s, pods := kit()
	for i := range s.Endpoints {
		s.Endpoints[i].ForZones = []string{s.Endpoints[i].Zone}
	}
	r := Judge("n1", "a", planFor(s, "n1", "a", nil), drawFrom(3, 2000, pods), s, 0.001)
	if r.Verdict != Inconsistent || !strings.Contains(strings.Join(r.Discrepancies, "\n"), "zone a's client reached pod middle-fortune-7d9f8c6b5-00000 in zone b") {
		t.Fatalf("%s %v", r.Verdict, r.Discrepancies)
	}
}

func TestJudgeAnswersMatchingNoPod(t *testing.T) {
	s, pods := kit()
	d := drawFrom(4, 2000, append(pods, "some-other-host"))
	r := Judge("n1", "a", planFor(s, "n1", "a", nil), d, s, 0.001)
	if r.Verdict != Inconsistent || !strings.Contains(strings.Join(r.Discrepancies, "\n"), `backend "some-other-host", which matches no pod in namespace omikuji`) {
		t.Fatalf("%s %v", r.Verdict, r.Discrepancies)
	}
}

func TestJudgeSticky(t *testing.T) {
	s, pods := kit()
	affinity := func(sp *corev1.ServiceSpec) { sp.SessionAffinity = corev1.ServiceAffinityClientIP }
	plan := planFor(s, "n1", "a", affinity)
	if r := Judge("n1", "a", plan, drawFrom(5, 1000, pods[3:4]), s, 0.001); r.Verdict != Consistent || !r.Independence.Passed || !r.Independence.Applicable {
		t.Fatalf("one backend: %s %+v", r.Verdict, r.Independence)
	}
	if r := Judge("n1", "a", plan, drawFrom(6, 1000, pods), s, 0.001); r.Verdict != Inconsistent {
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
		Backends:     []audit.BackendRow{{Name: "p1", Group: "great-fortune", Count: 3}, {Name: "p2", Group: "misfortune", Count: 1}},
		Independence: audit.Test{Name: "x", Applicable: true, PValue: 0.5, Passed: true}}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	d, err := parseDraw(append(b, '\n'))
	if err != nil || d.Drawn != 5 || d.Succeeded != 4 || d.Failed != 1 || d.Failures[audit.FailTimeout] != 1 || len(d.Backends) != 2 || d.Backends[0].Count != 3 || d.Independence.PValue != 0.5 {
		t.Fatalf("%+v %v", d, err)
	}
}
