package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/omikuji/omikuji/internal/server"
)

// startServeLimited runs serve under prlimit --nofile=nofile and returns
// the process and its first log line (or the whole output if it exited).
func startServeLimited(t *testing.T, nofile int, args ...string) (*exec.Cmd, string, *bufio.Scanner) {
	t.Helper()
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit not installed (Debian package util-linux)")
	}
	n := strconv.Itoa(nofile)
	cmd := exec.Command(prlimit, append([]string{"--nofile=" + n + ":" + n, "--", omikujiBinary(t), "serve", "--fortune", "misfortune",
		"--addr", "127.0.0.1:0", "--metrics-addr", "", "--drain", "0s"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	logs := bufio.NewScanner(stderr)
	if !logs.Scan() {
		return cmd, "", logs
	}
	return cmd, logs.Text(), logs
}

// TestServeUnderALowDescriptorLimit: whatever the descriptor limit, serve
// either refuses to start, naming the limit, or holds a bound it survives
// at: 200 connections at once that each send one byte leave it serving.
// At 80 descriptors the bound used to stay at 1024; accept then failed
// under the flood and the process exited 1.
func TestServeUnderALowDescriptorLimit(t *testing.T) {
	for _, tc := range []struct {
		nofile int
		args   []string
		want   string // in the start-up error; "" starts
	}{
		{80, nil, "the descriptor limit (ulimit -n) is 80: too low to serve; raise it to at least 81"},
		{100, []string{"--max-conns", "500"}, "--max-conns 500: the descriptor limit (ulimit -n) 100 carries at most 20"},
		{81, nil, ""},
		{100, nil, ""},
		{300, []string{"--max-conns", "50"}, ""},
	} {
		cmd, first, _ := startServeLimited(t, tc.nofile, tc.args...)
		if tc.want != "" {
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			var err error
			select {
			case err = <-exited:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				err = <-exited
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(first, tc.want) {
				t.Errorf("nofile %d %v: %v, %q; want exit 1 and %q", tc.nofile, tc.args, err, first, tc.want)
			}
			continue
		}
		var started struct {
			Msg, Addr string
			MaxConns  int `json:"max_conns"`
		}
		if err := json.Unmarshal([]byte(first), &started); err != nil || started.Msg != "serving" {
			t.Fatalf("nofile %d: first log line %q (%v)", tc.nofile, first, err)
		}
		want := server.MaxConnsFor(uint64(tc.nofile))
		if len(tc.args) > 0 {
			want, _ = strconv.Atoi(tc.args[1])
		}
		if started.MaxConns != want {
			t.Errorf("nofile %d %v: bound %d, want %d", tc.nofile, tc.args, started.MaxConns, want)
		}
		var flood []net.Conn
		for range 200 {
			c, err := net.DialTimeout("tcp", started.Addr, 5*time.Second)
			if err != nil {
				continue // the backlog is full: fine
			}
			io.WriteString(c, "G")
			flood = append(flood, c)
		}
		time.Sleep(500 * time.Millisecond) // accepts, refusals and their reads run
		for _, c := range flood {
			c.Close()
		}
		// The closed flood frees its places as the server reads each EOF,
		// after the queued connections are accepted: on a busy machine that
		// takes a while, and until then a 503 is the bound doing its job.
		if status, err := healthzWithin(started.Addr, 10*time.Second); err != nil || status != 200 {
			t.Errorf("nofile %d: 10 s after the flood: %d %v; want 200", tc.nofile, status, err)
		}
		if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
			t.Errorf("nofile %d: the process is gone: %v", tc.nofile, err)
		}
	}
}

// healthzWithin asks addr's /healthz until it answers other than 503 or
// the time is up, and returns the last answer.
func healthzWithin(addr string, limit time.Duration) (int, error) {
	client := &http.Client{Timeout: limit, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(limit)
	for {
		resp, err := client.Get("http://" + addr + "/healthz")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			return resp.StatusCode, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServeSecondSignalKills: a second SIGTERM (or Ctrl-C) during the drain
// ends the process at once, killed by the signal, instead of waiting.
func TestServeSecondSignalKills(t *testing.T) {
	cmd, first, _ := startServeLimited(t, 1024, "--drain", "8s")
	if !strings.Contains(first, `"msg":"serving"`) {
		t.Fatalf("first log line %q", first)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond)
	began := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM || time.Since(began) > 2*time.Second {
		t.Errorf("after a second SIGTERM: %v after %v; want killed by it at once", err, time.Since(began))
	}
}
