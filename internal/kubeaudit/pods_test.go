package kubeaudit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"

	"github.com/omikuji/omikuji/internal/proxyrules"
)

// These tests drive the runner against client-go's fake API server (an
// object tracker): what it creates, what it deletes and when. The real
// cluster's kubelet and admission are exercised by the e2e.

var twoNodes = []NodePlan{
	{Node: "n1", Paths: []PathPlan{{Path: proxyrules.ClusterIP, URL: "http://10.97.0.10:8080/"}, {Path: proxyrules.NodePort, URL: "http://10.254.254.1:30081/"}}},
	{Node: "n2", Paths: []PathPlan{{Path: proxyrules.ClusterIP, URL: "http://10.97.0.10:8080/"}}},
}

var draw = Draw{Image: "omikuji:dev", PullPolicy: corev1.PullIfNotPresent, Draws: 100, Concurrency: 2, Backend: "omikuji", MaxTime: time.Minute, PullTimeout: time.Minute}

// kubelet plays the nodes: every audit pod it sees gets status from set.
func kubelet(ctx context.Context, cs *fake.Clientset, set func(*corev1.Pod)) {
	go func() {
		for ctx.Err() == nil {
			pods, _ := cs.CoreV1().Pods("ns").List(ctx, metav1.ListOptions{})
			for i := range pods.Items {
				p := &pods.Items[i]
				set(p)
				_, _ = cs.CoreV1().Pods("ns").UpdateStatus(ctx, p, metav1.UpdateOptions{})
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
}

func leftovers(t *testing.T, cs *fake.Clientset) {
	t.Helper()
	pods, err := cs.CoreV1().Pods("ns").List(context.Background(), metav1.ListOptions{LabelSelector: LabelName + "=" + PodAppName})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		t.Errorf("pod %s left behind", p.Name)
	}
}

func TestRunnerCollectsAndDeletes(t *testing.T) {
	cs := fake.NewClientset()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Reactors first: the fake's chain is not safe to change while in use.
	var created []*corev1.Pod
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		created = append(created, a.(k8stesting.CreateAction).GetObject().(*corev1.Pod))
		return false, nil, nil
	})
	kubelet(ctx, cs, func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodSucceeded
		for _, c := range p.Spec.Containers {
			p.Status.ContainerStatuses = append(p.Status.ContainerStatuses[:0:0], corev1.ContainerStatus{Name: c.Name, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}})
		}
	})
	r := &Runner{Client: cs, Namespace: "ns", Poll: 10 * time.Millisecond}
	res, err := r.Run(ctx, twoNodes, draw)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || len(res[0].Output) != 2 || len(res[1].Output) != 1 {
		t.Fatalf("results %+v: want two pods, with logs of 2 and 1 containers", res)
	}
	if len(created) != 2 || created[0].Spec.NodeName != "n1" || created[1].Spec.NodeName != "n2" {
		t.Fatalf("created %d pods; each pinned to its node", len(created))
	}
	c := created[0].Spec.Containers[1]
	if got := strings.Join(c.Args, " "); c.Name != "nodeport" || !strings.HasPrefix(got, "draw --json -n 100 -c 2 ") || !strings.HasSuffix(got, "http://10.254.254.1:30081/") {
		t.Errorf("container %s args %q", c.Name, got)
	}
	if created[0].Spec.ActiveDeadlineSeconds == nil || *created[0].Spec.ActiveDeadlineSeconds != 150 {
		t.Errorf("activeDeadlineSeconds %v, want pull timeout + max time + 30 s", created[0].Spec.ActiveDeadlineSeconds)
	}
	leftovers(t, cs)
}

// The audit pod meets Pod Security restricted, checked by the same library
// the API server's admission uses.
func TestPodIsRestricted(t *testing.T) {
	r := &Runner{Namespace: "ns"}
	pod := r.pod("abc", 0, twoNodes[0], draw)
	eval, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	lv := api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()}
	for _, res := range eval.EvaluatePod(lv, &pod.ObjectMeta, &pod.Spec) {
		if !res.Allowed {
			t.Errorf("restricted refuses the audit pod: %s: %s", res.ForbiddenReason, res.ForbiddenDetail)
		}
	}
	for _, c := range pod.Spec.Containers {
		if c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
			t.Errorf("container %s has no requests and limits", c.Name)
		}
	}
}

func TestRunnerCtrlCDeletes(t *testing.T) {
	cs := fake.NewClientset()
	ctx, cancel := context.WithCancel(context.Background())
	kubelet(ctx, cs, func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodRunning
		if len(p.Status.ContainerStatuses) == 0 {
			time.AfterFunc(50*time.Millisecond, cancel) // Ctrl-C while the pods draw
		}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "clusterip", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
	})
	r := &Runner{Client: cs, Namespace: "ns", Poll: 10 * time.Millisecond}
	_, err := r.Run(ctx, twoNodes, draw)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	leftovers(t, cs)
}

func TestRunnerImagePullFailure(t *testing.T) {
	cs := fake.NewClientset()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kubelet(ctx, cs, func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodPending
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "clusterip", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
			Reason: "ErrImagePull", Message: `failed to pull and unpack image "docker.io/library/nope:dev": not found`}}}}
	})
	r := &Runner{Client: cs, Namespace: "ns", Poll: 10 * time.Millisecond}
	d := draw
	d.Image = "nope:dev"
	_, err := r.Run(ctx, twoNodes, d)
	var ue *UsageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), `"nope:dev"`) || !strings.Contains(err.Error(), "ErrImagePull") || !strings.Contains(err.Error(), "--image") {
		t.Fatalf("err %v: want a usage error naming the image, the event and --image", err)
	}
	leftovers(t, cs)
}

func TestRunnerPullTimeout(t *testing.T) {
	cs := fake.NewClientset()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kubelet(ctx, cs, func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodPending
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "clusterip", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}}
	})
	r := &Runner{Client: cs, Namespace: "ns", Poll: 10 * time.Millisecond}
	d := draw
	d.PullTimeout = 100 * time.Millisecond
	_, err := r.Run(ctx, twoNodes, d)
	if err == nil || !strings.Contains(err.Error(), "did not start within 100ms (ContainerCreating)") {
		t.Fatalf("err %v", err)
	}
	leftovers(t, cs)
}

func TestRunnerCreateRefused(t *testing.T) {
	for _, tc := range []struct{ msg, want string }{
		{`pods "omikuji-audit-x-1" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true`, "Pod Security admission refused"},
		{`pods is forbidden: User "alice" cannot create resource "pods" in API group "" in the namespace "ns"`, "RBAC refused to create pods in namespace ns"},
	} {
		cs := fake.NewClientset()
		n := 0
		cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
			if n++; n == 2 { // the first pod is created, the second refused
				return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "", errors.New(tc.msg))
			}
			return false, nil, nil
		})
		r := &Runner{Client: cs, Namespace: "ns", Poll: 10 * time.Millisecond}
		_, err := r.Run(context.Background(), twoNodes, draw)
		var ue *UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err %v, want a usage error saying %q", err, tc.want)
		}
		leftovers(t, cs)
	}
}

// Under session affinity the pod draws one at a time: simultaneous first
// connections would race kube-proxy's affinity record.
func TestStickyPathDrawsOneAtATime(t *testing.T) {
	p := NodePlan{Node: "n1", Paths: []PathPlan{{Path: proxyrules.ClusterIP, URL: "http://10.97.0.10:8080/", Expect: proxyrules.Expectation{Sticky: true}}, {Path: proxyrules.NodePort, URL: "http://10.254.254.1:30081/"}}}
	pod := (&Runner{}).pod("abc", 0, p, draw)
	if a, b := strings.Join(pod.Spec.Containers[0].Args, " "), strings.Join(pod.Spec.Containers[1].Args, " "); !strings.Contains(a, " -c 1 ") || !strings.Contains(b, " -c 2 ") {
		t.Errorf("sticky args %q, other %q", a, b)
	}
}

// Each path's container names the node's expected pods, once each, and
// stops when its tests decide; sticky paths and paths that expect no pod
// draw as before.
func TestDrawArgsNameTheExpectedPods(t *testing.T) {
	eps := []proxyrules.Endpoint{{Pod: "web-a", IP: "10.0.0.1"}, {Pod: "web-b", IP: "10.0.0.2"}, {Pod: "web-a", IP: "fd00::1"}}
	d := draw
	d.Alpha = 0.01
	named := PathPlan{Path: proxyrules.ClusterIP, URL: "http://10.97.0.10:8080/", Expect: proxyrules.Expectation{Endpoints: eps}}
	got := strings.Join(drawArgs(named, d), " ")
	if want := "draw --json -n 100 -c 2 --max-time 1m0s --timeout 3s --backend omikuji --alpha 0.01 --expect uniform:web-a,web-b --until decided http://10.97.0.10:8080/"; got != want {
		t.Errorf("named:\n got %s\nwant %s", got, want)
	}
	sticky := named
	sticky.Expect.Sticky = true
	if got, want := strings.Join(drawArgs(sticky, d), " "), "draw --json -n 100 -c 1 --max-time 1m0s --timeout 3s --backend omikuji --alpha 0.01 --expect uniform http://10.97.0.10:8080/"; got != want {
		t.Errorf("sticky:\n got %s\nwant %s", got, want)
	}
	none := PathPlan{Path: proxyrules.NodePort, URL: "http://10.254.254.1:30081/"}
	if got := strings.Join(drawArgs(none, draw), " "); !strings.HasSuffix(got, "--backend omikuji --expect uniform http://10.254.254.1:30081/") {
		t.Errorf("no endpoint: %s", got)
	}
	if err := checkNames([]NodePlan{{Node: "n1", Paths: []PathPlan{named, sticky, none}}}); err != nil {
		t.Errorf("a plan that fits: %v", err)
	}
}

// A path whose pods cannot all be named in one argument is refused before
// any pod is created, with a clear error.
func TestCheckNamesRefusesWhatOneArgumentCannotHold(t *testing.T) {
	plan := func(eps []proxyrules.Endpoint) []NodePlan {
		return []NodePlan{{Node: "n1", Paths: []PathPlan{{Path: proxyrules.ClusterIP, Expect: proxyrules.Expectation{Endpoints: eps}}}}}
	}
	many := func(n, length int) []proxyrules.Endpoint {
		var eps []proxyrules.Endpoint
		for i := range n {
			eps = append(eps, proxyrules.Endpoint{Pod: fmt.Sprintf("%0*d", length, i)})
		}
		return eps
	}
	for _, tc := range []struct {
		eps  []proxyrules.Endpoint
		want string
	}{
		{many(1001, 8), "node n1's ClusterIP expects 1001 pods (9016 bytes of names): the audit names each in one argument of omikuji draw, at most 1000 pods and 100000 bytes"},
		{many(1000, 120), "expects 1000 pods (121007 bytes of names)"},
		{[]proxyrules.Endpoint{{Pod: "web-a"}, {IP: "10.0.0.9"}}, "reaches an endpoint with no pod behind it"},
		{[]proxyrules.Endpoint{{Pod: "web a"}}, `expects a pod omikuji draw cannot name: --expect "uniform:web a": name "web a" has a character other than`},
	} {
		err := checkNames(plan(tc.eps))
		var ue *UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%d endpoints: error %v, want a usage error saying %q", len(tc.eps), err, tc.want)
		}
	}
}
