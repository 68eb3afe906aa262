package local

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/omikuji/omikuji/internal/fortune"
)

// start runs a system on a free loopback port and closes it after the test.
func start(t testing.TB, cfg Config) *System {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		// Warnings (a replica that cannot be dialled, ...) explain failures.
		cfg.Logger = slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// testLog sends log lines to the test's log.
type testLog struct{ t testing.TB }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

type draw struct {
	Fortune string `json:"fortune"`
	Label   string `json:"label"`
	Pod     string `json:"pod"`
}

// drawWith makes one draw with client and decodes its JSON.
func drawWith(t testing.TB, client *http.Client, url string) draw {
	t.Helper()
	d, err := fetchDraw(client, url)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func fetchDraw(client *http.Client, url string) (draw, error) {
	var d draw
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return d, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return d, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		return d, err
	}
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 || d.Pod == "" {
		return d, fmt.Errorf("draw: %d %+v", resp.StatusCode, d)
	}
	return d, nil
}

func newConnectionClient() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 20 * time.Second}
}

func TestDefaultSystem(t *testing.T) {
	s := start(t, Config{Seed: 7})
	if !regexp.MustCompile(`^http://127\.0\.0\.1:\d+/$`).MatchString(s.URL()) {
		t.Errorf("URL %q", s.URL())
	}
	got := fortune.Counts{}
	names := map[string]bool{}
	for _, r := range s.Replicas() {
		got[r.Fortune.ID]++
		if !regexp.MustCompile(`^` + r.Fortune.ID + `-[bcdfghjklmnpqrstvwxz]{5}$`).MatchString(r.Pod) {
			t.Errorf("pod name %q does not look like a Kubernetes pod name", r.Pod)
		}
		if names[r.Pod] {
			t.Errorf("pod name %q used twice", r.Pod)
		}
		names[r.Pod] = true
	}
	if got.String() != fortune.DefaultReplicas().String() {
		t.Errorf("replicas %v, want the catalogue's %v", got, fortune.DefaultReplicas())
	}
	// Every replica answers on its own address with its own name.
	client := newConnectionClient()
	for _, r := range s.Replicas() {
		if d := drawWith(t, client, "http://"+r.Addr+"/"); d.Pod != r.Pod || d.Fortune != r.Fortune.ID {
			t.Errorf("replica %s at %s answered %+v", r.Pod, r.Addr, d)
		}
	}
}

func TestStartRejectsBadConfig(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	before := runtime.NumGoroutine()
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Balancer: "least-conn"}, `unknown balancer "least-conn"`},
		{Config{Replicas: fortune.Counts{"lucky": 1}}, "unknown fortune"},
		{Config{Replicas: fortune.Counts{"misfortune": -1, "great-fortune": 2}}, "≥ 0"},
		{Config{Replicas: fortune.Counts{"misfortune": 0}}, "no replicas"},
		{Config{Replicas: fortune.Counts{"misfortune": 60, "great-fortune": 41}}, "at most 100"},
		{Config{Replicas: fortune.Counts{"misfortune": 1000}}, "at most 100"},
		{Config{Addr: busy.Addr().String()}, "front listener"},
	} {
		cfg := tc.cfg
		if cfg.Addr == "" {
			cfg.Addr = "127.0.0.1:0"
		}
		s, err := Start(cfg)
		if err == nil {
			s.Close()
			t.Errorf("Start(%+v) succeeded", tc.cfg)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Start(%+v) = %v, want an error containing %q", tc.cfg, err, tc.want)
		}
	}
	waitGoroutines(t, before)
}

// TestRandomBalancerOdds draws over 10 000 new connections and tests the
// counts against replicas/total with Pearson's chi-square, by fortune and
// by replica. The seed is fixed and every connection takes one pick, so the
// counts are the same on every run; the bound p > 1e-6 would hold for
// nearly any seed.
func TestRandomBalancerOdds(t *testing.T) {
	const draws = 10_000
	s := start(t, Config{Seed: 20260401})
	byFortune, byPod := drawMany(t, s.URL(), draws)

	total := fortune.DefaultReplicas().Total()
	var observed, expected []float64
	for _, f := range fortune.Catalogue {
		observed = append(observed, float64(byFortune[f.ID]))
		expected = append(expected, draws*float64(f.Replicas)/float64(total))
	}
	checkChiSquare(t, "fortunes", observed, expected)

	observed, expected = nil, nil
	for _, r := range s.Replicas() {
		observed = append(observed, float64(byPod[r.Pod]))
		expected = append(expected, draws/float64(total))
	}
	checkChiSquare(t, "replicas", observed, expected)
	t.Logf("by fortune: %v", byFortune)
}

// drawMany makes n draws, each on a new connection, from a few clients at
// once. A connection that fails (on a loaded machine loopback connects can
// be refused or reset) is retried: a failure happens before any fortune is
// seen, so retrying does not bias the counts. More than 1 % failures is an
// error of its own.
func drawMany(t *testing.T, url string, n int) (byFortune, byPod map[string]int) {
	const workers = 8
	byFortune, byPod = map[string]int{}, map[string]int{}
	var failures []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	jobs := make(chan struct{})
	for range workers {
		wg.Go(func() {
			client := newConnectionClient()
			for range jobs {
				for {
					d, err := fetchDraw(client, url)
					mu.Lock()
					if err != nil {
						failures = append(failures, err)
					} else {
						byFortune[d.Fortune]++
						byPod[d.Pod]++
					}
					tooMany := len(failures) > n/100
					mu.Unlock()
					if err == nil || tooMany {
						break
					}
				}
			}
		})
	}
	for range n {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	if len(failures) > 0 {
		t.Logf("%d failed connections, retried; first: %v", len(failures), failures[0])
	}
	if len(failures) > n/100 {
		t.Fatalf("%d of %d draws failed; first: %v", len(failures), n, failures[0])
	}
	return byFortune, byPod
}

func checkChiSquare(t *testing.T, what string, observed, expected []float64) {
	t.Helper()
	stat := 0.0
	for i := range observed {
		d := observed[i] - expected[i]
		stat += d * d / expected[i]
	}
	p := distuv.ChiSquared{K: float64(len(observed) - 1)}.Survival(stat)
	t.Logf("%s: observed %v, expected %v, chi-square %.2f, p %.3g", what, observed, expected, stat, p)
	if p < 1e-6 {
		t.Errorf("%s: chi-square %.2f, p = %.3g < 1e-6: not replicas/total", what, stat, p)
	}
}

// TestRoundRobinCycles: connection i goes to replica i mod n, every time.
func TestRoundRobinCycles(t *testing.T) {
	s := start(t, Config{Balancer: RoundRobin, Seed: 3})
	replicas := s.Replicas()
	client := newConnectionClient()
	for i := range 3 * len(replicas) {
		want := replicas[i%len(replicas)]
		if d := drawWith(t, client, s.URL()); d.Pod != want.Pod {
			t.Fatalf("connection %d went to %s, want %s", i, d.Pod, want.Pod)
		}
	}
}

// TestKeepAlivePinsAConnection: with keep-alive, a client reusing its
// connection draws from one replica; without, the same client wanders.
func TestKeepAlivePinsAConnection(t *testing.T) {
	for _, keepAlive := range []bool{true, false} {
		t.Run(fmt.Sprintf("keep-alive=%v", keepAlive), func(t *testing.T) {
			s := start(t, Config{KeepAlive: keepAlive, Seed: 11})
			transport := &http.Transport{}
			defer transport.CloseIdleConnections()
			client := &http.Client{Transport: transport, Timeout: 20 * time.Second}
			pods := map[string]int{}
			for range 50 {
				pods[drawWith(t, client, s.URL()).Pod]++
			}
			if keepAlive && len(pods) != 1 {
				t.Errorf("a kept-alive connection reached %d replicas: %v", len(pods), pods)
			}
			// Fifty uniform picks among ten replicas landing on one: p = 10^-49.
			if !keepAlive && len(pods) < 2 {
				t.Errorf("new connections all reached %v", pods)
			}
		})
	}
}

// TestHalfClose: a client that shuts its write side after the request
// still gets the whole response, then the connection ends.
func TestHalfClose(t *testing.T) {
	s := start(t, Config{Seed: 5})
	c, err := net.Dial("tcp", strings.TrimSuffix(strings.TrimPrefix(s.URL(), "http://"), "/"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /?format=text HTTP/1.0\r\n\r\n")
	c.(*net.TCPConn).CloseWrite()
	out, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "HTTP/1.0 200 OK\r\n") || !strings.Contains(string(out), "あなたの運勢は") {
		t.Errorf("response %q", out)
	}
}

// TestCloseLeavesNothingBehind closes a system with connections in every
// state: idle kept-alive, half-sent, mid-nothing. Every goroutine ends.
func TestCloseLeavesNothingBehind(t *testing.T) {
	before := runtime.NumGoroutine()
	s, err := Start(Config{Addr: "127.0.0.1:0", KeepAlive: true, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimSuffix(strings.TrimPrefix(s.URL(), "http://"), "/")
	transport := &http.Transport{}
	client := &http.Client{Transport: transport, Timeout: 20 * time.Second}
	for range 5 {
		drawWith(t, client, s.URL()) // leaves an idle kept-alive connection
	}
	silent, err := net.Dial("tcp", addr) // connects and says nothing
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	partial, err := net.Dial("tcp", addr) // starts a request and stops
	if err != nil {
		t.Fatal(err)
	}
	defer partial.Close()
	io.WriteString(partial, "GET / HTTP/1.1\r\nHost: x\r\n")
	time.Sleep(100 * time.Millisecond) // let the front accept them; not needed for correctness

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("front listener still accepts after Close")
	}
	for _, c := range []net.Conn{silent, partial} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF && !isReset(err) {
			t.Errorf("connection not cut by Close: read error %v", err)
		}
	}
	transport.CloseIdleConnections()
	waitGoroutines(t, before)
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// waitGoroutines fails unless the goroutine count falls back to before;
// goroutines of closed connections take a moment to notice.
func waitGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func BenchmarkLocalDrawNewConnection(b *testing.B) {
	s := start(b, Config{Seed: 1})
	client := newConnectionClient()
	b.ReportAllocs()
	for b.Loop() {
		drawWith(b, client, s.URL())
	}
}

// TestMetricsOfEveryReplica: one scrape on the metrics address shows each
// replica's draws under its pod name, and the front does not serve it.
func TestMetricsOfEveryReplica(t *testing.T) {
	s, err := Start(Config{Addr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0", Replicas: fortune.Counts{"great-fortune": 1, "misfortune": 2}, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	for range 30 {
		drawWith(t, client, s.URL())
	}
	resp, err := client.Get(s.URL() + "metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/metrics through the front: %d, want 404", resp.StatusCode)
	}
	resp, err = client.Get(s.MetricsURL())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	total := 0
	for _, r := range s.Replicas() {
		m := regexp.MustCompile(`omikuji_draws_total\{fortune="` + r.Fortune.ID + `",pod="` + r.Pod + `"\} (\d+)`).FindSubmatch(body)
		if m == nil {
			t.Errorf("no draws counted for pod %s in\n%s", r.Pod, body)
			continue
		}
		n, _ := strconv.Atoi(string(m[1]))
		total += n
	}
	if total != 30 {
		t.Errorf("%d draws counted over the replicas, want 30", total)
	}
}
