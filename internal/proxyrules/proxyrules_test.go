package proxyrules

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// ep is an endpoint of pod on node in zone; opts adjust it.
func ep(pod, node, zone string, opts ...func(*discoveryv1.Endpoint)) discoveryv1.Endpoint {
	e := discoveryv1.Endpoint{
		Addresses: []string{"10.0.0." + strings.TrimPrefix(pod, "p")},
		NodeName:  &node,
		Zone:      &zone,
		TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: pod},
	}
	for _, o := range opts {
		o(&e)
	}
	return e
}

func notReady(e *discoveryv1.Endpoint) { e.Conditions.Ready = ptr(false) }
func terminating(serving bool) func(*discoveryv1.Endpoint) {
	return func(e *discoveryv1.Endpoint) {
		e.Conditions.Ready, e.Conditions.Serving, e.Conditions.Terminating = ptr(false), ptr(serving), ptr(true)
	}
}
func zoneHint(zones ...string) func(*discoveryv1.Endpoint) {
	return func(e *discoveryv1.Endpoint) {
		if e.Hints == nil {
			e.Hints = &discoveryv1.EndpointHints{}
		}
		for _, z := range zones {
			e.Hints.ForZones = append(e.Hints.ForZones, discoveryv1.ForZone{Name: z})
		}
	}
}
func nodeHint(nodes ...string) func(*discoveryv1.Endpoint) {
	return func(e *discoveryv1.Endpoint) {
		if e.Hints == nil {
			e.Hints = &discoveryv1.EndpointHints{}
		}
		for _, n := range nodes {
			e.Hints.ForNodes = append(e.Hints.ForNodes, discoveryv1.ForNode{Name: n})
		}
	}
}

func ptr[T any](v T) *T { return &v }

func slice(eps ...discoveryv1.Endpoint) discoveryv1.EndpointSlice {
	return discoveryv1.EndpointSlice{
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(8081))}},
		Endpoints:   eps,
	}
}

var port = corev1.ServicePort{Name: "http", Port: 8080, NodePort: 30081}

func service(mod func(*corev1.ServiceSpec)) *corev1.Service {
	s := &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{port},
		ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster, InternalTrafficPolicy: ptr(corev1.ServiceInternalTrafficPolicyCluster)}}
	if mod != nil {
		mod(&s.Spec)
	}
	return s
}

// Two nodes in two zones: p1, p2 on n1 (zone a), p3 on n2 (zone b).
func TestExpect(t *testing.T) {
	iTPLocal := func(s *corev1.ServiceSpec) { s.InternalTrafficPolicy = ptr(corev1.ServiceInternalTrafficPolicyLocal) }
	eTPLocal := func(s *corev1.ServiceSpec) { s.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal }
	affinity := func(s *corev1.ServiceSpec) { s.SessionAffinity = corev1.ServiceAffinityClientIP }
	for _, tc := range []struct {
		name       string
		svc        func(*corev1.ServiceSpec)
		eps        []discoveryv1.Endpoint
		node, zone string
		path       Path
		want       []string
		topology   string
		term       bool
		rule       string
	}{
		{name: "cluster: every ready endpoint",
			eps:  []discoveryv1.Endpoint{ep("p1", "n1", "a"), ep("p2", "n1", "a"), ep("p3", "n2", "b")},
			node: "n2", zone: "b", path: ClusterIP, want: []string{"p1", "p2", "p3"}, rule: "every ready endpoint"},
		{name: "not ready and terminating endpoints are left out while one is ready",
			eps:  []discoveryv1.Endpoint{ep("p1", "n1", "a"), ep("p2", "n1", "a", notReady), ep("p3", "n2", "b", terminating(true))},
			node: "n1", zone: "a", path: ClusterIP, want: []string{"p1"}},
		{name: "no ready endpoint: serving terminating ones",
			eps:  []discoveryv1.Endpoint{ep("p1", "n1", "a", terminating(true)), ep("p2", "n1", "a", terminating(false)), ep("p3", "n2", "b", notReady)},
			node: "n2", zone: "b", path: ClusterIP, want: []string{"p1"}, term: true, rule: "serving, terminating"},
		{name: "internalTrafficPolicy Local: own node only",
			svc: iTPLocal, eps: []discoveryv1.Endpoint{ep("p1", "n1", "a"), ep("p2", "n1", "a"), ep("p3", "n2", "b")},
			node: "n1", zone: "a", path: ClusterIP, want: []string{"p1", "p2"}, rule: "internalTrafficPolicy Local"},
		{name: "internalTrafficPolicy Local: no local pod, nothing",
			svc: iTPLocal, eps: []discoveryv1.Endpoint{ep("p1", "n1", "a"), ep("p2", "n1", "a")},
			node: "n2", zone: "b", path: ClusterIP, want: nil},
		{name: "internalTrafficPolicy Local: local serving-terminating when no local one is ready",
			svc: iTPLocal, eps: []discoveryv1.Endpoint{ep("p1", "n1", "a", terminating(true)), ep("p3", "n2", "b")},
			node: "n1", zone: "a", path: ClusterIP, want: []string{"p1"}, term: true},
		{name: "internalTrafficPolicy Local does not apply to the NodePort",
			svc: iTPLocal, eps: []discoveryv1.Endpoint{ep("p1", "n1", "a"), ep("p3", "n2", "b")},
			node: "n1", zone: "a", path: NodePort, want: []string{"p1", "p3"}},
		{name: "externalTrafficPolicy Local: a pod to its node's NodePort gets the cluster's endpoints",
			svc: eTPLocal, eps: []discoveryv1.Endpoint{ep("p1", "n1", "a"), ep("p3", "n2", "b")},
			node: "n2", zone: "b", path: NodePort, want: []string{"p1", "p3"}, rule: "externalTrafficPolicy Local does not apply to a pod"},
		{name: "zone hints: this zone's endpoints",
			eps:  []discoveryv1.Endpoint{ep("p1", "n1", "a", zoneHint("a")), ep("p2", "n1", "a", zoneHint("a")), ep("p3", "n2", "b", zoneHint("b"))},
			node: "n2", zone: "b", path: ClusterIP, want: []string{"p3"}, topology: TopologySameZone},
		{name: "zone hints apply to the NodePort too",
			eps:  []discoveryv1.Endpoint{ep("p1", "n1", "a", zoneHint("a")), ep("p3", "n2", "b", zoneHint("b"))},
			node: "n1", zone: "a", path: NodePort, want: []string{"p1"}, topology: TopologySameZone},
		{name: "a ready endpoint without a hint: hints ignored",
			eps:  []discoveryv1.Endpoint{ep("p1", "n1", "a", zoneHint("a")), ep("p2", "n1", "a"), ep("p3", "n2", "b", zoneHint("b"))},
			node: "n2", zone: "b", path: ClusterIP, want: []string{"p1", "p2", "p3"}, rule: "1 of 3 ready endpoints have none"},
		{name: "a not-ready endpoint without a hint does not cancel the hints",
			eps:  []discoveryv1.Endpoint{ep("p1", "n1", "a", zoneHint("a")), ep("p2", "n1", "a", notReady), ep("p3", "n2", "b", zoneHint("b"))},
			node: "n1", zone: "a", path: ClusterIP, want: []string{"p1"}, topology: TopologySameZone},
		{name: "no hint for this zone: hints ignored",
			eps:  []discoveryv1.Endpoint{ep("p1", "n1", "a", zoneHint("a")), ep("p3", "n2", "b", zoneHint("a"))},
			node: "n2", zone: "b", path: ClusterIP, want: []string{"p1", "p3"}, rule: "none is for node n2 or zone b"},
		{name: "node without a zone label: zone hints ignored",
			eps:  []discoveryv1.Endpoint{ep("p1", "n1", "a", zoneHint("a")), ep("p3", "n2", "b", zoneHint("b"))},
			node: "n3", zone: "", path: ClusterIP, want: []string{"p1", "p3"}, rule: "no topology.kubernetes.io/zone label"},
		{name: "node hints: this node's endpoints",
			eps:  []discoveryv1.Endpoint{ep("p1", "n1", "a", zoneHint("a"), nodeHint("n1")), ep("p2", "n1", "a", zoneHint("a"), nodeHint("n1")), ep("p3", "n2", "b", zoneHint("b"), nodeHint("n2"))},
			node: "n1", zone: "a", path: ClusterIP, want: []string{"p1", "p2"}, topology: TopologySameNode},
		{name: "node hints, none for this node: falls back to the zone hints",
			eps:  []discoveryv1.Endpoint{ep("p1", "n1", "a", zoneHint("a"), nodeHint("n1")), ep("p3", "n2", "b", zoneHint("a"), nodeHint("n2"))},
			node: "n3", zone: "a", path: ClusterIP, want: []string{"p1", "p3"}, topology: TopologySameZone},
		{name: "hints name endpoints, but none of them is ready: terminating, topology off",
			eps:  []discoveryv1.Endpoint{ep("p1", "n1", "a", zoneHint("a"), terminating(true)), ep("p3", "n2", "b", zoneHint("b"), terminating(true))},
			node: "n1", zone: "a", path: ClusterIP, want: []string{"p1", "p3"}, term: true},
		{name: "sessionAffinity ClientIP: sticky over every ready endpoint",
			svc: affinity, eps: []discoveryv1.Endpoint{ep("p1", "n1", "a"), ep("p3", "n2", "b")},
			node: "n1", zone: "a", path: ClusterIP, want: []string{"p1", "p3"}, rule: "sessionAffinity ClientIP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := service(tc.svc)
			e := Expect(svc, PortEndpoints(port, []discoveryv1.EndpointSlice{slice(tc.eps...)}), tc.node, tc.zone, tc.path)
			if got := e.Pods(); !slices.Equal(got, tc.want) {
				t.Errorf("pods %v, want %v (rule: %s)", got, tc.want, e.Rule)
			}
			if e.Topology != tc.topology || e.Terminating != tc.term {
				t.Errorf("topology %q terminating %v, want %q %v", e.Topology, e.Terminating, tc.topology, tc.term)
			}
			if e.Sticky != (svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP) {
				t.Errorf("sticky %v", e.Sticky)
			}
			if !strings.Contains(e.Rule, tc.rule) {
				t.Errorf("rule %q lacks %q", e.Rule, tc.rule)
			}
		})
	}
}

func TestPortEndpoints(t *testing.T) {
	other := slice(ep("p9", "n1", "a"))
	other.Ports[0].Name = ptr("metrics")
	fqdn := slice(ep("p8", "n1", "a"))
	fqdn.AddressType = discoveryv1.AddressTypeFQDN
	dup := slice(ep("p1", "n2", "b"), discoveryv1.Endpoint{Conditions: discoveryv1.EndpointConditions{}})
	got := PortEndpoints(port, []discoveryv1.EndpointSlice{slice(ep("p1", "n1", "a"), ep("p2", "n1", "a", notReady)), other, fqdn, dup})
	if len(got) != 2 {
		t.Fatalf("endpoints %+v, want p1 and p2 only (a port of another name, an FQDN slice, a duplicate address and no address left out)", got)
	}
	if p := got[0]; p.Pod != "p1" || p.Node != "n1" || !p.Ready || !p.Serving || p.Terminating || p.Zone != "a" {
		t.Errorf("p1 = %+v: missing conditions default to ready and serving, the first slice's copy wins", p)
	}
	if p := got[1]; p.Ready || !p.Serving {
		t.Errorf("p2 = %+v: ready false, serving missing (true)", p)
	}
}
