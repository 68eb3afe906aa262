package local

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// helperNofile, set in a child's environment, makes the test binary a
// local system under that descriptor limit instead of running the tests.
const helperNofile = "OMIKUJI_LOCAL_TEST_NOFILE"

func TestMain(m *testing.M) {
	if v := os.Getenv(helperNofile); v != "" {
		os.Exit(runLowLimitSystem(v))
	}
	os.Exit(m.Run())
}

// runLowLimitSystem lowers RLIMIT_NOFILE, starts the default system, prints
// its URL and serves until stdin closes.
func runLowLimitSystem(nofile string) int {
	n, err := strconv.ParseUint(nofile, 10, 64)
	if err == nil {
		err = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: n})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	s, err := Start(Config{Addr: "127.0.0.1:0", Seed: 15, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	fmt.Println(s.URL())
	io.Copy(io.Discard, os.Stdin)
	if err := s.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	return 0
}

// TestRecoversAfterBurstWithFewDescriptors runs the system in a child
// process with few descriptors, opens 400 connections at once (half silent,
// half sending a draw request), closes them, and requires the system to
// serve draws again within seconds, with its descriptors back where they
// were. Without a bound on the front, its sockets took the descriptors the
// replicas needed to accept the connections it made to them: at 1024 the
// front then waited on them for ever (draws failed for as long as the
// process lived); at 512 it does so until its idle timeout even with every
// copy deadlined.
func TestRecoversAfterBurstWithFewDescriptors(t *testing.T) {
	for _, nofile := range []int{1024, 512} {
		t.Run(fmt.Sprintf("nofile=%d", nofile), func(t *testing.T) { burstAndRecover(t, nofile, 400) })
	}
}

func burstAndRecover(t *testing.T, nofile, burst int) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperNofile+"="+strconv.Itoa(nofile))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = testLog{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("helper: %v", err)
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Error("helper did not stop within 30 s of its stdin closing")
		}
	})
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- strings.TrimSpace(line)
		io.Copy(io.Discard, stdout)
	}()
	var url string
	select {
	case url = <-lines:
	case <-time.After(60 * time.Second):
		t.Fatal("helper printed no URL within 60 s")
	}
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("helper printed %q", url)
	}
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/")
	client := newConnectionClient()
	client.Timeout = 3 * time.Second
	drawsAgain := func() bool { _, err := fetchDraw(client, url); return err == nil }
	eventually(t, 30*time.Second, "a first draw", drawsAgain)
	baseline := openFDs(t, cmd.Process.Pid)

	var wg sync.WaitGroup
	conns := make([]net.Conn, burst)
	for i := range conns {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				return // refused or timed out under the burst: that is allowed
			}
			conns[i] = c
			if i%2 == 1 {
				c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			}
		})
	}
	wg.Wait()
	peak := openFDs(t, cmd.Process.Pid)
	time.Sleep(time.Second) // let the front and the replicas take what they can
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}

	recovery := eventually(t, 20*time.Second, "a draw after the burst", drawsAgain)
	for i := range 20 {
		if _, err := fetchDraw(client, url); err != nil {
			t.Fatalf("draw %d after recovering: %v", i, err)
		}
	}
	settle := eventually(t, 30*time.Second, fmt.Sprintf("descriptors back to the %d before the burst", baseline),
		func() bool { return openFDs(t, cmd.Process.Pid) <= baseline })
	t.Logf("descriptors: %d before, %d just after the burst; draws again %v after it, descriptors back %v later",
		baseline, peak, recovery.Round(time.Millisecond), settle.Round(time.Millisecond))
}

// openFDs counts a process's open descriptors.
func openFDs(t *testing.T, pid int) int {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}
