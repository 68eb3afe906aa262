// Package deploy builds omikuji's kustomize overlays as a library and checks
// the result offline: strict decoding into the Kubernetes API types, Pod
// Security "restricted", and the invariants that keep the odds. It lives in
// its own module so that the Kubernetes libraries never reach the omikuji
// binary.
package deploy

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// Kit is the output of one kustomize build, decoded into API types.
type Kit struct {
	Namespaces      []corev1.Namespace
	Deployments     []appsv1.Deployment
	Services        []corev1.Service
	NetworkPolicies []networkingv1.NetworkPolicy
	// The monitoring component's Prometheus Operator objects, decoded
	// strictly into the operator's own Go types.
	ServiceMonitors []monitoringv1.ServiceMonitor
	PrometheusRules []monitoringv1.PrometheusRule
	// DisruptionBudgets are the PodDisruptionBudgets, one per fortune.
	DisruptionBudgets []policyv1.PodDisruptionBudget
}

// Build runs kustomize on dir (a directory holding a kustomization.yaml)
// and strictly decodes every object: an unknown or misspelled field, or a
// kind the kit does not use, is an error naming the object.
func Build(dir string) (*Kit, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resources, err := k.Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	kit := &Kit{}
	for _, r := range resources.Resources() {
		doc, err := r.AsYAML()
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", r.GetKind(), r.GetName(), err)
		}
		if err := kit.add(r.GetApiVersion(), r.GetKind(), r.GetName(), doc); err != nil {
			return nil, err
		}
	}
	return kit, nil
}

// Decode strictly decodes a multi-document YAML stream, such as the output
// of `kubectl kustomize`, as Build decodes kustomize's output.
func Decode(stream []byte) (*Kit, error) {
	kit := &Kit{}
	for _, doc := range strings.Split("\n"+string(stream), "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var head struct {
			metav1.TypeMeta   `json:",inline"`
			metav1.ObjectMeta `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			return nil, err
		}
		if err := kit.add(head.APIVersion, head.Kind, head.Name, []byte(doc)); err != nil {
			return nil, err
		}
	}
	return kit, nil
}

// add decodes doc by its apiVersion and kind into the matching list.
func (kit *Kit) add(apiVersion, kind, name string, doc []byte) error {
	var err error
	switch gvk := apiVersion + " " + kind; gvk {
	case "v1 Namespace":
		err = decode(doc, &kit.Namespaces)
	case "apps/v1 Deployment":
		err = decode(doc, &kit.Deployments)
	case "v1 Service":
		err = decode(doc, &kit.Services)
	case "networking.k8s.io/v1 NetworkPolicy":
		err = decode(doc, &kit.NetworkPolicies)
	case "monitoring.coreos.com/v1 ServiceMonitor":
		err = decode(doc, &kit.ServiceMonitors)
	case "monitoring.coreos.com/v1 PrometheusRule":
		err = decode(doc, &kit.PrometheusRules)
	case "policy/v1 PodDisruptionBudget":
		err = decode(doc, &kit.DisruptionBudgets)
	default:
		err = fmt.Errorf("unexpected object (%s): the checks do not know it", gvk)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", kind, name, err)
	}
	return nil
}

// decode appends the strictly decoded doc to list. Errors name the field
// by its full path, as the API server's strict field validation does.
func decode[T any](doc []byte, list *[]T) error {
	js, err := yaml.YAMLToJSONStrict(doc) // rejects duplicate keys
	if err != nil {
		return fmt.Errorf("strict decoding: %w", err)
	}
	var v T
	strict, err := kjson.UnmarshalStrict(js, &v, kjson.DisallowUnknownFields)
	if err = errors.Join(append([]error{err}, strict...)...); err != nil {
		return fmt.Errorf("strict decoding: %w", err)
	}
	*list = append(*list, v)
	return nil
}
