package infra

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/omikuji/omikuji/internal/fortune"
)

const (
	motoAccount = "123456789012" // the account moto reports
	flowRegion  = "us-east-1"
)

// A flow runs `make aws-up` / `make aws-down` for real against a moto_server
// on 127.0.0.1, with stand-ins first on PATH for what moto cannot emulate.
type flow struct {
	t        *testing.T
	root     string
	endpoint string // moto
	bin      string // stand-ins
	registry string // stands in for ECR's registry
	records  string // what the stand-ins recorded
	path     string // PATH for the scripts
	scratch  string // outlives the subtests, which share state
	runs     int
}

func newFlow(t *testing.T) *flow {
	for _, tool := range []string{"aws", "make", "git"} {
		requireTool(t, tool, "the aws CLI comes preinstalled on these machines; make and git are Debian packages")
	}
	requireTool(t, "moto_server", "the moto AWS emulator comes preinstalled on these machines and cannot be installed offline")
	f := &flow{t: t, root: repoRoot(t), endpoint: startMoto(t), bin: installStandins(t), registry: startRegistry(t), scratch: t.TempDir()}
	f.path = f.bin + string(os.PathListSeparator) + os.Getenv("PATH")
	return f
}

// motoRouteTablePatch fills a gap in moto 5.2: its CloudFormation cannot
// delete an AWS::EC2::RouteTable (the class has no delete handler), so the
// VPC that holds one can never be deleted and every network stack fails to
// go with DependencyViolation. Real CloudFormation deletes route tables; this
// handler, loaded into moto_server through sitecustomize, does the same.
// It also gives two regions the zone-ID mapping of an account in which the
// first zone by name is one EKS does not support.
const motoRouteTablePatch = `from moto.ec2.models.route_tables import RouteTable


def _delete_route_table(cls, resource_name, cloudformation_json, account_id, region_name):
    from moto.ec2.models import ec2_backends

    backend = ec2_backends[account_id][region_name]
    table = backend.route_tables.get(resource_name)
    if table is not None:
        table._associations.clear()
        backend.delete_route_table(resource_name)


RouteTable.delete_from_cloudformation_json = classmethod(_delete_route_table)

# moto maps zone names to zone IDs one fixed way per region; real accounts
# each get their own mapping. These two regions get the mapping of accounts
# where it matters to EKS: us-east-1a is use1-az3, which EKS refuses (moto
# has it as us-east-1e), and us-west-1's two zones are usw1-az2, refused,
# and usw1-az1.
from moto.ec2.models.availability_zones_and_regions import RegionsAndZonesBackend, Zone

RegionsAndZonesBackend.zones["us-east-1"] = [
    Zone(region_name="us-east-1", name="us-east-1" + letter, zone_id=zone_id)
    for letter, zone_id in zip("abcdef", ["use1-az3", "use1-az1", "use1-az2", "use1-az4", "use1-az6", "use1-az5"])
]
RegionsAndZonesBackend.zones["us-west-1"] = [
    Zone(region_name="us-west-1", name="us-west-1a", zone_id="usw1-az2"),
    Zone(region_name="us-west-1", name="us-west-1b", zone_id="usw1-az1"),
]
`

// startMoto starts moto_server on a free 127.0.0.1 port and stops it when
// the test ends.
func startMoto(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	log, err := os.Create(filepath.Join(t.TempDir(), "moto.log"))
	if err != nil {
		t.Fatal(err)
	}
	patch := t.TempDir()
	if err := os.WriteFile(filepath.Join(patch, "sitecustomize.py"), []byte(motoRouteTablePatch), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("moto_server", "-H", "127.0.0.1", "-p", port)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+strings.Join(append([]string{patch}, filepath.SplitList(os.Getenv("PYTHONPATH"))...), string(os.PathListSeparator)))
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		<-exited
		log.Close()
	})
	endpoint := "http://127.0.0.1:" + port
	client := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(60 * time.Second); ; {
		resp, err := client.Get(endpoint + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return endpoint
			}
		}
		select {
		case werr := <-exited:
			exited <- werr // for the cleanup
			b, _ := os.ReadFile(log.Name())
			t.Fatalf("moto_server exited before serving on %s (%v):\n%s", endpoint, werr, b)
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(log.Name())
			t.Fatalf("moto_server did not come up on %s: %v\n%s", endpoint, err, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// reset empties moto and the stand-ins' records.
func (f *flow) reset() {
	f.t.Helper()
	resp, err := http.Post(f.endpoint+"/moto-api/reset", "", nil)
	if err != nil {
		f.t.Fatal(err)
	}
	resp.Body.Close()
	f.runs++
	f.records = filepath.Join(f.scratch, fmt.Sprint("run", f.runs))
	if err := os.Mkdir(f.records, 0o755); err != nil {
		f.t.Fatal(err)
	}
}

// env is the scripts' environment: this process's, minus anything that could
// reach a real AWS account or cluster, plus moto and dummy credentials.
func (f *flow) env(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "OMIKUJI_") ||
			slices.Contains([]string{"PATH", "KUBECONFIG", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"}, k) {
			continue
		}
		env = append(env, kv)
	}
	none := filepath.Join(f.scratch, "none")
	env = append(env,
		"PATH="+f.path,
		"AWS_ENDPOINT_URL="+f.endpoint,
		"AWS_ACCESS_KEY_ID=testing",
		"AWS_SECRET_ACCESS_KEY=testing",
		"AWS_REGION="+flowRegion,         // aws CLI v2 and eksctl
		"AWS_DEFAULT_REGION="+flowRegion, // aws CLI v1
		"AWS_CONFIG_FILE="+none,
		"AWS_SHARED_CREDENTIALS_FILE="+none,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_PAGER=",
		"KUBECONFIG="+filepath.Join(f.records, "kubeconfig"),
		"OMIKUJI_IMAGE_TOOL="+filepath.Join(f.bin, imageToolName),
		standinDirEnv+"="+f.records,
		standinRegistryEnv+"="+f.registry,
		standinRepoEnv+"="+f.root,
		realKubectlEnv+"="+requireTool(f.t, "kubectl", "the stand-in renders the app with the real `kubectl kustomize`"),
	)
	// Later entries win: drop the defaults that extra overrides or unsets ("KEY=" with no value removes it).
	for _, kv := range extra {
		k, v, _ := strings.Cut(kv, "=")
		env = slices.DeleteFunc(env, func(e string) bool { return strings.HasPrefix(e, k+"=") })
		if v != "" {
			env = append(env, kv)
		}
	}
	return env
}

func (f *flow) make(target string, env []string) result {
	f.t.Helper()
	r := run(f.t, f.root, env, "", "make", "--no-print-directory", target)
	f.t.Logf("make %s: exit %d", target, r.code)
	return r
}

// aws queries moto directly, for the test's own checks.
func (f *flow) aws(args ...string) result {
	f.t.Helper()
	return run(f.t, f.root, f.env(), "", "aws", args...)
}

func (f *flow) awsJSON(v any, args ...string) {
	f.t.Helper()
	r := f.aws(append(args, "--output", "json")...)
	if r.code != 0 {
		f.t.Fatalf("aws %v:\n%s", args, r)
	}
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		f.t.Fatalf("aws %v: %v\n%s", args, err, r.stdout)
	}
}

// calls lists the stand-in invocations so far, one "tool args..." each.
func (f *flow) calls() []string {
	b, err := os.ReadFile(filepath.Join(f.records, "calls.log"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// index returns the position of the first call starting with prefix, or -1.
func index(calls []string, prefix string) int {
	return slices.IndexFunc(calls, func(c string) bool { return strings.HasPrefix(c, prefix) })
}

func hasCall(calls []string, prefix string) bool { return index(calls, prefix) >= 0 }

// inOrder checks that each prefix first appears after the one before it.
func inOrder(t *testing.T, what string, items []string, prefixes ...string) {
	t.Helper()
	last := -1
	for _, p := range prefixes {
		i := slices.IndexFunc(items, func(c string) bool { return strings.HasPrefix(c, p) })
		if i < 0 {
			t.Errorf("%s: %q never happened:\n%s", what, p, strings.Join(items, "\n"))
			return
		}
		if i < last {
			t.Errorf("%s: %q happened before %q:\n%s", what, p, prefixes[slices.Index(prefixes, p)-1], strings.Join(items, "\n"))
		}
		last = i
	}
}

func (f *flow) stackOutputs(name string) (status string, outputs map[string]string) {
	f.t.Helper()
	var out struct {
		Stacks []struct {
			StackStatus string
			Outputs     []struct{ OutputKey, OutputValue string }
		}
	}
	f.awsJSON(&out, "cloudformation", "describe-stacks", "--stack-name", name)
	outputs = map[string]string{}
	for _, o := range out.Stacks[0].Outputs {
		outputs[o.OutputKey] = o.OutputValue
	}
	return out.Stacks[0].StackStatus, outputs
}

// liveStacks lists the stacks moto holds that are not deleted.
func (f *flow) liveStacks() []string {
	f.t.Helper()
	var out struct {
		StackSummaries []struct{ StackName, StackStatus string }
	}
	f.awsJSON(&out, "cloudformation", "list-stacks")
	var live []string
	for _, s := range out.StackSummaries {
		if s.StackStatus != "DELETE_COMPLETE" {
			live = append(live, s.StackName+" "+s.StackStatus)
		}
	}
	return live
}

var stepBanner = regexp.MustCompile(`(?m)^==> ([a-z]+):`)

func steps(stdout string) []string {
	var names []string
	for _, m := range stepBanner.FindAllStringSubmatch(stdout, -1) {
		names = append(names, m[1])
	}
	return names
}

func TestAWSFlowAgainstMoto(t *testing.T) {
	f := newFlow(t)

	t.Run("aws-up creates the stacks and runs every step in order", func(t *testing.T) {
		f.t = t
		f.reset()
		r := f.make("aws-up", f.env())
		if r.code != 0 {
			t.Fatalf("make aws-up failed:\n%s", r)
		}
		if got, want := steps(r.stdout), []string{"network", "registry", "image", "cluster", "autoscaler", "loadbalancer", "app", "draw"}; !slices.Equal(got, want) {
			t.Errorf("steps %v, want %v", got, want)
		}

		// The network stack really exists in moto, with its outputs and the
		// subnet settings EKS and LoadBalancer Services need.
		status, net := f.stackOutputs("omikuji-network")
		if status != "CREATE_COMPLETE" {
			t.Fatalf("omikuji-network: %s", status)
		}
		var subnets struct {
			Subnets []struct {
				SubnetId, VpcId, AvailabilityZone string
				Tags                              []struct{ Key, Value string }
			}
		}
		f.awsJSON(&subnets, "ec2", "describe-subnets", "--subnet-ids", net["PublicSubnet1Id"], net["PublicSubnet2Id"])
		// us-east-1a is use1-az3 here, which EKS refuses: the next two.
		var zones []string
		for _, s := range subnets.Subnets {
			zones = append(zones, s.AvailabilityZone)
		}
		slices.Sort(zones)
		if !slices.Equal(zones, []string{"us-east-1b", "us-east-1c"}) {
			t.Errorf("subnets in zones %v, want us-east-1b and us-east-1c (us-east-1a is use1-az3)", zones)
		}
		if !strings.Contains(r.stdout, "not using us-east-1a (use1-az3)") {
			t.Errorf("want the skipped zone named in the output:\n%s", r.stdout)
		}
		for _, s := range subnets.Subnets {
			tags := map[string]string{}
			for _, tag := range s.Tags {
				tags[tag.Key] = tag.Value
			}
			// (moto ignores MapPublicIpOnLaunch from templates; TestTemplateSettings checks it.)
			if s.VpcId != net["VpcId"] || tags["kubernetes.io/role/elb"] != "1" || tags["kubernetes.io/cluster/omikuji"] != "shared" {
				t.Errorf("subnet %s: vpc %s (want %s), tags %v", s.SubnetId, s.VpcId, net["VpcId"], tags)
			}
		}

		// The registry: immutable tags (moto drops ScanOnPush from templates;
		// TestTemplateSettings checks it).
		status, ecr := f.stackOutputs("omikuji-ecr")
		repoURI := motoAccount + ".dkr.ecr." + flowRegion + ".amazonaws.com/omikuji/fortune"
		if status != "CREATE_COMPLETE" || ecr["RepositoryUri"] != repoURI {
			t.Fatalf("omikuji-ecr: %s, RepositoryUri %q, want %q", status, ecr["RepositoryUri"], repoURI)
		}
		var repos struct {
			Repositories []struct{ ImageTagMutability string }
		}
		f.awsJSON(&repos, "ecr", "describe-repositories", "--repository-names", "omikuji/fortune")
		if rp := repos.Repositories[0]; rp.ImageTagMutability != "IMMUTABLE" {
			t.Errorf("repository: %+v, want IMMUTABLE", rp)
		}

		calls := f.calls()
		inOrder(t, "stand-in calls", calls,
			imageToolName+" build", imageToolName+" push",
			"eksctl get cluster", "eksctl create cluster",
			"helm repo add autoscaler", "helm upgrade --install cluster-autoscaler autoscaler/cluster-autoscaler",
			"helm repo add eks https://aws.github.io/eks-charts", "helm upgrade --install aws-load-balancer-controller eks/aws-load-balancer-controller",
			"kubectl apply -k", "kubectl -n omikuji rollout status", "kubectl -n omikuji get service omikuji",
			"curl")

		// The image: the index of both platforms, built from the commit and
		// pushed under an immutable, commit-derived tag with the ECR password;
		// a node of either kind resolves the tag to its own image.
		build, push := calls[index(calls, imageToolName+" build")], calls[index(calls, imageToolName+" push")]
		m := regexp.MustCompile(` --oci \S+ --to (\S+):(g[0-9a-f]{12}(?:-dirty-[0-9]{14})?) --username AWS --password-stdin$`).FindStringSubmatch(push)
		if m == nil || m[1] != repoURI {
			t.Fatalf("push %q: want --oci DIR --to %s:g<commit> --username AWS --password-stdin", push, repoURI)
		}
		tag := m[2]
		for _, arg := range []string{"--oci ", "--platform linux/amd64,linux/arm64", "--tag omikuji:" + tag, "--version " + tag} {
			if !strings.Contains(build, arg) {
				t.Errorf("build %q lacks %q", build, arg)
			}
		}
		if pw, err := os.ReadFile(filepath.Join(f.records, "push-password")); err != nil || !strings.Contains(string(pw), "auth-token") {
			t.Errorf("the push did not get ECR's password on stdin: %q %v", pw, err)
		}
		checkPushedIndex(t, f.registry, "omikuji/fortune", tag, f.root)

		// The stack outputs reached the config eksctl was given, and eksctl's
		// own code accepts it.
		cfg, err := loadLikeEksctl(filepath.Join(f.records, "eksctl-cluster.yaml"))
		if err != nil {
			t.Fatalf("the config given to eksctl: %v", err)
		}
		var ids []string
		for _, s := range cfg.VPC.Subnets.Public {
			ids = append(ids, s.ID)
		}
		slices.Sort(ids)
		want := []string{net["PublicSubnet1Id"], net["PublicSubnet2Id"]}
		slices.Sort(want)
		if !slices.Equal(ids, want) || cfg.VPC.ID != net["VpcId"] || cfg.Metadata.Region != flowRegion || cfg.Metadata.Name != "omikuji" {
			t.Errorf("eksctl config: vpc %s subnets %v region %s name %s; want vpc %s subnets %v region %s name omikuji",
				cfg.VPC.ID, ids, cfg.Metadata.Region, cfg.Metadata.Name, net["VpcId"], want, flowRegion)
		}

		helm := calls[index(calls, "helm upgrade --install cluster-autoscaler")]
		for _, arg := range []string{"--namespace kube-system", "--set autoDiscovery.clusterName=omikuji", "--set awsRegion=" + flowRegion,
			"-f " + filepath.Join(f.root, "deploy/helm/cluster-autoscaler-values.yaml")} {
			if !strings.Contains(helm, arg) {
				t.Errorf("helm call %q lacks %q", helm, arg)
			}
		}
		// The controller learns the cluster, region and VPC from aws-up.
		helm = calls[index(calls, "helm upgrade --install aws-load-balancer-controller")]
		for _, arg := range []string{"--namespace kube-system", "--version 3.5.0", "--set clusterName=omikuji", "--set region=" + flowRegion,
			"--set vpcId=" + net["VpcId"], "-f " + filepath.Join(f.root, "deploy/helm/aws-load-balancer-controller-values.yaml"), "--wait"} {
			if !strings.Contains(helm, arg) {
				t.Errorf("helm call %q lacks %q", helm, arg)
			}
		}
		// And, played by the kubectl stand-in, made the NLB and its security
		// groups in that VPC for the Service of its class.
		if lbs, sgs := f.controllerResources(); len(lbs) != 1 || len(sgs) != 2 {
			t.Errorf("the controller's resources in moto: load balancers %v, security groups %v; want 1 and 2", lbs, sgs)
		}

		// The app: every fortune's Deployment runs the pushed image.
		app, err := os.ReadFile(filepath.Join(f.records, "app.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		images := map[string]string{}
		var lbPorts []int32 // of the Service the scripts wait on and print
		for _, doc := range strings.Split(string(app), "\n---\n") {
			var d appsv1.Deployment
			if err := yaml.Unmarshal([]byte(doc), &d); err != nil {
				t.Fatal(err)
			}
			switch {
			case d.Kind == "Deployment" && d.Namespace == "omikuji":
				for _, c := range d.Spec.Template.Spec.Containers {
					images[d.Name] = c.Image
				}
			case d.Kind == "Service" && d.Namespace == "omikuji" && d.Name == "omikuji":
				var svc corev1.Service
				if err := yaml.Unmarshal([]byte(doc), &svc); err != nil {
					t.Fatal(err)
				}
				if svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
					for _, p := range svc.Spec.Ports {
						lbPorts = append(lbPorts, p.Port)
					}
				}
			}
		}
		if !slices.Contains(lbPorts, 8080) {
			t.Errorf("the overlay has no LoadBalancer Service omikuji/omikuji on port 8080, which aws-up waits on and prints (ports %v)", lbPorts)
		}
		for _, id := range fortune.IDs() {
			if images[id] != repoURI+":"+tag {
				t.Errorf("Deployment %s runs %q, want %s:%s", id, images[id], repoURI, tag)
			}
		}
		if n := strings.Count(strings.Join(calls, "\n"), "rollout status"); n != len(fortune.IDs()) {
			t.Errorf("%d rollouts awaited, want one per fortune (%d)", n, len(fortune.IDs()))
		}

		url := "http://" + standinHost + ":8080/"
		if !strings.Contains(r.stdout, "omikuji is up: "+url) || !strings.Contains(r.stdout, "大吉") {
			t.Errorf("want the URL %s and a first draw in the output:\n%s", url, r.stdout)
		}
		if c := calls[index(calls, "curl")]; !strings.HasSuffix(c, " "+url) {
			t.Errorf("first draw %q: want a request to %s", c, url)
		}
	})

	t.Run("aws-up again changes nothing", func(t *testing.T) {
		f.t = t
		before := len(f.calls())
		r := f.make("aws-up", f.env())
		if r.code != 0 {
			t.Fatalf("second make aws-up failed:\n%s", r)
		}
		for _, s := range []string{"stack omikuji-network is up to date", "stack omikuji-ecr is up to date", "cluster omikuji exists; adding only missing"} {
			if !strings.Contains(r.stdout, s) {
				t.Errorf("want %q in the output:\n%s", s, r.stdout)
			}
		}
		again := f.calls()[before:]
		if hasCall(again, "eksctl create cluster") {
			t.Errorf("an existing cluster must not be created again:\n%s", strings.Join(again, "\n"))
		}
		inOrder(t, "stand-in calls", again, "eksctl utils write-kubeconfig", "eksctl create addon -f", "eksctl create nodegroup -f", "helm upgrade")
	})

	t.Run("aws-down deletes the Service first, then the cluster, then the stacks", func(t *testing.T) {
		f.t = t
		before := len(f.calls())
		r := f.make("aws-down", f.env())
		if r.code != 0 {
			t.Fatalf("make aws-down failed:\n%s", r)
		}
		inOrder(t, "stand-in calls", f.calls()[before:],
			"eksctl get cluster", "kubectl -n omikuji delete service omikuji", "kubectl delete namespace omikuji", "eksctl delete cluster --name omikuji")
		if got, want := steps(r.stdout), []string{"app", "loadbalancer", "cluster", "registry", "network", "confirm"}; !slices.Equal(got, want) {
			t.Errorf("steps %v, want %v", got, want)
		}
		if lbs, sgs := f.controllerResources(); len(lbs)+len(sgs) != 0 {
			t.Errorf("left behind by the controller: load balancers %v, security groups %v", lbs, sgs)
		}
		if live := f.liveStacks(); len(live) != 0 {
			t.Errorf("stacks left in moto: %v", live)
		}
		for _, stack := range []string{"omikuji-network", "omikuji-ecr"} {
			if r := f.aws("cloudformation", "describe-stacks", "--stack-name", stack); r.code == 0 || !strings.Contains(r.stderr, "does not exist") {
				t.Errorf("%s still described:\n%s", stack, r)
			}
		}
		// Under the stacks, the resources are gone too.
		var vpcs struct{ Vpcs []struct{ VpcId string } }
		f.awsJSON(&vpcs, "ec2", "describe-vpcs", "--filters", "Name=is-default,Values=false")
		var repos struct {
			Repositories []struct{ RepositoryName string }
		}
		f.awsJSON(&repos, "ecr", "describe-repositories")
		if len(vpcs.Vpcs) != 0 || len(repos.Repositories) != 0 {
			t.Errorf("left behind: VPCs %v, repositories %v", vpcs.Vpcs, repos.Repositories)
		}
		if !strings.Contains(r.stdout, "nothing left") {
			t.Errorf("want a confirmation that nothing is left:\n%s", r.stdout)
		}

		// Again: nothing to do, still a success.
		before = len(f.calls())
		r = f.make("aws-down", f.env())
		if r.code != 0 || !strings.Contains(r.stdout, "stack omikuji-network: already gone") {
			t.Fatalf("second make aws-down:\n%s", r)
		}
		if again := f.calls()[before:]; hasCall(again, "eksctl delete") || hasCall(again, "kubectl") {
			t.Errorf("nothing should be deleted twice:\n%s", strings.Join(again, "\n"))
		}
	})

	t.Run("aws-down reports what it could not delete", func(t *testing.T) {
		f.t = t
		f.reset()
		// A stack eksctl would have made, left behind.
		stray := filepath.Join(t.TempDir(), "stray.yaml")
		if err := os.WriteFile(stray, []byte("Resources:\n  Topic:\n    Type: AWS::SNS::Topic\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if r := f.aws("cloudformation", "create-stack", "--stack-name", "eksctl-omikuji-nodegroup-omikuji-nodegroup", "--template-body", "file://"+stray); r.code != 0 {
			t.Fatalf("create stray stack:\n%s", r)
		}
		r := f.make("aws-down", f.env())
		if r.code == 0 || !strings.Contains(r.stderr, "still there: stack eksctl-omikuji-nodegroup-omikuji-nodegroup") {
			t.Fatalf("want aws-down to fail, naming the stack left behind:\n%s", r)
		}
	})

	t.Run("aws-down names a security group the controller left", func(t *testing.T) {
		f.t = t
		f.reset()
		var vpcs struct{ Vpcs []struct{ VpcId string } }
		f.awsJSON(&vpcs, "ec2", "describe-vpcs", "--filters", "Name=is-default,Values=true")
		r := f.aws("ec2", "create-security-group", "--group-name", "k8s-traffic-omikuji-left", "--description", "left", "--vpc-id", vpcs.Vpcs[0].VpcId,
			"--tag-specifications", "ResourceType=security-group,Tags=[{Key="+controllerTag+",Value=omikuji}]", "--query", "GroupId", "--output", "text")
		if r.code != 0 {
			t.Fatalf("create stray security group:\n%s", r)
		}
		sg := strings.TrimSpace(r.stdout)
		r = f.make("aws-down", f.env())
		if r.code == 0 || !strings.Contains(r.stderr, "still there: security group "+sg) {
			t.Fatalf("want aws-down to fail, naming security group %s:\n%s", sg, r)
		}
	})

	t.Run("aws-up stops when fewer than two zones suit EKS", func(t *testing.T) {
		f.t = t
		f.reset()
		// us-west-1 has two zones here, usw1-az2 (refused) and usw1-az1.
		r := f.make("aws-up", f.env("AWS_REGION=us-west-1", "AWS_DEFAULT_REGION=us-west-1"))
		if r.code == 0 || !strings.Contains(r.stderr, "us-west-1 has 1 Availability Zone(s) whose zone IDs EKS supports (us-west-1b; skipped: us-west-1a (usw1-az2))") ||
			!strings.Contains(r.stderr, "stopped in step 'network'") {
			t.Fatalf("want aws-up to stop in step network, naming the zones:\n%s", r)
		}
		if live := f.liveStacks(); len(live) != 0 {
			t.Errorf("stacks created although no two zones suit EKS: %v", live)
		}
		if calls := f.calls(); len(calls) != 0 {
			t.Errorf("tools ran:\n%s", strings.Join(calls, "\n"))
		}
	})

	t.Run("aws-up stops on a stack that is still changing", func(t *testing.T) {
		f.t = t
		f.reset()
		// moto leaves a stack whose creation raised an error in
		// CREATE_IN_PROGRESS, like a creation still under way.
		busy := filepath.Join(t.TempDir(), "busy.yaml")
		if err := os.WriteFile(busy, []byte("Resources:\n  S:\n    Type: AWS::EC2::Subnet\n    Properties:\n      VpcId: vpc-00000000000000000\n      CidrBlock: 10.9.0.0/24\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		f.aws("cloudformation", "create-stack", "--stack-name", "omikuji-network", "--template-body", "file://"+busy)
		if status, _ := f.stackOutputs("omikuji-network"); status != "CREATE_IN_PROGRESS" {
			t.Fatalf("setup: omikuji-network is %s, want CREATE_IN_PROGRESS", status)
		}
		r := f.make("aws-up", f.env())
		if r.code == 0 || !strings.Contains(r.stderr, "stack omikuji-network is CREATE_IN_PROGRESS; wait until it finishes") {
			t.Fatalf("want aws-up to stop and ask to wait:\n%s", r)
		}
		if calls := f.calls(); len(calls) != 0 {
			t.Errorf("later steps ran:\n%s", strings.Join(calls, "\n"))
		}
	})

	// Each failing stand-in must stop the run in its step, with its message,
	// before anything of the next step runs.
	failures := []struct {
		tool, step, nextCall string
	}{
		{imageToolName, "image", "eksctl"},
		{"eksctl", "cluster", "helm"},
		{"helm", "autoscaler", "kubectl"},
		{"kubectl", "app", "curl"},
		{"curl", "draw", ""},
	}
	for _, fail := range failures {
		t.Run("a failing "+fail.tool+" stops aws-up in step "+fail.step, func(t *testing.T) {
			f.t = t
			f.reset()
			r := f.make("aws-up", f.env(standinFailEnv+"="+fail.tool))
			if r.code == 0 {
				t.Fatalf("make aws-up succeeded although %s failed:\n%s", fail.tool, r)
			}
			if !strings.Contains(r.stderr, fail.tool+" stand-in: simulated failure") || !strings.Contains(r.stderr, "stopped in step '"+fail.step+"'") {
				t.Errorf("want the tool's message and the step's name on stderr:\n%s", r)
			}
			if fail.nextCall != "" && hasCall(f.calls(), fail.nextCall) {
				t.Errorf("%s ran after %s failed:\n%s", fail.nextCall, fail.tool, strings.Join(f.calls(), "\n"))
			}
			if strings.Contains(r.stdout, "omikuji is up") {
				t.Errorf("a failed run must not claim success:\n%s", r.stdout)
			}
		})
	}

	t.Run("aws-up resumes after a failure", func(t *testing.T) {
		f.t = t
		// The last failure left the stacks and the cluster in place.
		r := f.make("aws-up", f.env())
		if r.code != 0 || !strings.Contains(r.stdout, "omikuji is up") {
			t.Fatalf("re-run after a failure:\n%s", r)
		}
		if n := strings.Count(strings.Join(f.calls(), "\n"), "eksctl create cluster"); n != 1 {
			t.Errorf("eksctl create cluster ran %d times over the failed and the resumed run, want 1", n)
		}
	})

	// Preflight: a missing tool, region or credential stops everything before
	// anything is created.
	noEksctl := f.bin + "-no-eksctl"
	t.Cleanup(func() { os.RemoveAll(noEksctl) })
	preflight := []struct {
		name     string
		env      []string
		mentions string
	}{
		{"no region", []string{"AWS_REGION=", "AWS_DEFAULT_REGION="}, "no AWS region: set AWS_REGION"},
		{"no credentials", []string{"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY="}, "no usable AWS credentials"},
		{"no eksctl", []string{"PATH=" + pathWithout(t, f, noEksctl, "eksctl")}, "missing tools: eksctl"},
		{"bad cluster name", []string{"OMIKUJI_CLUSTER=omikuji; rm -rf /"}, "cluster name 'omikuji; rm -rf /'"},
	}
	for _, pf := range preflight {
		t.Run("preflight: "+pf.name, func(t *testing.T) {
			f.t = t
			f.reset()
			for _, target := range []string{"aws-up", "aws-down"} {
				r := f.make(target, f.env(pf.env...))
				if r.code == 0 || !strings.Contains(r.stderr, pf.mentions) {
					t.Errorf("make %s: want a failure saying %q:\n%s", target, pf.mentions, r)
				}
			}
			if live := f.liveStacks(); len(live) != 0 {
				t.Errorf("stacks created despite the failed preflight: %v", live)
			}
			if calls := f.calls(); len(calls) != 0 {
				t.Errorf("tools ran despite the failed preflight:\n%s", strings.Join(calls, "\n"))
			}
		})
	}
}

// controllerResources lists what the load balancer controller made in moto:
// load balancers and security groups carrying its cluster tag.
func (f *flow) controllerResources() (lbs, sgs []string) {
	f.t.Helper()
	var out struct {
		LoadBalancers []struct{ LoadBalancerName string }
	}
	f.awsJSON(&out, "elbv2", "describe-load-balancers")
	for _, lb := range out.LoadBalancers {
		lbs = append(lbs, lb.LoadBalancerName)
	}
	var groups struct {
		SecurityGroups []struct{ GroupId string }
	}
	f.awsJSON(&groups, "ec2", "describe-security-groups", "--filters", "Name=tag:"+controllerTag+",Values=omikuji")
	for _, g := range groups.SecurityGroups {
		sgs = append(sgs, g.GroupId)
	}
	return lbs, sgs
}

// pathWithout builds a PATH whose stand-in directory lacks tool, and which
// skips any other directory that has a real one.
func pathWithout(t *testing.T, f *flow, dir, tool string) string {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range standinTools {
		if name != tool {
			os.Symlink(filepath.Join(f.bin, name), filepath.Join(dir, name))
		}
	}
	parts := []string{dir}
	for _, p := range filepath.SplitList(os.Getenv("PATH")) {
		if _, err := os.Stat(filepath.Join(p, tool)); err == nil {
			continue
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, string(os.PathListSeparator))
}
