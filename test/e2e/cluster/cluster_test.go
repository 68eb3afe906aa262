package cluster

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// These tests cover the harness's own logic offline; the cluster itself is
// exercised by the e2e test in the parent directory.

func TestSplitRuleKeepsQuotedComments(t *testing.T) {
	rule := `INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS`
	got := splitRule(rule)
	want := []string{"INPUT", "-m", "comment", "--comment", "kubernetes health check service ports", "-j", "KUBE-NODEPORTS"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("splitRule(%q) = %q, want %q", rule, got, want)
	}
	if got := splitRule(`X --comment "a \"quoted\" word"`); got[2] != `a "quoted" word` {
		t.Fatalf("escaped quotes: got %q", got)
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{
		`/tmp/a\040b`: "/tmp/a b",
		`/plain/path`: "/plain/path",
		`/tab\011x`:   "/tab\tx",
	} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestKubernetesVersionAndLDFlags(t *testing.T) {
	dir := t.TempDir()
	gomod := filepath.Join(dir, "go.mod")
	if err := os.WriteFile(gomod, []byte("module x\n\nrequire k8s.io/kubernetes v1.36.5 // indirect\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := kubernetesVersion(gomod)
	if err != nil || v != "v1.36.5" {
		t.Fatalf("kubernetesVersion = %q, %v; want v1.36.5", v, err)
	}
	flags := versionLDFlags(v)
	for _, want := range []string{
		"k8s.io/component-base/version.gitVersion=v1.36.5",
		"k8s.io/client-go/pkg/version.gitMinor=36",
	} {
		if !strings.Contains(flags, want) {
			t.Errorf("ldflags %q lack %q", flags, want)
		}
	}
	if err := os.WriteFile(gomod, []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := kubernetesVersion(gomod); err == nil {
		t.Error("a go.mod without k8s.io/kubernetes gave no error")
	}
}

// The real upstream module pins one release: every staging module at the
// matching v0 version, the minor the EKS cluster in infra/ runs, and the
// version docs/e2e.md names.
func TestUpstreamModulePinsKubernetes(t *testing.T) {
	gomod := filepath.Join("..", "upstream", "go.mod")
	v, err := kubernetesVersion(gomod)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v, "v1.") {
		t.Fatalf("upstream pins %q", v)
	}
	staging := "v0" + strings.TrimPrefix(v, "v1")
	b, err := os.ReadFile(gomod)
	if err != nil {
		t.Fatal(err)
	}
	replaces := 0
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 4 && f[1] == "=>" && strings.HasPrefix(f[0], "k8s.io/") {
			replaces++
			if f[3] != staging {
				t.Errorf("go.mod replaces %s with %s, want %s to match k8s.io/kubernetes %s", f[0], f[3], staging, v)
			}
		}
	}
	// etcd's server is built at the version of the etcd client that
	// Kubernetes itself requires.
	client := regexp.MustCompile(`(?m)^\s*go\.etcd\.io/etcd/client/v3 (v\S+)`).FindStringSubmatch(string(b))
	server := regexp.MustCompile(`(?m)^\s*go\.etcd\.io/etcd/server/v3 (v\S+)`).FindStringSubmatch(string(b))
	if client == nil || server == nil || client[1] != server[1] {
		t.Errorf("go.mod requires etcd client %v and server %v, want one version", client, server)
	}
	if !strings.Contains(string(b), "\t"+etcdPackage+"\n") {
		t.Errorf("go.mod does not list %s as a tool", etcdPackage)
	}
	if replaces < 30 {
		t.Errorf("go.mod replaces %d k8s.io staging modules, want all of them (30 or more)", replaces)
	}
	eks, err := os.ReadFile(filepath.Join("..", "..", "..", "infra", "eksctl", "cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	minor := v[:strings.LastIndex(v, ".")]
	if !strings.Contains(string(eks), `version: "`+strings.TrimPrefix(minor, "v")+`"`) {
		t.Errorf("infra/eksctl/cluster.yaml does not run Kubernetes %s, the e2e's minor", minor)
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "e2e.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "`k8s.io/kubernetes` "+v) {
		t.Errorf("docs/e2e.md does not name k8s.io/kubernetes %s", v)
	}
}

func TestBuildKeyFollowsGoSum(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module x\n")
	write("go.sum", "a v1 h1:x\n")
	ctx := context.Background()
	k1, err := buildKey(ctx, dir, "-s")
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := buildKey(ctx, dir, "-s"); again != k1 {
		t.Fatalf("key not stable: %s then %s", k1, again)
	}
	write("go.sum", "a v2 h1:y\n")
	if k2, _ := buildKey(ctx, dir, "-s"); k2 == k1 {
		t.Error("changing go.sum kept the cache key")
	}
	if k3, _ := buildKey(ctx, dir, "-w"); k3 == k1 {
		t.Error("changing the link flags kept the cache key")
	}
}

func TestPKIChainsToCA(t *testing.T) {
	p, err := newPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.issue("node", "system:node:n", []string{"system:nodes"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p.path("node.crt"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(p.caCert)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("client certificate does not chain to the CA: %v", err)
	}
	if cert.Subject.CommonName != "system:node:n" || cert.Subject.Organization[0] != "system:nodes" {
		t.Errorf("subject %v: want the Kubernetes user and group", cert.Subject)
	}
	if fi, err := os.Stat(p.path("node.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
}

func TestPauseImage(t *testing.T) {
	out := filepath.Join(t.TempDir(), "pause.tar")
	if err := BuildPauseImage(context.Background(), "..", out); err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(PauseImage)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatalf("the tarball has no image tagged %s: %v", PauseImage, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OS != "linux" || !reflect.DeepEqual(cfg.Config.Entrypoint, []string{"/pause"}) || cfg.Config.User == "" {
		t.Errorf("config: os %q, entrypoint %q, user %q", cfg.OS, cfg.Config.Entrypoint, cfg.Config.User)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%d layers (%v), want 1", len(layers), err)
	}
}

// Every node gets addresses of its own inside the harness's ranges, and
// names the kernel accepts.
func TestNodeSpecs(t *testing.T) {
	_, cluster, _ := net.ParseCIDR(ClusterCIDR)
	_, nodes, _ := net.ParseCIDR(nodeNet)
	seen := map[string]bool{}
	for i := 1; i <= MaxNodes; i++ {
		n := nodeSpec(i)
		ip, podNet, err := net.ParseCIDR(n.PodCIDR)
		if err != nil || !cluster.Contains(ip) || !cluster.Contains(lastIP(podNet)) {
			t.Errorf("node %d: pod CIDR %s not inside %s (%v)", i, n.PodCIDR, ClusterCIDR, err)
		}
		if !nodes.Contains(net.ParseIP(n.IP)) {
			t.Errorf("node %d: IP %s not inside %s", i, n.IP, nodeNet)
		}
		for _, v := range []string{n.Name, n.IP, n.PodCIDR, n.Zone, n.CgroupRoot} {
			if seen[v] {
				t.Errorf("node %d: %q is another node's too", i, v)
			}
			seen[v] = true
		}
		if (i == 1) != (n.Netns == "") || (i == 1) != (n.HostLink == "") {
			t.Errorf("node %d: netns %q, host link %q: only node 1 uses the host's network", i, n.Netns, n.HostLink)
		}
		if len(n.HostLink) > 15 { // IFNAMSIZ - 1
			t.Errorf("node %d: link name %q is longer than the kernel allows", i, n.HostLink)
		}
	}
}

func lastIP(n *net.IPNet) net.IP {
	ip := make(net.IP, len(n.IP))
	for i := range n.IP {
		ip[i] = n.IP[i] | ^n.Mask[i]
	}
	return ip
}
