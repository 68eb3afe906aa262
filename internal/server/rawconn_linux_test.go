package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// The raw accept path (rawconn_linux.go) through fasthttp, as Run serves,
// and rawListener/rawConn on their own. TestEnginesAnswerAlike and the
// shutdown tests in engine_test.go run over it too: fastEngine.Serve wraps
// every TCP listener.

const drawRequest = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

// promoted reports whether c left the raw path (false for a non-rawConn).
func promoted(c net.Conn) (isRaw, isPromoted bool) {
	rc, ok := c.(*rawConn)
	if !ok {
		return false, false
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return true, rc.file != nil
}

// pathRecorder records, for each request the handler sees, whether its
// connection was raw or already promoted.
type pathRecorder struct {
	mu    sync.Mutex
	paths []string
	conn  net.Conn // the last connection accepted
}

// waitPromoted waits until the last connection accepted has left the raw
// path, that is, until the server waits for it on the poller.
func (p *pathRecorder) waitPromoted(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.mu.Lock()
		c := p.conn
		p.mu.Unlock()
		if _, ok := promoted(c); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the server never waited for the connection")
		}
		time.Sleep(time.Millisecond)
	}
}

func (p *pathRecorder) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.paths
	p.paths, p.conn = nil, nil
	return out
}

// startRecorded serves s through fastEngine, as Run does, recording the
// path of each request.
func startRecorded(t *testing.T, s *Server, readTimeout time.Duration) (string, *pathRecorder) {
	t.Helper()
	srv := s.FastServer()
	if readTimeout > 0 {
		srv.ReadTimeout = readTimeout
	}
	rec := &pathRecorder{}
	srv.ConnState = func(c net.Conn, state fasthttp.ConnState) {
		if state == fasthttp.StateNew {
			rec.mu.Lock()
			rec.conn = c
			rec.mu.Unlock()
		}
	}
	inner := srv.Handler
	srv.Handler = func(ctx *fasthttp.RequestCtx) {
		path := "not raw"
		if isRaw, isPromoted := promoted(ctx.Conn()); isRaw && isPromoted {
			path = "promoted"
		} else if isRaw {
			path = "raw"
		}
		rec.mu.Lock()
		rec.paths = append(rec.paths, path)
		rec.mu.Unlock()
		inner(ctx)
	}
	addr, _ := startEngine(t, s, &fastEngine{Server: srv}, 0)
	// Once a draw is answered, Serve has wrapped the listener: later
	// connections are accepted with their request (TCP_DEFER_ACCEPT).
	draw(t, addr, drawRequest)
	rec.take()
	return addr, rec
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// waitFDs waits until the process has want descriptors open (the server
// may still be closing the last connection as the client sees EOF).
func waitFDs(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := openFDs(t)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			ents, _ := os.ReadDir("/proc/self/fd")
			var links []string
			for _, e := range ents {
				l, _ := os.Readlink("/proc/self/fd/" + e.Name())
				links = append(links, e.Name()+"="+l)
			}
			t.Fatalf("%d descriptors open, want %d: a leak; open: %v", got, want, links)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// draw makes one whole new-connection draw and returns the response.
func draw(t testing.TB, addr, request string) string {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Error(err)
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		t.Error(err)
		return ""
	}
	out, err := io.ReadAll(c)
	if err != nil {
		t.Error(err)
	}
	return string(out)
}

func TestRawListenWrapsOnlyOpenTCPListeners(t *testing.T) {
	ul, err := net.Listen("unix", t.TempDir()+"/s")
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	if got := rawListen(ul); got != ul {
		t.Errorf("a unix listener was wrapped: %T", got)
	}
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	if got := rawListen(closed); got != closed {
		t.Errorf("a closed TCP listener was wrapped: %T", got)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	raw := rawListen(ln)
	defer raw.Close()
	if _, ok := raw.(*rawListener); !ok || raw.Addr().String() != ln.Addr().String() {
		t.Fatalf("rawListen(tcp) = %T at %v, want *rawListener at %v", raw, raw.Addr(), ln.Addr())
	}
	rc, _ := ln.(*net.TCPListener).SyscallConn()
	deferAccept := 0
	rc.Control(func(fd uintptr) {
		deferAccept, _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_DEFER_ACCEPT)
	})
	if deferAccept == 0 {
		t.Error("TCP_DEFER_ACCEPT is not set on the listener's socket")
	}
}

// TestRawDrawsStayRawAndCloseTheirDescriptors: draws whose requests are
// there when they are accepted are served on raw system calls, and every
// descriptor is closed afterwards.
func TestRawDrawsStayRawAndCloseTheirDescriptors(t *testing.T) {
	s := newServer("great-fortune", false)
	srv := s.FastServer()
	rec := &pathRecorder{}
	inner := srv.Handler
	srv.Handler = func(ctx *fasthttp.RequestCtx) {
		path := "not raw"
		if isRaw, isPromoted := promoted(ctx.Conn()); isRaw && !isPromoted {
			path = "raw"
		}
		rec.mu.Lock()
		rec.paths = append(rec.paths, path)
		rec.mu.Unlock()
		inner(ctx)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Requests queued before the server runs are all there when accepted.
	const queued = 50
	var clients []net.Conn
	for range queued {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, drawRequest)
		clients = append(clients, c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.run(ctx, &fastEngine{Server: srv}, ln, 0) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	for _, c := range clients {
		if out, err := io.ReadAll(c); err != nil || !strings.HasPrefix(string(out), "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(string(out), "</html>\n") {
			t.Fatalf("draw: %q %v", out, err)
		}
		c.Close()
	}
	if got, want := strings.Join(rec.take(), ","), strings.TrimSuffix(strings.Repeat("raw,", queued), ","); got != want {
		t.Errorf("paths of queued draws: %s, want all raw", got)
	}

	// One draw after the other, each accepted when its request arrives
	// (TCP_DEFER_ACCEPT): all raw, and no descriptor stays open.
	before := openFDs(t)
	const n = 300
	for range n {
		if out := draw(t, ln.Addr().String(), drawRequest); !strings.HasPrefix(out, "HTTP/1.1 200 OK\r\n") {
			t.Fatalf("draw: %q", out)
		}
	}
	waitFDs(t, before)
	paths := rec.take()
	raw := 0
	for _, p := range paths {
		if p == "raw" {
			raw++
		}
	}
	if len(paths) != n || raw != n {
		t.Errorf("%d of %d draws served, %d raw; want all raw", len(paths), n, raw)
	}
}

// TestRawManyConcurrentClientsLeakNothing runs under -race in make test.
func TestRawManyConcurrentClientsLeakNothing(t *testing.T) {
	s := newServer("small-fortune", false)
	addr, _ := startRecorded(t, s, 0)
	before := openFDs(t)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for range 25 {
				if out := draw(t, addr, drawRequest); !strings.HasPrefix(out, "HTTP/1.1 200 OK\r\n") {
					t.Errorf("draw: %q", out)
					return
				}
			}
		})
	}
	// Clients that give up half-way: promoted reads end in EOF or reset.
	for range 16 {
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			io.WriteString(c, "GET / HT")
			time.Sleep(20 * time.Millisecond)
			c.Close()
		})
	}
	wg.Wait()
	waitFDs(t, before)
}

// TestRawRequestInTwoPieces: a request that is not all there when read
// first promotes the connection and is answered as usual.
func TestRawRequestInTwoPieces(t *testing.T) {
	s := newServer("great-fortune", false)
	addr, rec := startRecorded(t, s, 0)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /?format=json HTTP/1.1\r\nHo")
	rec.waitPromoted(t)
	io.WriteString(c, "st: x\r\nConnection: close\r\n\r\n")
	out, err := io.ReadAll(c)
	if err != nil || !strings.HasPrefix(string(out), "HTTP/1.1 200 OK\r\n") || !strings.Contains(string(out), `"fortune":"great-fortune"`) {
		t.Fatalf("%q %v", out, err)
	}
	if got := rec.take(); len(got) != 1 || got[0] != "promoted" {
		t.Errorf("paths %v, want [promoted]", got)
	}
}

// TestRawSilentClientIsCut: a client that sends nothing is handed over by
// the kernel after TCP_DEFER_ACCEPT's second, then cut by the read timeout
// on the promoted (poller) path, with fasthttp's 408.
func TestRawSilentClientIsCut(t *testing.T) {
	s := newServer("great-fortune", false)
	addr, _ := startRecorded(t, s, 200*time.Millisecond)
	before := openFDs(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	out, err := io.ReadAll(c)
	took := time.Since(start)
	c.Close()
	if err != nil || !strings.HasPrefix(string(out), "HTTP/1.1 408 ") {
		t.Errorf("silent client got %q %v, want a 408 and the close", out, err)
	}
	if took < 150*time.Millisecond || took > 8*time.Second {
		t.Errorf("cut after %v, want about the deferral (1 s) and the 200 ms read timeout", took)
	}
	waitFDs(t, before)
	// The slow trickle of TestFastSlowlorisIsCut, over this path too.
	if got := trickleHeaders(t, addr); strings.Contains(string(got), " 200 ") {
		t.Fatalf("a slowloris request was served: %q", got)
	}
}

// TestRawKeepAliveAndPipelining: the first request on a pooled connection
// is raw (accepted with it), the next ones wait on the poller; pipelined
// requests are all answered in order.
func TestRawKeepAliveAndPipelining(t *testing.T) {
	s := newServer("middle-fortune", true)
	addr, rec := startRecorded(t, s, 0)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	const keepAlive = "GET /?format=text HTTP/1.1\r\nHost: x\r\n\r\n"
	for i := range 3 {
		io.WriteString(c, keepAlive)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || resp.Close || !strings.Contains(string(body), "中吉") {
			t.Fatalf("request %d: %d close=%v %q", i, resp.StatusCode, resp.Close, body)
		}
		rec.waitPromoted(t) // the server's next read found nothing
	}
	io.WriteString(c, strings.Repeat(keepAlive, 4)+drawRequest)
	for i := range 5 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("pipelined %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 200 || resp.Close != (i == 4) {
			t.Fatalf("pipelined %d: %d close=%v", i, resp.StatusCode, resp.Close)
		}
	}
	if n, err := br.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("after Connection: close: %d %v, want EOF", n, err)
	}
	if got, want := strings.Join(rec.take(), ","), "raw"+strings.Repeat(",promoted", 7); got != want {
		t.Errorf("paths %s, want %s", got, want)
	}
}

// rawPair returns a rawConn accepted from a rawListener and its client,
// with nothing left to read: the client's first byte, which makes the
// (deferred) accept immediate, has been read on the raw path.
func rawPair(t *testing.T) (*rawConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rl := rawListen(ln)
	t.Cleanup(func() { rl.Close() })
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	io.WriteString(client, "!")
	sc, err := rl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	if n, err := sc.Read(make([]byte, 1)); n != 1 || err != nil {
		t.Fatalf("first byte: %d %v", n, err)
	}
	if _, p := promoted(sc); p {
		t.Fatal("promoted although the first byte was there")
	}
	return sc.(*rawConn), client
}

func TestRawConnAddresses(t *testing.T) {
	sc, client := rawPair(t)
	if sc.RemoteAddr().String() != client.LocalAddr().String() || sc.LocalAddr().String() != client.RemoteAddr().String() {
		t.Errorf("server sees %v->%v, client %v->%v", sc.LocalAddr(), sc.RemoteAddr(), client.LocalAddr(), client.RemoteAddr())
	}
	if _, ok := sc.RemoteAddr().(*net.TCPAddr); !ok {
		t.Errorf("RemoteAddr is %T", sc.RemoteAddr())
	}
}

// TestRawLargeWritePromotes: a response bigger than a tiny send buffer
// leaves the raw path mid-write and arrives whole; with nobody reading,
// the write deadline recorded on the raw path cuts it.
func TestRawLargeWritePromotes(t *testing.T) {
	sc, client := rawPair(t)
	rc, _ := sc.SyscallConn()
	rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096) })
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	got := make(chan []byte, 1)
	go func() {
		client.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(client)
		got <- b
	}()
	sc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if n, err := sc.Write(big); n != len(big) || err != nil {
		t.Fatalf("Write: %d %v", n, err)
	}
	if _, p := promoted(sc); !p {
		t.Error("a write that filled the send buffer did not promote")
	}
	sc.Close()
	if b := <-got; !bytes.Equal(b, big) {
		t.Errorf("client read %d bytes, want the %d written", len(b), len(big))
	}

	sc2, _ := rawPair(t) // its client never reads
	rc2, _ := sc2.SyscallConn()
	rc2.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096) })
	big = bytes.Repeat(big, 16) // more than loopback's receive buffer takes
	sc2.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	n, err := sc2.Write(big)
	var ne net.Error
	if n >= len(big) || !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Write to a client that does not read: %d %v, want a timeout", n, err)
	}
}

// TestRawCloseDuringBlockedRead: Close from another goroutine (what
// fasthttp's Shutdown does to idle connections) wakes a Read waiting on
// the poller with net.ErrClosed; a second Close is an error that closes
// nothing.
func TestRawCloseDuringBlockedRead(t *testing.T) {
	sc, _ := rawPair(t)
	read := make(chan error, 1)
	go func() {
		_, err := sc.Read(make([]byte, 10))
		read <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, p := promoted(sc); p {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a read with nothing to read did not promote")
		}
	}
	time.Sleep(20 * time.Millisecond) // most likely blocked on the poller now
	if err := sc.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-read:
		if !errors.Is(err, net.ErrClosed) || !strings.Contains(err.Error(), "use of closed network connection") {
			t.Errorf("blocked Read after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake the blocked Read")
	}
	checkClosedStaysClosed(t, sc)
}

// checkClosedStaysClosed: every method of a closed rawConn fails with
// net.ErrClosed, and a second Close leaves alone a descriptor that reused
// the number.
func checkClosedStaysClosed(t *testing.T, sc *rawConn) {
	t.Helper()
	f, err := os.Open("/dev/null") // likely gets sc's old descriptor number
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for name, err := range map[string]error{
		"Close":            sc.Close(),
		"Read":             func() error { _, err := sc.Read(make([]byte, 1)); return err }(),
		"Write":            func() error { _, err := sc.Write([]byte("x")); return err }(),
		"SetReadDeadline":  sc.SetReadDeadline(time.Now()),
		"SetWriteDeadline": sc.SetWriteDeadline(time.Now()),
	} {
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s on a closed conn: %v, want net.ErrClosed", name, err)
		}
	}
	if _, err := f.Stat(); err != nil {
		t.Errorf("a second Close closed someone else's descriptor: %v", err)
	}
}

func TestRawCloseOnTheRawPath(t *testing.T) {
	sc, client := rawPair(t)
	io.WriteString(client, "hi")
	time.Sleep(20 * time.Millisecond)
	if n, err := sc.Read(make([]byte, 10)); n != 2 || err != nil {
		t.Fatalf("Read: %d %v", n, err)
	}
	if n, err := sc.Write([]byte("ho")); n != 2 || err != nil {
		t.Fatalf("Write: %d %v", n, err)
	}
	if _, p := promoted(sc); p {
		t.Fatal("promoted without waiting")
	}
	// A deadline recorded on the raw path holds once a read has to wait.
	sc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := sc.Read(make([]byte, 10)); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) || !isTimeout(err) {
		t.Fatalf("Read with nothing to read: %d %v, want the deadline's timeout", n, err)
	}
	if _, p := promoted(sc); !p {
		t.Fatal("a read that had to wait did not promote")
	}
	if err := sc.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(client); string(b) != "ho" || err != nil {
		t.Errorf("client read %q %v", b, err)
	}
	checkClosedStaysClosed(t, sc)
}

// TestRawConcurrentCloseAndIO races Close against reads and writes on
// both paths (run with -race): exactly one Close succeeds.
func TestRawConcurrentCloseAndIO(t *testing.T) {
	before := openFDs(t)
	for i := range 50 {
		func() {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			rl := rawListen(ln)
			defer rl.Close()
			client, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			io.WriteString(client, "d")
			c, err := rl.Accept()
			if err != nil {
				t.Fatal(err)
			}
			if i%2 == 1 { // then reads wait on the poller
				c.Read(make([]byte, 1))
			}
			var wg sync.WaitGroup
			var mu sync.Mutex
			closes := 0
			for range 3 {
				wg.Go(func() {
					c.Read(make([]byte, 8))
					c.Write([]byte("x"))
				})
				wg.Go(func() {
					if c.Close() == nil {
						mu.Lock()
						closes++
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if closes != 1 {
				t.Fatalf("%d Closes succeeded, want 1", closes)
			}
		}()
	}
	waitFDs(t, before)
}

// TestRawCorkReachesTheSocket: corkUntilClose sets TCP_CORK on a rawConn.
func TestRawCorkReachesTheSocket(t *testing.T) {
	sc, _ := rawPair(t)
	corkUntilClose(sc)
	rc, _ := sc.SyscallConn()
	cork := -1
	rc.Control(func(fd uintptr) { cork, _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK) })
	if cork != 1 {
		t.Errorf("TCP_CORK = %d, want 1", cork)
	}
}

// TestRawAcceptAfterClose: Close wakes a waiting Accept, and Accept then
// fails with the error fasthttp's Serve takes as a clean stop.
func TestRawAcceptAfterClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rl := rawListen(ln)
	accepted := make(chan error, 1)
	go func() {
		_, err := rl.Accept()
		accepted <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := rl.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-accepted:
		if !errors.Is(err, net.ErrClosed) || !strings.Contains(err.Error(), "use of closed network connection") {
			t.Errorf("Accept during Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake Accept")
	}
	if _, err := rl.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v", err)
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Error("the socket still listens after Close")
	}
	// fasthttp's Serve returns nil on it, as on a closed net listener.
	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	rl2 := rawListen(ln2)
	served := make(chan error, 1)
	go func() { served <- (&fasthttp.Server{Handler: func(*fasthttp.RequestCtx) {}}).Serve(rl2) }()
	time.Sleep(50 * time.Millisecond)
	rl2.Close()
	if err := <-served; err != nil {
		t.Errorf("fasthttp Serve after the raw listener closed: %v, want nil", err)
	}
}

// TestRawAcceptOutOfDescriptors: EMFILE is a timeout to fasthttp (which
// waits a second and retries), not an end of Serve; the pending
// connection is accepted once descriptors are free.
func TestRawAcceptOutOfDescriptors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rl := rawListen(ln)
	defer rl.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	io.WriteString(client, drawRequest) // accepted at once despite the deferral

	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	low := old
	low.Cur = uint64(fillDescriptors(t))
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skipf("cannot lower RLIMIT_NOFILE: %v", err)
	}
	_, aerr := rl.Accept()
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	var ne net.Error
	if !errors.Is(aerr, syscall.EMFILE) || !errors.As(aerr, &ne) || !ne.Timeout() {
		t.Fatalf("Accept out of descriptors: %v, want EMFILE as a timeout", aerr)
	}
	c, err := rl.Accept()
	if err != nil {
		t.Fatalf("Accept once descriptors are free: %v", err)
	}
	c.Close()
}

// fillDescriptors opens /dev/null until every descriptor number up to the
// last one opened is taken, and returns that number + 1: with it as
// RLIMIT_NOFILE, the next descriptor cannot be had.
func fillDescriptors(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	high := 0
	for _, e := range ents {
		var n int
		fmt.Sscan(e.Name(), &n)
		high = max(high, n)
	}
	for {
		f, err := os.Open("/dev/null")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		// The lowest free number is taken each time: once it reaches
		// high, there are no holes below.
		if fd := int(f.Fd()); fd >= high {
			return fd + 1
		}
	}
}
