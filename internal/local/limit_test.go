package local

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/omikuji/omikuji/internal/rlimit"
)

func TestConnLimit(t *testing.T) {
	for _, tc := range []struct {
		nofile   uint64
		replicas int
		want     int
	}{
		{1024, 10, (1024 - 64 - 20) / 4}, // 235
		{1024, 100, (1024 - 64 - 200) / 4},
		{256, 10, (256 - 64 - 20) / 4},
		{20000, 10, MaxConnsCap},
		{1 << 20, 100, MaxConnsCap},
		{87, 10, 0}, // 3 left: not one connection
		{88, 10, 1},
		{10, 10, 0},
	} {
		if got := ConnLimit(tc.nofile, tc.replicas); got != tc.want {
			t.Errorf("ConnLimit(%d, %d) = %d, want %d", tc.nofile, tc.replicas, got, tc.want)
		}
	}
}

func TestStartRejectsBadLimits(t *testing.T) {
	nofile, ok := rlimit.NoFile()
	if !ok {
		t.Skip("no descriptor limit on this system")
	}
	bound := ConnLimit(nofile, 10)
	for _, tc := range []struct {
		max  int
		want string
	}{
		{-1, "want ≥ 0"},
		{bound + 1, "carries at most"},
	} {
		s, err := Start(Config{Addr: "127.0.0.1:0", MaxConns: tc.max})
		if err == nil {
			s.Close()
			t.Errorf("Start with MaxConns %d succeeded", tc.max)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("MaxConns %d: %v, want an error containing %q", tc.max, err, tc.want)
		}
	}
	s := start(t, Config{MaxConns: bound})
	if cap(s.slots) != bound {
		t.Errorf("%d slots, want %d", cap(s.slots), bound)
	}
	if s := start(t, Config{}); cap(s.slots) != bound {
		t.Errorf("default: %d slots, want the derived %d", cap(s.slots), bound)
	}
}

func frontAddr(s *System) string {
	return strings.TrimSuffix(strings.TrimPrefix(s.URL(), "http://"), "/")
}

// eventually polls cond every 20 ms until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not after %v", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// TestFrontRefusesPastItsLimit: with every slot taken by silent clients, a
// new client that sends a whole request is closed unanswered; once the
// silent ones leave, draws work again.
func TestFrontRefusesPastItsLimit(t *testing.T) {
	s := start(t, Config{MaxConns: 2, Seed: 1})
	var silent []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", frontAddr(s))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	eventually(t, 20*time.Second, "two slots taken", func() bool { return len(s.slots) == 2 })

	c, err := net.Dial("tcp", frontAddr(s))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, "GET /?format=text HTTP/1.0\r\n\r\n")
	out, err := io.ReadAll(c)
	if len(out) > 0 || (err != nil && !isReset(err)) {
		t.Fatalf("a client past the limit got %q, %v; want the connection closed unanswered", out, err)
	}

	for _, c := range silent {
		c.Close()
	}
	client := newConnectionClient()
	eventually(t, 20*time.Second, "a draw after the silent clients left", func() bool {
		_, err := fetchDraw(client, s.URL())
		return err == nil
	})
}

// TestNeverReadingClientIsCut: a client that pipelines requests and never
// reads a byte is cut once a write toward it has waited the write timeout,
// and its slot is freed.
func TestNeverReadingClientIsCut(t *testing.T) {
	s := start(t, Config{KeepAlive: true, WriteTimeout: 2 * time.Second, Seed: 2})
	c, err := net.Dial("tcp", frontAddr(s))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	requests := []byte(strings.Repeat("GET /?format=html HTTP/1.1\r\nHost: x\r\n\r\n", 100))
	begin := time.Now()
	cut := make(chan error, 1)
	go func() {
		for {
			c.SetWriteDeadline(time.Now().Add(time.Second))
			_, err := c.Write(requests)
			var ne net.Error
			if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
				cut <- err
				return
			}
		}
	}()
	select {
	case err := <-cut:
		t.Logf("cut after %v: %v", time.Since(begin).Round(time.Millisecond), err)
	case <-time.After(60 * time.Second):
		t.Fatal("a client that never reads still connected after 60 s")
	}
	eventually(t, 20*time.Second, "the slot freed", func() bool { return len(s.slots) == 0 })
}

// TestIdleFrontConnectionIsCut: a kept-alive connection on which nothing
// moves is cut at the front's idle timeout, long before the replica's own.
func TestIdleFrontConnectionIsCut(t *testing.T) {
	s := start(t, Config{KeepAlive: true, IdleTimeout: time.Second, Seed: 3})
	c, err := net.Dial("tcp", frontAddr(s))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	io.WriteString(c, "GET /?format=text HTTP/1.1\r\nHost: x\r\n\r\n")
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Close {
		t.Fatalf("status %d, close %v: want a kept-alive draw", resp.StatusCode, resp.Close)
	}
	begin := time.Now()
	_, err = r.ReadByte()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("an idle connection still open after 30 s")
	}
	if err != io.EOF && !isReset(err) {
		t.Fatalf("read after idling: %v", err)
	}
	t.Logf("idle connection cut after %v", time.Since(begin).Round(time.Millisecond))
	eventually(t, 20*time.Second, "the slot freed", func() bool { return len(s.slots) == 0 })
}

// TestProbesSurviveAFullFront: with every front slot held by a client that
// never finishes its request, the probes on the metrics port still answer
// 200: they do not queue behind the draws.
func TestProbesSurviveAFullFront(t *testing.T) {
	const slots, probes = 8, 20
	s := start(t, Config{MaxConns: slots, MetricsAddr: "127.0.0.1:0", Seed: 4})
	for range slots + 4 {
		c, err := net.Dial("tcp", frontAddr(s))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n") // never finished
	}
	eventually(t, 20*time.Second, "every slot taken", func() bool { return len(s.slots) == slots })
	base := strings.TrimSuffix(s.MetricsURL(), "/metrics")
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	failed := 0
	for i := range probes {
		path := "/healthz"
		if i%2 == 1 {
			path = "/readyz"
		}
		resp, err := client.Get(base + path)
		if err != nil {
			failed++
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			failed++
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d probes on the metrics port failed with the front full", failed, probes)
	}
}
