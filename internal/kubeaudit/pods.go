package kubeaudit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/omikuji/omikuji/internal/audit"
	"github.com/omikuji/omikuji/internal/proxyrules"
)

// Labels on every audit pod: what they are, and which run made them.
const (
	LabelName  = "app.kubernetes.io/name"
	LabelRun   = "omikuji.dev/audit-run"
	PodAppName = "kubectl-omikuji"
)

// A Draw says how each pod draws.
type Draw struct {
	Image       string
	PullPolicy  corev1.PullPolicy
	Draws       int           // per path
	Concurrency int           // per path
	Backend     string        // omikuji draw --backend
	Alpha       float64       // omikuji draw --alpha; 0: its default
	MaxTime     time.Duration // the draws' deadline, per path
	PullTimeout time.Duration // how long a pod may take to start
}

// A PodResult is what one node's pod printed, per path (container).
type PodResult struct {
	Node   string
	Pod    string
	Output map[string][]byte // container (path) → its log
	Exit   map[string]int32  // container (path) → exit code
}

// A Runner starts the audit pods and always deletes them.
type Runner struct {
	Client    kubernetes.Interface
	Namespace string
	Poll      time.Duration // how often to look at the pods; 0 is 500 ms
	Log       io.Writer     // progress; nil discards
}

// containerName is the container that draws through path.
func containerName(path string) string { return strings.ToLower(path) }

// Run starts one pod per plan, pinned to its node, waits for each to finish
// drawing, collects its logs and deletes every pod it created, whatever
// happens: success, a failure, or ctx cancelled (Ctrl-C). Deleting uses a
// context of its own, so a cancelled run still cleans up.
func (r *Runner) Run(ctx context.Context, plans []NodePlan, d Draw) (results []PodResult, err error) {
	log := r.Log
	if log == nil {
		log = io.Discard
	}
	run := newRunID()
	var created []string
	var mu sync.Mutex
	defer func() {
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if derr := r.deleteAll(cleanup, created, run); derr != nil && err == nil {
			err = derr
		}
	}()
	for i, p := range plans {
		pod := r.pod(run, i, p, d)
		got, cerr := r.Client.CoreV1().Pods(r.Namespace).Create(ctx, pod, metav1.CreateOptions{})
		if cerr != nil {
			return nil, createError(cerr, r.Namespace)
		}
		created = append(created, got.Name)
		fmt.Fprintf(log, "started %s on node %s\n", got.Name, p.Node)
	}
	results = make([]PodResult, len(plans))
	errs := make([]error, len(plans))
	var wg sync.WaitGroup
	waitCtx, cancelWait := context.WithCancel(ctx)
	defer cancelWait()
	for i, p := range plans {
		wg.Go(func() {
			res, werr := r.wait(waitCtx, created[i], p, d)
			mu.Lock()
			defer mu.Unlock()
			results[i], errs[i] = res, werr
			if werr != nil {
				cancelWait() // one pod that cannot run ends the audit
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	for _, e := range errs {
		if e != nil && !errors.Is(e, context.Canceled) {
			return nil, e
		}
	}
	return results, errors.Join(errs...)
}

// newRunID is a short random name shared by one run's pods.
func newRunID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// pod is the audit pod for one node: pinned to it by nodeName, one
// container per path running the image's omikuji draw, Pod Security
// restricted, small requests and limits, and a deadline.
func (r *Runner) pod(run string, i int, p NodePlan, d Draw) *corev1.Pod {
	deadline := int64((d.PullTimeout + d.MaxTime + 30*time.Second) / time.Second)
	res := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("128Mi")},
	}
	var containers []corev1.Container
	for _, path := range p.Paths {
		containers = append(containers, corev1.Container{
			Name:            containerName(string(path.Path)),
			Image:           d.Image,
			ImagePullPolicy: d.PullPolicy,
			Args:            drawArgs(path, d),
			Resources:       res,
			SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: new(false),
				ReadOnlyRootFilesystem:   new(true),
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			},
			TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		})
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:   fmt.Sprintf("omikuji-audit-%s-%d", run, i),
			Labels: map[string]string{LabelName: PodAppName, LabelRun: run},
		},
		Spec: corev1.PodSpec{
			NodeName:                      p.Node,
			RestartPolicy:                 corev1.RestartPolicyNever,
			ActiveDeadlineSeconds:         &deadline,
			AutomountServiceAccountToken:  new(false),
			EnableServiceLinks:            new(false),
			TerminationGracePeriodSeconds: new(int64(1)),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   new(true),
				RunAsUser:      new(int64(65532)),
				RunAsGroup:     new(int64(65532)),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: containers,
		},
	}
}

// drawArgs is the omikuji draw command of one path. Without session
// affinity, the node's expected endpoints are named in --expect
// uniform:NAME,...: the pod's own report then judges them (fit, uniformity,
// independence), and --until decided stops it as soon as one fails, at the
// first draw of a pod that is no endpoint for this node. With session
// affinity, or no endpoint expected at all, it draws against plain uniform
// and the judge looks at the counts.
func drawArgs(path PathPlan, d Draw) []string {
	c := d.Concurrency
	expect := []string{"--expect", "uniform"}
	if path.Expect.Sticky {
		// Simultaneous first connections race kube-proxy's affinity
		// record and may reach different pods: draw one at a time.
		c = 1
	} else if names := expectedNames(path.Expect); len(names) > 0 {
		expect = []string{"--expect", "uniform:" + strings.Join(names, ","), "--until", audit.UntilDecided}
	}
	args := []string{"draw", "--json", "-n", strconv.Itoa(d.Draws), "-c", strconv.Itoa(c),
		"--max-time", d.MaxTime.String(), "--timeout", "3s", "--backend", d.Backend}
	if d.Alpha > 0 {
		args = append(args, "--alpha", strconv.FormatFloat(d.Alpha, 'g', -1, 64))
	}
	args = append(args, expect...)
	return append(args, path.URL)
}

// expectedNames are the pods a path's expectation names, once each (a pod
// in two EndpointSlices, one per IP family, is one backend).
func expectedNames(e proxyrules.Expectation) []string {
	var names []string
	for _, p := range e.Pods() {
		if !slices.Contains(names, p) {
			names = append(names, p)
		}
	}
	return names
}

// maxExpectArg bounds the --expect argument: Linux takes at most 128 KiB
// in one argument.
const maxExpectArg = 100_000

// checkNames says why a plan's pods cannot name their expected endpoints,
// or nil: more than omikuji draw takes, a name it would refuse, an endpoint
// that is no pod, or an argument too long for one command line.
func checkNames(plans []NodePlan) error {
	for _, p := range plans {
		for _, path := range p.Paths {
			if path.Expect.Sticky {
				continue
			}
			names := expectedNames(path.Expect)
			if len(names) == 0 {
				continue
			}
			if slices.Contains(names, "") {
				return usageErrorf("node %s's %s reaches an endpoint with no pod behind it (no targetRef): the audit names every expected pod, and cannot name that one", p.Node, path.Path)
			}
			arg := "uniform:" + strings.Join(names, ",")
			if len(names) > audit.MaxExpectedBackends || len(arg) > maxExpectArg {
				return usageErrorf("node %s's %s expects %d pods (%d bytes of names): the audit names each in one argument of omikuji draw, at most %d pods and %d bytes; audit a Service with fewer endpoints",
					p.Node, path.Path, len(names), len(arg), audit.MaxExpectedBackends, maxExpectArg)
			}
			if _, err := audit.ParseExpect(arg, audit.BackendSpec{Kind: audit.KindOmikuji}, audit.GroupSpec{}); err != nil {
				return usageErrorf("node %s's %s expects a pod omikuji draw cannot name: %v", p.Node, path.Path, err)
			}
		}
	}
	return nil
}

// wait polls one pod until it has finished, then reads each container's log.
func (r *Runner) wait(ctx context.Context, name string, p NodePlan, d Draw) (PodResult, error) {
	poll := r.Poll
	if poll == 0 {
		poll = 500 * time.Millisecond
	}
	pods := r.Client.CoreV1().Pods(r.Namespace)
	started := time.Now()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		pod, err := pods.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			if ctx.Err() != nil {
				return PodResult{}, ctx.Err()
			}
			if apierrors.IsNotFound(err) {
				return PodResult{}, fmt.Errorf("audit pod %s on node %s was deleted by someone else before it finished", name, p.Node)
			}
			return PodResult{}, apiError(err, "get", "pods", r.Namespace)
		}
		if err := stuck(pod, d, time.Since(started)); err != nil {
			return PodResult{}, err
		}
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			if pod.Status.Reason == "DeadlineExceeded" {
				return PodResult{}, fmt.Errorf("audit pod %s on node %s ran past its deadline (activeDeadlineSeconds); raise --max-time or lower --draws", name, p.Node)
			}
			return r.collect(ctx, pod, p)
		}
		select {
		case <-ctx.Done():
			return PodResult{}, ctx.Err()
		case <-tick.C:
		}
	}
}

// pullFailures are the waiting reasons that mean the image will not run.
var pullFailures = []string{"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError", "CreateContainerError"}

// stuck reports a pod that will not start: an image that cannot be pulled
// or run, or no start within the pull timeout.
func stuck(pod *corev1.Pod, d Draw, waited time.Duration) error {
	for _, cs := range pod.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil {
			for _, reason := range pullFailures {
				if w.Reason == reason {
					return usageErrorf("the audit pod on node %s cannot start image %q: %s: %s; pass --image with an omikuji image every node can pull (the image your omikuji Deployments run)",
						pod.Spec.NodeName, d.Image, w.Reason, w.Message)
				}
			}
		}
	}
	if pod.Status.Phase == corev1.PodPending && waited > d.PullTimeout {
		last := "not scheduled"
		for _, cs := range pod.Status.ContainerStatuses {
			if cs.State.Waiting != nil {
				last = cs.State.Waiting.Reason
			}
		}
		return usageErrorf("the audit pod on node %s did not start within %s (%s); pulling image %q may be slow or impossible there: pass a larger --pull-timeout or an image the node has",
			pod.Spec.NodeName, d.PullTimeout, last, d.Image)
	}
	return nil
}

// collect reads each container's log and exit code.
func (r *Runner) collect(ctx context.Context, pod *corev1.Pod, p NodePlan) (PodResult, error) {
	res := PodResult{Node: p.Node, Pod: pod.Name, Output: map[string][]byte{}, Exit: map[string]int32{}}
	for _, cs := range pod.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil {
			res.Exit[cs.Name] = t.ExitCode
		}
	}
	limit := int64(4 << 20)
	for _, path := range p.Paths {
		c := containerName(string(path.Path))
		b, err := r.Client.CoreV1().Pods(r.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{Container: c, LimitBytes: &limit}).DoRaw(ctx)
		if err != nil {
			return res, apiError(err, "get", "pods/log", r.Namespace)
		}
		res.Output[c] = b
	}
	return res, nil
}

// deleteAll deletes the pods this run created, at once (grace period 0), and
// waits until they are gone, so nothing is left behind.
func (r *Runner) deleteAll(ctx context.Context, names []string, run string) error {
	pods := r.Client.CoreV1().Pods(r.Namespace)
	var errs []error
	for _, n := range names {
		err := pods.Delete(ctx, n, metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting audit pod %s: %w (delete it with kubectl delete pod -n %s -l %s=%s)", n, err, r.Namespace, LabelRun, run))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, n := range names {
		for {
			_, err := pods.Get(ctx, n, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("audit pod %s still exists after deleting it; kubectl delete pod -n %s -l %s=%s", n, r.Namespace, LabelRun, run)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

// createError explains why the API server refused an audit pod.
func createError(err error, namespace string) error {
	msg := err.Error()
	switch {
	case apierrors.IsForbidden(err) && strings.Contains(msg, "PodSecurity"):
		return usageErrorf("namespace %s's Pod Security admission refused the audit pods (%s); they meet the restricted profile, so check the namespace's pod-security.kubernetes.io labels, or audit from a namespace that admits restricted pods with --pod-namespace", namespace, msg)
	case apierrors.IsForbidden(err) && strings.Contains(msg, "cannot create resource"):
		return apiError(err, "create", "pods", namespace)
	case apierrors.IsForbidden(err):
		return usageErrorf("namespace %s refused the audit pods (%s); an admission policy blocks them: allow pods labelled %s=%s there", namespace, msg, LabelName, PodAppName)
	}
	return apiError(err, "create", "pods", namespace)
}
