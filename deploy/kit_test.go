package deploy

import (
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/omikuji/omikuji/internal/fortune"
)

const (
	base  = "kustomize/base"
	local = "kustomize/overlays/local"
	eks   = "kustomize/overlays/eks"
	// The eks overlay's image is a placeholder that `make aws-up` replaces
	// through a kustomize images entry with exactly this name.
	eksImageName = "ACCOUNT.dkr.ecr.REGION.amazonaws.com/omikuji/fortune"
)

func build(t *testing.T, dir string) *Kit {
	t.Helper()
	kit, err := Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	return kit
}

func TestEveryKustomizationIsSound(t *testing.T) {
	for _, dir := range []string{base, local, eks, "testdata/components", "testdata/aws-up"} {
		t.Run(dir, func(t *testing.T) {
			kit := build(t, dir)
			if len(kit.Deployments) != len(fortune.Catalogue) {
				t.Fatalf("%d Deployments, want %d", len(kit.Deployments), len(fortune.Catalogue))
			}
			for _, err := range Check(kit) {
				t.Error(err)
			}
		})
	}
}

func TestLocalOverlayRunsTheImportedImageOnANodePort(t *testing.T) {
	kit := build(t, local)
	if got := kit.Services[0].Spec.Type; got != corev1.ServiceTypeNodePort {
		t.Errorf("Service type %s, want NodePort", got)
	}
	for _, d := range kit.Deployments {
		c := d.Spec.Template.Spec.Containers[0]
		if c.Image != "omikuji:dev" || c.ImagePullPolicy != corev1.PullNever {
			t.Errorf("Deployment %s: image %q pull %q, want omikuji:dev pull Never", d.Name, c.Image, c.ImagePullPolicy)
		}
	}
}

func TestEKSOverlayUsesECRAndAnNLBWithInstanceTargets(t *testing.T) {
	kit := build(t, eks)
	s := kit.Services[0]
	if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
		t.Errorf("Service type %s, want LoadBalancer", s.Spec.Type)
	}
	// The AWS Load Balancer Controller's class, so that the legacy cloud
	// provider (which opens the nodePort to 0.0.0.0/0) never takes it.
	if c := s.Spec.LoadBalancerClass; c == nil || *c != "service.k8s.aws/nlb" {
		t.Errorf("Service loadBalancerClass %v, want service.k8s.aws/nlb", c)
	}
	for k, v := range map[string]string{
		"service.beta.kubernetes.io/aws-load-balancer-nlb-target-type":                     "instance",
		"service.beta.kubernetes.io/aws-load-balancer-scheme":                              "internet-facing",
		"service.beta.kubernetes.io/aws-load-balancer-attributes":                          "load_balancing.cross_zone.enabled=true",
		"service.beta.kubernetes.io/aws-load-balancer-manage-backend-security-group-rules": "true",
	} {
		if s.Annotations[k] != v {
			t.Errorf("Service annotation %s=%q, want %q", k, s.Annotations[k], v)
		}
	}
	// Security groups the controller makes itself: naming others would turn
	// off its backend rules (the nodes would need hand-made ones).
	for _, k := range []string{"service.beta.kubernetes.io/aws-load-balancer-security-groups", "service.beta.kubernetes.io/aws-load-balancer-type"} {
		if v, ok := s.Annotations[k]; ok {
			t.Errorf("Service annotation %s=%q: leave it out", k, v)
		}
	}
	for _, d := range kit.Deployments {
		c := d.Spec.Template.Spec.Containers[0]
		if !strings.HasPrefix(c.Image, eksImageName+":") {
			t.Errorf("Deployment %s: image %q, want the placeholder %s:…", d.Name, c.Image, eksImageName)
		}
		if c.ImagePullPolicy == corev1.PullNever {
			t.Errorf("Deployment %s: imagePullPolicy Never on EKS", d.Name)
		}
	}
}

// testdata/aws-up is what `make aws-up` does: a kustomization on top of
// overlays/eks that sets the real registry and tag.
func TestAWSUpCanSetTheRealImage(t *testing.T) {
	for _, d := range build(t, "testdata/aws-up").Deployments {
		if got, want := d.Spec.Template.Spec.Containers[0].Image, "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/omikuji/fortune:0123abc"; got != want {
			t.Errorf("Deployment %s: image %q, want %q", d.Name, got, want)
		}
	}
}

// testdata/components adds both optional Prometheus components to eks.
// The annotations point Prometheus at the pods' metrics port, where the
// shipped server answers the path (Check does the same for the monitoring
// component's ServiceMonitor).
func TestPrometheusComponents(t *testing.T) {
	kit := build(t, "testdata/components")
	for _, d := range kit.Deployments {
		a := d.Spec.Template.Annotations
		if a["prometheus.io/scrape"] != "true" {
			t.Errorf("Deployment %s: no prometheus.io/scrape annotation", d.Name)
		}
		cp, ok := resolvePort(d.Spec.Template.Spec.Containers[0], intstr.FromString("metrics"))
		if !ok || a["prometheus.io/port"] != strconv.Itoa(int(cp.ContainerPort)) {
			t.Errorf("Deployment %s: prometheus.io/port %q is not the metrics containerPort", d.Name, a["prometheus.io/port"])
		}
		if code, err := MetricsStatus(a["prometheus.io/path"]); err != nil || code != http.StatusOK {
			t.Errorf("Deployment %s: prometheus.io/path %q answers %d (%v)", d.Name, a["prometheus.io/path"], code, err)
		}
	}
}

// Each testdata/broken/<case> breaks one rule on top of overlays/local and
// names, in want.txt, the message that must report it.
func TestBrokenFixturesFailWithAReadableMessage(t *testing.T) {
	cases, err := os.ReadDir("testdata/broken")
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 10 {
		t.Fatalf("only %d broken fixtures", len(cases))
	}
	for _, c := range cases {
		t.Run(c.Name(), func(t *testing.T) {
			dir := filepath.Join("testdata/broken", c.Name())
			want, err := os.ReadFile(filepath.Join(dir, "want.txt"))
			if err != nil {
				t.Fatal(err)
			}
			wantText := strings.TrimSpace(string(want))
			if wantText == "" {
				t.Fatal("want.txt is empty")
			}
			kit, err := Build(dir)
			var errs []error
			if err != nil {
				errs = []error{err}
			} else {
				errs = Check(kit)
			}
			if len(errs) == 0 {
				t.Fatalf("no check failed; want an error containing %q", wantText)
			}
			if !strings.Contains(errors.Join(errs...).Error(), wantText) {
				t.Fatalf("no error contains %q; got:\n%v", wantText, errors.Join(errs...))
			}
			t.Logf("reported: %v", errors.Join(errs...))
		})
	}
}

// The real-cluster tests and people apply the overlays with `kubectl apply
// -k`, whose kustomize is older than the library: it must build the same
// objects, so no overlay relies on a feature kubectl lacks.
func TestKubectlBuildsTheSameObjects(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("kubectl not found; CI must run this test (install kubectl)")
		}
		t.Skip("kubectl not found; install it to compare its kustomize with the library")
	}
	for _, dir := range []string{local, eks, "testdata/components"} {
		t.Run(dir, func(t *testing.T) {
			out, err := exec.Command(kubectl, "kustomize", dir).Output()
			if err != nil {
				t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderrOf(err))
			}
			got, err := Decode(out)
			if err != nil {
				t.Fatal(err)
			}
			// The two order objects differently (kubectl's kustomize still
			// sorts by kind); the objects themselves must be equal.
			want := build(t, dir)
			sortByName(got)
			sortByName(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("kubectl kustomize %s differs from the kustomize library's build", dir)
			}
			if len(got.Deployments) != len(fortune.Catalogue) || len(got.Services) != 1 {
				t.Errorf("kubectl kustomize %s: %d Deployments, %d Services", dir, len(got.Deployments), len(got.Services))
			}
		})
	}
}

func stderrOf(err error) string {
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return string(exitErr.Stderr)
	}
	return ""
}

func sortByName(kit *Kit) {
	byName := func(a, b metav1.Object) int { return strings.Compare(a.GetName(), b.GetName()) }
	slices.SortFunc(kit.Deployments, func(a, b appsv1.Deployment) int { return byName(&a, &b) })
	slices.SortFunc(kit.Services, func(a, b corev1.Service) int { return byName(&a, &b) })
	slices.SortFunc(kit.NetworkPolicies, func(a, b networkingv1.NetworkPolicy) int { return byName(&a, &b) })
	slices.SortFunc(kit.DisruptionBudgets, func(a, b policyv1.PodDisruptionBudget) int { return byName(&a, &b) })
	slices.SortFunc(kit.ServiceMonitors, func(a, b monitoringv1.ServiceMonitor) int { return byName(&a, &b) })
	slices.SortFunc(kit.PrometheusRules, func(a, b monitoringv1.PrometheusRule) int { return byName(&a, &b) })
}
