package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/omikuji/omikuji/internal/fortune"
)

// cycleServer answers draws from a fixed cycle of pods, one step per
// request, and counts the TCP connections it accepts.
type cycleServer struct {
	*httptest.Server
	next  atomic.Int64
	conns atomic.Int64
}

// tenPods is one pass of a round-robin balancer over the default replicas.
var tenPods = []string{
	"great-fortune-0", "middle-fortune-0", "middle-fortune-1",
	"small-fortune-0", "small-fortune-1", "small-fortune-2", "small-fortune-3", "small-fortune-4", "small-fortune-5",
	"misfortune-0",
}

func newCycleServer(t *testing.T, pods []string) *cycleServer {
	s := &cycleServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept") != "application/json" {
			http.Error(w, "want JSON", http.StatusNotAcceptable)
			return
		}
		pod := pods[int(s.next.Add(1)-1)%len(pods)]
		id := pod[:strings.LastIndex(pod, "-")]
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"fortune": id, "pod": pod})
	}))
	s.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func TestDrawUsesANewConnectionPerDraw(t *testing.T) {
	srv := newCycleServer(t, tenPods)
	o := Options{URL: srv.URL, Draws: 200, Concurrency: 4, Timeout: 5 * time.Second}
	var progress atomic.Int64
	o.OnDraw = func(Outcome) { progress.Add(1) }
	s, err := Draw(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Seq) != 200 || s.Stopped != "" || progress.Load() != 200 {
		t.Fatalf("%d outcomes (stopped %q), %d progress calls; want 200", len(s.Seq), s.Stopped, progress.Load())
	}
	if got := srv.conns.Load(); got != 200 {
		t.Errorf("server saw %d connections for 200 draws, want one each", got)
	}
	r := Analyze(s, omikujiAudit(o, fortune.DefaultReplicas(), 0.001))
	want := map[string][2]int{"great-fortune": {20, 1}, "middle-fortune": {40, 2}, "small-fortune": {120, 6}, "misfortune": {20, 1}}
	for _, row := range r.Groups {
		if got := [2]int{row.Count, row.Pods}; got != want[row.ID] {
			t.Errorf("%s: count, pods = %v, want %v", row.ID, got, want[row.ID])
		}
	}
	if r.Succeeded != 200 || r.Failed != 0 || !r.GoodnessOfFit.Passed {
		t.Errorf("report: %+v", r)
	}
}

func TestDrawKeepAliveHoldsOneConnectionPerWorker(t *testing.T) {
	srv := newCycleServer(t, tenPods)
	o := Options{URL: srv.URL, Draws: 100, Concurrency: 3, Timeout: 5 * time.Second, KeepAlive: true}
	s, err := Draw(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Seq) != 100 {
		t.Fatalf("%d outcomes, want 100", len(s.Seq))
	}
	// A worker may never get to draw, when the others take all 100 first.
	if got := srv.conns.Load(); got < 1 || got > 3 {
		t.Errorf("server saw %d connections from 3 kept-alive workers, want at most one each", got)
	}
}

// A slow pod's answers come back late and bunched together. The audit must
// not read that as dependence: the balancer chose independently, and draws
// are kept in the order they started.
func TestDrawOrderIgnoresSlowPods(t *testing.T) {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(13, 14))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		pod := tenPods[rng.IntN(len(tenPods))]
		mu.Unlock()
		if pod == "misfortune-0" {
			time.Sleep(3 * time.Millisecond)
		}
		id := pod[:strings.LastIndex(pod, "-")]
		fmt.Fprintf(w, `{"fortune":%q,"pod":%q}`, id, pod)
	}))
	t.Cleanup(srv.Close)
	o := Options{URL: srv.URL, Draws: 3000, Concurrency: 8, Timeout: 5 * time.Second}
	s, err := Draw(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	r := Analyze(s, omikujiAudit(o, fortune.DefaultReplicas(), alphaMustPass))
	// Which request gets which pod depends on scheduling, so p varies from
	// run to run; a fair sample falls below 1e-6 once in a million runs.
	if r.Failed != 0 || !r.Independence.Passed || !r.GoodnessOfFit.Passed {
		t.Errorf("independent draws from a slow pod: %s\n%+v\n%+v", r.Summary, r.Independence, r.GoodnessOfFit)
	}
}

// alphaMustPass is the level for checks of fair samples whose p-values are
// not fixed by a seed: such a check fails by chance once in a million runs.
const alphaMustPass = 1e-6

func TestDrawClassifiesFailures(t *testing.T) {
	block := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(block) }) }
	mux := http.NewServeMux()
	mux.HandleFunc("/500", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) })
	mux.HandleFunc("/html", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<h1>大吉</h1>") })
	mux.HandleFunc("/unknown", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"fortune":"jackpot","pod":"x"}`) })
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"fortune":"misfortune","pod":%q}`, strings.Repeat("x", maxBody))
	})
	mux.HandleFunc("/longpod", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"fortune":"misfortune","pod":%q}`, strings.Repeat("p", maxPodName+1))
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/elsewhere", http.StatusFound) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(release)

	refused := closedPortURL(t)
	for path, want := range map[string]string{
		srv.URL + "/500":      "http_status_500",
		srv.URL + "/html":     FailBadBody,
		srv.URL + "/unknown":  FailUnknown,
		srv.URL + "/huge":     FailBadBody,
		srv.URL + "/longpod":  FailBadBody,
		srv.URL + "/redirect": "http_status_302",
		srv.URL + "/slow":     FailTimeout,
		refused:               FailRefused,
	} {
		o := Options{URL: path, Draws: 3, Concurrency: 1, Timeout: 200 * time.Millisecond}
		s, err := Draw(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Seq) != 3 || s.Failures[want] != 3 || s.Examples[want] == "" || len(s.Backends) != 0 {
			t.Fatalf("%s: %d outcomes, failures %v %v; want 3 of %q with a message", path, len(s.Seq), s.Failures, s.Examples, want)
		}
		r := Analyze(s, omikujiAudit(o, fortune.DefaultReplicas(), 0.001))
		if r.Verdict != Unreachable || r.ExitCode() != 2 || r.Failures[want] != 3 || r.FailureExamples[want] == "" || len(r.LikelyCauses) == 0 {
			t.Errorf("%s: report %+v", path, r)
		}
	}
}

// closedPortURL returns the URL of a port on 127.0.0.1 that refuses
// connections: a socket bound to it but not listening holds the port, so no
// other process on the machine can take it while the test runs.
func closedPortURL(t *testing.T) string { return loopbackSocketURL(t, -1) }

// loopbackSocketURL binds a socket to a free port on 127.0.0.1, listens with
// the backlog unless it is negative, never accepts, and returns its URL.
func loopbackSocketURL(t *testing.T, backlog int) string {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if backlog >= 0 {
		if err := syscall.Listen(fd, backlog); err != nil {
			t.Fatal(err)
		}
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("http://127.0.0.1:%d/", sa.(*syscall.SockaddrInet4).Port)
}

func TestDrawGivesUpWhenTheFirstDrawsAllFail(t *testing.T) {
	o := Options{URL: closedPortURL(t), Draws: 100_000, Concurrency: 4, Timeout: time.Second}
	s, err := Draw(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Seq) != giveUpAfter || !strings.Contains(s.Stopped, "all failed") {
		t.Errorf("%d outcomes, stopped %q; want to stop after %d", len(s.Seq), s.Stopped, giveUpAfter)
	}
}

func TestDrawStopsWhenCancelled(t *testing.T) {
	srv := newCycleServer(t, tenPods)
	ctx, cancel := context.WithCancel(context.Background())
	o := Options{URL: srv.URL, Draws: 100_000, Concurrency: 2, Timeout: 5 * time.Second}
	var n atomic.Int64
	o.OnDraw = func(Outcome) {
		if n.Add(1) == 50 {
			cancel()
		}
	}
	s, err := Draw(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Seq) < 50 || len(s.Seq) > 52 || !strings.Contains(s.Stopped, "interrupted") {
		t.Errorf("%d outcomes, stopped %q; want about 50, interrupted", len(s.Seq), s.Stopped)
	}
	if len(s.Failures) != 0 {
		t.Errorf("a draw cut short by cancelling was counted: %v", s.Failures)
	}
}

func TestValidate(t *testing.T) {
	good := Options{URL: "http://127.0.0.1:30081/", Draws: 1, Concurrency: 1, Timeout: time.Second}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		edit func(*Options)
		want string
	}{
		{func(o *Options) { o.URL = "127.0.0.1:30081" }, "http://"},
		{func(o *Options) { o.URL = "ftp://example.com/" }, "http://"},
		{func(o *Options) { o.URL = "http://" }, "no host"},
		{func(o *Options) { o.URL = "http://[::1" }, "bad URL"},
		{func(o *Options) { o.URL = "http://127.0.0.1:99999/" }, "port"},
		{func(o *Options) { o.Draws = 0 }, "draws"},
		{func(o *Options) { o.Draws = -5 }, "draws"},
		{func(o *Options) { o.Concurrency = 0 }, "concurrency"},
		{func(o *Options) { o.Timeout = 0 }, "timeout"},
	} {
		o := good
		tc.edit(&o)
		err := o.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one containing %q", o, err, tc.want)
		}
		if _, err := Draw(context.Background(), o); err == nil {
			t.Errorf("Draw accepted %+v", o)
		}
	}
}

// FuzzParseURL: whatever it accepts is an absolute http(s) URL with a host
// that parses again to itself.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"http://127.0.0.1:30081/", "https://omikuji.example/?x=1#frag", "127.0.0.1:8080", "http://[::1]:0/", "http://%41/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := ParseURL(raw)
		if err != nil {
			if !strings.Contains(err.Error(), "URL") {
				t.Fatalf("error %q does not say what was wrong", err)
			}
			return
		}
		u, err := url.Parse(got)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
			t.Fatalf("ParseURL(%q) = %q, not an http(s) URL with a host", raw, got)
		}
		again, err := ParseURL(got)
		if err != nil || again != got {
			t.Fatalf("ParseURL(%q) = %q, again %q, %v", raw, got, again, err)
		}
	})
}

// stuckPortURL returns the URL of a port on 127.0.0.1 whose listener never
// accepts and has a backlog of one: the first connections complete and then
// hear nothing, later ones hang in connect (the kernel drops their SYNs).
func stuckPortURL(t *testing.T) string { return loopbackSocketURL(t, 1) }

// A stop ends draws stuck in connect and draws waiting for an answer at
// once, not at their timeout, and records none of them.
func TestDrawStopsStuckDrawsAtOnce(t *testing.T) {
	for _, stop := range []string{"cancel", "max-time"} {
		url := stuckPortURL(t)
		ctx, cancel := context.WithCancel(context.Background())
		o := Options{URL: url, Draws: 100, Concurrency: 8, Timeout: time.Minute}
		if stop == "cancel" {
			time.AfterFunc(300*time.Millisecond, cancel)
		} else {
			o.MaxTime = 300 * time.Millisecond
		}
		start := time.Now()
		s, err := Draw(ctx, o)
		took := time.Since(start)
		cancel()
		if err != nil || took > 3*time.Second || len(s.Seq) != 0 || len(s.Failures) != 0 || s.Stopped == "" {
			t.Errorf("%s: %v after %v, %d outcomes %v, stopped %q; want nothing recorded within 3 s", stop, err, took, len(s.Seq), s.Failures, s.Stopped)
		}
	}
}
