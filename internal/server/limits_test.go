package server

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/omikuji/omikuji/internal/fortune"
	"github.com/omikuji/omikuji/internal/testkit"
	"github.com/omikuji/omikuji/internal/throttle"
)

// TestStrictHTTP: versions other than 1.0 and 1.1 get 505, header names
// with spaces and folded lines 400, whatever the engine would accept; too
// large a header or body gets its 431 or 413.
func TestStrictHTTP(t *testing.T) {
	r := start(t, newServer("great-fortune", false))
	for _, tc := range []struct{ request, want string }{
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK\r\n"},
		{"GET / HTTP/1.0\r\n\r\n", "HTTP/1.0 200 OK\r\n"},
		{"GET / HTTP/2.0\r\nHost: x\r\n\r\n", "HTTP/1.1 505 HTTP Version Not Supported\r\n"},
		{"GET / HTTP/9.9\r\nHost: x\r\n\r\n", "HTTP/1.1 505 HTTP Version Not Supported\r\n"},
		{"GET / HTTP/1.2\r\nHost: x\r\n\r\n", "HTTP/1.1 505 HTTP Version Not Supported\r\n"},
		{"GET /healthz HTTP/0.9\r\n\r\n", "HTTP/1.1 505 HTTP Version Not Supported\r\n"},
		{"GET / HTTP/1.1\r\nHost: x\r\nFoo Bar: 1\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"},
		{"GET / HTTP/1.1\r\nHost: x\r\nFoo\t: 1\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"},
		{"GET / HTTP/1.1\r\nHost: x\r\nAccept: text/html,\r\n application/json\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"},
		{"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\tfolded\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"},
		{"GET / HTTP/1.1\r\nHost: x\r\nX(A): 1\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"},
		// Refused with the rest unread: the answer must leave before the close.
		{"GET / HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("a", MaxHeaderBytes) + "\r\n\r\n", "HTTP/1.1 431 Request Header Fields Too Large\r\n"},
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n" + strings.Repeat("a", 70000), "HTTP/1.1 413 Request Entity Too Large\r\n"},
	} {
		out := rawOrClosed(t, r.addr, tc.request)
		shown := tc.request[:min(len(tc.request), 80)]
		if !strings.HasPrefix(out, tc.want) {
			t.Errorf("%q: answer %q, want it to begin %q", shown, firstLine(out), tc.want)
		}
		if strings.Contains(tc.want, " 200 ") {
			continue
		}
		if _, body, _ := strings.Cut(out, "\r\n\r\n"); strings.Contains(out, "<") || body == "" {
			t.Errorf("%q: refusal %q is not a short plain text", shown, out)
		}
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}

// TestEveryAnswerButADrawCloses: two requests written at once get one
// answer and a close, unless the first is a draw under KeepAlive. Probes,
// errors and metrics never hold a connection (a cheap request must not
// outlast the slowloris limit).
func TestEveryAnswerButADrawCloses(t *testing.T) {
	const draw = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	const last = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	for _, keepAlive := range []bool{false, true} {
		r := start(t, newServer("great-fortune", keepAlive))
		metricsAddr := strings.TrimPrefix(r.metricsURL, "http://")
		for _, tc := range []struct {
			addr, first string
			answers     int
		}{
			{r.addr, draw, 1},
			{r.addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 1},
			{r.addr, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", 1},
			{r.addr, "HEAD /readyz HTTP/1.1\r\nHost: x\r\n\r\n", 1},
			{r.addr, "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n", 1},
			{r.addr, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 1},
			{r.addr, "GET /?format=bad HTTP/1.1\r\nHost: x\r\n\r\n", 1},
			{r.addr, "GET / HTTP/1.1\r\nHost: x\r\nAccept: image/png\r\n\r\n", 1},
			{r.addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 1},
			{metricsAddr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 1},
		} {
			want := tc.answers
			if keepAlive && tc.first == draw {
				want = 2 // a draw under KeepAlive keeps its connection
			}
			out := raw(t, tc.addr, tc.first+last)
			if got := strings.Count(out, "HTTP/1.1 "); got != want {
				t.Errorf("keep-alive %v: %q then a draw: %d answers before the close, want %d", keepAlive, firstLine(tc.first), got, want)
			}
		}
	}
}

// TestClosingAnswersFitASocketBuffer: where every answer closes its
// connection, the draw port writes without a deadline, which is safe only
// while each answer, status line and headers included, fits in a new
// socket's send buffer (Linux: tcp_wmem's default, 16 KiB) with room for
// the kernel's overhead per segment: at most half of it. The pod name is the
// longest serve accepts (253 bytes, a DNS subdomain's limit), of the
// character that escapes longest.
func TestClosingAnswersFitASocketBuffer(t *testing.T) {
	const newSocketSendBuffer = 16 << 10
	for _, f := range fortune.Catalogue {
		cfg := testConfig(f.ID, false)
		cfg.Pod = strings.Repeat("&", 253)
		r := start(t, New(cfg))
		for _, request := range []string{
			"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
			"GET / HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n\r\n",
			"GET / HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n",
			"GET /?format=" + strings.Repeat("%3C", 1000) + " HTTP/1.1\r\nHost: x\r\n\r\n",
			"GET / HTTP/1.1\r\nHost: x\r\nAccept: image/png\r\n\r\n",
		} {
			out := raw(t, r.addr, request)
			if !strings.HasPrefix(out, "HTTP/1.1 ") {
				t.Fatalf("%s: %q: no answer: %q", f.ID, firstLine(request), out)
			}
			if len(out) > newSocketSendBuffer/2 {
				t.Errorf("%s: %q: the answer is %d bytes, more than half a new socket's send buffer (%d)", f.ID, firstLine(request), len(out), newSocketSendBuffer)
			}
		}
	}
}

// TestConnectionsAreBounded: past MaxConns open connections a new one is
// refused at once (503) instead of held, so the server's descriptors stay
// bounded whatever clients do, and it serves again once the holders are
// cut by the read timeout.
// It counts the process's descriptors, so it must not run in parallel with
// other tests.
func TestConnectionsAreBounded(t *testing.T) {
	const maxConns, clients = 8, 48
	cfg := testConfig("great-fortune", false)
	cfg.MaxConns = maxConns
	r := start(t, New(cfg))
	before := testkit.OpenDescriptors(t)

	// Each holder sends half a request, so the server has accepted it
	// (TCP_DEFER_ACCEPT hands over only connections with data) and waits.
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range maxConns {
		held = append(held, halfRequest(t, r.addr))
	}
	waitDescriptors(t, before+2*maxConns) // ours and the server's
	refused := 0
	for range clients - maxConns {
		c := halfRequest(t, r.addr)
		held = append(held, c)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		out, _ := io.ReadAll(c)
		if strings.HasPrefix(string(out), "HTTP/1.1 503 ") {
			refused++
		}
	}
	if refused != clients-maxConns {
		t.Errorf("%d of %d connections past the bound refused with 503", refused, clients-maxConns)
	}
	// The server holds the holders and, for at most refusalLinger, the
	// refused ones it is still reading (at most refusalReads of them);
	// then everything it opened for the refused ones is closed: what is
	// open is the clients' side of all of them and the server's side of
	// the holders.
	if n := testkit.OpenDescriptors(t) - before - clients; n > maxConns+refusalReads {
		t.Errorf("the server holds %d connections, more than MaxConns %d and %d refusals being read", n, maxConns, refusalReads)
	}
	waitOpenDescriptors(t, fmt.Sprintf("at most %d", before+clients+maxConns), func(open int) bool { return open <= before+clients+maxConns })
	// The holders are cut after ReadTimeout; then draws are served again.
	deadline := time.Now().Add(ReadTimeout + 10*time.Second)
	for {
		out := rawOrClosed(t, r.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if strings.HasPrefix(out, "HTTP/1.1 200 OK\r\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no draw served %v after the holders began: %q", ReadTimeout+10*time.Second, firstLine(out))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func halfRequest(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\n"); err != nil {
		t.Fatal(err)
	}
	return c
}

// waitDescriptors waits until at least n descriptors are open (the server
// has accepted what the clients opened).
func waitDescriptors(t *testing.T, n int) {
	t.Helper()
	waitOpenDescriptors(t, fmt.Sprintf("at least %d", n), func(open int) bool { return open >= n })
}

// waitOpenDescriptors waits up to 10 s for the count of open descriptors to
// satisfy ok; want says what ok asks for.
func waitOpenDescriptors(t *testing.T, want string, ok func(open int) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok(testkit.OpenDescriptors(t)) {
		if time.Now().After(deadline) {
			t.Fatalf("%d descriptors open, want %s", testkit.OpenDescriptors(t), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRefusalsAreLoggedWithoutTheirBytes: a refused request is logged with
// its kind and the client's address, never its bytes (which may hold
// credentials), and a flood of them writes about one line per second.
func TestRefusalsAreLoggedWithoutTheirBytes(t *testing.T) {
	var logs testkit.Buffer
	cfg := testConfig("great-fortune", false)
	cfg.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	r := start(t, New(cfg))
	const secret = "Cookie: session=s3cr3t-c00kie\r\nAuthorization: Bearer t0ps3cr3t\r\n"
	bad := []string{
		"GET / HTTP/1.1\r\nHost: x\r\n" + secret + "Bad Name: 1\r\n\r\n",
		"GET / HTTP/2.0\r\nHost: x\r\n" + secret + "\r\n",
		"GET /%zz HTTP/1.1\r\nHost: x\r\n" + secret + "\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\n" + secret + "X: " + strings.Repeat("a", MaxHeaderBytes) + "\r\n\r\n",
		"\x00\x01 s3cr3t\r\n" + secret + "\r\n",
	}
	began := time.Now()
	const rounds = 20
	for i := range rounds * len(bad) {
		rawOrClosed(t, r.addr, bad[i%len(bad)])
	}
	took := time.Since(began)
	r.stop()
	text := logs.String()
	for _, leak := range []string{"s3cr3t", "t0ps3cr3t", "Bearer", "session=", "Bad Name"} {
		if strings.Contains(text, leak) {
			t.Errorf("the logs repeat request bytes (%q):\n%s", leak, text)
		}
	}
	warnings := strings.Count(text, `"msg":"request refused"`)
	if allowed := int(took/throttle.Interval) + 1; warnings < 1 || warnings > allowed {
		t.Errorf("%d refusal warnings for %d refusals in %v, want 1 to %d", warnings, rounds*len(bad), took, allowed)
	}
	if !strings.Contains(text, `"remote":"127.0.0.1:`) || !strings.Contains(text, `"kind":"`) {
		t.Errorf("a refusal warning lacks the client's address or the kind:\n%s", text)
	}
}
