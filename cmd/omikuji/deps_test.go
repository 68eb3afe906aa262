package main

import (
	"os/exec"
	"strings"
	"testing"
)

// client-go and the Kubernetes API types belong to the kubectl plugin only:
// the omikuji binary (and so its image) links none of them.
func TestNoKubernetesPackages(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list -deps listed %d packages; the check would prove nothing", len(deps))
	}
	for _, p := range deps {
		if strings.HasPrefix(p, "k8s.io/") || strings.HasPrefix(p, "sigs.k8s.io/") {
			t.Errorf("the omikuji binary links %s; Kubernetes packages belong in cmd/kubectl-omikuji only", p)
		}
	}
}
