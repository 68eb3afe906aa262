package infra

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-version"
	"github.com/spf13/cobra"
	"github.com/weaveworks/eksctl/pkg/accessentry"
	api "github.com/weaveworks/eksctl/pkg/apis/eksctl.io/v1alpha5"
	"github.com/weaveworks/eksctl/pkg/ctl/cmdutils"
	"github.com/weaveworks/eksctl/pkg/ctl/cmdutils/filter"

	"github.com/omikuji/omikuji/internal/fortune"
)

// Sample stack outputs, shaped like real ones.
const (
	sampleCluster = "omikuji"
	sampleRegion  = "ap-northeast-1"
	sampleVPC     = "vpc-0123456789abcdef0"
	sampleSubnet1 = "subnet-0a1b2c3d4e5f60718"
	sampleSubnet2 = "subnet-0f1e2d3c4b5a69788"
)

// renderClusterConfig runs the same renderer aws-up.sh runs and returns the
// path of the rendered config.
func renderClusterConfig(t *testing.T, args ...string) (string, result) {
	t.Helper()
	r := run(t, ".", nil, "", "scripts/render-cluster-config.sh", args...)
	path := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(path, []byte(r.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, r
}

// loadLikeEksctl runs the config checks of `eksctl create cluster -f FILE`
// that need no AWS account: the create-cluster loader (strict decoding, the
// create-time checks, pod identity and addons included), defaulting and
// validation of the cluster and of every managed node group, and the checks
// made just before creation.
func loadLikeEksctl(path string) (*api.ClusterConfig, error) {
	cmd := &cmdutils.Cmd{
		CobraCommand:      &cobra.Command{Use: "cluster"},
		ClusterConfigFile: path,
		ClusterConfig:     api.NewClusterConfig(),
		Validate:          true,
	}
	loader := cmdutils.NewCreateClusterLoader(cmd, filter.NewNodeGroupFilter(), api.NewNodeGroup(), &cmdutils.CreateClusterCmdParams{})
	if err := loader.Load(); err != nil {
		return nil, err
	}
	// In eksctl, NewCtl does this once it has asked AWS for the versions.
	if err := cmd.InitializeClusterConfig(); err != nil {
		return nil, err
	}
	// And doCreateCluster these, before it creates anything.
	cfg := cmd.ClusterConfig
	if err := cfg.ValidatePrivateCluster(); err != nil {
		return nil, err
	}
	if err := cfg.ValidateClusterEndpointConfig(); err != nil {
		return nil, err
	}
	if err := accessentry.ValidateAPIServerAccess(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// sampleClusterConfig renders the cluster config for the sample network and
// loads it as eksctl create cluster would, validation included.
func sampleClusterConfig(t *testing.T) *api.ClusterConfig {
	t.Helper()
	path, r := renderClusterConfig(t, sampleCluster, sampleRegion, sampleVPC, sampleSubnet1, sampleSubnet2)
	if r.code != 0 {
		t.Fatalf("render-cluster-config.sh:\n%s", r)
	}
	cfg, err := loadLikeEksctl(path)
	if err != nil {
		t.Fatalf("eksctl rejects the rendered cluster.yaml: %v\n%s", err, r.stdout)
	}
	return cfg
}

func TestClusterConfigPassesEksctlValidation(t *testing.T) {
	cfg := sampleClusterConfig(t)

	meta := cfg.Metadata
	if meta.Name != sampleCluster || meta.Region != sampleRegion {
		t.Errorf("metadata name/region = %q/%q, want %q/%q", meta.Name, meta.Region, sampleCluster, sampleRegion)
	}
	// The list of supported versions comes from AWS at run time (docs/aws.md
	// shows how to check); offline we can insist on a version new enough for
	// Amazon Linux 2023 node images, which eksctl itself knows.
	v, err := version.NewVersion(meta.Version)
	if err != nil || !v.GreaterThanOrEqual(version.Must(version.NewVersion(api.AmazonLinux2EOLVersion))) {
		t.Errorf("metadata.version %q: want %s or newer", meta.Version, api.AmazonLinux2EOLVersion)
	}

	if cfg.VPC.ID != sampleVPC {
		t.Errorf("vpc.id = %q, want %q", cfg.VPC.ID, sampleVPC)
	}
	var subnetIDs []string
	for _, s := range cfg.VPC.Subnets.Public {
		subnetIDs = append(subnetIDs, s.ID)
	}
	slices.Sort(subnetIDs)
	if want := []string{sampleSubnet1, sampleSubnet2}; !slices.Equal(subnetIDs, want) {
		t.Errorf("public subnets = %v, want %v", subnetIDs, want)
	}
	if len(cfg.VPC.Subnets.Private) != 0 {
		t.Errorf("private subnets %v: the network stack makes public ones only", cfg.VPC.Subnets.Private)
	}

	// Standard support only: no silent move to the extended-support price.
	if cfg.UpgradePolicy == nil || cfg.UpgradePolicy.SupportType != api.SupportTypeStandard {
		t.Errorf("upgradePolicy %+v: want supportType %s (eksctl's and EKS's default is %s)", cfg.UpgradePolicy, api.SupportTypeStandard, api.DefaultSupportType)
	}

	if cfg.AccessConfig.AuthenticationMode != "API" {
		t.Errorf("accessConfig.authenticationMode = %q, want API (access entries, not aws-auth)", cfg.AccessConfig.AuthenticationMode)
	}

	var addons []string
	for _, a := range cfg.Addons {
		addons = append(addons, a.Name)
		// Without this the VPC CNI ignores deploy/'s NetworkPolicy.
		if a.Name == "vpc-cni" {
			var values struct {
				EnableNetworkPolicy string `json:"enableNetworkPolicy"`
			}
			if err := json.Unmarshal([]byte(a.ConfigurationValues), &values); err != nil || values.EnableNetworkPolicy != "true" {
				t.Errorf("vpc-cni configurationValues %q: want enableNetworkPolicy \"true\" so the NetworkPolicy is enforced (%v)", a.ConfigurationValues, err)
			}
		}
	}
	// Exactly these addons: no defaults that eksctl would add unlisted (the
	// node budget in TestNodeGroupFitsTheFortunes counts their pods).
	if !cfg.AddonsConfig.DisableDefaultAddons {
		t.Error("addonsConfig.disableDefaultAddons: want true, so that only the listed addons are installed")
	}
	slices.Sort(addons)
	if want := systemPodsOfAddons.names(); !slices.Equal(addons, want) {
		t.Errorf("addons %v, want exactly %v", addons, want)
	}

	// The controllers' AWS permissions: a pod identity association for the
	// service account each one's Helm values name.
	association := func(sa string) *api.PodIdentityAssociation {
		for i, p := range cfg.IAM.PodIdentityAssociations {
			if p.Namespace == "kube-system" && p.ServiceAccountName == sa {
				return &cfg.IAM.PodIdentityAssociations[i]
			}
		}
		return nil
	}
	if a := association("cluster-autoscaler"); a == nil || !a.WellKnownPolicies.AutoScaler {
		t.Errorf("want a pod identity association kube-system/cluster-autoscaler with wellKnownPolicies.autoScaler, got %+v", cfg.IAM.PodIdentityAssociations)
	}
	if a := association("aws-load-balancer-controller"); a == nil || !a.WellKnownPolicies.AWSLoadBalancerController {
		t.Errorf("want a pod identity association kube-system/aws-load-balancer-controller with wellKnownPolicies.awsLoadBalancerController, got %+v", cfg.IAM.PodIdentityAssociations)
	}
	if len(cfg.NodeGroups) != 0 {
		t.Errorf("self-managed node groups %d: want managed ones only", len(cfg.NodeGroups))
	}
	if len(cfg.ManagedNodeGroups) != 1 {
		t.Fatalf("managed node groups: %d, want 1", len(cfg.ManagedNodeGroups))
	}
	ng := cfg.ManagedNodeGroups[0]
	if ng.Name != "omikuji-nodegroup" {
		t.Errorf("node group name %q, want omikuji-nodegroup", ng.Name)
	}
	if ng.AMIFamily != api.NodeImageFamilyAmazonLinux2023 {
		t.Errorf("amiFamily %q, want %s", ng.AMIFamily, api.NodeImageFamilyAmazonLinux2023)
	}
	if ng.PrivateNetworking {
		t.Error("privateNetworking: the subnets are public and there is no NAT gateway")
	}
	if !api.IsEnabled(ng.PropagateASGTags) {
		t.Error("propagateASGTags must be on: the autoscaler discovers the Auto Scaling group by its tags")
	}
	for key, want := range map[string]string{
		"k8s.io/cluster-autoscaler/enabled":          "true",
		"k8s.io/cluster-autoscaler/" + sampleCluster: "owned",
	} {
		if got := ng.Tags[key]; got != want {
			t.Errorf("node group tag %s = %q, want %q", key, got, want)
		}
	}
	if api.IsEnabled(ng.IAM.WithAddonPolicies.AutoScaler) {
		t.Error("the autoscaler policy belongs to its pod identity, not to every node's role")
	}
}

// eniLimits are EC2's network interface limits (interfaces, IPv4 addresses
// per interface) for the instance types the node group may use; the VPC CNI
// allows interfaces*(addresses-1)+2 pods per node.
var eniLimits = map[string][2]int{
	"t3.small":  {3, 4},
	"t4g.small": {3, 4},
	"t3.medium": {3, 6},
}

// systemPodsOfAddons are the pods each EKS addon of the cluster config runs:
// a DaemonSet's one per node, or a Deployment's replicas.
var systemPodsOfAddons = addonPods{
	{"coredns", 0, 2},
	{"eks-pod-identity-agent", 1, 0},
	{"kube-proxy", 1, 0},
	{"vpc-cni", 1, 0}, // aws-node
}

// helmReleasePods are the pods aws-up installs with Helm into kube-system:
// the Cluster Autoscaler (1) and the AWS Load Balancer Controller
// (replicaCount 2 in deploy/helm/aws-load-balancer-controller-values.yaml).
const helmReleasePods = 1 + 2

type addonPods []struct {
	name          string
	perNode, pods int
}

func (a addonPods) perNodeDaemons() int {
	n := 0
	for _, p := range a {
		n += p.perNode
	}
	return n
}

// podsToPlace counts the pods besides the per-node daemons: the fortunes,
// the addons' Deployments and the Helm releases.
func podsToPlace() int {
	n := fortune.DefaultReplicas().Total() + helmReleasePods
	for _, p := range systemPodsOfAddons {
		n += p.pods
	}
	return n
}

func (a addonPods) names() []string {
	var names []string
	for _, p := range a {
		names = append(names, p.name)
	}
	slices.Sort(names)
	return names
}

// TestNodeGroupFitsTheFortunes ties the node group's size to the catalogue:
// the desired nodes hold every fortune replica plus the cluster's own pods,
// and the maximum leaves room above that.
func TestNodeGroupFitsTheFortunes(t *testing.T) {
	cfg := sampleClusterConfig(t)
	ng := cfg.ManagedNodeGroups[0]
	limits, ok := eniLimits[ng.InstanceType]
	if !ok {
		t.Fatalf("instance type %s: add its ENI limits to eniLimits (see the EC2 docs)", ng.InstanceType)
	}
	podsPerNode := limits[0]*(limits[1]-1) + 2
	var addons []string
	for _, a := range cfg.Addons {
		addons = append(addons, a.Name)
	}
	slices.Sort(addons)
	if !cfg.AddonsConfig.DisableDefaultAddons || !slices.Equal(addons, systemPodsOfAddons.names()) {
		t.Fatalf("addons %v (disableDefaultAddons %v): count the pods of each in systemPodsOfAddons", addons, cfg.AddonsConfig.DisableDefaultAddons)
	}
	daemonsPerNode := systemPodsOfAddons.perNodeDaemons()
	need := podsToPlace()
	clusterPods := need - fortune.DefaultReplicas().Total()
	room := func(nodes int) int { return nodes * (podsPerNode - daemonsPerNode) }

	if *ng.MinSize < 1 {
		t.Errorf("minSize %d: want at least 1 node", *ng.MinSize)
	}
	if room(*ng.DesiredCapacity) < need {
		t.Errorf("desiredCapacity %d holds %d pods, the fortunes and system pods need %d", *ng.DesiredCapacity, room(*ng.DesiredCapacity), need)
	}
	if *ng.MaxSize <= *ng.DesiredCapacity || *ng.MaxSize > 10 {
		t.Errorf("maxSize %d: want above desiredCapacity %d (room to scale) and small (at most 10)", *ng.MaxSize, *ng.DesiredCapacity)
	}
	t.Logf("%s: %d pods per node, %d of them daemons; need %d pods (%d fortunes, %d system); desired %d, max %d nodes",
		ng.InstanceType, podsPerNode, daemonsPerNode, need, fortune.DefaultReplicas().Total(), clusterPods, *ng.DesiredCapacity, *ng.MaxSize)
}

// TestAutoscalerChartMatchesClusterVersion keeps the Cluster Autoscaler's
// minor version (the image tag in its Helm values, and the note next to the
// pinned chart in aws-up.sh) equal to the cluster's Kubernetes minor, as the
// autoscaler project requires.
func TestAutoscalerChartMatchesClusterVersion(t *testing.T) {
	script, err := os.ReadFile("scripts/aws-up.sh")
	if err != nil {
		t.Fatal(err)
	}
	note := regexp.MustCompile(`# Chart (\d+\.\d+\.\d+), the newest, still defaults to Cluster Autoscaler (\d+\.\d+); the\n# values set image\.tag`).FindSubmatch(script)
	pin := regexp.MustCompile(`(?m)^AUTOSCALER_CHART_VERSION=(\S+)$`).FindSubmatch(script)
	if note == nil || pin == nil || string(note[1]) != string(pin[1]) {
		t.Fatalf("aws-up.sh: want AUTOSCALER_CHART_VERSION pinned next to a note naming the same chart and its default autoscaler")
	}
	values, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy/helm/cluster-autoscaler-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tag := regexp.MustCompile(`(?m)^  tag: v(\d+\.\d+)\.\d+$`).FindSubmatch(values)
	if tag == nil {
		t.Fatal("deploy/helm/cluster-autoscaler-values.yaml: want image.tag vMAJOR.MINOR.PATCH")
	}
	cfg := sampleClusterConfig(t)
	if string(tag[1]) != cfg.Metadata.Version {
		t.Errorf("Cluster Autoscaler %s with Kubernetes %s: set image.tag in deploy/helm/cluster-autoscaler-values.yaml with the cluster version", tag[1], cfg.Metadata.Version)
	}
}

// TestEksctlValidationIsLive proves the checks above can fail: eksctl's own
// code must reject each of these edits of the rendered config.
func TestEksctlValidationIsLive(t *testing.T) {
	path, r := renderClusterConfig(t, sampleCluster, sampleRegion, sampleVPC, sampleSubnet1, sampleSubnet2)
	if r.code != 0 {
		t.Fatalf("render-cluster-config.sh:\n%s", r)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, old, new, wantErr string }{
		{"unknown field (strict decoding)", "    propagateASGTags: true", "    propagateASGTag: true", `unknown field "propagateASGTag"`},
		{"minSize above desiredCapacity", "    minSize: 1", "    minSize: 9", "--nodes-min=9"},
		{"pod identity without the agent", "  - name: eks-pod-identity-agent\n", "", "eks-pod-identity-agent"},
		{"unknown support type", "  supportType: STANDARD", "  supportType: BASIC", "upgradePolicy.supportType must be either"},
		{"bad node group name", "  - name: omikuji-nodegroup", "  - name: omikuji_nodegroup!", "omikuji_nodegroup!"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if n := strings.Count(string(good), tc.old); n != 1 {
				t.Fatalf("the text to break occurs %d times, want once: %q", n, tc.old)
			}
			bad := filepath.Join(t.TempDir(), "cluster.yaml")
			if err := os.WriteFile(bad, []byte(strings.Replace(string(good), tc.old, tc.new, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := loadLikeEksctl(bad)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("want an error mentioning %q, got %v", tc.wantErr, err)
			}
			t.Logf("rejected: %v", err)
		})
	}
}

func TestRenderClusterConfigRejectsBadInput(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		code     int
		mentions string
	}{
		{"too few arguments", []string{sampleCluster, sampleRegion}, 2, "usage:"},
		{"subnet id with YAML in it", []string{sampleCluster, sampleRegion, sampleVPC, "subnet-0a1b2c3d}\n  x: y", sampleSubnet2}, 2, "subnet id"},
		{"pasted list of subnets", []string{sampleCluster, sampleRegion, sampleVPC, sampleSubnet1 + "," + sampleSubnet2, sampleSubnet2}, 2, "subnet id"},
		{"same subnet twice", []string{sampleCluster, sampleRegion, sampleVPC, sampleSubnet1, sampleSubnet1}, 2, "must differ"},
		{"bad region", []string{sampleCluster, "Tokyo", sampleVPC, sampleSubnet1, sampleSubnet2}, 2, "region"},
		{"bad cluster name", []string{"-omikuji", sampleRegion, sampleVPC, sampleSubnet1, sampleSubnet2}, 2, "cluster"},
		{"bad VPC id", []string{sampleCluster, sampleRegion, "vpc-XYZ", sampleSubnet1, sampleSubnet2}, 2, "VPC id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, r := renderClusterConfig(t, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.mentions) || r.stdout != "" {
				t.Fatalf("want exit %d, nothing on stdout and a message mentioning %q; got\n%s", tc.code, tc.mentions, r)
			}
		})
	}
}

func TestRenderClusterConfigFillsEveryPlaceholder(t *testing.T) {
	tmpl := filepath.Join(t.TempDir(), "cluster.yaml")
	src, err := os.ReadFile("eksctl/cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmpl, append(src, []byte("# __NEW_PLACEHOLDER__\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := "OMIKUJI_CLUSTER_TEMPLATE=" + tmpl
	r := run(t, ".", append(os.Environ(), cmd), "", "scripts/render-cluster-config.sh", sampleCluster, sampleRegion, sampleVPC, sampleSubnet1, sampleSubnet2)
	if r.code == 0 || !strings.Contains(r.stderr, "__NEW_PLACEHOLDER__") {
		t.Fatalf("an unfilled placeholder must fail the render, naming it:\n%s", r)
	}
	// And the real template renders with none left.
	_, r = renderClusterConfig(t, sampleCluster, sampleRegion, sampleVPC, sampleSubnet1, sampleSubnet2)
	if r.code != 0 || strings.Contains(r.stdout, "__") {
		t.Fatalf("rendering the real template:\n%s", r)
	}
	if got := strings.Count(r.stdout, sampleSubnet1) + strings.Count(r.stdout, sampleSubnet2); got != 2 {
		t.Errorf("want each subnet id once in the config, found %d ids", got)
	}
}
