package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A Proc is a process the harness started. Start time guards against PID
// reuse: Down only signals a PID whose /proc start time still matches.
type Proc struct {
	Name  string `json:"name"`
	PID   int    `json:"pid"`
	Start uint64 `json:"start"` // /proc/<pid>/stat field 22, clock ticks since boot
	Log   string `json:"log"`
}

// start runs a long-lived component in its own session, detached from the
// caller, so that `cluster up` can return and `cluster down` can stop it later.
func (c *Cluster) start(name, bin string, args ...string) (*Proc, error) {
	logPath := filepath.Join(c.Dir, "logs", name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), "PATH="+c.path())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	start, err := procStart(cmd.Process.Pid)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, PID: cmd.Process.Pid, Start: start, Log: logPath}
	// Reap the child when it exits so it never lingers as a zombie; the
	// state file, not this Cmd, is what Down works from.
	go cmd.Wait() //nolint:errcheck // exit status is read from the log
	c.Procs = append(c.Procs, p)
	return p, c.save()
}

// startOn starts a component of node n, in the node's network namespace.
func (c *Cluster) startOn(n *Node, component, bin string, args ...string) (*Proc, error) {
	if n.Netns == "" {
		return c.start(component, bin, args...)
	}
	// nsenter enters the namespace and execs bin: the process keeps its PID.
	return c.start(n.procName(component), "nsenter", append([]string{"--net=" + netnsPath(n.Netns), "--", bin}, args...)...)
}

// procStart reads the start time of a process, or an error if it is gone.
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after ')' are fixed.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("pid %d: odd stat line", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 {
		return 0, fmt.Errorf("pid %d: short stat line", pid)
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// alive reports whether p is still the process the harness started.
func (p *Proc) alive() bool {
	start, err := procStart(p.PID)
	return err == nil && start == p.Start
}

// stop sends SIGTERM, waits up to grace, then SIGKILLs. It is a no-op when
// the process is already gone.
func (p *Proc) stop(grace time.Duration) error {
	if !p.alive() {
		return nil
	}
	_ = syscall.Kill(p.PID, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !p.alive() {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(p.PID, syscall.SIGKILL)
	for i := 0; i < 100; i++ {
		if !p.alive() {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s (pid %d) survived SIGKILL", p.Name, p.PID)
}

// proc returns the running component with the given name, if any.
func (c *Cluster) proc(name string) *Proc {
	for i := len(c.Procs) - 1; i >= 0; i-- {
		if c.Procs[i].Name == name && c.Procs[i].alive() {
			return c.Procs[i]
		}
	}
	return nil
}

// run executes a short command and returns its combined output; the error
// carries the output so failures explain themselves.
func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// tail returns the last n lines of a file, for failure messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// pidsReferencing lists processes whose command line mentions s (an absolute
// path inside the cluster's own directory, so only processes the cluster
// spawned directly or through containerd, such as runc shims, match).
func pidsReferencing(s string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if bytes.Contains(cmdline, []byte(s)) {
			pids = append(pids, pid)
		}
	}
	return pids
}
