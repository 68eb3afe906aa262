package cluster

import (
	"fmt"
	"os"
	"path/filepath"
)

// Addresses. Node 1's IP is a /32 the harness adds to lo (this kernel has no
// dummy links, and the apiserver refuses a 127.x advertise address); node i
// has 10.254.254.i and the pod CIDR 10.244.(i-1).0/24. The ranges were
// chosen not to overlap the host's own routes.
const (
	NodeIP      = "10.254.254.1"
	NodeName    = "omikuji-e2e"
	ServiceCIDR = "10.97.0.0/16"
	PodCIDR     = "10.244.0.0/24" // node 1's
	nodeNet     = "10.254.254.0/24"
	bridgeName  = "omikuji0"
	apiPort     = 6443
	// kube-proxy serves /proxyMode on its metrics address.
	proxyMetricsPort = 10249
	// PauseImage is the sandbox image containerd is told to use; the harness
	// builds it from ../pause and imports it, so nothing is ever pulled.
	PauseImage = "omikuji.local/e2e-pause:1"
)

func (c *Cluster) file(parts ...string) string {
	return filepath.Join(append([]string{c.Dir}, parts...)...)
}

func writeFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o644)
}

// kubeconfig writes a kubeconfig for one client certificate.
func (c *Cluster) kubeconfig(name string) error {
	return writeFile(c.file("kubeconfig", name), fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: omikuji-e2e
  cluster:
    server: https://%s:%d
    certificate-authority: %s
users:
- name: %s
  user:
    client-certificate: %s
    client-key: %s
contexts:
- name: omikuji-e2e
  context: {cluster: omikuji-e2e, user: %s}
current-context: omikuji-e2e
`, NodeIP, apiPort, c.file("pki", "ca.crt"), name, c.file("pki", name+".crt"), c.file("pki", name+".key"), name))
}

// containerdConfig is containerd 1.6's config (version 2) with the node's
// own root, state and socket under the cluster directory.
func (c *Cluster) containerdConfig(n *Node) string {
	return fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q

[grpc]
  address = %[3]q

[plugins."io.containerd.internal.v1.opt"]
  path = %[4]q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[5]q
  # This VM's root lacks CAP_SYS_RESOURCE: without this runc fails every
  # sandbox trying to lower oom_score_adj.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %[6]q
`, c.nodeFile(n, "containerd", "root"), c.nodeFile(n, "containerd", "state"), c.containerdSocket(n),
		c.nodeFile(n, "containerd", "opt"), PauseImage, c.nodeFile(n, "cni", "net.d"))
}

func (c *Cluster) containerdSocket(n *Node) string {
	return c.nodeFile(n, "containerd", "containerd.sock")
}

// cniConfig is one bridge with host-local addresses. hairpinMode lets a pod
// reach itself through the Service; ipMasq is off because pods never leave
// the nodes, which also keeps the plugin out of the host's NAT table. Each
// node's bridge is in its own network namespace. Pods get routes, through
// the bridge, to the other nodes' pods, to the node IPs (a connection
// forwarded from another node keeps its source) and to the Services, and no
// default route: nothing else is theirs to reach.
func (c *Cluster) cniConfig(n *Node) string {
	return fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "omikuji-e2e",
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": %q,
        "ranges": [[{"subnet": %q}]],
        "routes": [{"dst": %q}, {"dst": %q}, {"dst": %q}]
      }
    }
  ]
}
`, bridgeName, c.nodeFile(n, "cni", "ipam"), n.PodCIDR, ClusterCIDR, nodeNet, ServiceCIDR)
}

// kubeletConfig: cgroupfs on this cgroup v1 VM, no swap check, image GC
// never collects the imported images, eviction thresholds low enough for a
// shared build machine. Each node's kubelet has its own cgroup root.
func (c *Cluster) kubeletConfig(n *Node) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %[1]s
healthzBindAddress: %[1]s
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %[2]q}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
cgroupRoot: %[5]q
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%[3]s
podLogsDir: %[4]q
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: "1%%"
  nodefs.inodesFree: "1%%"
  imagefs.available: "1%%"
maxPods: 40
serializeImagePulls: false
`, n.IP, c.file("pki", "ca.crt"), c.containerdSocket(n), c.nodeFile(n, "pod-logs"), n.CgroupRoot)
}

// kubeProxyConfig leaves conntrack sysctls alone (all zero) and serves
// NodePorts on the node IP only.
func (c *Cluster) kubeProxyConfig(n *Node, mode string) string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: %[1]s
clientConnection:
  kubeconfig: %[2]q
hostnameOverride: %[3]s
bindAddress: %[4]s
healthzBindAddress: %[4]s:10256
metricsBindAddress: %[4]s:%[6]d
clusterCIDR: %[5]s
nodePortAddresses: ["%[4]s/32"]
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
  udpTimeout: 0s
  udpStreamTimeout: 0s
`, mode, c.file("kubeconfig", "kube-proxy"), n.Name, n.IP, ClusterCIDR, proxyMetricsPort)
}
