package deploy

import (
	"bytes"
	"os"
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/omikuji/omikuji/internal/kubeaudit"
)

// The plugin's role grants exactly the calls the plugin makes: namespaced
// ones in omikuji-audit (bound per namespace), cluster-wide ones in
// omikuji-audit-cluster.
func TestPluginRoleIsWhatThePluginCalls(t *testing.T) {
	b, err := os.ReadFile("rbac/kubectl-omikuji.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var granted []kubeaudit.Permission
	for _, doc := range bytes.Split(b, []byte("\n---\n")) {
		var role rbacv1.ClusterRole
		if err := yaml.UnmarshalStrict(doc, &role); err != nil {
			t.Fatal(err)
		}
		if role.Kind != "ClusterRole" {
			t.Fatalf("%s %s: want only ClusterRoles", role.Kind, role.Name)
		}
		clusterWide := role.Name == "omikuji-audit-cluster"
		if !clusterWide && role.Name != "omikuji-audit" {
			t.Fatalf("unexpected role %s", role.Name)
		}
		for _, r := range role.Rules {
			if len(r.ResourceNames) > 0 || len(r.NonResourceURLs) > 0 {
				t.Errorf("%s: rule %+v: resource names or URLs are not what the plugin needs", role.Name, r)
			}
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					for _, v := range r.Verbs {
						granted = append(granted, kubeaudit.Permission{Group: g, Resource: res, Verb: v, ClusterWide: clusterWide})
					}
				}
			}
		}
	}
	for _, g := range granted {
		if !slices.Contains(kubeaudit.Permissions, g) {
			t.Errorf("the role grants %+v, which the plugin does not call", g)
		}
	}
	for _, p := range kubeaudit.Permissions {
		if !slices.Contains(granted, p) {
			t.Errorf("the plugin calls %+v, which the role does not grant", p)
		}
	}
}
