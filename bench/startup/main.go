// Command startup measures how long a server takes from exec to its first
// 200 response, and its resident memory once it is up and idle.
//
//	go run ./bench/startup -url http://127.0.0.1:38081/ -runs 10 -- ./omikuji serve --fortune great-fortune --addr 127.0.0.1:38081
//
// It prints one line per run and a RESULT line with the medians, which
// bench/run.sh reads. Every process it starts is stopped before it exits.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "startup:", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ error }

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("startup", flag.ContinueOnError)
	url := fs.String("url", "", "`URL` that answers 200 once the server is up (required)")
	runs := fs.Int("runs", 10, "number of starts")
	idle := fs.Duration("idle", time.Second, "how long the server idles before its RSS is read")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if *url == "" || fs.NArg() == 0 || *runs < 1 || *idle < 0 {
		return usageError{errors.New("usage: startup -url URL [-runs N] [-idle D] -- COMMAND [ARGS...]")}
	}
	var starts []time.Duration
	var rss []int64
	for i := range *runs {
		s, m, err := measure(ctx, fs.Args(), *url, *idle)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		fmt.Fprintf(out, "run %d: first 200 after %.1f ms, idle RSS %d KiB\n", i+1, ms(s), m)
		starts = append(starts, s)
		rss = append(rss, m)
	}
	fmt.Fprintf(out, "RESULT start_ms=%.1f rss_kib=%d\n", ms(median(starts)), median(rss))
	return nil
}

// measure starts the command, polls url until it answers 200, waits idle,
// reads the process's VmRSS and stops it.
func measure(ctx context.Context, command []string, url string, idle time.Duration) (time.Duration, int64, error) {
	client := &http.Client{
		Timeout:   time.Second,
		Transport: &http.Transport{DisableKeepAlives: true},
	}
	if up(ctx, client, url) {
		return 0, 0, fmt.Errorf("%s already answers before the server starts; is the port in use?", url)
	}
	cmd := exec.Command(command[0], command[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer stopProcess(cmd, exited)

	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for !up(ctx, client, url) {
		select {
		case err := <-exited:
			exited <- err // for stopProcess
			return 0, 0, fmt.Errorf("%s exited before answering: %v", command[0], err)
		case <-deadline.C:
			return 0, 0, fmt.Errorf("no 200 from %s within 10 s", url)
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(500 * time.Microsecond):
		}
	}
	elapsed := time.Since(start)
	select {
	case <-time.After(idle):
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	rss, err := vmRSS(cmd.Process.Pid)
	return elapsed, rss, err
}

func up(ctx context.Context, client *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// stopProcess sends SIGTERM to the process group, then SIGKILL if it has not
// exited within five seconds.
func stopProcess(cmd *exec.Cmd, exited chan error) {
	pgid := cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-exited
	}
}

// vmRSS reads the resident set size, in KiB, from /proc/PID/status.
func vmRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return parseVmRSS(f)
}

func parseVmRSS(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		value, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		kib, unit, _ := strings.Cut(strings.TrimSpace(value), " ")
		n, err := strconv.ParseInt(kib, 10, 64)
		if err != nil || unit != "kB" {
			return 0, fmt.Errorf("unexpected VmRSS line %q", sc.Text())
		}
		return n, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no VmRSS in /proc/PID/status")
}

func median[T int64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
