package server

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"
)

// FuzzHandler sends arbitrary methods, paths, queries and Accept headers to
// the shipped engine (the port's fasthttp.Server with every limit, and the
// accepted connection's checks) over a connection in memory: the request,
// then the end of the stream. Whatever comes in, the answer is one of the
// statuses the server means to give, a 200 draw is one of the pre-rendered
// pages, and no error ever carries markup from the request.
//
// It used real loopback connections, and stalled: at thousands of inputs a
// second, each answer's close leaves the server's side in TIME_WAIT for a
// minute, the client's ports come round within that minute, a SYN that
// meets a TIME_WAIT socket can be dropped and retried only after 1 s, then
// 3 s, and the dial had no timeout. In memory nothing waits on the kernel
// or a clock.
func FuzzHandler(f *testing.F) {
	f.Add("GET", "/", "", "")
	f.Add("GET", "/", "format=json", "text/html")
	f.Add("HEAD", "/", "format=%3Cscript%3E", "*/*;q=0.5")
	f.Add("GET", "/", "format=<script>alert(1)</script>", "application/json;q=0")
	f.Add("POST", "/healthz", "", "")
	f.Add("GET", "/<img src=x>", "", "text/*;q=1.000")
	f.Add("GET", "/", "%zz=1&format=%", "text/plain;q=0., */*;q=0.001")
	f.Add("GET", "/", "", "a\nb")
	f.Add("GET", "/", "", "x\r\nContent-Length: 9")
	s := newServer("great-fortune", false)
	engine := s.port(s.serve, nil, DefaultMaxConns).srv
	pages := map[string]bool{}
	for _, p := range s.pages {
		pages[string(p.body)] = true
	}
	f.Fuzz(func(t *testing.T, method, path, rawQuery, accept string) {
		if method == "" {
			method = "GET"
		}
		target := path
		if rawQuery != "" {
			target += "?" + rawQuery
		}
		request := method + " " + target + " HTTP/1.1\r\nHost: x\r\nAccept: " + accept + "\r\n\r\n"
		c := &memConn{in: strings.NewReader(request)}
		engine.ServeConn(&conn{Conn: c})
		out := c.out.String()
		if out == "" {
			return // nothing answered: nothing reflected
		}
		head, body, ok := strings.Cut(out, "\r\n\r\n")
		if !ok || !strings.HasPrefix(head, "HTTP/1.1 ") || len(head) < 12 {
			t.Fatalf("not an HTTP answer to %q: %q", request, out)
		}
		switch status := head[9:12]; status {
		case "200":
			if path == "/" && method == "GET" && !pages[body] {
				t.Fatalf("a 200 draw that is not a pre-rendered page: %q", body)
			}
			if method == "HEAD" && body != "" {
				t.Fatal("HEAD draw wrote a body")
			}
		case "400", "404", "405", "406", "413", "414", "431", "505":
			if strings.ContainsAny(body, "<>") {
				t.Fatalf("error %s reflects markup: %q", status, body)
			}
			if !strings.Contains(head, "\r\nContent-Type: text/plain; charset=utf-8\r\n") && body != "" {
				t.Fatalf("error %s not served as plain text: %q", status, head)
			}
		default:
			t.Fatalf("unexpected status %s for %q", status, request)
		}
	})
}

// memConn is a connection in memory: reads give the request and then the
// end of the stream; writes are kept; deadlines have nothing to bound.
type memConn struct {
	in  *strings.Reader
	out bytes.Buffer
}

var memAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}

func (c *memConn) Read(p []byte) (int, error)       { return c.in.Read(p) }
func (c *memConn) Write(p []byte) (int, error)      { return c.out.Write(p) }
func (c *memConn) Close() error                     { return nil }
func (c *memConn) LocalAddr() net.Addr              { return memAddr }
func (c *memConn) RemoteAddr() net.Addr             { return memAddr }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// rawOrClosed is raw for requests the client library would refuse to
// send: a write error or a reset connection gives "".
func rawOrClosed(t testing.TB, addr, request string) string {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(request)); err != nil {
		return ""
	}
	var out bytes.Buffer
	_, err = out.ReadFrom(c)
	if isTimeout(err) {
		t.Fatalf("no answer and no close for %q", request)
	}
	return out.String()
}

// BenchmarkDrawNewConnection is a whole draw as a kube-proxy'd client makes
// it: dial, request, response, close, over loopback, through Run. Most of
// its cost is the kernel.
func BenchmarkDrawNewConnection(b *testing.B) {
	r := start(b, newServer("small-fortune", false))
	request := []byte("GET / HTTP/1.1\r\nHost: omikuji\r\nAccept: */*\r\n\r\n")
	buf := make([]byte, 8<<10)
	b.ReportAllocs()
	for b.Loop() {
		c, err := net.Dial("tcp", r.addr)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Write(request); err != nil {
			b.Fatal(err)
		}
		n := 0
		for err == nil {
			var m int
			m, err = c.Read(buf[n:])
			n += m
		}
		c.Close()
		if !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 200 OK")) {
			b.Fatalf("response %q", buf[:n])
		}
	}
}
