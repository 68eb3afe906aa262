package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"html"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omikuji/omikuji/internal/fortune"
)

// running is a Server under Run on real 127.0.0.1 listeners.
type running struct {
	*Server
	addr       string // host:port of the public port
	url        string // http://host:port
	metricsURL string // http://host:port of the metrics port
	ln, mln    net.Listener
	stop       func() error
}

// start runs s with Run on fresh loopback ports, opened as serve opens
// them; the test fails if Run does not return nil when stopped.
func start(t testing.TB, s *Server) *running {
	t.Helper()
	ln, err := Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mln, err := Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ln, mln) }()
	var once sync.Once
	var result error
	r := &running{Server: s, addr: ln.Addr().String(), url: "http://" + ln.Addr().String(), metricsURL: "http://" + mln.Addr().String(), ln: ln, mln: mln}
	r.stop = func() error {
		once.Do(func() {
			cancel()
			result = <-done
		})
		return result
	}
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
	})
	return r
}

func newServer(id string, keepAlive bool) *Server {
	return New(testConfig(id, keepAlive))
}

func testConfig(id string, keepAlive bool) Config {
	f, err := fortune.Lookup(id)
	if err != nil {
		panic(err)
	}
	return Config{Fortune: f, Pod: id + "-test1", KeepAlive: keepAlive}
}

// get performs one request with a client that keeps no connections.
func get(t testing.TB, method, url string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// raw sends bytes on a new TCP connection and returns everything the server
// writes until it closes the connection (or the deadline passes: an error).
func raw(t testing.TB, addr, request string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("server did not close the connection: %v (read %q)", err, out)
	}
	return string(out)
}

func TestDrawPageForEveryFortune(t *testing.T) {
	// The article's check, grep -G '<p\sclass="fortune">', in Go syntax.
	articleGrep := regexp.MustCompile(`<p\sclass="fortune">`)
	for _, f := range fortune.Catalogue {
		t.Run(f.ID, func(t *testing.T) {
			r := start(t, newServer(f.ID, false))
			resp, body := get(t, "GET", r.url+"/", nil)
			page := string(body)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			for k, want := range map[string]string{
				"Content-Type":            "text/html; charset=utf-8",
				"Cache-Control":           "no-store",
				"Content-Length":          strconv.Itoa(len(body)),
				"X-Content-Type-Options":  "nosniff",
				"Vary":                    "Accept",
				"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
			} {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			if !resp.Close {
				t.Error("the client was not told the connection closes")
			}
			for _, want := range []string{
				"<!DOCTYPE html>\n<html lang=\"ja\">",
				`<meta charset="utf-8">`,
				`<p class="fortune">` + f.Label + `</p>`,
				"あなたの運勢は", "です",
				f.Gloss, f.Reading,
				"<code>" + f.ID + "-test1</code>",
				`<a class="again" href="./">もう一度引く`,
				"draw again",
			} {
				if !strings.Contains(page, want) {
					t.Errorf("page lacks %q", want)
				}
			}
			if n := len(articleGrep.FindAllString(page, -1)); n != 1 {
				t.Errorf("the article's grep pattern matches %d times, want 1", n)
			}
			for _, external := range []string{"<script", "<link rel=\"stylesheet", "src=", "url("} {
				if strings.Contains(page, external) {
					t.Errorf("page refers to something outside itself: %q", external)
				}
			}
		})
	}
}

// TestArticleGrepWithRealGrep runs the original article's exact check.
func TestArticleGrepWithRealGrep(t *testing.T) {
	grep, err := exec.LookPath("grep")
	if err != nil {
		t.Skip("grep not installed")
	}
	r := start(t, newServer("small-fortune", false))
	_, body := get(t, "GET", r.url, nil)
	cmd := exec.Command(grep, "-G", `<p\sclass="fortune">`)
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("grep: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != `<p class="fortune">小吉</p>` {
		t.Errorf("grep printed %q", got)
	}
}

// TestDrawConnections: three draws written at once get one answer and a
// close that the answer announces, or under KeepAlive all three on one
// connection, closed only when the client asks.
func TestDrawConnections(t *testing.T) {
	const draws = "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /?format=json HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	for keepAlive, answers := range map[bool]int{false: 1, true: 3} {
		out := raw(t, start(t, newServer("great-fortune", keepAlive)).addr, draws)
		if n := strings.Count(out, "HTTP/1.1 200 OK"); n != answers {
			t.Errorf("keep-alive %v: %d answers on one connection, want %d:\n%s", keepAlive, n, answers, out)
		}
		if n := strings.Count(out, "\r\nConnection: close\r\n"); n != 1 {
			t.Errorf("keep-alive %v: %d answers say Connection: close, want 1 (the last):\n%s", keepAlive, n, out)
		}
	}
}

func TestHeadHasHeadersAndNoBody(t *testing.T) {
	r := start(t, newServer("middle-fortune", false))
	_, getBody := get(t, "GET", r.url, nil)
	out := raw(t, r.addr, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
	head, body, ok := strings.Cut(out, "\r\n\r\n")
	if !ok || !strings.HasPrefix(head, "HTTP/1.1 200 OK\r\n") {
		t.Fatalf("bad response %q", out)
	}
	if body != "" {
		t.Errorf("HEAD response has a body: %q", body)
	}
	for _, want := range []string{
		"Content-Type: text/html; charset=utf-8",
		"Content-Length: " + strconv.Itoa(len(getBody)),
		"Cache-Control: no-store",
		"Connection: close",
	} {
		if !strings.Contains(head+"\r\n", "\r\n"+want+"\r\n") {
			t.Errorf("HEAD lacks %q:\n%s", want, head)
		}
	}
}

func TestNegotiation(t *testing.T) {
	r := start(t, newServer("great-fortune", false))
	const html, json, text = "text/html; charset=utf-8", "application/json", "text/plain; charset=utf-8"
	for _, tc := range []struct {
		query, accept string
		want          string // content type, or "406"
	}{
		{"", "", html},
		{"", "*/*", html},
		{"", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8", html},
		{"", "application/json", json},
		{"", "text/plain", text},
		{"", "application/json, text/plain, */*", json},
		{"", "text/*", html},
		{"", "text/*;q=0.5, text/plain", text},
		{"", "application/*", json},
		{"", "APPLICATION/JSON", json},
		{"", "text/html;q=0.1, application/json;q=0.9", json},
		{"", "text/html;q=0.9, text/plain;q=0.91", text},
		{"", "text/html;level=1;q=0.2, application/json ; q=0.3", json},
		{"", "*/*;q=0.1, text/html;q=0", json}, // html refused explicitly; json via */*
		{"", "text/plain;q=0, */*", html},
		{"", "image/png", "406"},
		{"", "text/html;q=0, application/json;q=0, text/plain;q=0", "406"},
		{"", "*/*;q=0", "406"},
		{"", "application/json;q=2, text/plain", text}, // q=2 is malformed: that range is ignored
		{"", "garbage", html},
		{"format=json", "text/html", json},
		{"format=text", "", text},
		{"format=html", "application/json", html},
		{"x=1&format=json&format=text", "", json},
		{"%66ormat=%74ext", "", text},
		{"other=%zz&format=json", "", json},
	} {
		req := http.Header{}
		if tc.accept != "" {
			req.Set("Accept", tc.accept)
		}
		url := r.url + "/"
		if tc.query != "" {
			url += "?" + tc.query
		}
		resp, body := get(t, "GET", url, req)
		if tc.want == "406" {
			if resp.StatusCode != http.StatusNotAcceptable || !strings.Contains(string(body), "?format=") {
				t.Errorf("?%s Accept %q: %d %q, want 406 naming ?format=", tc.query, tc.accept, resp.StatusCode, body)
			}
			continue
		}
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tc.want {
			t.Errorf("?%s Accept %q: %d %q, want %q", tc.query, tc.accept, resp.StatusCode, resp.Header.Get("Content-Type"), tc.want)
		}
	}
}

func TestJSONAndTextBodies(t *testing.T) {
	r := start(t, newServer("misfortune", false))
	_, body := get(t, "GET", r.url+"/?format=json", nil)
	var got map[string]string
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	want := map[string]string{"fortune": "misfortune", "label": "凶", "reading": "kyō", "gloss": "Misfortune", "pod": "misfortune-test1"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	resp, body := get(t, "GET", r.url+"/", http.Header{"Accept": {"text/plain"}})
	if resp.Header.Get("Cache-Control") != "no-store" || !resp.Close {
		t.Errorf("text draw headers: %v", resp.Header)
	}
	if line := string(body); strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") ||
		!strings.Contains(line, "凶") || !strings.Contains(line, "misfortune-test1") {
		t.Errorf("text body %q is not one line naming the fortune and pod", line)
	}
}

func TestUnknownFormatIsRejectedWithoutReflectingIt(t *testing.T) {
	r := start(t, newServer("great-fortune", false))
	for _, q := range []string{"format=%3Cscript%3Ealert(1)%3C/script%3E", "format=<script>", "format=XML", "format=", "format=%zz", "format=" + strings.Repeat("a", 500)} {
		resp, body := get(t, "GET", r.url+"/?"+q, nil)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("?%s: status %d, want 400", q, resp.StatusCode)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("?%s: error served as %q", q, ct)
		}
		msg := string(body)
		if strings.ContainsAny(msg, "<>") || strings.Contains(msg, "script>") || len(msg) > 200 {
			t.Errorf("?%s: response reflects input: %q", q, msg)
		}
		if !strings.Contains(msg, "format") || !strings.Contains(msg, "html, json or text") {
			t.Errorf("?%s: unclear message %q", q, msg)
		}
	}
	_, body := get(t, "GET", r.url+"/?format=%3Cscript%3E", nil)
	if want := `unknown format "%3Cscript%3E"`; !strings.Contains(string(body), want) {
		t.Errorf("got %q, want it to contain %q", body, want)
	}
}

func TestMethodsAndPaths(t *testing.T) {
	r := start(t, newServer("great-fortune", false))
	for _, path := range []string{"/", HealthPath, ReadyPath} {
		for _, method := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
			resp, _ := get(t, method, r.url+path, nil)
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: %d Allow %q, want 405 Allow \"GET, HEAD\"", method, path, resp.StatusCode, resp.Header.Get("Allow"))
			}
		}
	}
	for _, path := range []string{"/index.html", "/favicon.ico", "/healthz/", "//", "/%3Cscript%3E", MetricsPath} {
		resp, body := get(t, "GET", r.url+path, nil)
		if resp.StatusCode != http.StatusNotFound || strings.Contains(string(body), "<") {
			t.Errorf("GET %s: %d %q, want a plain 404", path, resp.StatusCode, body)
		}
	}
	for _, path := range []string{HealthPath, ReadyPath} {
		resp, body := get(t, "GET", r.url+path, nil)
		if resp.StatusCode != 200 || string(body) != "ok\n" {
			t.Errorf("GET %s: %d %q", path, resp.StatusCode, body)
		}
	}
	// The metrics port answers the metrics and the probes, nothing else.
	for _, path := range []string{"/", "/metrics/", "/healthz/"} {
		if resp, _ := get(t, "GET", r.metricsURL+path, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("metrics port: GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
	for _, path := range []string{HealthPath, ReadyPath} {
		if resp, body := get(t, "GET", r.metricsURL+path, nil); resp.StatusCode != 200 || string(body) != "ok\n" {
			t.Errorf("metrics port: GET %s: %d %q, want 200 ok", path, resp.StatusCode, body)
		}
	}
	if resp, _ := get(t, "POST", r.metricsURL+MetricsPath, nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("metrics port: POST %s: %d, want 405", MetricsPath, resp.StatusCode)
	}
}

func TestMetricsCountDraws(t *testing.T) {
	r := start(t, newServer("small-fortune", false))
	for range 7 {
		get(t, "GET", r.url+"/", nil)
	}
	get(t, "GET", r.url+"/?format=json", nil)
	get(t, "HEAD", r.url+"/", nil)             // no fortune shown: not a draw
	get(t, "GET", r.url+"/?format=bogus", nil) // rejected: not a draw
	get(t, "GET", r.url+HealthPath, nil)       // not a draw
	resp, body := get(t, "GET", r.metricsURL+MetricsPath, nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("metrics: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for k, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("metrics: %s %q, want %q", k, got, want)
		}
	}
	if vary := resp.Header.Values("Vary"); len(vary) != 1 {
		t.Errorf("metrics: Vary %q, want one header", vary)
	}
	text := string(body)
	for _, want := range []string{
		"# TYPE omikuji_draws_total counter\n",
		"\nomikuji_draws_total{fortune=\"small-fortune\"} 8\n",
		"\ngo_goroutines ",
		"\nprocess_cpu_seconds_total ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not installed (Debian package prometheus); CI must not skip this check")
		}
		t.Skip("promtool not installed (Debian package prometheus); skipping promtool check metrics")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestSharedRegistryLabelsPods: replicas sharing a registry (local mode)
// are told apart by a pod label, and one scrape shows them all.
func TestSharedRegistryLabelsPods(t *testing.T) {
	reg := NewRegistry()
	a := testConfig("great-fortune", false)
	a.Registry = reg
	b := testConfig("great-fortune", false)
	b.Pod, b.Registry = "great-fortune-test2", reg
	ra := start(t, New(a))
	rb := start(t, New(b))
	get(t, "GET", ra.url, nil)
	get(t, "GET", rb.url, nil)
	get(t, "GET", rb.url, nil)
	_, body := get(t, "GET", ra.metricsURL+MetricsPath, nil)
	for _, want := range []string{
		`omikuji_draws_total{fortune="great-fortune",pod="great-fortune-test1"} 1`,
		`omikuji_draws_total{fortune="great-fortune",pod="great-fortune-test2"} 2`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestShutdownSequence follows a stopping pod: readiness fails at once while
// draws still work; after the drain the listener closes; a request that
// began before completes; Run returns nil.
func TestShutdownSequence(t *testing.T) {
	t.Parallel()
	cfg := testConfig("great-fortune", false)
	// Long enough to check readiness and a draw before the listener closes,
	// short enough that the held request stays inside ReadTimeout.
	cfg.Drain = 1500 * time.Millisecond
	r := start(t, New(cfg))

	// A request in flight: its first line is in, the rest comes later.
	held, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	io.WriteString(held, "GET /?format=json HTTP/1.1\r\nHost: x\r\n")

	stopped := make(chan error, 1)
	go func() { stopped <- r.stop() }()

	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, _ := get(t, "GET", r.url+ReadyPath, nil)
		if resp.StatusCode == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readiness still %d", resp.StatusCode)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if resp, _ := get(t, "GET", r.url+"/", nil); resp.StatusCode != 200 {
		t.Errorf("draw during drain: %d", resp.StatusCode)
	}
	if resp, _ := get(t, "GET", r.url+HealthPath, nil); resp.StatusCode != 200 {
		t.Errorf("liveness during drain: %d", resp.StatusCode)
	}

	// After the drain the listener closes while the held request waits.
	waitListenerClosed(t, r.addr, deadline)
	select {
	case err := <-stopped:
		t.Fatalf("Run returned (%v) with a request in flight", err)
	default:
	}
	held.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(held, "\r\n")
	out, err := io.ReadAll(held)
	if err != nil || !strings.HasPrefix(string(out), "HTTP/1.1 200 OK\r\n") || !strings.Contains(string(out), `"fortune":"great-fortune"`) {
		t.Errorf("in-flight request: %q %v", out, err)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Run returned %v, want nil", err)
	}
}

// waitListenerClosed waits until nothing accepts connections on addr.
func waitListenerClosed(t *testing.T, addr string, deadline time.Time) {
	t.Helper()
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still open")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestStopRightAfterStart: a stop that comes before the engine has taken
// up its listeners still closes them and returns.
func TestStopRightAfterStart(t *testing.T) {
	for range 20 {
		r := start(t, newServer("great-fortune", false))
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
		if c, err := net.Dial("tcp", r.addr); err == nil {
			c.Close()
			t.Fatal("listener open after Run returned")
		}
	}
}

// TestSlowlorisIsCut: a client that never finishes its request is
// disconnected after ReadTimeout (plus up to the deferred accept's wait).
func TestSlowlorisIsCut(t *testing.T) {
	t.Parallel()
	r := start(t, newServer("great-fortune", false))
	began := time.Now()
	got := trickleHeaders(t, r.addr)
	if strings.Contains(string(got), " 200 ") {
		t.Fatalf("a slowloris request was served: %q", got)
	}
	if took := time.Since(began); took < ReadTimeout-time.Second {
		t.Errorf("cut after %v, before the read timeout %v", took, ReadTimeout)
	}
}

// trickleHeaders opens a request and sends one header byte at a time until
// the server answers or hangs up, and returns what it sent back. The server
// must hang up well before the 20 s the test allows.
func trickleHeaders(t *testing.T, addr string) []byte {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(25 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
	began := time.Now()
	var got []byte
	for {
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		var buf [512]byte
		n, err := c.Read(buf[:])
		got = append(got, buf[:n]...)
		if n > 0 || (err != nil && !isTimeout(err)) {
			return got // the server answered or hung up
		}
		if time.Since(began) > 20*time.Second {
			t.Fatalf("a slowloris connection is still open after 20 s with a %v timeout", ReadTimeout)
		}
		if _, err := io.WriteString(c, "X"); err != nil {
			return got
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestServeErrorIsReturned(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if err := newServer("great-fortune", false).Run(context.Background(), ln, nil); err == nil {
		t.Error("Run on a closed listener returned nil")
	}
}

func TestHTMLEscapesThePodName(t *testing.T) {
	for _, pod := range []string{`<b>"pod"</b>`, "</code><script>alert(1)</script>", "a&b'c"} {
		cfg := testConfig("great-fortune", false)
		cfg.Pod = pod
		r := start(t, New(cfg))
		_, body := get(t, "GET", r.url, nil)
		if page := string(body); strings.Contains(page, "<b>") || strings.Contains(page, "<script>") || !strings.Contains(page, "<code>"+html.EscapeString(pod)+"</code>") {
			t.Errorf("pod %q not escaped in the page", pod)
		}
		_, body = get(t, "GET", r.url+"/?format=json", nil)
		var got drawJSON
		if err := json.Unmarshal(body, &got); err != nil || got.Pod != pod || strings.Contains(string(body), "<") {
			t.Errorf("pod %q in JSON: %s (%v)", pod, body, err)
		}
	}
}
