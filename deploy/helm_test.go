package deploy

import (
	"os"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// autoscalerValues is the part of the cluster-autoscaler chart's values
// (chart 9.59.0) that deploy/helm/cluster-autoscaler-values.yaml sets, with
// the chart's key names. Decoding is strict: a key the chart does not have
// (a typo, or a key moved between chart versions) fails the test instead of
// being silently ignored by helm. Add keys here, from the chart's
// values.yaml, before setting them.
type autoscalerValues struct {
	CloudProvider string `json:"cloudProvider"`
	AutoDiscovery struct {
		ClusterName string `json:"clusterName"`
	} `json:"autoDiscovery"`
	AWSRegion string `json:"awsRegion"`
	Image     struct {
		Repository string `json:"repository"`
		Tag        string `json:"tag"`
	} `json:"image"`
	FullnameOverride string `json:"fullnameOverride"`
	RBAC             struct {
		ServiceAccount struct {
			Create      bool              `json:"create"`
			Name        string            `json:"name"`
			Annotations map[string]string `json:"annotations"`
		} `json:"serviceAccount"`
	} `json:"rbac"`
	ExtraArgs                map[string]any              `json:"extraArgs"`
	Resources                corev1.ResourceRequirements `json:"resources"`
	SecurityContext          corev1.PodSecurityContext   `json:"securityContext"`
	ContainerSecurityContext corev1.SecurityContext      `json:"containerSecurityContext"`
}

// The Pod Identity association that infra/eksctl/cluster.yaml creates.
type eksctlConfig struct {
	Metadata struct {
		Version string `json:"version"`
	} `json:"metadata"`
	IAM struct {
		PodIdentityAssociations []struct {
			Namespace          string `json:"namespace"`
			ServiceAccountName string `json:"serviceAccountName"`
		} `json:"podIdentityAssociations"`
	} `json:"iam"`
}

func strictYAML(t *testing.T, path string, v any) {
	t.Helper()
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	strict, err := kjson.UnmarshalStrict(js, v, kjson.DisallowUnknownFields)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, e := range strict {
		t.Errorf("%s: %v (not a key of the cluster-autoscaler chart?)", path, e)
	}
}

func TestClusterAutoscalerValues(t *testing.T) {
	var v autoscalerValues
	strictYAML(t, "helm/cluster-autoscaler-values.yaml", &v)

	if v.CloudProvider != "aws" || v.AutoDiscovery.ClusterName == "" {
		t.Errorf("want cloudProvider aws with autoDiscovery.clusterName set, got %q / %q", v.CloudProvider, v.AutoDiscovery.ClusterName)
	}
	if v.AWSRegion != "" && !regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d$`).MatchString(v.AWSRegion) {
		t.Errorf("awsRegion %q is not a region name", v.AWSRegion)
	}

	// The autoscaler's minor must be the cluster's Kubernetes minor.
	var cluster eksctlConfig
	doc, err := os.ReadFile("../infra/eksctl/cluster.yaml")
	if err != nil {
		t.Fatalf("the cluster config that pins the Kubernetes version: %v", err)
	}
	if err := yaml.Unmarshal(doc, &cluster); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^v(\d+\.\d+)\.\d+$`).FindStringSubmatch(v.Image.Tag)
	if m == nil {
		t.Fatalf("image.tag %q: want a pinned vMAJOR.MINOR.PATCH", v.Image.Tag)
	}
	if m[1] != cluster.Metadata.Version {
		t.Errorf("image.tag %s is Cluster Autoscaler %s, but the cluster runs Kubernetes %s", v.Image.Tag, m[1], cluster.Metadata.Version)
	}
	if v.Image.Repository != "registry.k8s.io/autoscaling/cluster-autoscaler" {
		t.Errorf("image.repository %q is not the official image", v.Image.Repository)
	}

	// Its service account is the one the Pod Identity association binds.
	sa := v.RBAC.ServiceAccount
	if !sa.Create || sa.Name == "" {
		t.Fatalf("rbac.serviceAccount: want create true and a fixed name, got %+v", sa)
	}
	bound := false
	for _, a := range cluster.IAM.PodIdentityAssociations {
		bound = bound || (a.Namespace == "kube-system" && a.ServiceAccountName == sa.Name)
	}
	if !bound {
		t.Errorf("no Pod Identity association in infra/eksctl/cluster.yaml for kube-system/%s", sa.Name)
	}
	for k := range sa.Annotations {
		if strings.Contains(k, "role-arn") {
			t.Errorf("rbac.serviceAccount.annotations %s: an IRSA role next to Pod Identity", k)
		}
	}

	// The pod must pass Pod Security "restricted", like the fortunes, and
	// keep a read-only root filesystem.
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pod := corev1.PodSpec{
		SecurityContext: &v.SecurityContext,
		Containers:      []corev1.Container{{Name: "cluster-autoscaler", SecurityContext: &v.ContainerSecurityContext}},
	}
	level := psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}
	for _, r := range evaluator.EvaluatePod(level, &metav1.ObjectMeta{}, &pod) {
		if !r.Allowed {
			t.Errorf("violates Pod Security restricted: %s (%s)", r.ForbiddenReason, r.ForbiddenDetail)
		}
	}
	if ro := v.ContainerSecurityContext.ReadOnlyRootFilesystem; ro == nil || !*ro {
		t.Errorf("containerSecurityContext.readOnlyRootFilesystem must be true")
	}
	if v.Resources.Requests.Memory().IsZero() || v.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources: want memory request and limit")
	}
}

// The chart version appears where people read it (the values file's header,
// docs/kubernetes.md) and where aws-up installs it; they must agree.
func TestAutoscalerChartVersionAgrees(t *testing.T) {
	script, err := os.ReadFile("../infra/scripts/aws-up.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^AUTOSCALER_CHART_VERSION=(\S+)$`).FindSubmatch(script)
	if m == nil {
		t.Fatal("no AUTOSCALER_CHART_VERSION= in infra/scripts/aws-up.sh")
	}
	chart := string(m[1])
	var v autoscalerValues
	strictYAML(t, "helm/cluster-autoscaler-values.yaml", &v)
	for file, want := range map[string][]string{
		"helm/cluster-autoscaler-values.yaml": {"chart cluster-autoscaler " + chart, "--version " + chart},
		"../docs/kubernetes.md":               {"--version " + chart, v.Image.Repository + ":" + v.Image.Tag},
	} {
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !strings.Contains(string(text), w) {
				t.Errorf("%s does not say %q (aws-up.sh installs chart %s)", file, w, chart)
			}
		}
	}
}

// A chart key omikuji sets, from a values file under deploy/helm or a
// --set in infra/scripts/aws-up.sh. A key ending in ".*" is a map the chart
// passes on as it is (extraArgs, resources, ...): anything under it goes.
type chartKey = string

// The charts aws-up installs and the keys of theirs it relies on, each
// looked up in the chart's values.yaml at the pinned version (the upstream
// path says where). helm ignores a key its chart does not have, so a typo or
// a key renamed between chart versions would be dropped silently: on a
// chart bump, check each key again at the new version and update the list.
var charts = []struct {
	name, versionVar, version, upstream, values string
	keys                                        []chartKey
}{
	{
		name:       "cluster-autoscaler",
		versionVar: "AUTOSCALER_CHART_VERSION",
		version:    "9.59.0",
		upstream:   "github.com/kubernetes/autoscaler, tag cluster-autoscaler-chart-9.59.0, cluster-autoscaler/charts/cluster-autoscaler/values.yaml",
		values:     "helm/cluster-autoscaler-values.yaml",
		keys: []chartKey{
			"cloudProvider", "autoDiscovery.clusterName", "awsRegion",
			"image.repository", "image.tag", "fullnameOverride",
			"rbac.serviceAccount.create", "rbac.serviceAccount.name",
			"extraArgs.*", "resources.*", "securityContext.*", "containerSecurityContext.*",
		},
	},
	{
		name:       "aws-load-balancer-controller",
		versionVar: "LBC_CHART_VERSION",
		version:    "3.5.0",
		upstream:   "github.com/kubernetes-sigs/aws-load-balancer-controller, tag v3.5.0, helm/aws-load-balancer-controller/values.yaml (published as github.com/aws/eks-charts stable/aws-load-balancer-controller 3.5.0)",
		values:     "helm/aws-load-balancer-controller-values.yaml",
		keys: []chartKey{
			"clusterName", "region", "vpcId",
			"serviceAccount.create", "serviceAccount.name",
			"replicaCount", "podDisruptionBudget.*",
			"enableServiceMutatorWebhook", "resources.*",
		},
	},
}

// flatKeys lists the dotted paths of a values document's leaves.
func flatKeys(prefix string, v any, out *[]string) {
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 {
		*out = append(*out, prefix)
		return
	}
	for k, sub := range m {
		if prefix != "" {
			k = prefix + "." + k
		}
		flatKeys(k, sub, out)
	}
}

func listed(keys []chartKey, key string) (chartKey, bool) {
	for _, k := range keys {
		if k == key || (strings.HasSuffix(k, ".*") && strings.HasPrefix(key, strings.TrimSuffix(k, "*"))) {
			return k, true
		}
	}
	return "", false
}

// TestChartKeysAreTheCheckedOnes: every key the values files and aws-up's
// --set flags give each chart is on its list, each listed key is used, and
// the list's chart version is the one aws-up installs.
func TestChartKeysAreTheCheckedOnes(t *testing.T) {
	script, err := os.ReadFile("../infra/scripts/aws-up.sh")
	if err != nil {
		t.Fatal(err)
	}
	// helm upgrade --install RELEASE REPO/CHART ... up to the first line
	// that does not end in a backslash.
	helmCall := regexp.MustCompile(`(?m)^helm upgrade --install \S+ \S+/(\S+) \\\n((?:.*\\\n)*.*)$`)
	calls := map[string]string{}
	for _, m := range helmCall.FindAllStringSubmatch(string(script), -1) {
		calls[m[1]] = m[2]
	}
	for _, c := range charts {
		t.Run(c.name, func(t *testing.T) {
			pin := regexp.MustCompile(`(?m)^` + c.versionVar + `=(\S+)$`).FindStringSubmatch(string(script))
			if pin == nil || pin[1] != c.version {
				t.Errorf("aws-up.sh pins %s=%v, but the keys were checked against chart %s (%s): check them at the new version, then update this list", c.versionVar, pin, c.version, c.upstream)
			}
			call, ok := calls[c.name]
			if !ok {
				t.Fatalf("aws-up.sh has no helm upgrade --install of chart %s", c.name)
			}
			if !strings.Contains(call, `--version "$`+c.versionVar+`"`) || !strings.Contains(call, "-f ") {
				t.Errorf("aws-up.sh installs %s without --version \"$%s\" or a values file:\n%s", c.name, c.versionVar, call)
			}
			doc, err := os.ReadFile(c.values)
			if err != nil {
				t.Fatal(err)
			}
			var values map[string]any
			if err := yaml.Unmarshal(doc, &values); err != nil {
				t.Fatalf("%s: %v", c.values, err)
			}
			var used []string
			flatKeys("", values, &used)
			for _, m := range regexp.MustCompile(`--set "([A-Za-z0-9.]+)=`).FindAllStringSubmatch(call, -1) {
				used = append(used, m[1])
			}
			seen := map[chartKey]bool{}
			for _, k := range used {
				l, ok := listed(c.keys, k)
				if !ok {
					t.Errorf("%s sets %s, which is not among the keys checked against chart %s (%s): look it up there, then list it", c.name, k, c.version, c.upstream)
				}
				seen[l] = true
			}
			for _, k := range c.keys {
				if !seen[k] {
					t.Errorf("%s: listed key %s is set nowhere; drop it from the list", c.name, k)
				}
			}
		})
	}
}
