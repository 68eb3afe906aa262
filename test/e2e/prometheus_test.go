package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/kubernetes"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"go.yaml.in/yaml/v2"

	"github.com/omikuji/omikuji/internal/fortune"
	"github.com/omikuji/omikuji/test/e2e/cluster"
)

// The real-Prometheus checks. Debian's Prometheus (/usr/bin/prometheus)
// scrapes the cluster with deploy/prometheus/prometheus.yml and evaluates
// deploy/prometheus/omikuji.rules.yml. Debian builds it without kubernetes
// service discovery, so the test runs Prometheus's own kubernetes discovery
// (github.com/prometheus/prometheus/discovery/kubernetes, configured by the
// shipped kubernetes_sd_configs entry and the harness's admin kubeconfig)
// and hands its target groups, __meta_kubernetes_* labels and all, to the
// server over HTTP service discovery; the shipped relabelings then run
// unchanged.
const (
	promBinary     = "/usr/bin/prometheus"
	promInterval   = 2 * time.Second // scrape and rule evaluation
	promSDRefresh  = time.Second     // how often the server asks for targets
	promAuditDraws = 3000
	promPinned     = 1500
)

// checkPrometheus: the observed shares are the audit's, the expected share
// follows a scale, and pinned draws make the alert expressions true.
func (e *env) checkPrometheus(ctx context.Context, t *testing.T, repo string) {
	start := time.Now()
	defer func() { e.report.phaseDone("prometheus checks", start) }()
	if _, err := os.Stat(promBinary); err != nil {
		t.Fatalf("%v: install Debian's prometheus package (scripts/deps.sh)", err)
	}
	want := fortune.DefaultReplicas()
	e.serviceReady(ctx, t, want)
	p := startPrometheus(ctx, t, e, repo)

	// 1. Every endpoint is a target, and the expected shares are the odds.
	if err := p.waitFor(ctx, time.Minute, func() error {
		return p.sharesAre(ctx, "omikuji:expected_share:ratio", want)
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("prometheus: %d ready endpoints discovered; expected shares %s", want.Total(), want)

	// 2. Over the same draws, Prometheus counts what the audit counted.
	before := p.stableCounts(ctx, t)
	r, code := e.draw(ctx, t, e.nodeURL, promAuditDraws, want)
	e.report.draw("prometheus", "NodePort, scraped", want, r)
	if code != 0 || r.Failed != 0 {
		t.Fatalf("the audit failed (exit %d, %d failed): %s", code, r.Failed, r.Summary)
	}
	after := p.stableCounts(ctx, t)
	var lines []string
	for _, row := range r.Groups {
		got := after[row.ID] - before[row.ID]
		lines = append(lines, fmt.Sprintf("%s %g/%d", row.ID, got, row.Count))
		if got != float64(row.Count) {
			t.Errorf("%s: Prometheus counted %g draws, the audit %d", row.ID, got, row.Count)
		}
	}
	t.Logf("draws counted by Prometheus/the audit over the same %d draws: %s", r.Succeeded, strings.Join(lines, ", "))
	// The recording rule's observed shares: the window holds only these
	// draws (Prometheus began scraping after the earlier ones). increase()
	// extrapolates each pod's count to the window's end by up to one scrape
	// interval, so wait for a minute of history and allow for it.
	time.Sleep(time.Until(p.started.Add(70 * time.Second)))
	shares, err := p.vector(ctx, "omikuji:draw_share:ratio10m")
	if err != nil {
		t.Fatal(err)
	}
	lines = nil
	for _, row := range r.Groups {
		got, audited := shares[row.ID], float64(row.Count)/float64(r.Succeeded)
		lines = append(lines, fmt.Sprintf("%s %.4f/%.4f", row.ID, got, audited))
		if !(math.Abs(got-audited) <= 0.02) {
			t.Errorf("%s: omikuji:draw_share:ratio10m %.4f, the audit's share %.4f", row.ID, got, audited)
		}
	}
	t.Logf("omikuji:draw_share:ratio10m / the audit's shares: %s", strings.Join(lines, ", "))
	n, err := p.vector(ctx, "sum(omikuji:draws:increase10m)")
	if err != nil || n[""] < 1000 {
		t.Fatalf("sum(omikuji:draws:increase10m) = %v (%v): too few for the alerts to judge", n, err)
	}

	// 3. A fair balancer: no alert expression is true.
	for _, alert := range []string{"OmikujiOddsDrift", "OmikujiPodSkew", "OmikujiFortuneUnavailable"} {
		if res := p.alertExpr(ctx, t, alert); len(res) != 0 {
			t.Errorf("fair balancer: %s's expression is true for %v", alert, res)
		}
	}

	// 4. Session affinity pins the draws to one pod: the alert expressions
	// become true (promtool's tests cover the for: timing).
	e.serviceReady(ctx, t, want)
	t.Cleanup(func() {
		if _, err := e.c.Kubectl(ctx, "-n", namespace, "patch", "service", serviceName, "-p", `{"spec":{"sessionAffinity":"None"}}`); err != nil {
			t.Error(err)
		}
		e.serviceReady(ctx, t, want)
	})
	pod, id := e.pinByAffinity(ctx, t, want)
	pinned, _ := e.draw(ctx, t, e.nodeURL, promPinned, want)
	e.report.draw("prometheus", "NodePort, sessionAffinity ClientIP", want, pinned)
	t.Logf("%d draws with session affinity ClientIP, pinned to %s (%s)", pinned.Succeeded, pod, id)
	if err := p.waitFor(ctx, time.Minute, func() error {
		skew := p.alertExpr(ctx, t, "OmikujiPodSkew")
		if _, ok := skew[id+"/"+pod]; !ok || len(skew) != 1 {
			return fmt.Errorf("OmikujiPodSkew's expression is true for %v, want %s only", skew, pod)
		}
		// Which fortunes drift depends on the draws that re-pinning and
		// the waits sent to earlier pinned pods; some must.
		drift := p.alertExpr(ctx, t, "OmikujiOddsDrift")
		if len(drift) == 0 {
			return errors.New("OmikujiOddsDrift's expression is true for no fortune")
		}
		t.Logf("pinned: OmikujiPodSkew's expression is true for %v (z), OmikujiOddsDrift's for %v (|z|)", skew, drift)
		return nil
	}); err != nil {
		t.Error(err)
	}
	if _, err := e.c.Kubectl(ctx, "-n", namespace, "patch", "service", serviceName, "-p", `{"spec":{"sessionAffinity":"None"}}`); err != nil {
		t.Fatal(err)
	}

	// 5. A live scale: the expected share follows within a scrape or two.
	e.serviceReady(ctx, t, want)
	p.checkScale(ctx, t, e)
}

// checkScale scales great-fortune to 4 while draws stream in, measures how
// long the expected share takes to follow, and screenshots the graph.
func (p *promServer) checkScale(ctx context.Context, t *testing.T, e *env) {
	def := fortune.DefaultReplicas()
	scaled := fortune.DefaultReplicas()
	scaled["great-fortune"] = 4
	s := startStream(ctx, e.nodeURL, 2)
	defer s.stop()
	time.Sleep(75 * time.Second) // a minute of history at the old odds
	t.Cleanup(func() { e.scale(ctx, t, "great-fortune", def) })
	if _, err := e.c.Kubectl(ctx, "-n", namespace, "scale", "deployment", "great-fortune", "--replicas=4"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.k.waitSettled(ctx, scaled, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	settled := time.Now()
	if err := p.waitFor(ctx, time.Minute, func() error {
		return p.sharesAre(ctx, "omikuji:expected_share:ratio", scaled)
	}); err != nil {
		t.Fatal(err)
	}
	lag := time.Since(settled)
	// Discovery's refresh, Prometheus's batching of discovery updates (5 s),
	// the first scrape of each new target (within an interval), then an
	// evaluation; the settle check itself polls every 500 ms. With the
	// shipped 15 s intervals this is within two scrape intervals.
	bound := promSDRefresh + 5*time.Second + 2*promInterval + time.Second
	t.Logf("expected share followed the scale %.1f s after the EndpointSlices listed the new pods (bound %s; scrape interval %s)", lag.Seconds(), bound, promInterval)
	if lag > bound {
		t.Errorf("the expected share took %s to follow the scale, want at most %s", lag.Round(100*time.Millisecond), bound)
	}
	time.Sleep(75 * time.Second) // the observed share following it
	draws := s.stop()
	if len(draws) == 0 {
		t.Error("no draws streamed during the scale")
	}
	t.Logf("%d draws streamed over new connections during the scale", len(draws))
	if path := os.Getenv("OMIKUJI_E2E_SCREENSHOT"); path != "" {
		if err := p.screenshot(ctx, path, 3*time.Minute); err != nil {
			t.Error(err)
		} else {
			t.Logf("screenshot of the graph during the scale: %s", path)
		}
	}
	e.scale(ctx, t, "great-fortune", def)
}

// promServer is one Prometheus process and its service discovery feed.
type promServer struct {
	url     string
	started time.Time
	rules   map[string]string // alert name → expression, from the rule file
}

func startPrometheus(ctx context.Context, t *testing.T, e *env, repo string) *promServer {
	t.Helper()
	dir := t.TempDir()
	shipped := filepath.Join(repo, "deploy", "prometheus")
	raw, err := os.ReadFile(filepath.Join(shipped, "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	jobs, _ := cfg["scrape_configs"].([]any)
	if len(jobs) != 1 {
		t.Fatalf("prometheus.yml: %d scrape jobs, want 1", len(jobs))
	}
	job := jobs[0].(map[any]any)
	sds, _ := job["kubernetes_sd_configs"].([]any)
	if len(sds) != 1 {
		t.Fatalf("prometheus.yml: job %v has %d kubernetes_sd_configs, want 1", job["job_name"], len(sds))
	}
	// The shipped discovery entry, as Prometheus would read it, plus the
	// harness's kubeconfig.
	entry, err := yaml.Marshal(sds[0])
	if err != nil {
		t.Fatal(err)
	}
	var sd kubernetes.SDConfig
	if err := yaml.UnmarshalStrict(entry, &sd); err != nil {
		t.Fatalf("prometheus.yml: kubernetes_sd_configs: %v", err)
	}
	sd.KubeConfig = e.c.Kubeconfig()
	feed := startDiscovery(ctx, t, &sd)

	delete(job, "kubernetes_sd_configs")
	job["http_sd_configs"] = []any{map[string]any{"url": feed, "refresh_interval": promSDRefresh.String()}}
	cfg["global"] = map[string]any{"scrape_interval": promInterval.String(), "evaluation_interval": promInterval.String()}
	rules := filepath.Join(shipped, "omikuji.rules.yml")
	cfg["rule_files"] = []any{rules}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(config, out, 0o644); err != nil {
		t.Fatal(err)
	}

	port, err := cluster.FreeLoopbackPort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	logFile, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promBinary, "--config.file="+config, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
		if t.Failed() {
			if log, err := os.ReadFile(logFile.Name()); err == nil {
				t.Logf("prometheus log:\n%s", log)
			}
		}
	})
	p := &promServer{url: "http://" + addr, started: time.Now(), rules: alertRules(t, rules)}
	if err := p.waitFor(ctx, 30*time.Second, func() error {
		resp, err := http.Get(p.url + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New(resp.Status)
		}
		return nil
	}); err != nil {
		t.Fatalf("prometheus on %s not ready: %v", addr, err)
	}
	return p
}

// alertRules reads each alert's expression from the shipped rule file.
func alertRules(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	rules := map[string]string{}
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				rules[r.Alert] = r.Expr
			}
		}
	}
	return rules
}

// startDiscovery runs Prometheus's kubernetes discovery and serves its
// current targets in the HTTP service discovery format; it returns the URL.
func startDiscovery(ctx context.Context, t *testing.T, sd *kubernetes.SDConfig) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	metrics := sd.NewDiscovererMetrics(reg, discovery.NewRefreshMetrics(reg))
	if err := metrics.Register(); err != nil {
		t.Fatal(err)
	}
	d, err := sd.NewDiscoverer(discovery.DiscovererOptions{
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics: metrics,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	var mu sync.Mutex
	groups := map[string]*targetgroup.Group{}
	updates := make(chan []*targetgroup.Group)
	var wg sync.WaitGroup
	wg.Go(func() { d.Run(ctx, updates) })
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case tgs := <-updates:
				mu.Lock()
				for _, g := range tgs {
					groups[g.Source] = g
				}
				mu.Unlock()
			}
		}
	})
	type httpGroup struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		out := []httpGroup{}
		mu.Lock()
		for _, g := range groups {
			for _, target := range g.Targets {
				labels := map[string]string{}
				for k, v := range g.Labels {
					labels[string(k)] = string(v)
				}
				for k, v := range target {
					labels[string(k)] = string(v)
				}
				addr := labels["__address__"]
				delete(labels, "__address__")
				out = append(out, httpGroup{Targets: []string{addr}, Labels: labels})
			}
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		cancel()
		wg.Wait()
		metrics.Unregister()
	})
	return "http://" + ln.Addr().String() + "/targets"
}

// query runs an instant query and returns the result's label sets and values.
func (p *promServer) query(ctx context.Context, q string) ([]struct {
	Metric map[string]string
	Value  float64
}, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/api/v1/query?query="+url.QueryEscape(q), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return nil, err
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", q, body.Error)
	}
	var out []struct {
		Metric map[string]string
		Value  float64
	}
	for _, r := range body.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %q: value %v", q, r.Value[1])
		}
		out = append(out, struct {
			Metric map[string]string
			Value  float64
		}{r.Metric, v})
	}
	return out, nil
}

// vector maps each result's fortune label to its value.
func (p *promServer) vector(ctx context.Context, q string) (map[string]float64, error) {
	res, err := p.query(ctx, q)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, r := range res {
		out[r.Metric["fortune"]] = r.Value
	}
	return out, nil
}

// sharesAre checks a per-fortune share series against replica counts.
func (p *promServer) sharesAre(ctx context.Context, q string, want fortune.Counts) error {
	got, err := p.vector(ctx, q)
	if err != nil {
		return err
	}
	for _, id := range fortune.IDs() {
		w := float64(want[id]) / float64(want.Total())
		if g, ok := got[id]; !ok || !(math.Abs(g-w) <= 1e-9) { // NaN fails too
			return fmt.Errorf("%s = %v, want %s's shares", q, got, want)
		}
	}
	return nil
}

// stableCounts waits until every pod's counter has been scraped since the
// last draw: two readings three scrape intervals apart agree.
func (p *promServer) stableCounts(ctx context.Context, t *testing.T) map[string]float64 {
	t.Helper()
	const q = `sum by (fortune) (omikuji_draws_total{job="omikuji"})`
	var last map[string]float64
	var err error
	if err := p.waitFor(ctx, time.Minute, func() error {
		var now map[string]float64
		if now, err = p.vector(ctx, q); err != nil {
			return err
		}
		if len(now) != len(fortune.Catalogue) {
			return fmt.Errorf("counters of %d fortunes scraped, want %d", len(now), len(fortune.Catalogue))
		}
		if fmt.Sprint(now) != fmt.Sprint(last) {
			last = now
			time.Sleep(3 * promInterval)
			return fmt.Errorf("counters still moving: %v", now)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return last
}

// alertExpr evaluates an alert's expression now, without its for:, and
// returns the value per fortune (and pod, when the alert is per pod).
func (p *promServer) alertExpr(ctx context.Context, t *testing.T, alert string) map[string]float64 {
	t.Helper()
	expr, ok := p.rules[alert]
	if !ok {
		t.Fatalf("no alert %s in the rule file", alert)
	}
	res, err := p.query(ctx, expr)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, r := range res {
		key := r.Metric["fortune"]
		if pod := r.Metric["pod"]; pod != "" {
			key += "/" + pod
		}
		out[key] = math.Round(r.Value*10) / 10
	}
	return out
}

func (p *promServer) waitFor(ctx context.Context, timeout time.Duration, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %s: %w", timeout, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// pinByAffinity switches on session affinity ClientIP, which pins this
// client to one pod, until that pod belongs to a fortune with several pods
// (one pod of one is never skewed), and returns it. The caller restores
// sessionAffinity None.
func (e *env) pinByAffinity(ctx context.Context, t *testing.T, want fortune.Counts) (pod, id string) {
	t.Helper()
	patch := func(affinity string) {
		if _, err := e.c.Kubectl(ctx, "-n", namespace, "patch", "service", serviceName,
			"-p", fmt.Sprintf(`{"spec":{"sessionAffinity":%q}}`, affinity)); err != nil {
			t.Fatal(err)
		}
	}
	for attempt := 1; attempt <= 20; attempt++ {
		patch("ClientIP")
		if err := waitPinned(ctx, e.nodeURL, 50, time.Minute); err != nil {
			t.Fatal(err)
		}
		pod, err := drawOne(ctx, e.nodeURL)
		if err != nil {
			t.Fatal(err)
		}
		id = podFortune(pod)
		if want[id] >= 2 {
			return pod, id
		}
		t.Logf("affinity pinned this client to %s, the only pod of %s: re-pinning", pod, id)
		patch("None") // kube-proxy forgets the client's pod
		e.serviceReady(ctx, t, want)
	}
	t.Fatal("20 times pinned to a fortune with one pod")
	return "", ""
}

// podFortune is the Deployment of a pod named <deployment>-<hash>-<suffix>.
func podFortune(pod string) string {
	rs := pod[:max(strings.LastIndex(pod, "-"), 0)]
	return rs[:max(strings.LastIndex(rs, "-"), 0)]
}

// screenshot opens Prometheus's own graph page in headless Chromium, with
// the observed shares (over 1 minute, so that the graph shows the step) and
// the expected shares over the last few minutes.
func (p *promServer) screenshot(ctx context.Context, path string, span time.Duration) error {
	profile, err := os.MkdirTemp("", "omikuji-chromium-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(profile)
	q := url.Values{}
	q.Set("g0.expr", `label_replace(sum by (fortune) (rate(omikuji_draws_total{job="omikuji"}[1m]))`+
		` / on () group_left sum(rate(omikuji_draws_total{job="omikuji"}[1m])), "share", "observed 1m", "", "")`+
		` or label_replace(omikuji:expected_share:ratio, "share", "expected", "", "")`)
	q.Set("g0.tab", "0")
	q.Set("g0.range_input", fmt.Sprintf("%ds", int(span.Seconds())))
	shot, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "chromium", "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
		"--user-data-dir="+profile, "--hide-scrollbars", "--virtual-time-budget=10000",
		"--screenshot="+shot, "--window-size=1400,1000", p.url+"/graph?"+q.Encode())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("chromium: %v\n%s", err, out)
	}
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 10000 {
		return fmt.Errorf("screenshot %s missing or nearly empty: %v", shot, err)
	}
	return nil
}
