package server

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// FuzzHandler sends arbitrary methods, paths, queries and Accept headers
// straight to the handler. Whatever comes in, the answer is one of the
// statuses the server means to give, a 200 is one of the pre-rendered
// pages, and no error ever carries markup from the request.
func FuzzHandler(f *testing.F) {
	f.Add("GET", "/", "", "")
	f.Add("GET", "/", "format=json", "text/html")
	f.Add("HEAD", "/", "format=%3Cscript%3E", "*/*;q=0.5")
	f.Add("GET", "/", "format=<script>alert(1)</script>", "application/json;q=0")
	f.Add("POST", "/healthz", "", "")
	f.Add("GET", "/<img src=x>", "", "text/*;q=1.000")
	f.Add("GET", "/", "%zz=1&format=%", "text/plain;q=0., */*;q=0.001")
	s := newServer("great-fortune", false)
	pages := map[string]bool{}
	for _, p := range s.pages {
		pages[string(p.body)] = true
	}
	f.Fuzz(func(t *testing.T, method, path, rawQuery, accept string) {
		if method == "" {
			method = "GET"
		}
		r := &http.Request{
			Method: method,
			URL:    &url.URL{Path: path, RawQuery: rawQuery},
			Header: http.Header{"Accept": {accept}},
		}
		w := newRecorder()
		s.ServeHTTP(w, r)
		body := string(w.body)
		switch w.status {
		case 200:
			if path == "/" && method == "GET" && !pages[body] {
				t.Fatalf("a 200 draw that is not a pre-rendered page: %q", body)
			}
		case 400, 404, 405, 406:
			if strings.ContainsAny(body, "<>") {
				t.Fatalf("error %d reflects markup: %q", w.status, body)
			}
			if w.header.Get("Content-Type") != "text/plain; charset=utf-8" {
				t.Fatalf("error %d served as %q", w.status, w.header.Get("Content-Type"))
			}
		case 503:
			t.Fatalf("not shutting down, yet %d", w.status)
		default:
			t.Fatalf("unexpected status %d for %s %q ?%q Accept %q", w.status, method, path, rawQuery, accept)
		}
		if method == "HEAD" && len(w.body) != 0 && path == "/" && w.status == 200 {
			t.Fatal("HEAD draw wrote a body")
		}
	})
}

// recorder is a minimal ResponseWriter that can be reused without
// allocating, so benchmarks measure the handler, not the test double.
type recorder struct {
	header http.Header
	status int
	body   []byte
}

func newRecorder() *recorder { return &recorder{header: make(http.Header, 12)} }

func (w *recorder) Header() http.Header { return w.header }
func (w *recorder) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}
func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = 200
	}
	w.body = append(w.body, b...)
	return len(b), nil
}
func (w *recorder) reset() {
	clear(w.header)
	w.status = 0
	w.body = w.body[:0]
}

func benchmarkDraw(b *testing.B, rawQuery, accept string) {
	s := newServer("small-fortune", false)
	r := &http.Request{Method: "GET", URL: &url.URL{Path: "/", RawQuery: rawQuery}, Header: http.Header{}}
	if accept != "" {
		r.Header["Accept"] = []string{accept}
	}
	w := newRecorder()
	b.ReportAllocs()
	for b.Loop() {
		w.reset()
		s.ServeHTTP(w, r)
	}
	if w.status != 200 {
		b.Fatalf("status %d", w.status)
	}
}

func BenchmarkDrawNoAccept(b *testing.B)    { benchmarkDraw(b, "", "") }
func BenchmarkDrawCurl(b *testing.B)        { benchmarkDraw(b, "", "*/*") }
func BenchmarkDrawJSON(b *testing.B)        { benchmarkDraw(b, "", "application/json") }
func BenchmarkDrawText(b *testing.B)        { benchmarkDraw(b, "", "text/plain") }
func BenchmarkDrawFormatQuery(b *testing.B) { benchmarkDraw(b, "format=json", "") }
func BenchmarkDrawBrowser(b *testing.B) {
	benchmarkDraw(b, "", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7")
}

// BenchmarkDrawNewConnection is a whole draw as a kube-proxy'd client makes
// it: dial, request, response, close, over loopback, through Run (the fast
// engine). Most of its cost is the kernel; compare it with BenchmarkDrawCurl
// for the handler's share.
func BenchmarkDrawNewConnection(b *testing.B) {
	benchmarkDrawNewConnection(b, func(s *Server, ctx context.Context, ln net.Listener) error { return s.Run(ctx, ln, 0) })
}

// benchmarkDrawNewConnection serves one fortune with run and times whole
// new-connection draws against it.
func benchmarkDrawNewConnection(b *testing.B, run func(s *Server, ctx context.Context, ln net.Listener) error) {
	s := newServer("small-fortune", false)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(s, ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	addr := ln.Addr().String()
	request := []byte("GET / HTTP/1.1\r\nHost: omikuji\r\nAccept: */*\r\n\r\n")
	buf := make([]byte, 8<<10)
	b.ReportAllocs()
	for b.Loop() {
		c, err := net.Dial("tcp", addr)
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
