package kubeaudit

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/omikuji/omikuji/internal/proxyrules"
)

// A Config is everything one audit needs.
type Config struct {
	Target
	PodNamespace string // where the audit pods run; "" is the Service's namespace
	Draw
	Alpha float64
	Log   io.Writer // progress; nil discards
}

// Run audits the Service from every schedulable node. A *UsageError is bad
// input or an unusable cluster (exit 2).
func Run(ctx context.Context, cs kubernetes.Interface, c Config) (Report, error) {
	started := time.Now()
	r := Report{Namespace: c.Namespace, Service: c.Service, Draws: c.Draws, Alpha: c.Alpha, Started: started.UTC(), Nodes: []NodeReport{}, Skipped: []Skipped{}}
	before, err := Read(ctx, cs, c.Target)
	if err != nil {
		return r, err
	}
	r.Port = fmt.Sprintf("%s (%d)", before.Port.Name, before.Port.Port)
	if before.ReadyEndpoints() == 0 {
		return r, usageErrorf("Service %s/%s has no ready endpoints: no pod matching its selector is ready, so there is nothing to audit; kubectl get endpointslices -n %s -l kubernetes.io/service-name=%s shows them",
			c.Namespace, c.Service, c.Namespace, c.Service)
	}
	plans, skipped := Plan(before)
	r.Skipped = skipped
	if len(plans) == 0 {
		var s []string
		for _, k := range skipped {
			s = append(s, k.Node+": "+k.Reason)
		}
		return r, usageErrorf("no node can run the audit pods (%s); uncordon a node or remove its NoSchedule taint", strings.Join(s, "; "))
	}
	if c.Image == "" {
		if c.Image, c.PullPolicy, err = defaultImage(before); err != nil {
			return r, err
		}
	}
	r.Image = c.Image
	ns := c.PodNamespace
	if ns == "" {
		ns = c.Namespace
	}
	if err := checkNames(plans); err != nil {
		return r, err
	}
	runner := &Runner{Client: cs, Namespace: ns, Log: c.Log}
	d := c.Draw
	d.Alpha = c.Alpha
	results, err := runner.Run(ctx, plans, d)
	if err != nil {
		return r, err
	}
	after, err := Read(ctx, cs, c.Target)
	if err != nil {
		return r, err
	}
	afterPlans, _ := Plan(after)
	for i, p := range plans {
		n := NodeReport{Node: p.Node, Zone: p.Zone, Pod: results[i].Pod}
		for j, path := range p.Paths {
			cname := containerName(string(path.Path))
			d, perr := parseDraw(results[i].Output[cname])
			if perr != nil && bytes.Contains(results[i].Output[cname], []byte("N in uniform:N must be a whole number")) {
				return r, usageErrorf("the audit pod on node %s runs image %q, whose omikuji draw is too old to take the expected pods by name (--expect uniform:NAME,...); pass --image with an omikuji image of this plugin's version or later",
					p.Node, c.Image)
			}
			if perr != nil {
				return r, usageErrorf("the audit pod on node %s (image %q) printed no omikuji draw report through the %s, exit code %d: %v; pass --image with an omikuji image (the one your omikuji Deployments run)",
					p.Node, c.Image, path.Path, results[i].Exit[cname], perr)
			}
			n.Paths = append(n.Paths, Judge(p.Node, p.Zone, path, d, before, c.Alpha))
			if m := movedFor(afterPlans, p.Node, j, path.Expect); m != "" && n.Moved == "" {
				n.Moved = string(path.Path) + ": " + m
			}
		}
		r.Nodes = append(r.Nodes, n)
	}
	r.finish()
	r.Seconds = time.Since(started).Seconds()
	return r, nil
}

// movedFor compares a path's expectation before drawing with the one after.
func movedFor(after []NodePlan, node string, j int, before proxyrules.Expectation) string {
	for _, p := range after {
		if p.Node == node && j < len(p.Paths) {
			return Moved(before, p.Paths[j].Expect)
		}
	}
	return "the node can no longer run pods"
}

// defaultImage is the image the Service's own ready pods run, for the
// omikuji kit: after make aws-up that is the image in ECR, in the e2e the
// one imported into every node. IfNotPresent, since those nodes have it.
func defaultImage(s *Snapshot) (string, corev1.PullPolicy, error) {
	for _, ep := range s.Endpoints {
		if pod := s.Pods[ep.Pod]; ep.Ready && pod != nil && len(pod.Spec.Containers) > 0 {
			return pod.Spec.Containers[0].Image, corev1.PullIfNotPresent, nil
		}
	}
	return "", "", usageErrorf("no ready pod of Service %s/%s to take the omikuji image from; pass --image REGISTRY/omikuji:TAG", s.Service.Namespace, s.Service.Name)
}
