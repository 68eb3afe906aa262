package kubeaudit

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// Every call a whole audit makes is in Permissions, and every permission is
// used: Permissions (and the role in deploy/rbac) is exactly what it needs.
func TestPermissionsAreTheCallsMade(t *testing.T) {
	node := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{corev1.LabelTopologyZone: "a"}},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.254.254.1"}}}}
	svc := corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "omikuji", Namespace: "ns"}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "omikuji"}, ClusterIP: "10.97.0.10", Type: corev1.ServiceTypeNodePort,
		Ports: []corev1.ServicePort{{Name: "http", Port: 8080, NodePort: 30081}}}}
	pod := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p1", Namespace: "ns"}, Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "omikuji", Image: "omikuji:dev"}}}}
	slice := discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "omikuji-x", Namespace: "ns", Labels: map[string]string{discoveryv1.LabelServiceName: "omikuji"}},
		AddressType: discoveryv1.AddressTypeIPv4, Ports: []discoveryv1.EndpointPort{{Name: new("http"), Port: new(int32(8081))}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.244.0.5"}, NodeName: new("n1"), TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "p1"}}}}
	cs := fake.NewClientset(&node, &svc, &pod, &slice)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kubelet(ctx, cs, func(p *corev1.Pod) {
		if p.Labels[LabelName] == PodAppName {
			p.Status.Phase = corev1.PodSucceeded
		}
	})
	c := Config{Target: Target{Namespace: "ns", Service: "omikuji"}, Draw: draw, Alpha: 0.001}
	_, err := Run(ctx, cs, c)
	var ue *UsageError
	if !errors.As(err, &ue) { // the fake's logs hold no report
		t.Fatalf("err %v", err)
	}
	c.Service = "nope"
	if _, err := Run(ctx, cs, c); err == nil {
		t.Fatal("no error for a missing Service")
	}
	cancel()
	time.Sleep(20 * time.Millisecond) // the fake kubelet's calls are not the audit's
	used := map[Permission]bool{}
	for _, a := range cs.Actions() {
		if a.GetVerb() == "update" && a.GetSubresource() == "status" {
			continue // the fake kubelet's (its list of pods is a call the audit makes too)
		}
		res := a.GetResource().Resource
		if a.GetSubresource() != "" {
			res += "/" + a.GetSubresource()
		}
		p := Permission{Group: a.GetResource().Group, Resource: res, Verb: a.GetVerb(), ClusterWide: a.GetNamespace() == ""}
		if !slices.Contains(Permissions, p) {
			t.Errorf("the audit calls %+v, which Permissions lacks", p)
		}
		used[p] = true
	}
	for _, p := range Permissions {
		if !used[p] {
			t.Errorf("Permissions grants %+v, which the audit never used", p)
		}
	}
}

// RBAC answers before existence: a namespace that does not exist (so has no
// binding) is named as missing, not as a refusal.
func TestMissingNamespaceBeforeRBAC(t *testing.T) {
	cs := fake.NewClientset()
	cs.PrependReactor("get", "services", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "services"}, "omikuji", errors.New(`User "a" cannot get resource "services"`))
	})
	_, err := Read(context.Background(), cs, Target{Namespace: "nowhere", Service: "omikuji"})
	if err == nil || !strings.Contains(err.Error(), `no namespace "nowhere"`) {
		t.Fatalf("err %v", err)
	}
	cs = fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns"}})
	cs.PrependReactor("get", "services", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "services"}, "omikuji", errors.New(`User "a" cannot get resource "services"`))
	})
	if _, err := Read(context.Background(), cs, Target{Namespace: "ns", Service: "omikuji"}); err == nil || !strings.Contains(err.Error(), "RBAC refused to get services in namespace ns") {
		t.Fatalf("err %v", err)
	}
}
