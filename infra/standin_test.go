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
		return os.WriteFile(filepath.Join(dir, "app.yaml"), out, 0o644)
	case strings.Contains(line, "get deployments -o name"):
		for _, id := range fortune.IDs() {
			fmt.Println("deployment.apps/" + id)
		}
	case strings.Contains(line, "rollout status"):
		fmt.Println("deployment successfully rolled out")
	case strings.Contains(line, "get service"):
		fmt.Print(standinHost)
	case strings.Contains(line, "delete "):
	default:
		return fmt.Errorf("unexpected call: %s", line)
	}
	return nil
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
