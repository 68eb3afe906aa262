package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A Node is one kubelet with its own containerd and kube-proxy. Node 1 runs
// in the host's network namespace, next to the control plane. Every further
// node runs in a network namespace of its own, joined to the host by a veth
// pair that is a point-to-point link between the two node IPs; the host
// routes between the nodes' pod CIDRs. The node's processes enter only the
// network namespace (nsenter --net), so they share the host's mount
// namespace and everything they mount is seen, and removed, by Down; their
// files, sockets and cgroups have paths of their own.
type Node struct {
	Name    string `json:"name"`
	IP      string `json:"ip"`
	PodCIDR string `json:"podCIDR"`
	// Zone is the node's topology.kubernetes.io/zone label, one per node as
	// on a cloud spreading nodes over zones. The scheduler's topology spread
	// ignores nodes that lack a constraint's key, and the kit's constraints
	// name both the hostname and the zone.
	Zone string `json:"zone"`
	// Netns is the node's network namespace under /run/netns; empty for
	// node 1, which uses the host's.
	Netns string `json:"netns,omitempty"`
	// NetnsInode identifies the namespace, so Down can tell whether any
	// process still holds it after its name is gone.
	NetnsInode uint64 `json:"netnsInode,omitempty"`
	// HostLink is the host's end of the veth pair.
	HostLink string `json:"hostLink,omitempty"`
	// CgroupRoot is kubelet's cgroup root: "/" for node 1, a cgroup of its
	// own for the others, so that their kubepods trees never meet.
	CgroupRoot string `json:"cgroupRoot"`
}

// MaxNodes bounds Options.Nodes: the node IPs and pod CIDRs are numbered
// from the node's index.
const MaxNodes = 8

// ClusterCIDR covers every node's pod CIDR.
const ClusterCIDR = "10.244.0.0/16"

// nodeSpec describes node i (from 1).
func nodeSpec(i int) *Node {
	if i == 1 {
		return &Node{Name: NodeName, IP: NodeIP, PodCIDR: PodCIDR, Zone: NodeName + "-zone-1", CgroupRoot: "/"}
	}
	name := fmt.Sprintf("%s-%d", NodeName, i)
	return &Node{
		Name:       name,
		IP:         fmt.Sprintf("10.254.254.%d", i),
		PodCIDR:    fmt.Sprintf("10.244.%d.0/24", i-1),
		Zone:       fmt.Sprintf("%s-zone-%d", NodeName, i),
		Netns:      name,
		HostLink:   fmt.Sprintf("omikuji-n%d", i),
		CgroupRoot: "/" + name,
	}
}

// URL is the node's NodePort for port.
func (n *Node) URL(port int) string { return fmt.Sprintf("http://%s:%d/", n.IP, port) }

// Command runs a program in the node's network namespace.
func (n *Node) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	if n.Netns == "" {
		return exec.CommandContext(ctx, name, args...)
	}
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + netnsPath(n.Netns), "--", name}, args...)...)
}

// Run is Command's combined output; the error carries the output.
func (n *Node) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	out, err := n.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("node %s: %s %s: %w\n%s", n.Name, name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

func netnsPath(name string) string { return filepath.Join("/run/netns", name) }

// procName names a component of the node: node 1 keeps the plain names.
func (n *Node) procName(component string) string {
	if n.Netns == "" {
		return component
	}
	return component + "-" + n.Name
}

// nodeFile is a path in the node's own directory (the cluster directory
// itself for node 1).
func (c *Cluster) nodeFile(n *Node, parts ...string) string {
	if n.Netns == "" {
		return c.file(parts...)
	}
	return c.file(append([]string{"nodes", n.Name}, parts...)...)
}

// nodes returns the cluster's nodes; a state file written before nodes
// were recorded had node 1 only.
func (c *Cluster) nodes() []*Node {
	if len(c.Nodes) == 0 {
		return []*Node{nodeSpec(1)}
	}
	return c.Nodes
}

// startNetwork creates the node's namespace, the veth pair and the routes
// in both directions: on the host, the node's pod CIDR via its IP; in the
// namespace, the other nodes' IPs and pod CIDRs via node 1, and the
// Service CIDR, so that the node itself reaches ClusterIPs as a real node
// does (kube-proxy rewrites the destination after routing). There is no
// default route: nothing on a node needs any other address.
func (c *Cluster) startNetwork(ctx context.Context, n *Node) error {
	if !exists("/run/netns") {
		c.Created = append(c.Created, "/run/netns")
	}
	if !mountedAt("/run/netns") {
		c.MountedRunNetns = true // ip netns add makes it a shared bind mount
	}
	if err := c.save(); err != nil { // recorded before it is made
		return err
	}
	if _, err := run(ctx, "ip", "netns", "add", n.Netns); err != nil {
		return err
	}
	var st syscall.Stat_t
	if err := syscall.Stat(netnsPath(n.Netns), &st); err != nil {
		return err
	}
	n.NetnsInode = st.Ino
	if err := c.save(); err != nil {
		return err
	}
	host := func(args ...string) error { _, err := run(ctx, "ip", args...); return err }
	inside := func(args ...string) error { _, err := n.Run(ctx, "ip", args...); return err }
	steps := []func() error{
		func() error {
			return host("link", "add", n.HostLink, "type", "veth", "peer", "name", "eth0", "netns", n.Netns)
		},
		func() error { return host("addr", "add", NodeIP, "peer", n.IP+"/32", "dev", n.HostLink) },
		func() error { return host("link", "set", n.HostLink, "up") },
		func() error { return host("route", "add", n.PodCIDR, "via", n.IP, "dev", n.HostLink) },
		func() error { return inside("link", "set", "lo", "up") },
		func() error { return inside("addr", "add", n.IP, "peer", NodeIP+"/32", "dev", "eth0") },
		func() error { return inside("link", "set", "eth0", "up") },
		func() error { return inside("route", "add", ClusterCIDR, "via", NodeIP, "dev", "eth0") },
		func() error { return inside("route", "add", nodeNet, "via", NodeIP, "dev", "eth0") },
		func() error { return inside("route", "add", ServiceCIDR, "via", NodeIP, "dev", "eth0") },
		// Forward between the link and the pods' bridge (per namespace).
		func() error { _, err := n.Run(ctx, "sysctl", "-qw", "net.ipv4.ip_forward=1"); return err },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	// The host forwards between the veth and node 1's bridge; the bridge
	// plugin would turn this on only with the first pod on node 1.
	return os.WriteFile(sysctlPath("net.ipv4.ip_forward"), []byte("1"), 0o644)
}

// makeCgroupRoot creates the node's cgroup root in every hierarchy: kubelet
// refuses a root that does not exist.
func (c *Cluster) makeCgroupRoot(n *Node) error {
	if n.CgroupRoot == "/" {
		return nil
	}
	entries, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join("/sys/fs/cgroup", e.Name(), n.CgroupRoot)
		if exists(dir) {
			continue
		}
		c.Created = append(c.Created, dir)
		if err := c.save(); err != nil {
			return err
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		if e.Name() == "cpuset" { // a cpuset without cpus and mems takes no task
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/cpuset", f))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// stopNetwork deletes the node's namespace and waits until the kernel has
// freed it: the host's end of the veth pair goes only then, taking the
// host's route with it. Everything the node's kube-proxy and bridge plugin
// programmed (rules, tables, links, routes, conntrack) lived in that
// namespace and goes with it.
func (c *Cluster) stopNetwork(ctx context.Context, n *Node) error {
	var errs []error
	if exists(netnsPath(n.Netns)) {
		if _, err := run(ctx, "ip", "netns", "delete", n.Netns); err != nil {
			errs = append(errs, err)
		}
	}
	for i := 0; i < 100 && exists("/sys/class/net/"+n.HostLink); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if exists("/sys/class/net/" + n.HostLink) {
		errs = append(errs, fmt.Errorf("network namespace %s not freed (held by pids %v)", n.Netns, pidsInNetns(n.NetnsInode)))
		_, err := run(ctx, "ip", "link", "delete", n.HostLink)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// stopRunNetns undoes what ip netns add did to /run/netns, once no
// namespace of any node is left in it.
func (c *Cluster) stopRunNetns() error {
	if c.MountedRunNetns && mountedAt("/run/netns") {
		if entries, _ := os.ReadDir("/run/netns"); len(entries) == 0 {
			if err := syscall.Unmount("/run/netns", syscall.MNT_DETACH); err != nil {
				return fmt.Errorf("umount /run/netns: %w", err)
			}
		}
	}
	return nil
}

// netLeftovers lists what is left of the node's network.
func (n *Node) netLeftovers(ctx context.Context) []string {
	var left []string
	if exists(netnsPath(n.Netns)) {
		left = append(left, "network namespace "+n.Netns)
	}
	if pids := pidsInNetns(n.NetnsInode); len(pids) > 0 {
		left = append(left, fmt.Sprintf("processes in the network namespace of %s: %v", n.Name, pids))
	}
	if exists("/sys/class/net/" + n.HostLink) {
		left = append(left, "network link "+n.HostLink)
	}
	return left
}

// pidsInNetns lists processes whose network namespace has inode ino.
func pidsInNetns(ino uint64) []int {
	if ino == 0 {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	want := fmt.Sprintf("net:[%d]", ino)
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if link, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns", "net")); err == nil && link == want {
			pids = append(pids, pid)
		}
	}
	return pids
}

// mountedAt reports whether path is a mount point.
func mountedAt(path string) bool {
	mounts, _ := mountsUnder(path)
	for _, m := range mounts {
		if m == path {
			return true
		}
	}
	return false
}

// hostNetworkLeftovers finds what any node of any cluster run may leave in
// the host's network: a node namespace, a node link, or a route to a node
// or pod address.
func hostNetworkLeftovers(ctx context.Context) []string {
	var left []string
	if matches, _ := filepath.Glob(netnsPath(NodeName + "-*")); len(matches) > 0 {
		left = append(left, fmt.Sprintf("network namespaces %v", matches))
	}
	if matches, _ := filepath.Glob("/sys/class/net/omikuji-n*"); len(matches) > 0 {
		left = append(left, fmt.Sprintf("network links %v", matches))
	}
	if out, err := run(ctx, "ip", "-4", "route", "show", "table", "all"); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "10.244.") || strings.Contains(line, "10.254.254.") {
				left = append(left, "route "+strings.TrimSpace(line))
			}
		}
	}
	return left
}
