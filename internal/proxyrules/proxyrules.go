// Package proxyrules works out, from a Service, its EndpointSlices and a
// node, which endpoints that node's kube-proxy chooses among for a
// connection from a pod on the node, and with what weights. It mirrors
// kube-proxy's own rules (k8s.io/kubernetes pkg/proxy: endpointslicecache.go
// for an endpoint's conditions and hints, topology.go's CategorizeEndpoints
// for ready, serving-terminating, Local policies and topology hints, and the
// proxiers' external-traffic chains for pod-to-NodePort traffic). It is a
// pure function of the objects it is given: no client, no clock.
package proxyrules

import (
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// A Path is how a pod on the node reaches the Service.
type Path string

// The paths the audit draws through.
const (
	ClusterIP Path = "ClusterIP" // the Service's cluster IP and port
	NodePort  Path = "NodePort"  // the node's own IP and the Service's node port
)

// Topology modes, as kube-proxy names them.
const (
	TopologyNone     = ""
	TopologySameZone = corev1.ServiceTrafficDistributionPreferSameZone
	TopologySameNode = corev1.ServiceTrafficDistributionPreferSameNode
)

// An Endpoint is one endpoint as kube-proxy sees it.
type Endpoint struct {
	Pod         string // targetRef's name when it is a Pod, else ""
	IP          string
	Node        string // nodeName, "" when unset
	Zone        string // the endpoint's zone, "" when unset
	Ready       bool
	Serving     bool
	Terminating bool
	ForZones    []string
	ForNodes    []string
}

// An Expectation is what one node's kube-proxy does for one path.
type Expectation struct {
	Path      Path
	Endpoints []Endpoint // the ones it chooses among, each equally likely
	// Policy is the traffic policy that applies: "Cluster" or "Local".
	Policy string
	// Topology is the topology mode the hints select ("" for none).
	Topology string
	// Terminating says the endpoints are serving-terminating ones, kube-proxy's
	// fallback when no ready endpoint is usable.
	Terminating bool
	// Sticky says sessionAffinity is ClientIP: one client reaches one of
	// Endpoints, every time, rather than all of them at random.
	Sticky bool
	// Rule says in plain words why these endpoints: which rules applied.
	Rule string
}

// Pods returns the names of the expected endpoints' pods.
func (e Expectation) Pods() []string {
	var pods []string
	for _, ep := range e.Endpoints {
		pods = append(pods, ep.Pod)
	}
	return pods
}

// PortEndpoints lists the endpoints behind port of the Service, as
// kube-proxy's EndpointSlice cache builds them: only slices that carry a port
// of that name, endpoints without an address skipped, one per address (the
// first slice's wins), conditions defaulted as kube-proxy defaults them (a
// missing ready or serving means true, a missing terminating false).
func PortEndpoints(port corev1.ServicePort, eps []discoveryv1.EndpointSlice) []Endpoint {
	var out []Endpoint
	seen := map[string]bool{}
	for _, s := range eps {
		if s.AddressType != discoveryv1.AddressTypeIPv4 && s.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		if !slices.ContainsFunc(s.Ports, func(p discoveryv1.EndpointPort) bool {
			return p.Name != nil && *p.Name == port.Name && p.Port != nil
		}) {
			continue
		}
		for _, e := range s.Endpoints {
			if len(e.Addresses) == 0 {
				continue
			}
			ip := e.Addresses[0]
			if a, err := netip.ParseAddr(ip); err == nil {
				ip = a.String()
			}
			if seen[ip] {
				continue
			}
			seen[ip] = true
			ep := Endpoint{
				IP:          ip,
				Ready:       e.Conditions.Ready == nil || *e.Conditions.Ready,
				Serving:     e.Conditions.Serving == nil || *e.Conditions.Serving,
				Terminating: e.Conditions.Terminating != nil && *e.Conditions.Terminating,
			}
			if e.TargetRef != nil && e.TargetRef.Kind == "Pod" {
				ep.Pod = e.TargetRef.Name
			}
			if e.NodeName != nil {
				ep.Node = *e.NodeName
			}
			if e.Zone != nil {
				ep.Zone = *e.Zone
			}
			if e.Hints != nil {
				for _, z := range e.Hints.ForZones {
					ep.ForZones = append(ep.ForZones, z.Name)
				}
				for _, n := range e.Hints.ForNodes {
					ep.ForNodes = append(ep.ForNodes, n.Name)
				}
			}
			out = append(out, ep)
		}
	}
	return out
}

// Expect is what the kube-proxy of node (named nodeName, in zone) does with
// a connection from a pod on that node to the Service's port through path.
//
// Pod-to-ClusterIP traffic follows internalTrafficPolicy. Pod-to-NodePort
// traffic on the pod's own node is "short-circuited" to the Cluster policy's
// endpoints even with externalTrafficPolicy Local (kube-proxy treats
// traffic from local pods like traffic that went out to a load balancer and
// came back), when kube-proxy can tell pod traffic apart (its local-traffic
// detector: clusterCIDR or the like, set on every common cluster).
func Expect(svc *corev1.Service, endpoints []Endpoint, nodeName, zone string, path Path) Expectation {
	e := Expectation{Path: path, Policy: "Cluster", Sticky: svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP}
	internalLocal := svc.Spec.InternalTrafficPolicy != nil && *svc.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal
	why := ""
	switch {
	case path == ClusterIP && internalLocal:
		e.Policy = "Local"
		e.Endpoints, e.Terminating = localEndpoints(endpoints, nodeName)
		why = "internalTrafficPolicy Local: the ready endpoints on this node only"
	default:
		e.Endpoints, e.Topology, e.Terminating = clusterEndpoints(endpoints, nodeName, zone)
		switch e.Topology {
		case TopologySameNode:
			why = "every ready endpoint has a node hint and one is for this node: the endpoints hinted for " + nodeName
		case TopologySameZone:
			why = "every ready endpoint has a zone hint and one is for this node's zone: the endpoints hinted for " + zone
		default:
			why = "every ready endpoint of the Service" + noTopologyReason(endpoints, nodeName, zone)
		}
		if path == NodePort && svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
			why = "externalTrafficPolicy Local does not apply to a pod on the node (kube-proxy sends it to the Cluster policy's endpoints): " + why
		}
	}
	if e.Terminating {
		why += "; none is ready, so the serving, terminating ones"
	}
	if e.Sticky {
		why += "; sessionAffinity ClientIP: one client sticks to one of them"
	}
	e.Rule = why
	return e
}

// clusterEndpoints mirrors the Cluster half of kube-proxy's
// CategorizeEndpoints: ready endpoints the topology mode allows, else the
// serving-terminating ones (topology ignored).
func clusterEndpoints(all []Endpoint, nodeName, zone string) ([]Endpoint, string, bool) {
	mode := topologyMode(all, nodeName, zone)
	var eps []Endpoint
	for _, ep := range all {
		if ep.Ready && availableFor(ep, mode, nodeName, zone) {
			eps = append(eps, ep)
		}
	}
	if len(eps) > 0 {
		return eps, mode, false
	}
	for _, ep := range all {
		if ep.Serving && ep.Terminating {
			eps = append(eps, ep)
		}
	}
	return eps, TopologyNone, len(eps) > 0
}

// localEndpoints mirrors the Local half: the node's own ready endpoints,
// else its serving-terminating ones.
func localEndpoints(all []Endpoint, nodeName string) ([]Endpoint, bool) {
	var ready, terminating []Endpoint
	for _, ep := range all {
		if ep.Node != nodeName || nodeName == "" {
			continue
		}
		if ep.Ready {
			ready = append(ready, ep)
		} else if ep.Serving && ep.Terminating {
			terminating = append(terminating, ep)
		}
	}
	if len(ready) > 0 {
		return ready, false
	}
	return terminating, len(terminating) > 0
}

// topologyMode mirrors kube-proxy's topologyModeFromHints: PreferSameNode
// when every ready endpoint has a node hint and one names this node; else
// PreferSameZone when every ready endpoint has a zone hint and one names
// this node's zone; else none. The Service's trafficDistribution is not
// read here: the EndpointSlice controller turns it into hints, and kube-proxy
// follows the hints.
func topologyMode(all []Endpoint, nodeName, zone string) string {
	anyReady, allNode, forNode, allZone, forZone := false, true, false, true, false
	for _, ep := range all {
		if !ep.Ready {
			continue
		}
		anyReady = true
		if len(ep.ForNodes) == 0 {
			allNode = false
		} else if slices.Contains(ep.ForNodes, nodeName) {
			forNode = true
		}
		if len(ep.ForZones) == 0 {
			allZone = false
		} else if slices.Contains(ep.ForZones, zone) {
			forZone = true
		}
	}
	switch {
	case !anyReady:
		return TopologyNone
	case allNode && forNode:
		return TopologySameNode
	case allZone && forZone:
		return TopologySameZone
	}
	return TopologyNone
}

func availableFor(ep Endpoint, mode, nodeName, zone string) bool {
	switch mode {
	case TopologySameNode:
		return slices.Contains(ep.ForNodes, nodeName)
	case TopologySameZone:
		return slices.Contains(ep.ForZones, zone)
	}
	return true
}

// noTopologyReason says why no topology mode applies when some endpoint has
// hints: the fallback kube-proxy takes.
func noTopologyReason(all []Endpoint, nodeName, zone string) string {
	hinted, unhinted := 0, 0
	for _, ep := range all {
		if !ep.Ready {
			continue
		}
		if len(ep.ForZones) > 0 || len(ep.ForNodes) > 0 {
			hinted++
		} else {
			unhinted++
		}
	}
	switch {
	case hinted == 0:
		return ""
	case unhinted > 0:
		return fmt.Sprintf(" (topology hints ignored: %d of %d ready endpoints have none)", unhinted, hinted+unhinted)
	case zone == "":
		return " (topology hints ignored: the node has no topology.kubernetes.io/zone label)"
	}
	return fmt.Sprintf(" (topology hints ignored: none is for node %s or zone %s)", nodeName, zone)
}
