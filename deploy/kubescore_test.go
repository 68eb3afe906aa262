package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

const (
	// kubeScore is built from the Go module proxy at this version, in its
	// own module graph: it does not build against this module's newer
	// Kubernetes libraries.
	kubeScore = "github.com/zegl/kube-score/cmd/kube-score@v1.20.0"
	// kube-score's grades: 1 critical, 5 warning, 7 almost OK, 10 OK.
	kubeScoreWarning = 5
)

// kubeScoreIgnored are the kube-score checks, by ID, that these manifests
// fail on purpose, each with why. Every other warning or critical finding
// fails the test; an entry here that no longer fires fails it too.
var kubeScoreIgnored = map[string]string{
	"container-image-pull-policy":         "tags are immutable (ECR IMMUTABLE, one per commit), so IfNotPresent always runs the image asked for; the local overlay's image is imported, never pulled (Never)",
	"deployment-replicas":                 "the replica counts are the odds: great-fortune and misfortune have one pod each by design (10 %)",
	"deployment-has-host-podantiaffinity": "topologySpreadConstraints on kubernetes.io/hostname spread the pods; a required anti-affinity would leave pods Pending on a single-node cluster",
	"service-type":                        "the local overlay is a NodePort on purpose: a single-node cluster has no cloud load balancer (eks is a LoadBalancer)",
}

// kubeScoreFlags narrow a check instead of ignoring it, each with why.
var kubeScoreFlags = map[string]string{
	// container-resources still checks the requests and the memory limit.
	"--ignore-container-cpu-limit": "no CPU limit on purpose: CFS throttling would only add latency to draws; the CPU request is set",
}

// TestKubeScore runs kube-score with its default checks on what each
// overlay builds, as `kube-score score` would on `kubectl kustomize`.
func TestKubeScore(t *testing.T) {
	// kube-score judges against the Kubernetes version the cluster runs.
	var cluster eksctlConfig
	doc, err := os.ReadFile("../infra/eksctl/cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(doc, &cluster); err != nil || cluster.Metadata.Version == "" {
		t.Fatalf("infra/eksctl/cluster.yaml: no metadata.version (%v)", err)
	}
	version := "v" + cluster.Metadata.Version
	bin := buildKubeScore(t)
	fired := map[string]bool{}
	for _, dir := range []string{local, eks} {
		t.Run(dir, func(t *testing.T) {
			for _, f := range runKubeScore(t, bin, version, dir) {
				fired[f.check] = true
				if _, ok := kubeScoreIgnored[f.check]; !ok {
					t.Errorf("kube-score %s: %s", f.check, f.detail)
				}
			}
		})
	}
	for id := range kubeScoreIgnored {
		if !fired[id] {
			t.Errorf("kube-score check %s is ignored but no longer fires: remove it from kubeScoreIgnored", id)
		}
	}
}

var (
	kubeScoreOnce sync.Once
	kubeScoreBin  string
	kubeScoreErr  error
)

// buildKubeScore installs the pinned kube-score into a temporary directory.
func buildKubeScore(t *testing.T) string {
	t.Helper()
	kubeScoreOnce.Do(func() {
		dir, err := os.MkdirTemp("", "omikuji-kube-score-")
		if err != nil {
			kubeScoreErr = err
			return
		}
		// go test puts its own toolchain first on PATH.
		cmd := exec.Command("go", "install", kubeScore)
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "CGO_ENABLED=0", "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			kubeScoreErr = fmt.Errorf("go install %s: %v\n%s", kubeScore, err, out)
			return
		}
		kubeScoreBin = filepath.Join(dir, "kube-score")
	})
	if kubeScoreErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(kubeScoreErr)
		}
		t.Skipf("kube-score could not be built from the Go module proxy: %v", kubeScoreErr)
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(kubeScoreBin)) })
	return kubeScoreBin
}

type kubeScoreFinding struct{ check, detail string }

// runKubeScore scores the overlay's kustomize build and returns every
// warning and critical finding that is not skipped.
func runKubeScore(t *testing.T, bin, version, dir string) []kubeScoreFinding {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		t.Fatal(err)
	}
	manifests, err := resources.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"score", "--output-format", "json", "--output-version", "v2", "--kubernetes-version", version}
	for flag := range kubeScoreFlags {
		args = append(args, flag)
	}
	cmd := exec.Command(bin, append(args, "-")...)
	cmd.Stdin = bytes.NewReader(manifests)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output() // exits 1 when a critical check fails; the JSON says which
	var scored []struct {
		ObjectName string `json:"object_name"`
		Checks     []struct {
			Check struct {
				ID string `json:"id"`
			} `json:"check"`
			Grade    int  `json:"grade"`
			Skipped  bool `json:"skipped"`
			Comments []struct {
				Path, Summary, Description string
			} `json:"comments"`
		} `json:"checks"`
	}
	if jerr := json.Unmarshal(out, &scored); jerr != nil || len(scored) == 0 {
		t.Fatalf("kube-score: %v, %v\n%s%s", err, jerr, out, stderr.String())
	}
	var findings []kubeScoreFinding
	for _, obj := range scored {
		for _, c := range obj.Checks {
			if c.Skipped || c.Grade > kubeScoreWarning {
				continue
			}
			var comments []string
			for _, cm := range c.Comments {
				comments = append(comments, strings.TrimSpace(cm.Path+" "+cm.Summary+": "+cm.Description))
			}
			findings = append(findings, kubeScoreFinding{c.Check.ID, fmt.Sprintf("%s: grade %d (%s)", obj.ObjectName, c.Grade, strings.Join(comments, "; "))})
		}
	}
	slices.SortFunc(findings, func(a, b kubeScoreFinding) int { return strings.Compare(a.check+a.detail, b.check+b.detail) })
	return findings
}
