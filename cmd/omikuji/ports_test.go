package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestDefaultMetricsAddr(t *testing.T) {
	for _, tc := range []struct{ host, addr, want, err string }{
		{"", ":8081", ":9081", ""},
		{"127.0.0.1", "127.0.0.1:8080", "127.0.0.1:9080", ""},
		{"127.0.0.1", "localhost:8082", "127.0.0.1:9082", ""},
		{"::1", "[::1]:8081", "[::1]:9081", ""},
		{"127.0.0.1", "127.0.0.1:0", "127.0.0.1:0", ""},
		{"", ":64535", ":65535", ""},
		{"", ":64536", "", "--addr \":64536\": /metrics would go to its port + 1000, 65536, past 65535; set --metrics-addr"},
	} {
		got, err := defaultMetricsAddr(tc.host, tc.addr)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("defaultMetricsAddr(%q, %q) = %q, %v; want %q, %q", tc.host, tc.addr, got, err, tc.want, tc.err)
		}
	}
	if code, _, stderr := runCmd("serve", "--fortune", "misfortune", "--addr", ":64536"); code != 2 || !strings.Contains(stderr, "set --metrics-addr") {
		t.Errorf("serve --addr :64536: exit %d, stderr %q", code, stderr)
	}
}

// freePortPair finds a loopback port p such that p and p + 1000 are free
// now, and differ from every port in taken and its + 1000.
func freePortPair(t *testing.T, taken map[int]bool) int {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if p+metricsPortOffset > 65535 || taken[p] || taken[p+metricsPortOffset] || taken[p-metricsPortOffset] {
			continue
		}
		if ln2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+metricsPortOffset)); err == nil {
			ln2.Close()
			taken[p], taken[p+metricsPortOffset] = true, true
			return p
		}
	}
	t.Fatal("no free pair of ports p, p+1000 on loopback")
	return 0
}

// started is a real omikuji process that has said where it listens.
type started struct {
	cmd             *exec.Cmd
	url, metricsURL string
	firstLines      strings.Builder // until the URLs, then no more
}

// startOmikuji runs the binary with args and no OMIKUJI_* variables, and
// waits until it reports its URL and metrics URL.
func startOmikuji(t *testing.T, args ...string) *started {
	t.Helper()
	s := &started{cmd: exec.Command(omikujiBinary(t), args...)}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OMIKUJI_") {
			s.cmd.Env = append(s.cmd.Env, kv)
		}
	}
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errOut, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- s.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("omikuji %s after Ctrl-C: %v", strings.Join(args, " "), err)
			}
		case <-time.After(15 * time.Second):
			s.cmd.Process.Kill()
			t.Errorf("omikuji %s did not stop", strings.Join(args, " "))
		}
	})
	// local prints its URLs on stdout; serve logs them on stderr, as JSON
	// on a pipe.
	report, other := io.Reader(out), io.Reader(errOut)
	if args[0] == "serve" {
		report, other = errOut, out
	}
	go io.Copy(io.Discard, other)
	found := make(chan struct{})
	go func() {
		r := bufio.NewScanner(report)
		for r.Scan() {
			line := r.Text()
			s.firstLines.WriteString(line + "\n")
			if m := regexp.MustCompile(`^\s+(http://\S+/)$`).FindStringSubmatch(line); m != nil {
				s.url = m[1]
			}
			if u, ok := strings.CutPrefix(line, "metrics of every replica: "); ok {
				s.metricsURL = u
				break
			}
			var log struct {
				Msg, Addr   string
				MetricsAddr string `json:"metrics_addr"`
			}
			if json.Unmarshal(r.Bytes(), &log) == nil && log.Msg == "serving" {
				s.url, s.metricsURL = "http://"+log.Addr+"/", "http://"+log.MetricsAddr+"/metrics"
				break
			}
		}
		close(found)
		io.Copy(io.Discard, report)
	}()
	select {
	case <-found:
		if s.metricsURL == "" {
			t.Fatalf("omikuji %s said no metrics URL:\n%s", strings.Join(args, " "), s.firstLines.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("omikuji %s did not start", strings.Join(args, " "))
	}
	return s
}

// TestSideBySideWithOnlyAddrApart starts two `omikuji local` and two
// `omikuji serve` at once, each with its defaults apart from --addr: all
// four come up, each with its own /metrics on the --addr port + 1000.
func TestSideBySideWithOnlyAddrApart(t *testing.T) {
	taken := map[int]bool{}
	var all []*started
	for _, args := range [][]string{
		{"local"}, {"local"},
		{"serve", "--fortune", "great-fortune"}, {"serve", "--fortune", "misfortune"},
	} {
		p := freePortPair(t, taken)
		s := startOmikuji(t, append(args, "--addr", "127.0.0.1:"+strconv.Itoa(p))...)
		if want := fmt.Sprintf("http://127.0.0.1:%d/metrics", p+metricsPortOffset); s.metricsURL != want {
			t.Errorf("%s on port %d: metrics at %s, want %s", args[0], p, s.metricsURL, want)
		}
		all = append(all, s)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for _, s := range all {
		for _, u := range []string{s.url, s.metricsURL} {
			resp, err := client.Get(u)
			if err != nil {
				t.Errorf("%s: %v", u, err)
				continue
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s: %s", u, resp.Status)
			}
		}
	}
}

// TestPortCollisionNamesTheFlag: where two instances still collide, the
// error says which flag moves the listener that could not start.
func TestPortCollisionNamesTheFlag(t *testing.T) {
	for _, name := range omikujiEnv {
		t.Setenv(name, "")
		os.Unsetenv(name)
	}
	p := freePortPair(t, map[int]bool{})
	addr := "127.0.0.1:" + strconv.Itoa(p)
	metricsAddr := "127.0.0.1:" + strconv.Itoa(p+metricsPortOffset)
	startOmikuji(t, "local", "--addr", addr)

	for _, tc := range []struct {
		args []string
		want string
	}{
		// The same --addr: /metrics (started first) collides.
		{[]string{"local", "--addr", addr}, "listen tcp " + metricsAddr + ": bind: address already in use; another process (another omikuji?) listens there: choose a free port with --metrics-addr"},
		{[]string{"local", "--addr", addr, "--metrics-addr", ""}, "listen tcp " + addr + ": bind: address already in use; another process (another omikuji?) listens there: choose a free port with --addr"},
		{[]string{"serve", "--fortune", "misfortune", "--addr", addr}, "choose a free port with --addr"},
		{[]string{"serve", "--fortune", "misfortune", "--addr", "127.0.0.1:0", "--metrics-addr", metricsAddr}, "choose a free port with --metrics-addr"},
	} {
		code, _, stderr := runCmd(tc.args...)
		if code != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 1 and %q", tc.args, code, stderr, tc.want)
		}
	}
}
