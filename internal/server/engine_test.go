package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// The tests in server_test.go check behaviour through net/http
// (HTTPServer); Run serves with fasthttp (FastServer). The tests here hold
// the fast engine to the same behaviour: the same answers byte for byte,
// the same shutdown sequence, the same limits.

// engines builds each engine for s, as Run and HTTPServer configure them.
var engines = []struct {
	name string
	new  func(s *Server) engine
}{
	{"net/http", func(s *Server) engine { return s.HTTPServer() }},
	{"fasthttp", func(s *Server) engine { return &fastEngine{Server: s.FastServer()} }},
}

// startEngine runs s with srv on a fresh loopback port until the test ends;
// the test fails if run does not return nil.
func startEngine(t *testing.T, s *Server, srv engine, drain time.Duration) (addr string, stop func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.run(ctx, srv, ln, drain) }()
	var stopped bool
	var result error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			result = <-done
		}
		return result
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("run returned %v, want nil", err)
		}
	})
	return ln.Addr().String(), stop
}

// exchange sends raw on a new connection and parses every response until
// the server closes it (or 5 s pass). heads are the requests' methods, so
// that HEAD responses are read without a body.
func exchange(t *testing.T, addr, raw string, heads ...string) []exchanged {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(c) // a deadline error just ends the reading
	br := bufio.NewReader(bytes.NewReader(out))
	var got []exchanged
	for i := 0; ; i++ {
		method := http.MethodGet
		if i < len(heads) {
			method = heads[i]
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			if len(got) == 0 {
				t.Fatalf("no response to %q: %v (read %q)", raw, err, out)
			}
			return got
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("reading the body for %q: %v", raw, err)
		}
		resp.Header.Del("Date") // the only header that may differ between the two
		got = append(got, exchanged{resp.Proto, resp.StatusCode, resp.Header, string(body)})
	}
}

type exchanged struct {
	proto  string
	status int
	header http.Header
	body   string
}

func (e exchanged) equal(o exchanged) bool {
	if e.proto != o.proto || e.status != o.status || e.body != o.body || len(e.header) != len(o.header) {
		return false
	}
	for k, v := range e.header {
		if !slices.Equal(v, o.header[k]) {
			return false
		}
	}
	return true
}

// TestEnginesAnswerAlike sends the same raw requests to both engines and
// wants the same responses: status, every header but Date, body, and how
// many responses a connection carries. Where net/http answers a request it
// cannot parse itself, only the status must match.
func TestEnginesAnswerAlike(t *testing.T) {
	const host = "Host: omikuji\r\n"
	get := func(target string, headers ...string) string {
		return "GET " + target + " HTTP/1.1\r\n" + host + strings.Join(headers, "") + "\r\n"
	}
	type tc struct {
		raw        string
		heads      []string
		statusOnly bool // net/http's own error pages differ in wording
		// An HTTP/1.0 request without keep-alive: both close after the
		// response, fasthttp also says so with Connection: close.
		http10 bool
	}
	var cases []tc
	for _, q := range []string{"", "?format=json", "?format=text", "?format=html", "?format=xml", "?format=%3Cscript%3E",
		"?format=%zz", "?x=1&format=json&format=text", "?%66ormat=%74ext", "?other=%zz&format=json", "?format=" + strings.Repeat("a", 300)} {
		cases = append(cases, tc{raw: get("/" + q)})
	}
	for _, accept := range []string{"*/*", "application/json", "text/plain", "text/*;q=0.5, text/plain", "image/png", "*/*;q=0",
		"text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8", "APPLICATION/JSON", "garbage", ""} {
		cases = append(cases, tc{raw: get("/", "Accept: "+accept+"\r\n")})
	}
	cases = append(cases,
		tc{raw: get("/", "Accept: image/png\r\n", "Accept: text/plain\r\n")}, // two Accept lines
		tc{raw: get("/", "Connection: close\r\n")},
		tc{raw: "HEAD / HTTP/1.1\r\n" + host + "\r\n", heads: []string{"HEAD"}},
		tc{raw: "HEAD /?format=json HTTP/1.1\r\n" + host + "\r\n", heads: []string{"HEAD"}},
		tc{raw: "HEAD /healthz HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n", heads: []string{"HEAD"}},
		tc{raw: "GET / HTTP/1.0\r\n\r\n", http10: true},
		tc{raw: "POST / HTTP/1.1\r\n" + host + "Content-Length: 3\r\nConnection: close\r\n\r\nx=1"},
		tc{raw: "GET http://omikuji/?format=json HTTP/1.1\r\n" + host + "\r\n"},
		tc{raw: get("/", "X-Long: "+strings.Repeat("x", 20<<10)+"\r\n"), statusOnly: true},
		tc{raw: "GET / HTTP/1.1\r\nHost omikuji\r\n\r\n", statusOnly: true},
		tc{raw: "GET /%zz HTTP/1.1\r\n" + host + "\r\n", statusOnly: true},
		tc{raw: "BREW / HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n"},
		// Pipelined: draws close the connection after one response.
		tc{raw: get("/") + get("/?format=json")},
		tc{raw: get("/healthz") + get("/readyz") + get("/", "Connection: close\r\n")},
	)
	for _, path := range []string{HealthPath, ReadyPath, "/index.html", "/favicon.ico", "/healthz/", "//", "/%3Cscript%3E", "/%68ealthz", "/./", "/a/../healthz"} {
		cases = append(cases, tc{raw: get(path, "Connection: close\r\n")})
	}
	for _, path := range []string{"/", HealthPath, ReadyPath, MetricsPath, "/nowhere"} {
		for _, method := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
			cases = append(cases, tc{raw: method + " " + path + " HTTP/1.1\r\n" + host + "Content-Length: 0\r\nConnection: close\r\n\r\n"})
		}
	}

	for _, keepAlive := range []bool{false, true} {
		s := newServer("small-fortune", keepAlive)
		var addrs []string
		for _, e := range engines {
			addr, _ := startEngine(t, s, e.new(s), 0)
			addrs = append(addrs, addr)
		}
		for _, c := range cases {
			// Make every connection end so that exchange does not wait for the deadline.
			c.raw += get("/healthz", "Connection: close\r\n")
			want := exchange(t, addrs[0], c.raw, c.heads...)
			got := exchange(t, addrs[1], c.raw, c.heads...)
			if c.statusOnly {
				if len(got) != len(want) || got[0].status != want[0].status {
					t.Errorf("keep-alive %v, %.60q: fasthttp answered %d (%d responses), net/http %d (%d responses)",
						keepAlive, c.raw, got[0].status, len(got), want[0].status, len(want))
				}
				continue
			}
			if len(got) != len(want) {
				t.Errorf("keep-alive %v, %.60q: %d responses from fasthttp, %d from net/http", keepAlive, c.raw, len(got), len(want))
				continue
			}
			if c.http10 && len(got) > 0 && got[0].header.Get("Connection") == "close" {
				want[0].header.Set("Connection", "close")
			}
			for i := range want {
				if !got[i].equal(want[i]) {
					t.Errorf("keep-alive %v, %.60q, response %d:\nfasthttp %+v\nnet/http %+v", keepAlive, c.raw, i, got[i], want[i])
				}
			}
		}
	}
}

// TestEnginesCountDrawsAlike: the metrics each engine serves count the
// draws either engine served, through the same registry.
func TestEnginesCountDrawsAlike(t *testing.T) {
	s := newServer("misfortune", false)
	for _, e := range engines {
		addr, _ := startEngine(t, s, e.new(s), 0)
		for range 3 {
			exchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		}
		exchange(t, addr, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", "HEAD") // not a draw
	}
	for _, e := range engines {
		addr, _ := startEngine(t, s, e.new(s), 0)
		res := exchange(t, addr, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0]
		if res.status != 200 || !strings.HasPrefix(res.header.Get("Content-Type"), "text/plain; version=0.0.4") {
			t.Errorf("%s: metrics %d %q", e.name, res.status, res.header.Get("Content-Type"))
		}
		if want := "\nomikuji_draws_total{fortune=\"misfortune\"} 6\n"; !strings.Contains(res.body, want) {
			t.Errorf("%s: metrics lack %q", e.name, want)
		}
	}
}

// TestShutdownSequenceBothEngines is TestShutdownSequence for each engine:
// readiness fails at once while draws still work and pooled connections
// close after their next response; after the drain the listener closes; a
// request whose handler is running completes; run returns nil.
func TestShutdownSequenceBothEngines(t *testing.T) {
	const drain = 2 * time.Second
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			s := newServer("great-fortune", true)
			entered, release := make(chan struct{}), make(chan struct{})
			hold := func(header string) {
				if header != "" {
					close(entered)
					<-release
				}
			}
			srv := e.new(s)
			switch srv := srv.(type) {
			case *http.Server:
				srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hold(r.Header.Get("X-Hold")); s.ServeHTTP(w, r) })
			case *fastEngine:
				inner := srv.Handler
				srv.Handler = func(ctx *fasthttp.RequestCtx) {
					hold(string(ctx.Request.Header.Peek("X-Hold")))
					inner(ctx)
				}
			}
			addr, stop := startEngine(t, s, srv, drain)

			slow := make(chan []exchanged, 1)
			go func() {
				slow <- exchange(t, addr, "GET /?format=json HTTP/1.1\r\nHost: x\r\nX-Hold: 1\r\nConnection: close\r\n\r\n")
			}()
			<-entered
			// A pooled connection from before the shutdown.
			pooled, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer pooled.Close()
			pooled.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(pooled, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp, err := http.ReadResponse(bufio.NewReader(pooled), nil); err != nil || resp.StatusCode != 200 || resp.Close {
				t.Fatalf("pooled connection before shutdown: %v %v", resp, err)
			}

			stopped := make(chan error, 1)
			go func() { stopped <- stop() }()
			deadline := time.Now().Add(10 * time.Second)
			for {
				if res := exchange(t, addr, "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); res[0].status == http.StatusServiceUnavailable {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("readiness still passes")
				}
				time.Sleep(5 * time.Millisecond)
			}
			if res := exchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); res[0].status != 200 {
				t.Errorf("draw during drain: %d", res[0].status)
			}
			// The pooled connection is closed: net/http closes idle ones at
			// once, fasthttp after their next response.
			out := exchangeOn(t, pooled, "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
			if n := strings.Count(out, "HTTP/1.1 200 OK"); n > 1 || (n == 1 && !strings.Contains(out, "\r\nConnection: close\r\n")) {
				t.Errorf("pooled connection during drain: %d responses, want at most 1, with Connection: close:\n%s", n, out)
			}

			waitListenerClosed(t, addr, deadline)
			select {
			case err := <-stopped:
				t.Fatalf("run returned (%v) with a request in flight", err)
			default:
			}
			close(release)
			if res := <-slow; res[0].status != 200 || !strings.Contains(res[0].body, `"fortune":"great-fortune"`) {
				t.Errorf("in-flight request: %+v", res[0])
			}
			if err := <-stopped; err != nil {
				t.Errorf("run returned %v, want nil", err)
			}
		})
	}
}

// exchangeOn writes raw on an open connection and reads until the server
// closes it.
func exchangeOn(t *testing.T, c net.Conn, raw string) string {
	t.Helper()
	io.WriteString(c, raw) // fails if the server closed first; the reading tells
	out, err := io.ReadAll(c)
	// A reset is a close too: when the server closed before our write
	// arrived, the kernel answers the write with RST.
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the server did not close the connection: %v (read %q)", err, out)
	}
	return string(out)
}

// TestStopRightAfterStart: a stop that comes before the engine has begun
// to serve still ends run, and the listener is closed.
func TestStopRightAfterStart(t *testing.T) {
	for _, e := range engines {
		for range 20 {
			s := newServer("great-fortune", false)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			done := make(chan error, 1)
			go func() { done <- s.run(ctx, e.new(s), ln, 0) }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s: run returned %v, want nil", e.name, err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: run still serving 10 s after a stop that came first", e.name)
			}
			if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
				c.Close()
				t.Errorf("%s: the listener is still open", e.name)
			}
		}
	}
}

func TestFastServerLimits(t *testing.T) {
	srv := newServer("great-fortune", false).FastServer()
	if srv.ReadTimeout <= 0 || srv.ReadTimeout > ReadHeaderTimeout || srv.WriteTimeout != WriteTimeout || srv.IdleTimeout != IdleTimeout {
		t.Errorf("timeouts: read %v write %v idle %v", srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout)
	}
	if srv.ReadBufferSize != MaxHeaderBytes || srv.MaxRequestBodySize <= 0 || srv.MaxRequestBodySize > 1<<20 {
		t.Errorf("limits: header buffer %d, body %d", srv.ReadBufferSize, srv.MaxRequestBodySize)
	}
}

// TestFastSlowlorisIsCut is TestSlowlorisIsCut for the fast engine, whose
// read timeout bounds the whole (bodiless) request.
func TestFastSlowlorisIsCut(t *testing.T) {
	s := newServer("great-fortune", false)
	srv := s.FastServer()
	srv.ReadTimeout = 200 * time.Millisecond
	addr, _ := startEngine(t, s, &fastEngine{Server: srv}, 0)
	got := trickleHeaders(t, addr)
	if strings.Contains(string(got), " 200 ") {
		t.Fatalf("a slowloris request was served: %q", got)
	}
}

// BenchmarkDrawNewConnectionNetHTTP is BenchmarkDrawNewConnection with the
// net/http engine, for the ratio.
func BenchmarkDrawNewConnectionNetHTTP(b *testing.B) {
	benchmarkDrawNewConnection(b, func(s *Server, ctx context.Context, ln net.Listener) error {
		return s.run(ctx, s.HTTPServer(), ln, 0)
	})
}
