package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// Host-wide state the cluster changes, and how Down puts it back.

// sysctls are the keys kubelet, kube-proxy and the CNI bridge plugin may
// set. Up records their values; Down restores any that changed.
var sysctls = []string{
	"vm.overcommit_memory",
	"vm.panic_on_oom",
	"kernel.panic",
	"kernel.panic_on_oops",
	"kernel.keys.root_maxkeys",
	"kernel.keys.root_maxbytes",
	"net.ipv4.ip_forward",
	"net.ipv4.conf.all.forwarding",
	"net.ipv4.conf.all.route_localnet",
	"net.bridge.bridge-nf-call-iptables",
	"net.bridge.bridge-nf-call-ip6tables",
}

func sysctlPath(key string) string {
	return filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
}

func readSysctls() map[string]string {
	m := make(map[string]string)
	for _, k := range sysctls {
		if b, err := os.ReadFile(sysctlPath(k)); err == nil {
			m[k] = strings.TrimSpace(string(b))
		}
	}
	return m
}

func restoreSysctls(saved map[string]string) error {
	var errs []error
	for k, v := range saved {
		b, err := os.ReadFile(sysctlPath(k))
		if err != nil || strings.TrimSpace(string(b)) == v {
			continue
		}
		if err := os.WriteFile(sysctlPath(k), []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("sysctl %s=%s: %w", k, v, err))
		}
	}
	return errors.Join(errs...)
}

// hasNodeIP reports whether the node /32 is on lo.
func hasNodeIP(ctx context.Context) bool {
	out, err := run(ctx, "ip", "-4", "-o", "addr", "show", "dev", "lo")
	return err == nil && strings.Contains(string(out), " "+NodeIP+"/32 ")
}

// kubeChains lists the KUBE-* chains per table in the output of save
// (iptables-save or ip6tables-save), and the rules elsewhere that jump to them.
func kubeChains(ctx context.Context, save string) (map[string][]string, []string, error) {
	out, err := run(ctx, save)
	if err != nil {
		return nil, nil, err
	}
	chains := make(map[string][]string)
	var jumps []string // "-t table -D chain rule..." for rules in other chains that jump into KUBE-*
	table := ""
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
		case strings.HasPrefix(line, ":KUBE-"):
			chains[table] = append(chains[table], strings.Fields(line[1:])[0])
		case strings.HasPrefix(line, "-A ") && !strings.HasPrefix(line, "-A KUBE-") &&
			(strings.Contains(line, "-j KUBE-") || strings.Contains(line, "-g KUBE-")):
			jumps = append(jumps, table+"\x00"+line[3:])
		}
	}
	return chains, jumps, sc.Err()
}

// removeKubeChains deletes what kube-proxy --cleanup leaves behind: the
// KUBE-* chains kubelet creates (firewall, canary, iptables hint) and the
// rules that jump to them. Nothing else on this VM uses the KUBE- prefix.
func removeKubeChains(ctx context.Context) error {
	var errs []error
	for _, tool := range []string{"iptables", "ip6tables"} {
		if _, err := exec.LookPath(tool + "-save"); err != nil {
			continue
		}
		chains, jumps, err := kubeChains(ctx, tool+"-save")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, j := range jumps {
			table, rule, _ := strings.Cut(j, "\x00")
			args := append([]string{"-w", "-t", table, "-D"}, splitRule(rule)...)
			if _, err := run(ctx, tool, args...); err != nil {
				errs = append(errs, err)
			}
		}
		for table, cs := range chains {
			for _, ch := range cs {
				if _, err := run(ctx, tool, "-w", "-t", table, "-F", ch); err != nil {
					errs = append(errs, err)
				}
			}
			for _, ch := range cs {
				if _, err := run(ctx, tool, "-w", "-t", table, "-X", ch); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// splitRule splits an iptables-save rule into arguments, honouring the
// double quotes iptables-save puts around comments.
func splitRule(rule string) []string {
	var args []string
	var cur strings.Builder
	inQuote, have := false, false
	for i := 0; i < len(rule); i++ {
		ch := rule[i]
		switch {
		case ch == '\\' && inQuote && i+1 < len(rule):
			i++
			cur.WriteByte(rule[i])
		case ch == '"':
			inQuote, have = !inQuote, true
		case ch == ' ' && !inQuote:
			if have {
				args = append(args, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(ch)
			have = true
		}
	}
	if have {
		args = append(args, cur.String())
	}
	return args
}

// kubeNftTables lists the nftables tables kube-proxy's nftables mode owns.
func kubeNftTables(ctx context.Context) ([]string, error) {
	out, err := run(ctx, "nft", "list", "tables")
	if err != nil {
		return nil, err
	}
	var tables []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "table" && f[2] == "kube-proxy" {
			tables = append(tables, f[1]+" "+f[2])
		}
	}
	return tables, nil
}

// mountsUnder lists mount points at or below dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			mounts = append(mounts, mp)
		}
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	return mounts, sc.Err()
}

// unescapeMount decodes the octal escapes (\040 for space) in mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unmountAll detaches every mount under dir; lazily when a mount is busy.
func unmountAll(dir string) error {
	var errs []error
	for range 5 { // mounts can be stacked on the same point
		mounts, err := mountsUnder(dir)
		if err != nil {
			return err
		}
		if len(mounts) == 0 {
			return nil
		}
		for _, m := range mounts {
			if err := syscall.Unmount(m, 0); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
				if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
					errs = append(errs, fmt.Errorf("umount %s: %w", m, err))
				}
			}
		}
	}
	if mounts, _ := mountsUnder(dir); len(mounts) > 0 {
		errs = append(errs, fmt.Errorf("still mounted: %s", strings.Join(mounts, ", ")))
	}
	return errors.Join(errs...)
}

// cgroupRoots lists node 1's kubepods cgroup directory in every mounted v1
// hierarchy (and the v2 one, if any), and the cgroup roots of the other
// nodes that exist (see Node.CgroupRoot).
func cgroupRoots() []string {
	entries, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return nil
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, filepath.Join("/sys/fs/cgroup", e.Name(), "kubepods"))
		}
	}
	dirs = append(dirs, "/sys/fs/cgroup/kubepods")
	others, _ := filepath.Glob("/sys/fs/cgroup/*/" + NodeName + "-*")
	return append(dirs, others...)
}

// cgroupPIDs lists every process inside the cgroup trees rooted at roots.
func cgroupPIDs(roots []string) []int {
	seen := make(map[int]bool)
	for _, root := range roots {
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return nil
			}
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					seen[pid] = true
				}
			}
			return nil
		})
	}
	pids := make([]int, 0, len(seen))
	for pid := range seen {
		pids = append(pids, pid)
	}
	sort.Ints(pids)
	return pids
}

// removeCgroups removes the cgroup trees, deepest first. It fails if a
// process is still inside.
func removeCgroups(roots []string) error {
	var errs []error
	for _, root := range roots {
		var dirs []string
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
				errs = append(errs, fmt.Errorf("rmdir %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
