// Package kubeaudit audits a Kubernetes Service from every node: it reads
// what the cluster declares (snapshot.go), works out what each node's
// kube-proxy should do (plan.go, with package proxyrules), draws from a
// short-lived pod on each node (pods.go), judges each node's draws against
// its expectation (judge.go) and reports (report.go, html.go). audit.go
// runs the stages in that order.
package kubeaudit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/omikuji/omikuji/internal/proxyrules"
)

// A UsageError is bad input or an unusable cluster: the command exits 2 with
// its message, which names the problem and how to fix it.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usageErrorf(format string, a ...any) error { return &UsageError{Msg: fmt.Sprintf(format, a...)} }

// A Target names the Service to audit.
type Target struct {
	Namespace string
	Service   string
	Port      string // the Service port's name or number; "" for its first port
}

// A Snapshot is what the cluster declares about a Service at one moment.
type Snapshot struct {
	Service   *corev1.Service
	Port      corev1.ServicePort
	Endpoints []proxyrules.Endpoint // every endpoint of the port, as kube-proxy sees them
	Nodes     []corev1.Node
	Pods      map[string]*corev1.Pod // the namespace's pods by name
}

// Read takes a snapshot of target.
func Read(ctx context.Context, cs kubernetes.Interface, t Target) (*Snapshot, error) {
	svc, err := cs.CoreV1().Services(t.Namespace).Get(ctx, t.Service, metav1.GetOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
		// RBAC answers before existence: a namespace that does not exist
		// has no binding, so ask whether it exists before blaming RBAC.
		if _, nsErr := cs.CoreV1().Namespaces().Get(ctx, t.Namespace, metav1.GetOptions{}); apierrors.IsNotFound(nsErr) {
			return nil, usageErrorf("no namespace %q in this cluster; pass the Service's namespace with -n (kubectl get services -A lists them)", t.Namespace)
		}
	}
	if apierrors.IsNotFound(err) {
		return nil, usageErrorf("no Service %q in namespace %q; kubectl get services -n %s lists the Services there", t.Service, t.Namespace, t.Namespace)
	}
	if err != nil {
		return nil, apiError(err, "get", "services", t.Namespace)
	}
	if len(svc.Spec.Selector) == 0 {
		return nil, usageErrorf("Service %s/%s has no selector: its endpoints are managed by hand, so there are no pods to expect; audit a Service that selects pods", t.Namespace, t.Service)
	}
	if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
		return nil, usageErrorf("Service %s/%s is headless (clusterIP None): kube-proxy does not balance it; audit a Service with a cluster IP", t.Namespace, t.Service)
	}
	port, err := pickPort(svc, t.Port)
	if err != nil {
		return nil, err
	}
	s := &Snapshot{Service: svc, Port: port, Pods: map[string]*corev1.Pod{}}
	epSlices, err := cs.DiscoveryV1().EndpointSlices(t.Namespace).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + t.Service})
	if err != nil {
		return nil, apiError(err, "list", "endpointslices.discovery.k8s.io", t.Namespace)
	}
	s.Endpoints = proxyrules.PortEndpoints(port, epSlices.Items)
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, apiError(err, "list", "nodes", "")
	}
	s.Nodes = nodes.Items
	pods, err := cs.CoreV1().Pods(t.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, apiError(err, "list", "pods", t.Namespace)
	}
	for i := range pods.Items {
		s.Pods[pods.Items[i].Name] = &pods.Items[i]
	}
	return s, nil
}

// pickPort finds the Service port named or numbered want, or its first.
func pickPort(svc *corev1.Service, want string) (corev1.ServicePort, error) {
	var names []string
	for _, p := range svc.Spec.Ports {
		if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
			continue
		}
		if want == "" || want == p.Name || want == fmt.Sprint(p.Port) {
			return p, nil
		}
		names = append(names, fmt.Sprintf("%s (%d)", p.Name, p.Port))
	}
	if want == "" {
		return corev1.ServicePort{}, usageErrorf("Service %s/%s has no TCP port to draw from", svc.Namespace, svc.Name)
	}
	return corev1.ServicePort{}, usageErrorf("Service %s/%s has no TCP port %q; --port takes one of: %s", svc.Namespace, svc.Name, want, strings.Join(names, ", "))
}

// ReadyEndpoints counts the endpoints kube-proxy may choose among anywhere.
func (s *Snapshot) ReadyEndpoints() int {
	n := 0
	for _, ep := range s.Endpoints {
		if ep.Ready || ep.Serving && ep.Terminating {
			n++
		}
	}
	return n
}

// Zone is a node's topology.kubernetes.io/zone label, or "".
func Zone(n *corev1.Node) string { return n.Labels[corev1.LabelTopologyZone] }

// NodeIP is a node's InternalIP, or "".
func NodeIP(n *corev1.Node) string {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}

// apiError turns an API failure into a UsageError when the fix is the
// user's: the cluster unreachable, or RBAC refusing a verb on a resource.
func apiError(err error, verb, resource, namespace string) error {
	where := "cluster-wide"
	if namespace != "" {
		where = "in namespace " + namespace
	}
	switch {
	case apierrors.IsForbidden(err):
		return usageErrorf("RBAC refused to %s %s %s (%v); bind the role in deploy/rbac/kubectl-omikuji.yaml to your user (docs/audit.md, \"The permissions it needs\")",
			verb, resource, where, err)
	case apierrors.IsUnauthorized(err):
		return usageErrorf("the cluster did not accept your credentials (%v); check kubectl config current-context and log in again", err)
	case unreachable(err):
		return usageErrorf("no cluster reachable: %v; check that kubectl get nodes works (kubectl config current-context, KUBECONFIG)", err)
	}
	return fmt.Errorf("%s %s %s: %w", verb, resource, where, err)
}

func unreachable(err error) bool {
	var ue *url.Error
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ue) || errors.As(err, &oe) || errors.As(err, &ne)
}
