// Command soak replays a hostile client battery against `omikuji serve` and
// `omikuji local` while a prober draws ten times a second, and reports what
// the draws and the server process went through.
//
//	go run ./bench/soak [-duration 3m] [-nofile 1024] [-bin dist/omikuji] [-targets serve,local]
//
// The battery, one round and then more until each target's share of
// -duration is spent:
// a burst (-burst connections opened at once, half of them sending a draw
// request, held 2 s), slowloris (-slowloris connections sending a header
// byte a second for 10 s), silent connections (-silent, held 8 s) and slow
// readers (-slow connections pipelining 20 draws and reading a byte every
// half second for 10 s). After each phase every connection is closed and the
// battery rests 5 s. A phase's window runs from its first dial to its last
// close; draws that fail in it are the phase's own. The report gives, per
// target: failed draws outside every window, the recovery time after each
// window (from its end to the first draw that succeeds), the server's peak
// descriptors and RSS, and whether both come back to their baseline within
// -settle of the battery's end: descriptors to the count read 3 s after
// start, RSS to within 2 MiB of the most it reached in the first round of
// the four phases, so that later rounds leave nothing behind. The server
// runs with GOMEMLIMIT set to -memlimit, as the Deployments set it from the
// container's memory limit, and its RSS must stay under that limit all
// along; handing memory back is the Go runtime's own business
// (docs/decisions/0025-memory-back-through-gomemlimit.md). A Go process
// that has once held a peak of connections keeps a goroutine record and a
// poll descriptor for each (about 1.1 KiB per connection) for good
// (docs/decisions/0018-soak-rss-baseline.md); the fresh start's RSS is
// reported beside.
//
// The server runs under prlimit(1) with -nofile descriptors (0: the
// default limit). Everything goes to 127.0.0.1; every process started is
// stopped on exit. It exits 1 when a target is missed: a draw failed outside
// a window, a recovery over 5 s, RSS over the memory limit, or descriptors
// or RSS not back.
//
// The original lock-up, a burst of 5,000 connections at the default
// descriptor limit, is
//
//	go run ./bench/soak -nofile 0 -burst 5000
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/omikuji/omikuji/internal/testkit"
)

// Targets.
const (
	maxRecovery = 5 * time.Second
	// RSS is back once within this much of its baseline: between two
	// collections the heap grows by up to its 4 MiB minimum goal, and the
	// runtime returns freed pages to the kernel gradually.
	rssSlackKiB = 2 << 10
)

const (
	probeEvery   = 100 * time.Millisecond
	probeTimeout = 2 * time.Second
	sampleEvery  = 200 * time.Millisecond
	rest         = 5 * time.Second
	warmUp       = 3 * time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, os.Args[1:], os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
	}
	os.Exit(code)
}

type options struct {
	duration, settle               time.Duration
	nofile                         int
	memLimit                       string
	bin                            string
	targets                        []string
	burst, slowloris, silent, slow int
}

func run(ctx context.Context, args []string, out io.Writer) (int, error) {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	var o options
	fs.DurationVar(&o.duration, "duration", 3*time.Minute, "battery time after the first round, shared between the targets (at most 1h)")
	fs.DurationVar(&o.settle, "settle", 3*time.Minute, "how long descriptors and RSS may take to come back after the battery (at most 10m)")
	fs.IntVar(&o.nofile, "nofile", 1024, "the server's descriptor limit, set with prlimit; 0 leaves the default")
	fs.StringVar(&o.bin, "bin", "", "omikuji binary; empty builds ./cmd/omikuji")
	fs.StringVar(&o.memLimit, "memlimit", "64MiB", "the server's GOMEMLIMIT, as the Deployments set it from their memory limit; its RSS must stay under it. Empty: unset, no RSS bound")
	targets := fs.String("targets", "serve,local", "comma-separated: serve, local")
	fs.IntVar(&o.burst, "burst", 400, "connections opened at once by a burst")
	fs.IntVar(&o.slowloris, "slowloris", 200, "slowloris connections")
	fs.IntVar(&o.silent, "silent", 1000, "silent connections")
	fs.IntVar(&o.slow, "slow", 100, "slow-reader connections")
	if err := fs.Parse(args); err != nil {
		return 2, err
	}
	o.targets = strings.Split(*targets, ",")
	for _, t := range o.targets {
		if t != "serve" && t != "local" {
			return 2, fmt.Errorf("-targets: unknown target %q", t)
		}
	}
	for _, n := range []int{o.burst, o.slowloris, o.silent, o.slow} {
		if n < 1 || n > 10000 {
			return 2, fmt.Errorf("connection counts must be 1..10000, got %d", n)
		}
	}
	if o.duration < 30*time.Second || o.duration > time.Hour || o.settle < 0 || o.settle > 10*time.Minute || o.nofile < 0 || fs.NArg() > 0 {
		return 2, errors.New("usage: soak [-duration 30s..1h] [-nofile N] [-bin PATH] [-targets serve,local]")
	}
	memLimitKiB := 0
	if o.memLimit != "" {
		n, ok := parseMiB(o.memLimit)
		if !ok {
			return 2, fmt.Errorf("-memlimit %q: want a size in MiB such as 64MiB", o.memLimit)
		}
		memLimitKiB = n << 10
	}
	if o.nofile > 0 {
		if _, err := exec.LookPath("prlimit"); err != nil {
			return 1, errors.New("prlimit not found (Debian package util-linux)")
		}
	}
	if o.bin == "" {
		dir, err := os.MkdirTemp("", "soak")
		if err != nil {
			return 1, err
		}
		defer os.RemoveAll(dir)
		o.bin = filepath.Join(dir, "omikuji")
		build := exec.CommandContext(ctx, "go", "build", "-o", o.bin, "./cmd/omikuji")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return 1, fmt.Errorf("go build: %w", err)
		}
	}
	fmt.Fprintf(out, "soak: %v over %s, descriptor limit %s; burst %d, slowloris %d, silent %d, slow readers %d\n",
		o.duration, strings.Join(o.targets, " and "), limitName(o.nofile), o.burst, o.slowloris, o.silent, o.slow)
	met := true
	for _, target := range o.targets {
		r, err := soak(ctx, o, target, o.duration/time.Duration(len(o.targets)))
		if err != nil {
			return 1, fmt.Errorf("%s: %w", target, err)
		}
		r.memLimitKiB = memLimitKiB
		r.print(out)
		met = met && r.met()
	}
	if !met {
		fmt.Fprintln(out, "RESULT targets missed")
		return 1, nil
	}
	fmt.Fprintln(out, "RESULT targets met")
	return 0, nil
}

// parseMiB reads "64MiB" (GOMEMLIMIT's form, in MiB only here).
func parseMiB(s string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimSuffix(s, "MiB"))
	return n, err == nil && n > 0 && strings.HasSuffix(s, "MiB")
}

func limitName(n int) string {
	if n == 0 {
		return "default"
	}
	return strconv.Itoa(n)
}

// soak runs one target through rounds of the battery for budget.
func soak(ctx context.Context, o options, target string, budget time.Duration) (*report, error) {
	ports, err := testkit.FreePorts(1)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	srv, err := startServer(ctx, o, target, addr)
	if err != nil {
		return nil, err
	}
	defer srv.stop()

	url := "http://" + addr + "/"
	if err := waitUp(ctx, url, srv); err != nil {
		return nil, err
	}
	r := &report{target: target, nofile: o.nofile}
	mon := newMonitor(srv.cmd.Process.Pid)
	prober := newProber(url)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var bg sync.WaitGroup
	bg.Go(func() { mon.run(runCtx) })
	bg.Go(func() { prober.run(runCtx) })

	if !sleep(ctx, warmUp) {
		return nil, ctx.Err()
	}
	r.baseFDs, r.freshRSS = mon.current()
	phases := []phase{
		{"burst", o.burst, burst},
		{"slowloris", o.slowloris, slowloris},
		{"silent", o.silent, silent},
		{"slow readers", o.slow, slowReaders},
	}
	end := time.Now().Add(budget)
	for i := 0; i < len(phases) || time.Now().Before(end); i++ {
		p := phases[i%len(phases)]
		w := window{phase: p.name, start: time.Now()}
		w.opened, w.cutEarly = p.run(ctx, addr, p.conns)
		w.end = time.Now()
		r.windows = append(r.windows, w)
		if !sleep(ctx, rest) {
			return nil, ctx.Err()
		}
		if i == len(phases)-1 { // the first round is over
			_, r.baseRSS = mon.peak()
			end = time.Now().Add(budget)
		}
	}
	battery := time.Now()
	// Settle: wait for descriptors and RSS to come back, probing all along.
	for {
		fds, rss := mon.current()
		if fds <= r.baseFDs && rss <= r.baseRSS+rssSlackKiB {
			r.settled, r.settle = true, time.Since(battery)
			break
		}
		if time.Since(battery) > o.settle {
			r.settle = time.Since(battery)
			break
		}
		if !sleep(ctx, sampleEvery) {
			return nil, ctx.Err()
		}
	}
	cancel()
	bg.Wait()
	r.endFDs, r.endRSS = mon.current()
	r.peakFDs, r.peakRSS = mon.peak()
	r.probes = prober.results()
	return r, nil
}

// The server.

type server struct {
	cmd    *exec.Cmd
	exited chan error
	log    *os.File
}

func startServer(ctx context.Context, o options, target, addr string) (*server, error) {
	args := []string{target, "--addr", addr, "--log-level", "error"}
	if target == "serve" {
		args = append(args, "--fortune", "great-fortune", "--drain", "0s")
	}
	// A metrics listener of its own, if the binary has one, on loopback too.
	if help, _ := exec.CommandContext(ctx, o.bin, target, "-h").CombinedOutput(); strings.Contains(string(help), "-metrics-addr") {
		ports, err := testkit.FreePorts(1)
		if err != nil {
			return nil, err
		}
		args = append(args, "--metrics-addr", net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])))
	}
	command := append([]string{o.bin}, args...)
	if o.memLimit != "" {
		command = append([]string{"env", "GOMEMLIMIT=" + o.memLimit}, command...)
	}
	if o.nofile > 0 {
		n := strconv.Itoa(o.nofile)
		command = append([]string{"prlimit", "--nofile=" + n + ":" + n, "--"}, command...)
	}
	log, err := os.CreateTemp("", "soak-"+target+"-*.log")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	s := &server{cmd: cmd, exited: make(chan error, 1), log: log}
	go func() { s.exited <- cmd.Wait() }()
	return s, nil
}

// stop sends SIGTERM to the process group, then SIGKILL after 15 s.
func (s *server) stop() {
	pgid := s.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-s.exited
	}
	s.log.Close()
	os.Remove(s.log.Name())
}

func waitUp(ctx context.Context, url string, s *server) error {
	deadline := time.Now().Add(30 * time.Second)
	client := drawClient()
	for {
		if err := draw(ctx, client, url); err == nil {
			return nil
		}
		select {
		case err := <-s.exited:
			s.exited <- err
			out, _ := os.ReadFile(s.log.Name())
			return fmt.Errorf("server exited before answering: %v\n%s", err, out)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("no draw within 30 s of starting")
		}
	}
}

// The prober.

type probe struct {
	start, end time.Time
	ok         bool
}

type prober struct {
	url    string
	client *http.Client
	mu     sync.Mutex
	done   []probe
}

func newProber(url string) *prober { return &prober{url: url, client: drawClient()} }

func drawClient() *http.Client {
	return &http.Client{Timeout: probeTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
}

// run starts a draw every probeEvery, each on a new connection; a slow one
// does not delay the next.
func (p *prober) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		wg.Go(func() {
			start := time.Now()
			err := draw(context.Background(), p.client, p.url)
			p.mu.Lock()
			p.done = append(p.done, probe{start, time.Now(), err == nil})
			p.mu.Unlock()
		})
	}
}

func (p *prober) results() []probe {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.SortedFunc(slices.Values(p.done), func(a, b probe) int { return a.start.Compare(b.start) })
}

// draw is one JSON draw; it fails unless the answer is a 200 naming a pod.
func draw(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"pod":`) {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// The monitor samples the server's descriptors and RSS.

type monitor struct {
	pid              int
	mu               sync.Mutex
	fds, rss         int
	peakFDs, peakRSS int
}

func newMonitor(pid int) *monitor {
	m := &monitor{pid: pid}
	m.sample()
	return m
}

func (m *monitor) run(ctx context.Context) {
	for sleep(ctx, sampleEvery) {
		m.sample()
	}
}

func (m *monitor) sample() {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", m.pid))
	if err != nil {
		return
	}
	rss := vmRSS(m.pid)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fds, m.rss = len(entries), rss
	m.peakFDs, m.peakRSS = max(m.peakFDs, m.fds), max(m.peakRSS, m.rss)
}

// current samples now.
func (m *monitor) current() (fds, rssKiB int) {
	m.sample()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fds, m.rss
}

func (m *monitor) peak() (fds, rssKiB int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.peakFDs, m.peakRSS
}

// vmRSS is the resident set size in KiB, 0 if unreadable.
func vmRSS(pid int) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return n
		}
	}
	return 0
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
