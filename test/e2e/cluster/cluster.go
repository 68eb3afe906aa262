// Package cluster brings up a real Kubernetes cluster of one or more nodes on
// this machine from upstream components — etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kubelet with containerd, runc and
// the CNI bridge plugin, and kube-proxy in iptables or nftables mode — the
// way Kubernetes' own hack/local-up-cluster.sh does, and takes it down again
// leaving the host as it found it. Node 1 shares the host's network; each
// further node has a network namespace of its own (see Node).
//
// Everything lives under one directory; the host-wide changes (a /32 on lo,
// netfilter rules, sysctls, cgroups, a bridge) are recorded in its state file
// so that Down works after any failure, from any process, any number of times.
package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Options configure Up.
type Options struct {
	// ProxyMode is kube-proxy's mode on every node: "iptables" or "nftables".
	ProxyMode string
	// Nodes is how many nodes run a kubelet, from 1 to MaxNodes; 0 means 1.
	Nodes int
	// BinDir holds kube-apiserver, kube-controller-manager, kube-scheduler,
	// kubelet and kube-proxy (see Build).
	BinDir string
	// SourceDir is the e2e module's directory, where the pause program
	// lives. Empty means the module containing the working directory.
	SourceDir string
	// Dir is the cluster's directory; empty means a new temporary one.
	Dir string
	// Log receives progress and per-phase timings; nil discards them.
	Log io.Writer
}

// Cluster is a running cluster. Its exported fields are its state file.
type Cluster struct {
	Dir       string  `json:"dir"`
	BinDir    string  `json:"binDir"`
	ProxyMode string  `json:"proxyMode"`
	EtcdPort  int     `json:"etcdPort"`
	Procs     []*Proc `json:"procs"`
	Nodes     []*Node `json:"nodes"`
	// Owner is the process that called Up.
	Owner *Proc `json:"owner"`
	// Host-wide changes, recorded before they are made.
	Sysctls     map[string]string `json:"sysctls"`
	AddedNodeIP bool              `json:"addedNodeIP"`
	// MountedRunNetns: /run/netns was not a mount point before ip netns add.
	MountedRunNetns bool     `json:"mountedRunNetns"`
	Created         []string `json:"created"` // host paths outside Dir that Up created
	// Timings lists how long each phase of Up took, in order.
	Timings []Timing `json:"timings"`

	log io.Writer
}

// Timing is one measured phase.
type Timing struct {
	Phase    string        `json:"phase"`
	Duration time.Duration `json:"duration"`
}

// pointer names the directory of the cluster that is up, so that a later
// `cluster down` or the next run can find and remove a cluster a crashed
// process left behind.
const pointer = "/run/omikuji-e2e/cluster-dir"

// Host paths that containerd and CNI use regardless of configuration.
var hostPaths = []string{"/run/containerd", "/var/lib/cni"}

// Up starts a cluster and waits until every node is Ready and every
// kube-proxy has synced. On failure it tears down whatever it started and
// returns an error that includes the failing component's log.
func Up(ctx context.Context, opts Options) (c *Cluster, err error) {
	if opts.ProxyMode != "iptables" && opts.ProxyMode != "nftables" {
		return nil, fmt.Errorf("proxy mode %q: want iptables or nftables", opts.ProxyMode)
	}
	if opts.Nodes == 0 {
		opts.Nodes = 1
	}
	if opts.Nodes < 1 || opts.Nodes > MaxNodes {
		return nil, fmt.Errorf("%d nodes: want 1 to %d", opts.Nodes, MaxNodes)
	}
	if err := Preflight(ctx, opts.BinDir); err != nil {
		return nil, err
	}
	if err := DownStale(opts.Log, false); err != nil {
		return nil, fmt.Errorf("another cluster is up: %w", err)
	}
	if err := checkClean(ctx); err != nil {
		return nil, err
	}
	dir := opts.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "omikuji-e2e-"); err != nil {
			return nil, err
		}
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, err
	}
	c = &Cluster{Dir: dir, BinDir: opts.BinDir, ProxyMode: opts.ProxyMode, log: opts.Log, Sysctls: readSysctls()}
	for i := 1; i <= opts.Nodes; i++ {
		c.Nodes = append(c.Nodes, nodeSpec(i))
	}
	if start, err := procStart(os.Getpid()); err == nil {
		c.Owner = &Proc{Name: "owner", PID: os.Getpid(), Start: start}
	}
	if c.log == nil {
		c.log = io.Discard
	}
	for _, p := range hostPaths {
		if !exists(p) {
			c.Created = append(c.Created, p)
		}
	}
	for _, p := range cgroupRoots() {
		if !exists(p) {
			c.Created = append(c.Created, p)
		}
	}
	for _, d := range []string{"logs", "kubeconfig", "etcd"} {
		if err := os.MkdirAll(c.file(d), 0o755); err != nil {
			return nil, err
		}
	}
	for _, n := range c.Nodes {
		for _, d := range []string{"kubelet", "pod-logs", "cni/net.d", "containerd"} {
			if err := os.MkdirAll(c.nodeFile(n, d), 0o755); err != nil {
				return nil, err
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(pointer), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(pointer, []byte(dir), 0o644); err != nil {
		return nil, err
	}
	if err := c.save(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if derr := c.Down(); derr != nil {
				err = fmt.Errorf("%w\nand tearing down failed too: %v", err, derr)
			}
			c = nil
		}
	}()
	sourceDir := opts.SourceDir
	if sourceDir == "" {
		if sourceDir, err = ModuleDir(ctx); err != nil {
			return c, err
		}
	}
	type step struct {
		phase string
		fn    func(context.Context) error
	}
	steps := []step{
		{"certificates", c.writePKI},
		{"etcd", c.startEtcd},
		{"kube-apiserver", c.startAPIServer},
		{"controller-manager+scheduler", c.startControlPlane},
		{"pause image", func(ctx context.Context) error { return BuildPauseImage(ctx, sourceDir, c.file("pause-image.tar")) }},
	}
	// Node 1's phases keep their single-node names.
	label := func(n *Node, phase string) string {
		if n.Netns == "" {
			return phase
		}
		return n.Name + ": " + phase
	}
	for _, n := range c.Nodes {
		if n.Netns != "" {
			steps = append(steps, step{label(n, "network namespace, veth, routes"), func(ctx context.Context) error { return c.startNetwork(ctx, n) }})
		}
		steps = append(steps,
			step{label(n, "containerd+pause image"), func(ctx context.Context) error { return c.startContainerd(ctx, n) }},
			step{label(n, "kubelet (node Ready)"), func(ctx context.Context) error { return c.startKubelet(ctx, n) }})
	}
	for _, n := range c.Nodes {
		steps = append(steps, step{label(n, "kube-proxy "+opts.ProxyMode), func(ctx context.Context) error { return c.startKubeProxy(ctx, n, opts.ProxyMode) }})
	}
	for _, s := range steps {
		if err := c.timed(s.phase, func() error { return s.fn(ctx) }); err != nil {
			return c, fmt.Errorf("%s: %w", s.phase, err)
		}
	}
	return c, nil
}

func (c *Cluster) timed(phase string, fn func() error) error {
	start := time.Now()
	err := fn()
	d := time.Since(start).Round(10 * time.Millisecond)
	c.Timings = append(c.Timings, Timing{Phase: phase, Duration: d})
	fmt.Fprintf(c.log, "cluster: %-46s %6.1f s\n", phase, d.Seconds())
	return errors.Join(err, c.save())
}

func (c *Cluster) save() error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(c.file("state.json"), b, 0o644)
}

// path is the PATH the components see: upstream binaries first, then the
// system (containerd finds runc and its shim there).
func (c *Cluster) path() string {
	return c.BinDir + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
}

// ModuleDir finds the e2e module (test/e2e) from the working directory.
func ModuleDir(ctx context.Context) (string, error) {
	out, err := run(ctx, "go", "env", "GOMOD")
	if err != nil {
		return "", err
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull || !strings.HasSuffix(filepath.Dir(gomod), filepath.Join("test", "e2e")) {
		return "", fmt.Errorf("run from inside test/e2e (go env GOMOD = %q) or set Options.SourceDir", gomod)
	}
	return filepath.Dir(gomod), nil
}

// Preflight fails with a plain message when this machine cannot run a
// cluster: not root, a missing program, or netfilter not usable. An empty
// binDir skips the check for the upstream binaries (before Build).
func Preflight(ctx context.Context, binDir string) error {
	var problems []string
	if os.Geteuid() != 0 {
		problems = append(problems, "must run as root (it starts kubelet and containerd and changes netfilter rules)")
	}
	for _, name := range append(Components, "etcd") {
		if _, err := os.Stat(filepath.Join(binDir, name)); binDir != "" && err != nil {
			problems = append(problems, fmt.Sprintf("missing %s in %q (built by cluster.Build)", name, binDir))
		}
	}
	for _, tool := range []string{"containerd", "containerd-shim-runc-v2", "runc", "ctr", "kubectl", "iptables", "ip6tables", "iptables-save", "nft", "ip", "conntrack", "nsenter", "sysctl", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			problems = append(problems, fmt.Sprintf("missing %s in PATH (Debian packages: scripts/deps.sh)", tool))
		}
	}
	for _, plugin := range []string{"bridge", "host-local", "loopback"} {
		if _, err := os.Stat(filepath.Join("/usr/lib/cni", plugin)); err != nil {
			problems = append(problems, "missing CNI plugin /usr/lib/cni/"+plugin+" (Debian package containernetworking-plugins)")
		}
	}
	if len(problems) == 0 {
		if _, err := run(ctx, "iptables", "-w", "-t", "nat", "-S"); err != nil {
			problems = append(problems, fmt.Sprintf("iptables does not work here (no netfilter?): %v", err))
		}
		if _, err := run(ctx, "nft", "list", "tables"); err != nil {
			problems = append(problems, fmt.Sprintf("nftables does not work here: %v", err))
		}
		if !exists("/sys/fs/cgroup/memory/memory.limit_in_bytes") && !exists("/sys/fs/cgroup/cgroup.controllers") {
			problems = append(problems, "no memory cgroup controller mounted under /sys/fs/cgroup")
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("this machine cannot run the e2e cluster:\n  - %s", strings.Join(problems, "\n  - "))
	}
	return nil
}

// checkClean refuses to start over another cluster's leftovers, which Down
// would otherwise be unable to tell from its own.
func checkClean(ctx context.Context) error {
	var problems []string
	if hasNodeIP(ctx) {
		problems = append(problems, NodeIP+"/32 is already on lo")
	}
	for _, save := range []string{"iptables-save", "ip6tables-save"} {
		if chains, _, err := kubeChains(ctx, save); err == nil && len(chains) > 0 {
			problems = append(problems, fmt.Sprintf("%s shows KUBE-* chains %v", save, chains))
		}
	}
	if tables, err := kubeNftTables(ctx); err == nil && len(tables) > 0 {
		problems = append(problems, fmt.Sprintf("nftables has %v", tables))
	}
	if exists("/sys/class/net/" + bridgeName) {
		problems = append(problems, "network link "+bridgeName+" exists")
	}
	if len(cgroupPIDs(cgroupRoots())) > 0 {
		problems = append(problems, "processes are running in a kubepods cgroup")
	}
	problems = append(problems, hostNetworkLeftovers(ctx)...)
	if len(problems) > 0 {
		return fmt.Errorf("another Kubernetes node seems to be running here, refusing to start:\n  - %s", strings.Join(problems, "\n  - "))
	}
	return nil
}

func (c *Cluster) writePKI(ctx context.Context) error {
	p, err := newPKI(c.file("pki"))
	if err != nil {
		return err
	}
	serverIPs := []net.IP{net.ParseIP(NodeIP), net.ParseIP("10.97.0.1"), net.ParseIP("127.0.0.1")}
	serverNames := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	certs := []struct {
		name, cn string
		orgs     []string
	}{
		{"admin", "omikuji-e2e-admin", []string{"system:masters"}},
		{"kube-controller-manager", "system:kube-controller-manager", nil},
		{"kube-scheduler", "system:kube-scheduler", nil},
		{"kube-proxy", "system:kube-proxy", nil},
		{"apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"}},
	}
	for _, n := range c.nodes() {
		certs = append(certs, struct {
			name, cn string
			orgs     []string
		}{n.procName("kubelet"), "system:node:" + n.Name, []string{"system:nodes"}})
	}
	if err := p.issue("apiserver", "kube-apiserver", nil, serverNames, serverIPs); err != nil {
		return err
	}
	for _, cert := range certs {
		if err := p.issue(cert.name, cert.cn, cert.orgs, nil, nil); err != nil {
			return err
		}
		if cert.name != "apiserver-kubelet-client" {
			if err := c.kubeconfig(cert.name); err != nil {
				return err
			}
		}
	}
	return p.serviceAccountKey()
}

// Kubeconfig is the path of the cluster-admin kubeconfig.
func (c *Cluster) Kubeconfig() string { return c.file("kubeconfig", "admin") }

// Kubectl runs kubectl as cluster admin and returns its combined output.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) ([]byte, error) {
	return run(ctx, "kubectl", append([]string{"--kubeconfig", c.Kubeconfig()}, args...)...)
}

// FreeLoopbackPort is a TCP port on 127.0.0.1 that was free a moment ago.
func FreeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (c *Cluster) startEtcd(ctx context.Context) error {
	client, err := FreeLoopbackPort()
	if err != nil {
		return err
	}
	peer, err := FreeLoopbackPort()
	if err != nil {
		return err
	}
	c.EtcdPort = client
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", client)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peer)
	p, err := c.start("etcd", filepath.Join(c.BinDir, "etcd"),
		"--name", "omikuji-e2e", "--data-dir", c.file("etcd"),
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "omikuji-e2e="+peerURL, "--log-level", "warn")
	if err != nil {
		return err
	}
	return c.waitFor(ctx, p, 30*time.Second, func() error {
		return httpOK(ctx, http.DefaultClient, clientURL+"/health")
	})
}

func (c *Cluster) startAPIServer(ctx context.Context) error {
	if !hasNodeIP(ctx) {
		c.AddedNodeIP = true // recorded first, so a crash in between is still undone
		if err := c.save(); err != nil {
			return err
		}
		if _, err := run(ctx, "ip", "addr", "add", NodeIP+"/32", "dev", "lo"); err != nil {
			return err
		}
	}
	pki := func(f string) string { return c.file("pki", f) }
	p, err := c.start("kube-apiserver", filepath.Join(c.BinDir, "kube-apiserver"),
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", c.EtcdPort),
		"--bind-address="+NodeIP, "--advertise-address="+NodeIP, fmt.Sprintf("--secure-port=%d", apiPort),
		"--cert-dir="+c.file("pki", "apiserver-generated"),
		"--tls-cert-file="+pki("apiserver.crt"), "--tls-private-key-file="+pki("apiserver.key"),
		"--client-ca-file="+pki("ca.crt"),
		"--kubelet-client-certificate="+pki("apiserver-kubelet-client.crt"),
		"--kubelet-client-key="+pki("apiserver-kubelet-client.key"),
		// Reach kubelets (logs, exec) by node IP: node 2's name resolves nowhere.
		"--kubelet-preferred-address-types=InternalIP,Hostname",
		"--service-cluster-ip-range="+ServiceCIDR,
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+pki("sa.pub"),
		"--service-account-signing-key-file="+pki("sa.key"),
		"--allow-privileged=false",
		"--profiling=false",
	)
	if err != nil {
		return err
	}
	client, err := c.adminHTTP()
	if err != nil {
		return err
	}
	return c.waitFor(ctx, p, 90*time.Second, func() error {
		return httpOK(ctx, client, fmt.Sprintf("https://%s:%d/readyz", NodeIP, apiPort))
	})
}

// adminHTTP is an HTTP client that trusts the cluster CA and authenticates
// as cluster admin.
func (c *Cluster) adminHTTP() (*http.Client, error) {
	caPEM, err := os.ReadFile(c.file("pki", "ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cert, err := tls.LoadX509KeyPair(c.file("pki", "admin.crt"), c.file("pki", "admin.key"))
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}},
	}}, nil
}

// startControlPlane starts kube-controller-manager and kube-scheduler, each
// with its own kubeconfig for the API, authentication and authorization, on
// the node IP, without leader election or profiling, then waits for their
// secure /healthz.
func (c *Cluster) startControlPlane(ctx context.Context) error {
	components := []struct {
		name       string
		healthPort int
		flags      []string
	}{
		{"kube-controller-manager", 10257, []string{
			"--controllers=*,-cloud-node-lifecycle-controller",
			"--use-service-account-credentials",
			"--service-account-private-key-file=" + c.file("pki", "sa.key"),
			"--root-ca-file=" + c.file("pki", "ca.crt"),
			"--cluster-signing-cert-file=" + c.file("pki", "ca.crt"),
			"--cluster-signing-key-file=" + c.file("pki", "ca.key"),
		}},
		{"kube-scheduler", 10259, nil},
	}
	procs := make([]*Proc, len(components))
	for i, comp := range components {
		kubeconfig := c.file("kubeconfig", comp.name)
		p, err := c.start(comp.name, filepath.Join(c.BinDir, comp.name), append([]string{
			"--kubeconfig=" + kubeconfig,
			"--authentication-kubeconfig=" + kubeconfig,
			"--authorization-kubeconfig=" + kubeconfig,
			"--bind-address=" + NodeIP,
			"--leader-elect=false",
			"--profiling=false",
		}, comp.flags...)...)
		if err != nil {
			return err
		}
		procs[i] = p
	}
	insecure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		// Their self-signed serving certificates are not the point here.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // health probe on our own node IP
	}}
	for i, comp := range components {
		if err := c.waitFor(ctx, procs[i], 60*time.Second, func() error {
			return httpOK(ctx, insecure, fmt.Sprintf("https://%s:%d/healthz", NodeIP, comp.healthPort))
		}); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) startContainerd(ctx context.Context, n *Node) error {
	if err := c.makeCgroupRoot(n); err != nil {
		return err
	}
	if err := writeFile(c.nodeFile(n, "containerd", "config.toml"), c.containerdConfig(n)); err != nil {
		return err
	}
	if err := writeFile(c.nodeFile(n, "cni", "net.d", "10-omikuji-e2e.conflist"), c.cniConfig(n)); err != nil {
		return err
	}
	p, err := c.startOn(n, "containerd", "containerd", "--config", c.nodeFile(n, "containerd", "config.toml"))
	if err != nil {
		return err
	}
	if err := c.waitFor(ctx, p, 30*time.Second, func() error {
		_, err := c.ctr(ctx, n, "version")
		return err
	}); err != nil {
		return err
	}
	_, err = c.ctr(ctx, n, "images", "import", c.file("pause-image.tar"))
	return err
}

// ctr runs containerd's CLI against a node's containerd, in the namespace
// the CRI plugin uses.
func (c *Cluster) ctr(ctx context.Context, n *Node, args ...string) ([]byte, error) {
	return run(ctx, "ctr", append([]string{"--address", c.containerdSocket(n), "--namespace", "k8s.io"}, args...)...)
}

// ImportImage imports a docker-archive tarball into every node's containerd.
// Images are never pulled: Deployments use imagePullPolicy Never.
func (c *Cluster) ImportImage(ctx context.Context, tarball string) error {
	for _, n := range c.nodes() {
		if _, err := c.ctr(ctx, n, "images", "import", tarball); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) startKubelet(ctx context.Context, n *Node) error {
	if err := writeFile(c.nodeFile(n, "kubelet", "config.yaml"), c.kubeletConfig(n)); err != nil {
		return err
	}
	p, err := c.startOn(n, "kubelet", filepath.Join(c.BinDir, "kubelet"),
		"--config="+c.nodeFile(n, "kubelet", "config.yaml"),
		"--kubeconfig="+c.file("kubeconfig", n.procName("kubelet")),
		"--root-dir="+c.nodeFile(n, "kubelet", "root"),
		"--cert-dir="+c.nodeFile(n, "kubelet", "pki"),
		"--node-ip="+n.IP,
		"--hostname-override="+n.Name,
		"--node-labels=topology.kubernetes.io/zone="+n.Zone,
	)
	if err != nil {
		return err
	}
	return c.waitFor(ctx, p, 120*time.Second, func() error {
		out, err := c.Kubectl(ctx, "get", "node", n.Name, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(out)) != "True" {
			return fmt.Errorf("node %s Ready=%q", n.Name, out)
		}
		return nil
	})
}

func (c *Cluster) startKubeProxy(ctx context.Context, n *Node, mode string) error {
	cfg := c.nodeFile(n, "kube-proxy", mode+".yaml")
	if err := writeFile(cfg, c.kubeProxyConfig(n, mode)); err != nil {
		return err
	}
	started := time.Now()
	p, err := c.startOn(n, "kube-proxy", filepath.Join(c.BinDir, "kube-proxy"), "--config="+cfg, "--v=2")
	if err != nil {
		return err
	}
	c.ProxyMode = mode
	return c.waitFor(ctx, p, 60*time.Second, func() error {
		got, err := c.ProxyModeReported(ctx, n)
		if err != nil {
			return err
		}
		if got != mode {
			return fmt.Errorf("kube-proxy on %s reports mode %q, want %q", n.Name, got, mode)
		}
		// /healthz answers 200 before the first sync; the sync timestamp
		// says the rules are really in the kernel.
		synced, err := c.lastProxySync(ctx, n)
		if err != nil {
			return err
		}
		if synced.Before(started) {
			return fmt.Errorf("kube-proxy has not synced its rules yet")
		}
		return nil
	})
}

// ForgetConnections deletes the connection-tracking entries for TCP
// connections to ip:port, on every node. A connection refused while a
// Service had no programmed endpoint leaves an entry without NAT; a client
// that reuses that source port within the entry's timeout (one client
// opening thousands of connections a second does) is refused again, and
// refreshes the entry.
func (c *Cluster) ForgetConnections(ctx context.Context, ip string, port int) error {
	for _, n := range c.nodes() {
		out, err := n.Command(ctx, "conntrack", "-D", "-p", "tcp", "-d", ip, "--dport", strconv.Itoa(port)).CombinedOutput()
		// conntrack exits 1 when there was nothing to delete.
		if err != nil && !strings.Contains(string(out), "0 flow entries have been deleted") {
			return fmt.Errorf("node %s: conntrack -D -d %s --dport %d: %w\n%s", n.Name, ip, port, err, out)
		}
	}
	return nil
}

// lastProxySync reads when a node's kube-proxy last wrote its IPv4 rules,
// from its metrics.
func (c *Cluster) lastProxySync(ctx context.Context, n *Node) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s:%d/metrics", n.IP, proxyMetricsPort), nil)
	if err != nil {
		return time.Time{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return time.Time{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return time.Time{}, err
	}
	const metric = `kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv4"} `
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, metric); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return time.Time{}, err
			}
			return time.Unix(0, int64(f*1e9)), nil
		}
	}
	return time.Time{}, nil // not synced yet: the metric appears with the first sync
}

// ProxyModeReported asks a node's kube-proxy which mode it is in.
func (c *Cluster) ProxyModeReported(ctx context.Context, n *Node) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s:%d/proxyMode", n.IP, proxyMetricsPort), nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256))
	return strings.TrimSpace(string(b)), err
}

// SetProxyMode restarts kube-proxy on every node in another mode: stop it,
// remove every rule it programmed (kube-proxy --cleanup), start it in the
// new mode and wait until it reports that mode and has synced.
func (c *Cluster) SetProxyMode(ctx context.Context, mode string) error {
	if mode != "iptables" && mode != "nftables" {
		return fmt.Errorf("proxy mode %q: want iptables or nftables", mode)
	}
	return c.timed("kube-proxy → "+mode, func() error {
		for _, n := range c.nodes() {
			if p := c.proc(n.procName("kube-proxy")); p != nil {
				if err := p.stop(10 * time.Second); err != nil {
					return err
				}
			}
			if err := c.proxyCleanup(ctx, n); err != nil {
				return err
			}
			if err := c.startKubeProxy(ctx, n, mode); err != nil {
				return err
			}
		}
		return nil
	})
}

func (c *Cluster) proxyCleanup(ctx context.Context, n *Node) error {
	bin := filepath.Join(c.BinDir, "kube-proxy")
	if !exists(bin) {
		return nil
	}
	if _, err := n.Run(ctx, bin, "--cleanup"); err != nil {
		return fmt.Errorf("kube-proxy --cleanup: %w", err)
	}
	return nil
}

// waitFor polls check until it succeeds, the process dies, or the timeout.
func (c *Cluster) waitFor(ctx context.Context, p *Proc, timeout time.Duration, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if last = check(); last == nil {
			return nil
		}
		if !p.alive() {
			return fmt.Errorf("%s exited: %v\n--- %s (last lines)\n%s", p.Name, last, p.Log, tail(p.Log, 30))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %v\n--- %s (last lines)\n%s", p.Name, timeout, last, p.Log, tail(p.Log, 30))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func httpOK(ctx context.Context, client *http.Client, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// Logs returns the last n lines of every component's log, for failures.
func (c *Cluster) Logs(n int) string {
	var b strings.Builder
	seen := make(map[string]bool)
	for _, p := range c.Procs {
		if seen[p.Log] {
			continue
		}
		seen[p.Log] = true
		fmt.Fprintf(&b, "--- %s\n%s\n", p.Log, tail(p.Log, n))
	}
	return b.String()
}

// SaveLogs copies the components' logs out of the cluster directory, which
// Down removes, into a new directory under $E2E_LOGS or the temp dir.
func (c *Cluster) SaveLogs() (string, error) {
	dir, err := os.MkdirTemp(os.Getenv("E2E_LOGS"), "omikuji-e2e-logs-")
	if err != nil {
		return "", err
	}
	entries, err := os.ReadDir(c.file("logs"))
	if err != nil {
		return dir, err
	}
	for _, e := range entries {
		b, err := os.ReadFile(c.file("logs", e.Name()))
		if err != nil {
			return dir, err
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			return dir, err
		}
	}
	return dir, nil
}

// DownStale removes the cluster that is up, if any. Unless force is set,
// it refuses while the process that brought the cluster up is still running
// (another test run on this machine); a cluster whose owner is gone — a
// crashed run, or `cluster up`, which returns at once — is removed.
func DownStale(log io.Writer, force bool) error {
	b, err := os.ReadFile(pointer)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	dir := strings.TrimSpace(string(b))
	if c, err := load(dir, nil); err == nil && !force && c.Owner != nil && c.Owner.alive() {
		return fmt.Errorf("the cluster in %s is in use by pid %d; wait for it, or remove it with: go run ./cmd/cluster down", dir, c.Owner.PID)
	}
	if log != nil {
		fmt.Fprintf(log, "cluster: removing the cluster left in %s\n", dir)
	}
	return DownDir(dir)
}

// Current returns the cluster that is up, from its state file.
func Current(log io.Writer) (*Cluster, error) {
	b, err := os.ReadFile(pointer)
	if errors.Is(err, os.ErrNotExist) {
		return nil, errors.New("no cluster is up")
	}
	if err != nil {
		return nil, err
	}
	return load(strings.TrimSpace(string(b)), log)
}

func load(dir string, log io.Writer) (*Cluster, error) {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return nil, err
	}
	c := &Cluster{log: log}
	if c.log == nil {
		c.log = io.Discard
	}
	if err := json.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "state.json"), err)
	}
	return c, nil
}

// DownDir tears down the cluster whose state is in dir.
func DownDir(dir string) error {
	c, err := load(dir, nil)
	if errors.Is(err, os.ErrNotExist) {
		// Nothing was started before the state was written; only the
		// pointer can be left.
		if p, _ := os.ReadFile(pointer); strings.TrimSpace(string(p)) == dir {
			return os.Remove(pointer)
		}
		return nil
	}
	if err != nil {
		return err
	}
	return c.Down()
}

// Down stops every process the cluster started and undoes every host change.
// It is safe after any failure and idempotent; it reports what it could not
// undo, and checks that nothing is left.
func (c *Cluster) Down() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var errs []error
	keep := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	stop := func(name string, grace time.Duration) {
		for _, p := range c.Procs {
			if p.Name == name {
				keep(p.stop(grace))
			}
		}
	}
	start := time.Now()
	nodes := c.nodes()
	for _, n := range nodes {
		stop(n.procName("kube-proxy"), 10*time.Second)
		stop(n.procName("kubelet"), 10*time.Second)
	}
	// Pods: kill every process in the kubepods cgroups, then the runc shims
	// of each containerd (found by its socket path in their command line).
	for _, pid := range cgroupPIDs(cgroupRoots()) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, n := range nodes {
		stop(n.procName("containerd"), 10*time.Second)
		for _, pid := range pidsReferencing(c.containerdSocket(n)) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	for _, name := range []string{"kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"} {
		stop(name, 10*time.Second)
	}
	// The other nodes' rules, links and routes live in their namespaces.
	for _, n := range nodes {
		if n.Netns != "" {
			keep(c.stopNetwork(ctx, n))
		}
	}
	keep(c.stopRunNetns())
	keep(c.proxyCleanup(ctx, nodes[0]))
	keep(removeKubeChains(ctx))
	if tables, err := kubeNftTables(ctx); err == nil {
		for _, t := range tables {
			_, err := run(ctx, "nft", append([]string{"delete", "table"}, strings.Fields(t)...)...)
			keep(err)
		}
	}
	if exists("/sys/class/net/" + bridgeName) {
		_, err := run(ctx, "ip", "link", "delete", bridgeName)
		keep(err)
	}
	// Give the killed processes a moment to leave their cgroups and mounts.
	for i := 0; i < 50 && len(cgroupPIDs(cgroupRoots())) > 0; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	keep(unmountAll(c.Dir))
	keep(removeCgroups(cgroupRoots()))
	keep(restoreSysctls(c.Sysctls))
	if c.AddedNodeIP && hasNodeIP(ctx) {
		_, err := run(ctx, "ip", "addr", "delete", NodeIP+"/32", "dev", "lo")
		keep(err)
	}
	for _, p := range c.Created {
		if strings.HasPrefix(p, "/sys/fs/cgroup/") {
			continue // removed above
		}
		keep(os.RemoveAll(p))
	}
	keep(c.leftovers(ctx))
	if len(errs) == 0 {
		keep(os.RemoveAll(c.Dir))
		if b, _ := os.ReadFile(pointer); strings.TrimSpace(string(b)) == c.Dir {
			keep(os.Remove(pointer))
			_ = os.Remove(filepath.Dir(pointer)) // only if empty
		}
	}
	fmt.Fprintf(c.log, "cluster: %-46s %6.1f s\n", "down", time.Since(start).Seconds())
	if len(errs) > 0 {
		return fmt.Errorf("cluster down (%s kept for inspection): %w", c.Dir, errors.Join(errs...))
	}
	return nil
}

// leftovers checks that Down left nothing behind.
func (c *Cluster) leftovers(ctx context.Context) error {
	var left []string
	for _, p := range c.Procs {
		if p.alive() {
			left = append(left, fmt.Sprintf("process %s (pid %d)", p.Name, p.PID))
		}
	}
	if pids := pidsReferencing(c.Dir); len(pids) > 0 {
		left = append(left, fmt.Sprintf("processes referencing %s: %v", c.Dir, pids))
	}
	if pids := cgroupPIDs(cgroupRoots()); len(pids) > 0 {
		left = append(left, fmt.Sprintf("processes in kubepods cgroups: %v", pids))
	}
	if c.AddedNodeIP && hasNodeIP(ctx) {
		left = append(left, NodeIP+"/32 on lo")
	}
	if err := checkClean(ctx); err != nil {
		left = append(left, err.Error())
	}
	for _, p := range c.Created {
		if exists(p) && !strings.HasPrefix(p, "/sys/fs/cgroup/") {
			left = append(left, p)
		}
	}
	if m, _ := mountsUnder(c.Dir); len(m) > 0 {
		left = append(left, fmt.Sprintf("mounts %v", m))
	}
	for _, n := range c.nodes() {
		if n.Netns != "" {
			left = append(left, n.netLeftovers(ctx)...)
		}
	}
	if c.MountedRunNetns && mountedAt("/run/netns") {
		left = append(left, "the mount on /run/netns")
	}
	if len(left) > 0 {
		return fmt.Errorf("left behind: %s", strings.Join(left, "; "))
	}
	return nil
}

// StopProxy stops a node's kube-proxy and leaves its rules in the kernel as
// they are: from then on the node's rules go stale.
func (c *Cluster) StopProxy(n *Node) error {
	if p := c.proc(n.procName("kube-proxy")); p != nil {
		return p.stop(10 * time.Second)
	}
	return nil
}

// StartProxy starts a node's kube-proxy again in the cluster's mode and
// waits until it has synced.
func (c *Cluster) StartProxy(ctx context.Context, n *Node) error {
	return c.startKubeProxy(ctx, n, c.ProxyMode)
}

// WaitProxySynced waits until every node's kube-proxy, but those in skip,
// has written its rules after since.
func (c *Cluster) WaitProxySynced(ctx context.Context, since time.Time, skip ...*Node) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, n := range c.nodes() {
		if slices.Contains(skip, n) {
			continue
		}
		for {
			synced, err := c.lastProxySync(ctx, n)
			if err == nil && synced.After(since) {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("kube-proxy on %s has not synced since %s (last %s, %v)", n.Name, since.Format(time.TimeOnly), synced.Format(time.TimeOnly), err)
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}
