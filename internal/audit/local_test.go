package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/omikuji/omikuji/internal/audit"
	"github.com/omikuji/omikuji/internal/fortune"
	"github.com/omikuji/omikuji/internal/local"
)

// These tests audit the whole system as `omikuji local` runs it: real
// replicas on loopback behind the L4 balancer, every draw a new TCP
// connection. The balancer's randomness is seeded and draws go one at a time,
// so each run sees the same sequence and the p-values are fixed; the bounds
// asserted are far from any threshold anyway. Draw counts stay modest: each
// draw is two loopback connections (client→front, front→replica), each a
// conntrack entry for two minutes on hosts that track loopback.

const alpha = 0.001

func startLocal(t testing.TB, balancer string, keepAlive bool) *local.System {
	t.Helper()
	sys, err := local.Start(local.Config{Addr: "127.0.0.1:0", Replicas: fortune.DefaultReplicas(), Balancer: balancer, KeepAlive: keepAlive, Seed: 42})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Close() })
	return sys
}

func drawFrom(t *testing.T, url string, o audit.Options, expect fortune.Counts) audit.Report {
	t.Helper()
	o.URL = url
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	s, err := audit.Draw(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	r := audit.Analyze(s, audit.OmikujiAudit(o, expect, alpha))
	if r.Failed != 0 {
		t.Fatalf("%d draws failed: %v %v", r.Failed, r.Failures, r.FailureExamples)
	}
	return r
}

func TestLocalRandomPassesTheAudit(t *testing.T) {
	sys := startLocal(t, local.Random, false)
	r := drawFrom(t, sys.URL(), audit.Options{Draws: 3000, Concurrency: 1}, fortune.DefaultReplicas())
	if r.Verdict != audit.Consistent || !r.Pass || r.ExitCode() != 0 || len(r.LikelyCauses) != 0 {
		t.Errorf("random balancer: %s — %s %v", r.Verdict, r.Summary, r.LikelyCauses)
	}
	// 3000 draws test every fortune, the six small-fortune pods and the two
	// middle-fortune ones against each other, and pairs of all ten pods.
	if r.GoodnessOfFit.DF != 3 || r.Uniformity.DF != 6 || r.Independence.DF != 81 {
		t.Errorf("3000 draws should test every fortune and pod: gof df %d, uniformity df %d, independence df %d", r.GoodnessOfFit.DF, r.Uniformity.DF, r.Independence.DF)
	}
	// Every replica answers, so the pods seen are the replica counts.
	for _, row := range r.Groups {
		if f, _ := fortune.Lookup(row.ID); row.Pods != f.Replicas {
			t.Errorf("%s: %d pods seen, %d replicas running", row.ID, row.Pods, f.Replicas)
		}
	}
	t.Logf("goodness of fit p = %.3g, uniformity p = %.3g, independence p = %.3g", r.GoodnessOfFit.PValue, r.Uniformity.PValue, r.Independence.PValue)

	// Eight at a time, which connection gets which replica depends on
	// scheduling, so the p-values vary; a fair balancer falls below 1e-6
	// once in a million runs.
	o := audit.Options{URL: sys.URL(), Draws: 3000, Concurrency: 8, Timeout: 5 * time.Second}
	s, err := audit.Draw(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if r := audit.Analyze(s, audit.OmikujiAudit(o, fortune.DefaultReplicas(), 1e-6)); r.Verdict != audit.Consistent {
		t.Errorf("random balancer, -c 8: %s — %s %v", r.Verdict, r.Summary, r.LikelyCauses)
	}
}

func TestLocalRoundRobinFailsIndependence(t *testing.T) {
	sys := startLocal(t, local.RoundRobin, false)
	// Even with draws in flight together, and answers coming back in any
	// order, the cycle shows.
	for _, c := range []int{1, 4} {
		r := drawFrom(t, sys.URL(), audit.Options{Draws: 1000, Concurrency: c}, fortune.DefaultReplicas())
		if r.Independence.Passed || r.Independence.PValue > 1e-10 {
			t.Errorf("-c %d: round-robin independence %+v, want p < 1e-10", c, r.Independence)
		}
		if r.Verdict != audit.Inconsistent || r.ExitCode() != 1 {
			t.Errorf("-c %d: verdict %s, exit %d", c, r.Verdict, r.ExitCode())
		}
		// Round-robin gives the right shares: only the order betrays it.
		if !r.GoodnessOfFit.Passed {
			t.Errorf("-c %d: round-robin shares should fit: %+v", c, r.GoodnessOfFit)
		}
		t.Logf("-c %d: independence statistic %.0f, p = %.3g", c, r.Independence.Statistic, r.Independence.PValue)
	}
}

func TestLocalKeepAlivePinsEachWorkerToOnePod(t *testing.T) {
	sys := startLocal(t, local.Random, true)
	r := drawFrom(t, sys.URL(), audit.Options{Draws: 300, Concurrency: 1, KeepAlive: true}, fortune.DefaultReplicas())
	pods, fortunes := 0, 0
	for _, row := range r.Groups {
		pods += row.Pods
		if row.Count > 0 {
			fortunes++
		}
	}
	if pods != 1 || fortunes != 1 {
		t.Errorf("one kept-alive connection saw %d pods and %d fortunes, want 1 and 1: %+v", pods, fortunes, r.Groups)
	}
	if r.GoodnessOfFit.Passed || r.GoodnessOfFit.PValue > 1e-10 || r.ExitCode() != 1 {
		t.Errorf("300 draws of one fortune must fail the goodness of fit: %+v", r.GoodnessOfFit)
	}

	// Without keep-alive on our side, the same server still spreads draws.
	spread := drawFrom(t, sys.URL(), audit.Options{Draws: 300, Concurrency: 1}, fortune.DefaultReplicas())
	if pods := spread.Groups[2].Pods; pods < 4 {
		t.Errorf("new connections reached only %d small-fortune pods", pods)
	}
}

func TestLocalWrongExpectationFailsGoodnessOfFit(t *testing.T) {
	sys := startLocal(t, local.Random, false)
	wrong, err := fortune.ParseCounts("great-fortune=1,middle-fortune=1,small-fortune=1,misfortune=1")
	if err != nil {
		t.Fatal(err)
	}
	r := drawFrom(t, sys.URL(), audit.Options{Draws: 1000, Concurrency: 4}, wrong)
	if r.GoodnessOfFit.Passed || r.GoodnessOfFit.PValue > 1e-10 || r.ExitCode() != 1 {
		t.Errorf("even weights against 1/2/6/1 replicas: %+v", r.GoodnessOfFit)
	}
}

// BenchmarkDraw measures draws per second, each on a new TCP connection, one
// at a time: through local mode's L4 balancer, and straight to one replica —
// the yardstick, so the ratio shows what the balancer hop costs. The two
// alternate in chunks of 100 draws, so both see the same machine load; one
// op is one draw from each.
func BenchmarkDraw(b *testing.B) {
	sys := startLocal(b, local.Random, false)
	targets := []string{"http://" + sys.Replicas()[0].Addr + "/", sys.URL()}
	var elapsed [2]time.Duration
	const chunk = 100
	for done := 0; done < b.N; done += chunk {
		n := min(chunk, b.N-done)
		for i, url := range targets {
			o := audit.Options{URL: url, Draws: n, Concurrency: 1, Timeout: 5 * time.Second}
			start := time.Now()
			s, err := audit.Draw(context.Background(), o)
			elapsed[i] += time.Since(start)
			if err != nil {
				b.Fatal(err)
			}
			if r := audit.Analyze(s, audit.OmikujiAudit(o, fortune.DefaultReplicas(), alpha)); r.Succeeded != n {
				b.Fatalf("%s: %d of %d draws failed: %v", url, r.Failed, n, r.FailureExamples)
			}
		}
	}
	b.ReportMetric(float64(b.N)/elapsed[0].Seconds(), "replica-draws/s")
	b.ReportMetric(float64(b.N)/elapsed[1].Seconds(), "local-draws/s")
	b.ReportMetric(elapsed[0].Seconds()/elapsed[1].Seconds(), "local/replica")
}
