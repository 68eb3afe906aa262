package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/omikuji/omikuji/internal/testkit"
)

// TestProbesSurviveAFloodOfThePublicPort: a client holds the public port at
// its bound with partial requests, reopening each connection as soon as it
// is cut, while the kubelet's probes (1 s timeout) go to the metrics port:
// every one of them answers 200, liveness and readiness alike.
func TestProbesSurviveAFloodOfThePublicPort(t *testing.T) {
	const maxConns, probes = 32, 30
	cfg := testConfig("great-fortune", false)
	cfg.MaxConns = maxConns
	r := start(t, New(cfg))

	ctx, cancel := context.WithCancel(context.Background())
	var flood sync.WaitGroup
	defer flood.Wait()
	defer cancel()
	for range maxConns + 8 {
		flood.Go(func() {
			for ctx.Err() == nil {
				c, err := net.Dial("tcp", r.addr)
				if err != nil {
					continue
				}
				io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n") // never finished
				context.AfterFunc(ctx, func() { c.Close() })
				io.Copy(io.Discard, c) // until the server cuts it (or the test ends)
				c.Close()
			}
		})
	}
	// The flood holds the bound: the public port refuses new connections.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.HasPrefix(rawOrClosed(t, r.addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), "HTTP/1.1 503 ") {
		if time.Now().After(deadline) {
			t.Fatal("the flood never saturated the public port")
		}
		time.Sleep(10 * time.Millisecond)
	}

	probe := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	failed := 0
	for i := range probes {
		path := HealthPath
		if i%2 == 1 {
			path = ReadyPath
		}
		resp, err := probe.Get(r.metricsURL + path)
		if err != nil {
			failed++
			t.Logf("probe %d: %v", i, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			failed++
			t.Logf("probe %d: %s %d", i, path, resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if failed > 0 {
		t.Errorf("%d of %d probes on the metrics port failed while the public port was flooded", failed, probes)
	}
}

// TestRefusalArrivesBeforeTheClose: past the bound, a client that writes
// its request and reads to the end gets the whole 503 and a clean end of
// stream, not a reset, whether its request came in one piece or two.
func TestRefusalArrivesBeforeTheClose(t *testing.T) {
	const maxConns = 2
	cfg := testConfig("great-fortune", false)
	cfg.MaxConns = maxConns
	r := start(t, New(cfg))
	before := testkit.OpenDescriptors(t)
	for range maxConns {
		defer halfRequest(t, r.addr).Close()
	}
	waitDescriptors(t, before+2*maxConns)

	request := "GET / HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\nX-Pad: " + strings.Repeat("p", 4000) + "\r\n\r\n"
	for _, pieces := range []int{1, 2} {
		for range 10 {
			c, err := net.Dial("tcp", r.addr)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			half := len(request) / pieces
			io.WriteString(c, request[:half])
			if pieces == 2 {
				time.Sleep(50 * time.Millisecond)
				io.WriteString(c, request[half:])
			}
			out, err := io.ReadAll(c)
			c.Close()
			if err != nil || !strings.HasPrefix(string(out), "HTTP/1.1 503 ") || !strings.HasSuffix(string(out), msgTooMany) {
				t.Fatalf("request in %d piece(s): read %q, %v; want the whole 503 and a clean end", pieces, out, err)
			}
		}
	}
}

// TestBareLFIsRefusedAtOnce: header lines ending in LF alone get 400 at
// once, not 408 after the read timeout; a bare LF in a body is no fault.
func TestBareLFIsRefusedAtOnce(t *testing.T) {
	r := start(t, newServer("great-fortune", false))
	for _, tc := range []struct{ request, want string }{
		{"GET / HTTP/1.1\nHost: x\n\n", "HTTP/1.1 400 "},
		{"GET /healthz HTTP/1.1\nHost: x\nAccept: */*\n\n", "HTTP/1.1 400 "},
		// Ended by CRLF CRLF, the engine reads it (RFC 9112 lets it).
		{"GET /healthz HTTP/1.1\r\nHost: x\nAccept: */*\r\n\r\n", "HTTP/1.1 200 "},
		{"GET /healthz HTTP/1.1\r\nHost: x\r\n\n", "HTTP/1.1 400 "},
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\na\nb\n", "HTTP/1.1 405 "},
	} {
		began := time.Now()
		out := rawOrClosed(t, r.addr, tc.request)
		if took := time.Since(began); !strings.HasPrefix(out, tc.want) || took > time.Second {
			t.Errorf("%q: %q after %v, want %q at once", tc.request, firstLine(out), took.Round(time.Millisecond), tc.want)
		}
	}
}

// TestAcceptLinesCombine: a list header split over several lines is one
// list (RFC 9110 §5.3), for Accept as for any other.
func TestAcceptLinesCombine(t *testing.T) {
	r := start(t, newServer("great-fortune", false))
	for accept, want := range map[string]string{
		"Accept: image/png\r\nAccept: application/json":        "application/json",
		"Accept: text/html;q=0.1\r\nAccept: text/plain":        "text/plain; charset=utf-8",
		"Accept: text/plain;q=0.5\r\nAccept: application/json": "application/json",
	} {
		out := rawOrClosed(t, r.addr, "GET / HTTP/1.1\r\nHost: x\r\n"+accept+"\r\n\r\n")
		if !strings.HasPrefix(out, "HTTP/1.1 200 ") || !strings.Contains(out, "\r\nContent-Type: "+want+"\r\n") {
			t.Errorf("%q: %q, want a 200 %s", accept, firstLine(out), want)
		}
	}
}

// TestAcceptWaitsOutADescriptorShortage: an accept that fails for want of
// a descriptor is retried, not returned (the engine would stop serving),
// and warned of.
func TestAcceptWaitsOutADescriptorShortage(t *testing.T) {
	var logs testkit.Buffer
	cfg := testConfig("great-fortune", false)
	cfg.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	s := New(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	short := &shortListener{Listener: ln, failures: 3}
	bounded := &boundedListener{Listener: short, s: s, max: 1}
	go func() {
		if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			defer c.Close()
			time.Sleep(time.Second)
		}
	}()
	c, err := bounded.Accept()
	if err != nil {
		t.Fatalf("Accept returned %v after a descriptor shortage, want the next connection", err)
	}
	c.Close()
	if short.failures != 0 || !strings.Contains(logs.String(), `"kind":"out of descriptors"`) {
		t.Errorf("%d shortages left, logs %q", short.failures, logs.String())
	}
}

// shortListener fails its first accepts as a process out of descriptors does.
type shortListener struct {
	net.Listener
	failures int
}

func (l *shortListener) Accept() (net.Conn, error) {
	if l.failures > 0 {
		l.failures--
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: fmt.Errorf("accept4: %w", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

func TestMaxConnsFor(t *testing.T) {
	for nofile, want := range map[uint64]int{
		0:                       0,
		ReservedDescriptors:     0,
		ReservedDescriptors + 1: 1,
		1024:                    1024 - ReservedDescriptors,
		1 << 20:                 1<<20 - ReservedDescriptors,
	} {
		if got := MaxConnsFor(nofile); got != want {
			t.Errorf("MaxConnsFor(%d) = %d, want %d", nofile, got, want)
		}
	}
}
