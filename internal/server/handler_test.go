package server

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// FuzzHandler sends arbitrary methods, paths, queries and Accept headers to
// the shipped engine over a real connection. Whatever comes in, the answer
// is one of the statuses the server means to give, a 200 draw is one of the
// pre-rendered pages, and no error ever carries markup from the request.
func FuzzHandler(f *testing.F) {
	f.Add("GET", "/", "", "")
	f.Add("GET", "/", "format=json", "text/html")
	f.Add("HEAD", "/", "format=%3Cscript%3E", "*/*;q=0.5")
	f.Add("GET", "/", "format=<script>alert(1)</script>", "application/json;q=0")
	f.Add("POST", "/healthz", "", "")
	f.Add("GET", "/<img src=x>", "", "text/*;q=1.000")
	f.Add("GET", "/", "%zz=1&format=%", "text/plain;q=0., */*;q=0.001")
	var once sync.Once
	var r *running
	var pages map[string]bool
	f.Fuzz(func(t *testing.T, method, path, rawQuery, accept string) {
		once.Do(func() {
			// One server for the whole fuzzing process; fuzz workers are
			// processes of their own, and Cleanup would stop it after the
			// first input.
			s := newServer("great-fortune", false)
			r = startForever(t, s)
			pages = map[string]bool{}
			for _, p := range s.pages {
				pages[string(p.body)] = true
			}
		})
		if method == "" {
			method = "GET"
		}
		target := path
		if rawQuery != "" {
			target += "?" + rawQuery
		}
		request := method + " " + target + " HTTP/1.1\r\nHost: x\r\nAccept: " + accept + "\r\n\r\n"
		out := rawOrClosed(t, r.addr, request)
		if out == "" {
			return // refused before any answer: nothing reflected
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

// startForever is start without the stop at the end of the test.
func startForever(t testing.TB, s *Server) *running {
	ln, err := Listen(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Run(context.Background(), ln, nil)
	return &running{Server: s, addr: ln.Addr().String(), url: "http://" + ln.Addr().String()}
}

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
