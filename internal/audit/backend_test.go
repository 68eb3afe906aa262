package audit

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// randomServer answers each request from one of names, chosen by a seeded
// generator, naming it the way answer writes.
func randomServer(t *testing.T, names []string, answer func(w http.ResponseWriter, r *http.Request, name string)) *httptest.Server {
	t.Helper()
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(3, 4))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		name := names[rng.IntN(len(names))]
		mu.Unlock()
		answer(w, r, name)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func mustBackend(t *testing.T, spec string) BackendSpec {
	t.Helper()
	b, err := ParseBackend(spec)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func audit(t *testing.T, o Options, group, expect string) Report {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Concurrency == 0 {
		o.Concurrency = 1
	}
	g, err := ParseGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ParseExpect(expect, o.Backend, g)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Draw(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return Analyze(s, Audit{Options: o, Group: g, Expect: e, Alpha: alphaMustPass})
}

var sixPods = []string{"web-7d9f-aaaaa", "web-7d9f-bbbbb", "web-7d9f-ccccc", "api-5c4b-ddddd", "api-5c4b-eeeee", "api-5c4b-fffff"}

func TestBackendKinds(t *testing.T) {
	for _, tc := range []struct {
		spec   string
		answer func(w http.ResponseWriter, r *http.Request, name string)
	}{
		{"header:X-Served-By", func(w http.ResponseWriter, _ *http.Request, name string) { w.Header().Set("X-Served-By", name) }},
		{"json:host.name", func(w http.ResponseWriter, _ *http.Request, name string) {
			fmt.Fprintf(w, `{"host":{"name":%q,"ip":"10.0.0.1"}}`, name)
		}},
		{`regex:Name: (\S+)`, func(w http.ResponseWriter, _ *http.Request, name string) {
			fmt.Fprintf(w, "Hostname: x\nName: %s\nIP: 10.0.0.1\n", name)
		}},
	} {
		srv := randomServer(t, sixPods, tc.answer)
		o := Options{URL: srv.URL, Draws: 1200, Backend: mustBackend(t, tc.spec)}
		// Each backend its own group, all six expected.
		r := audit(t, o, "", "uniform:6")
		if r.Verdict != Consistent || r.BackendsSeen != 6 || len(r.Groups) != 6 || r.Failed != 0 || r.Uniformity.Applicable {
			t.Errorf("%s: %s %s; %d backends, %d groups, uniformity %+v", tc.spec, r.Verdict, r.Summary, r.BackendsSeen, len(r.Groups), r.Uniformity)
		}
		// Grouped by Deployment, the pods of each are tested against each other.
		r = audit(t, o, `regex:^(.+)-[a-z0-9]+-[a-z0-9]+$`, "uniform")
		if r.Verdict != Consistent || len(r.Groups) != 2 || r.Groups[0].ID != "api" || r.Groups[0].Pods != 3 || r.Uniformity.DF != 4 || r.GoodnessOfFit.DF != 1 {
			t.Errorf("%s grouped: %s %s; rows %+v, uniformity %+v", tc.spec, r.Verdict, r.Summary, r.Groups, r.Uniformity)
		}
	}
}

func TestNoBackend(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/string":
			fmt.Fprint(w, `{"host":"web-1"}`) // host is a string, not an object
		case "/number":
			fmt.Fprint(w, `{"host":{"name":["a"]}}`)
		case "/ctl":
			fmt.Fprint(w, `{"host":{"name":"\u001b[2J"}}`+"\nName: \x1b[2J\n")
		}
	}))
	t.Cleanup(srv.Close)
	for _, tc := range []struct{ path, spec, want string }{
		{"/string", "json:host.name", "host is not an object"},
		{"/number", "json:host.name", "host.name is not a string"},
		{"/string", "header:X-Served-By", "no X-Served-By header"},
		{"/string", `regex:Name: (\S+)`, "does not match"},
		{"/ctl", "json:host.name", "unprintable"},
		{"/ctl", `regex:Name: (\S+)`, "unprintable"},
	} {
		r := audit(t, Options{URL: srv.URL + tc.path, Draws: 3, Backend: mustBackend(t, tc.spec)}, "", "")
		if r.Failures[FailNoBackend] != 3 || !strings.Contains(r.FailureExamples[FailNoBackend], tc.want) || r.Verdict != Unreachable {
			t.Errorf("%s %s: failures %v %q, want %d no_backend saying %q", tc.path, tc.spec, r.Failures, r.FailureExamples, 3, tc.want)
		}
		if strings.ContainsAny(r.FailureExamples[FailNoBackend], "\x1b") {
			t.Errorf("an escape sequence from the backend reached the report: %q", r.FailureExamples)
		}
	}
}

func TestUniformNCatchesMissingBackends(t *testing.T) {
	srv := randomServer(t, []string{"a", "b"}, func(w http.ResponseWriter, _ *http.Request, name string) { w.Header().Set("X-Pod", name) })
	o := Options{URL: srv.URL, Draws: 300, Backend: mustBackend(t, "header:X-Pod")}
	r := audit(t, o, "", "uniform:3")
	if r.Uniformity.Passed || r.Verdict != Inconsistent || r.BackendsSeen != 2 || r.Uniformity.PValue > 1e-40 {
		t.Fatalf("2 of 3 backends: %s; uniformity %+v", r.Summary, r.Uniformity)
	}
	causes := strings.Join(r.LikelyCauses, " ")
	for _, want := range []string{"Only 2 of 3 backends answered", "a node-local traffic policy", "externalTrafficPolicy: Local", "not Ready"} {
		if !strings.Contains(causes, want) {
			t.Errorf("causes lack %q: %s", want, causes)
		}
	}
	if !regexp.MustCompile(`missing 1 of them has p ≤ [0-9.e-]+, plausible only with [0-9]+ draws or fewer`).MatchString(r.Uniformity.Note) {
		t.Errorf("note %q does not say how few draws chance would need", r.Uniformity.Note)
	}
	// With --tests fit the missing backend is shown but does not decide.
	o.Concurrency, o.Timeout = 1, 5*time.Second
	a := Audit{Options: o, Expect: Expectation{Kind: ExpectUniform, Backends: 3}, Alpha: alphaMustPass, Tests: []string{TestFit}}
	s, _ := Draw(context.Background(), o)
	if r := Analyze(s, a); r.Verdict != Consistent || !strings.Contains(r.Summary, "Not deciding") || r.Uniformity.Passed {
		t.Errorf("--tests fit: %s — %s", r.Verdict, r.Summary)
	}
	// Few draws could miss a backend by chance: no failure then.
	o.Draws = 3
	if r := audit(t, o, "", "uniform:3"); !r.Uniformity.Passed {
		t.Errorf("3 draws over 2 of 3 backends failed: %+v", r.Uniformity)
	}
}

func TestWeightsPerGroup(t *testing.T) {
	names := []string{"stable-a", "stable-b", "stable-c", "stable-d", "stable-e", "stable-f", "stable-g", "stable-h", "stable-i", "canary-a"}
	srv := randomServer(t, names, func(w http.ResponseWriter, _ *http.Request, name string) { w.Header().Set("X-Pod", name) })
	o := Options{URL: srv.URL, Draws: 2000, Backend: mustBackend(t, "header:X-Pod")}
	if r := audit(t, o, "regex:^([a-z]+)-", "stable=9,canary=1"); r.Verdict != Consistent {
		t.Errorf("9:1 against 9:1: %s", r.Summary)
	}
	r := audit(t, o, "regex:^([a-z]+)-", "stable=1,canary=1")
	if r.GoodnessOfFit.Passed || r.GoodnessOfFit.PValue > 1e-10 {
		t.Errorf("9:1 against 1:1: %+v", r.GoodnessOfFit)
	}
	// A group not in --expect weighs 0; a group in it that never answers is missing.
	r = audit(t, o, "regex:^([a-z]+)-", "stable=9,blue=1")
	causes := strings.Join(r.LikelyCauses, " ")
	if r.GoodnessOfFit.PValue != 0 || !strings.Contains(causes, "canary came up although") || !strings.Contains(causes, "blue never came up") || !strings.Contains(causes, "a node-local traffic policy") {
		t.Errorf("unexpected and missing groups: %+v %s", r.GoodnessOfFit, causes)
	}
}

func TestUniformityCatchesAnUnevenBackend(t *testing.T) {
	// c gets half the draws a and b get: a slow or half-ready pod.
	srv := randomServer(t, []string{"pod-a", "pod-a", "pod-b", "pod-b", "pod-c"}, func(w http.ResponseWriter, _ *http.Request, name string) { w.Header().Set("X-Pod", name) })
	o := Options{URL: srv.URL, Draws: 3000, Backend: mustBackend(t, "header:X-Pod")}
	r := audit(t, o, "regex:^(pod)-", "") // one group of all backends
	if r.Uniformity.Passed || r.Uniformity.PValue > 1e-10 || !strings.Contains(strings.Join(r.LikelyCauses, " "), "slow or overloaded") {
		t.Errorf("uneven backends: %+v %v", r.Uniformity, r.LikelyCauses)
	}
}

func TestHeadersMethodAndTLS(t *testing.T) {
	var seen atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Method + " " + r.Host + " " + r.Header.Get("X-Team") + " " + r.Header.Get("Accept"))
		w.Header().Set("X-Pod", "a")
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshakes refused on purpose
	srv.StartTLS()
	t.Cleanup(srv.Close)
	o := Options{URL: srv.URL, Draws: 2, Concurrency: 1, Timeout: 5 * time.Second, Backend: mustBackend(t, "header:X-Pod"),
		Method: http.MethodHead, Headers: []Header{{"Host", "shop.example"}, {"X-Team", "blue"}}}
	s, _ := Draw(context.Background(), o)
	if s.Failures[FailTLS] != 2 {
		t.Errorf("a self-signed certificate without --insecure: %v %v", s.Failures, s.Examples)
	}
	o.Insecure = true
	s, _ = Draw(context.Background(), o)
	if len(s.Backends) != 1 || s.Backends[0].Count != 2 || seen.Load() != "HEAD shop.example blue " {
		t.Errorf("HEAD with headers: %+v, server saw %q", s, seen.Load())
	}
}

func TestCredentialsNeverPrinted(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "user" || p != "s3cret" {
			http.Error(w, "who?", http.StatusUnauthorized)
			return
		}
		w.Header().Set("X-Pod", "a")
	}))
	t.Cleanup(srv.Close)
	url := strings.Replace(srv.URL, "http://", "http://user:s3cret@", 1)
	r := audit(t, Options{URL: url, Draws: 5, Backend: mustBackend(t, "header:X-Pod")}, "", "")
	var text strings.Builder
	r.WriteText(&text)
	if r.Succeeded != 5 || strings.Contains(text.String(), "s3cret") || strings.Contains(r.URL, "user") {
		t.Errorf("credentials: %d succeeded; URL %q\n%s", r.Succeeded, r.URL, text.String())
	}
	closed := strings.Replace(closedPortURL(t), "http://", "http://user:s3cret@", 1)
	r = audit(t, Options{URL: closed, Draws: 3, Backend: mustBackend(t, "header:X-Pod")}, "", "")
	text.Reset()
	r.WriteText(&text)
	if strings.Contains(text.String()+fmt.Sprint(r.FailureExamples), "s3cret") || r.Failures[FailRefused] != 3 {
		t.Errorf("credentials in a failure: %v\n%s", r.FailureExamples, text.String())
	}
}

// hostileServer speaks raw HTTP/1.1: what no well-behaved server would.
func hostileServer(t *testing.T, answer func(conn net.Conn, n int)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	var count atomic.Int64
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				for {
					line, err := br.ReadString('\n')
					if err != nil || line == "\r\n" {
						break
					}
				}
				answer(conn, int(count.Add(1)))
			})
		}
	})
	return "http://" + ln.Addr().String() + "/"
}

func TestHostileBackends(t *testing.T) {
	endless := hostileServer(t, func(conn net.Conn, _ int) {
		fmt.Fprint(conn, "HTTP/1.1 200 OK\r\nX-Pod: a\r\n\r\n")
		chunk := []byte(strings.Repeat("x", 32<<10))
		conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		for {
			if _, err := conn.Write(chunk); err != nil {
				return
			}
		}
	})
	// An endless body is cut at 64 KiB at once, not drained until the timeout.
	start := time.Now()
	r := audit(t, Options{URL: endless, Draws: 4, Timeout: 5 * time.Second, Backend: mustBackend(t, "header:X-Pod")}, "", "")
	if r.Failures[FailBadBody] != 4 || time.Since(start) > 3*time.Second {
		t.Errorf("endless body: %v after %v", r.Failures, time.Since(start))
	}

	// 1 MB reason phrases on most answers: counted, one short example kept.
	reason := hostileServer(t, func(conn net.Conn, n int) {
		if n%10 == 0 {
			fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nX-Pod: a\r\nContent-Length: 0\r\n\r\n")
			return
		}
		fmt.Fprintf(conn, "HTTP/1.1 503 %s\r\nContent-Length: 0\r\n\r\n", strings.Repeat("r", 1<<20))
	})
	r = audit(t, Options{URL: reason, Draws: 200, Concurrency: 4, Backend: mustBackend(t, "header:X-Pod")}, "", "")
	if r.Succeeded == 0 || r.Failed != 200-r.Succeeded {
		t.Errorf("huge reason phrases: %d succeeded, failures %v", r.Succeeded, r.Failures)
	}
	for kind, ex := range r.FailureExamples {
		if len(ex) > maxExample+len("…") {
			t.Errorf("%s: example of %d bytes kept", kind, len(ex))
		}
	}

	// A new backend name on every answer: capped, and the cap reported.
	names := hostileServer(t, func(conn net.Conn, n int) {
		fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nX-Pod: pod-%d-%s\r\nContent-Length: 0\r\n\r\n", n, strings.Repeat("n", 200))
	})
	r = audit(t, Options{URL: names, Draws: MaxBackends + 500, Concurrency: 8, Backend: mustBackend(t, "header:X-Pod")}, "", "")
	var text strings.Builder
	r.WriteText(&text)
	if r.BackendsSeen != MaxBackends || !r.BackendsCapped || r.Failures[FailTooMany] != 500 || !strings.Contains(text.String(), fmt.Sprintf("More than %d distinct backends", MaxBackends)) {
		t.Errorf("distinct names: %d seen, capped %v, failures %v", r.BackendsSeen, r.BackendsCapped, r.Failures)
	}
}

func TestMaxTime(t *testing.T) {
	slow := hostileServer(t, func(conn net.Conn, _ int) {
		time.Sleep(100 * time.Millisecond)
		fmt.Fprint(conn, "HTTP/1.1 200 OK\r\nX-Pod: a\r\nContent-Length: 0\r\n\r\n")
	})
	start := time.Now()
	s, err := Draw(context.Background(), Options{URL: slow, Draws: 1000, Concurrency: 2, Timeout: 5 * time.Second, MaxTime: 500 * time.Millisecond, Backend: mustBackend(t, "header:X-Pod")})
	if err != nil || time.Since(start) > 2*time.Second || !strings.Contains(s.Stopped, "--max-time 500ms reached") || len(s.Seq) == 0 || len(s.Seq) > 20 {
		t.Errorf("--max-time: %v, %d draws, stopped %q after %v", err, len(s.Seq), s.Stopped, time.Since(start))
	}
}

// The recorder keeps 4 bytes per draw and a count per backend: a million
// draws from ten backends grow the heap by about 4 MB, not by the 64 bytes
// per draw that keeping every outcome would take.
func TestRecorderMemoryIsFlat(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rec := newRecorder(MaxDraws)
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}
	for i := range MaxDraws {
		if i%100 == 0 {
			rec.record(i, Outcome{Failure: FailTimeout, Err: strings.Repeat("e", 1<<10)})
			continue
		}
		rec.record(i, Outcome{Backend: names[i%10]})
	}
	s := rec.sample()
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 6<<20 || len(s.Seq) != MaxDraws || s.Failures[FailTimeout] != MaxDraws/100 {
		t.Errorf("a million draws grew the heap by %d bytes (%d kept, %v)", grown, len(s.Seq), s.Failures)
	}
	runtime.KeepAlive(s)
}
