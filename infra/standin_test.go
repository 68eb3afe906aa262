package infra

// Stand-ins for the commands of the AWS flow that moto cannot emulate:
// eksctl (cluster creation), helm, kubectl against EKS, curl against the load
// balancer, and the image build/push tool. The test binary itself plays them:
// the flow test puts symlinks named after each tool first on PATH, and
// TestMain recognises the name it was started under. Every call is appended
// to calls.log so the test can check the order of the steps.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/omikuji/omikuji/internal/fortune"
)

const (
	standinDirEnv  = "OMIKUJI_STANDIN_DIR"          // where calls.log and captured files go
	standinFailEnv = "OMIKUJI_STANDIN_FAIL"         // a tool name: that stand-in fails
	realKubectlEnv = "OMIKUJI_STANDIN_REAL_KUBECTL" // the real kubectl, for `kubectl kustomize`
	imageToolName  = "omikuji-image-standin"
	standinHost    = "omikuji-0123456789abcdef.elb.us-east-1.amazonaws.com"
)

var standinTools = []string{"eksctl", "helm", "kubectl", "curl", imageToolName}

func TestMain(m *testing.M) {
	if dir := os.Getenv(standinDirEnv); dir != "" {
		if name := filepath.Base(os.Args[0]); slices.Contains(standinTools, name) {
			os.Exit(runStandin(name, os.Args[1:], dir))
		}
	}
	os.Exit(m.Run())
}

// installStandins links every stand-in into a fresh directory for PATH.
func installStandins(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	for _, name := range standinTools {
		if err := os.Symlink(self, filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	return bin
}

func runStandin(name string, args []string, dir string) int {
	f, err := os.OpenFile(filepath.Join(dir, "calls.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Fprintf(f, "%s %s\n", name, strings.Join(args, " "))
	f.Close()
	if os.Getenv(standinFailEnv) == name {
		fmt.Fprintf(os.Stderr, "Error: %s stand-in: simulated failure\n", name)
		return 1
	}
	if err := standin(name, args, dir); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %s stand-in: %v\n", name, err)
		return 1
	}
	return 0
}

func standin(name string, args []string, dir string) error {
	line := strings.Join(args, " ")
	clusterState := filepath.Join(dir, "cluster-exists")
	switch name {
	case "eksctl":
		switch {
		case strings.HasPrefix(line, "get cluster"):
			if _, err := os.Stat(clusterState); err != nil {
				return fmt.Errorf("no cluster found for name: %s", flagValue(args, "--name"))
			}
			fmt.Println("NAME\tREGION\tEKSCTL CREATED\nomikuji\tus-east-1\tTrue")
		case strings.HasPrefix(line, "create cluster"):
			// Keep the config eksctl was given, for the test to inspect.
			if err := copyFile(flagValue(args, "-f"), filepath.Join(dir, "eksctl-cluster.yaml")); err != nil {
				return err
			}
			return os.WriteFile(clusterState, nil, 0o644)
		case strings.HasPrefix(line, "delete cluster"):
			return os.Remove(clusterState)
		case strings.HasPrefix(line, "create addon -f"), strings.HasPrefix(line, "create nodegroup -f"):
			if _, err := os.Stat(clusterState); err != nil {
				return fmt.Errorf("no cluster found for name: %s", sampleCluster)
			}
		case strings.HasPrefix(line, "utils write-kubeconfig"):
		default:
			return fmt.Errorf("unexpected call: %s", line)
		}
	case "helm":
		switch {
		case strings.HasPrefix(line, "repo add"):
		case strings.HasPrefix(line, "upgrade --install"):
			// Like helm, fail on a values file that is not there.
			if _, err := os.Stat(flagValue(args, "-f")); err != nil {
				return err
			}
			if strings.HasPrefix(line, "upgrade --install aws-load-balancer-controller ") {
				// The controller is running now: remember its settings.
				return os.WriteFile(filepath.Join(dir, controllerState), []byte(line), 0o644)
			}
		default:
			return fmt.Errorf("unexpected call: %s", line)
		}
	case "kubectl":
		return kubectlStandin(args, line, dir)
	case "curl":
		fmt.Println("大吉 great-fortune")
	case imageToolName:
		return imageStandin(args, dir)
	}
	return nil
}

func kubectlStandin(args []string, line, dir string) error {
	switch {
	case strings.HasPrefix(line, "apply -k"):
		// Render the kustomization with the real kubectl, as apply would.
		kdir := flagValue(args, "-k")
		if err := copyFile(filepath.Join(kdir, "kustomization.yaml"), filepath.Join(dir, "app-kustomization.yaml")); err != nil {
			return err
		}
		out, err := exec.Command(os.Getenv(realKubectlEnv), "kustomize", kdir).Output()
		if err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				return fmt.Errorf("kustomize %s: %s", kdir, ee.Stderr)
			}
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "app.yaml"), out, 0o644); err != nil {
			return err
		}
		return controllerProvisions(out, dir)
	case strings.Contains(line, "get deployments -o name"):
		for _, id := range fortune.IDs() {
			fmt.Println("deployment.apps/" + id)
		}
	case strings.Contains(line, "rollout status"):
		fmt.Println("deployment successfully rolled out")
	case strings.Contains(line, "get service"):
		fmt.Print(standinHost)
	case strings.HasPrefix(line, "-n omikuji delete service omikuji"):
		return controllerReleases(dir)
	case strings.Contains(line, "delete "):
	default:
		return fmt.Errorf("unexpected call: %s", line)
	}
	return nil
}

// What the AWS Load Balancer Controller would make in AWS for the Service,
// made for real in moto: a frontend and a backend security group and a
// network load balancer in the VPC it was given, tagged as it tags them.
const (
	controllerState = "load-balancer-controller" // its helm call, once installed
	controllerTag   = "elbv2.k8s.aws/cluster"
	standinNLBName  = "k8s-omikuji-omikuji-0123456789"
)

// controllerProvisions plays the controller when the app is applied: only
// a Service of its class, and only once it is installed, gets an NLB.
func controllerProvisions(app []byte, dir string) error {
	helm, err := os.ReadFile(filepath.Join(dir, controllerState))
	if os.IsNotExist(err) || !strings.Contains(string(app), "loadBalancerClass: service.k8s.aws/nlb") {
		return nil
	}
	if err != nil {
		return err
	}
	// Like the controller, leave a load balancer that is already there.
	if arns, err := awsCLI("elbv2", "describe-load-balancers", "--query", "LoadBalancers[?LoadBalancerName=='"+standinNLBName+"'].LoadBalancerArn", "--output", "text"); err != nil || arns != "" {
		return err
	}
	var cluster, vpc string
	for _, kv := range strings.Fields(string(helm)) {
		if v, ok := strings.CutPrefix(kv, "clusterName="); ok {
			cluster = v
		}
		if v, ok := strings.CutPrefix(kv, "vpcId="); ok {
			vpc = v
		}
	}
	subnets, err := awsCLI("ec2", "describe-subnets", "--filters", "Name=vpc-id,Values="+vpc, "--query", "Subnets[].SubnetId", "--output", "text")
	if err != nil {
		return err
	}
	var groups []string
	for _, name := range []string{"k8s-omikuji-omikuji-frontend", "k8s-traffic-omikuji-backend"} {
		id, err := awsCLI("ec2", "create-security-group", "--group-name", name, "--description", name, "--vpc-id", vpc,
			"--tag-specifications", "ResourceType=security-group,Tags=[{Key="+controllerTag+",Value="+cluster+"}]",
			"--query", "GroupId", "--output", "text")
		if err != nil {
			return err
		}
		groups = append(groups, id)
	}
	_, err = awsCLI(append([]string{"elbv2", "create-load-balancer", "--name", standinNLBName, "--type", "network", "--scheme", "internet-facing",
		"--tags", "Key=" + controllerTag + ",Value=" + cluster, "--subnets"}, append(strings.Fields(subnets), append([]string{"--security-groups"}, groups...)...)...)...)
	return err
}

// controllerReleases plays the controller's finalizer when the Service is
// deleted: the NLB goes, then its security groups.
func controllerReleases(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, controllerState)); os.IsNotExist(err) {
		return nil
	}
	arns, err := awsCLI("elbv2", "describe-load-balancers", "--query", "LoadBalancers[?LoadBalancerName=='"+standinNLBName+"'].LoadBalancerArn", "--output", "text")
	if err != nil {
		return err
	}
	for _, arn := range strings.Fields(arns) {
		if _, err := awsCLI("elbv2", "delete-load-balancer", "--load-balancer-arn", arn); err != nil {
			return err
		}
	}
	groups, err := awsCLI("ec2", "describe-security-groups", "--filters", "Name=tag-key,Values="+controllerTag, "--query", "SecurityGroups[].GroupId", "--output", "text")
	if err != nil {
		return err
	}
	for _, id := range strings.Fields(groups) {
		if _, err := awsCLI("ec2", "delete-security-group", "--group-id", id); err != nil {
			return err
		}
	}
	return nil
}

// awsCLI runs the real aws CLI against moto (the scripts' environment
// points it there) and returns its output.
func awsCLI(args ...string) (string, error) {
	out, err := exec.Command("aws", args...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return "", fmt.Errorf("aws %s: %s", strings.Join(args[:2], " "), ee.Stderr)
		}
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// flagValue returns the argument after flag, or "".
func flagValue(args []string, flag string) string {
	for i, a := range args[:max(len(args)-1, 0)] {
		if a == flag {
			return args[i+1]
		}
	}
	return ""
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}
