package deploy

import (
	"math"
	"testing"
	"time"

	"github.com/omikuji/omikuji/internal/fortune"
)

// TestFalseAlarmRate computes, exactly in the binomial model, how often a
// fair balancer would fire OmikujiOddsDrift and OmikujiPodSkew with the
// rules' thresholds, minimum draw counts and for: durations, and holds them
// to the rates docs/monitoring.md states.
//
// A fair balancer sends each draw to a fortune with probability p (its
// ready endpoints over all), independently, so a fortune's count among the
// n draws of a window is Binomial(n, p). An alert fires only if its
// condition holds at every evaluation for the whole for: duration, so at
// least at the two ends of it: two windows that share (window - for) of
// their draws. Summing over every evaluation of a day bounds the chance of
// one false alarm a day from above.
func TestFalseAlarmRate(t *testing.T) {
	window := mustDuration(t, Window)
	const evalInterval = 15 * time.Second // prometheus.yml and the ServiceMonitor
	evalsPerDay := float64(24*time.Hour) / float64(evalInterval)
	total := fortune.DefaultReplicas().Total()

	var drift, driftOne float64 // per evaluation, summed over the fortunes
	for _, f := range fortune.Catalogue {
		p := float64(f.Replicas) / float64(total)
		drift += worstOverN(DriftMinDraws, p, DriftZ, true, window, mustDuration(t, DriftFor))
		driftOne += worstOverN(DriftMinDraws, p, DriftZ, true, window, 0)
	}
	var skew, skewOne float64 // per evaluation, summed over the pods
	for _, f := range fortune.Catalogue {
		if f.Replicas < 2 {
			continue // one pod takes all its fortune's draws: never skewed
		}
		q := 1 / float64(f.Replicas)
		skew += float64(f.Replicas) * worstOverN(SkewMinDraws, q, SkewZ, false, window, mustDuration(t, SkewFor))
		skewOne += float64(f.Replicas) * worstOverN(SkewMinDraws, q, SkewZ, false, window, 0)
	}
	t.Logf("OmikujiOddsDrift, fair balancer, the catalogue's shares: %.2g per evaluation without for:, %.2g with for: %s; at most %.2g false alarms a day (one in %.0f years)",
		driftOne, drift, DriftFor, drift*evalsPerDay, 1/(drift*evalsPerDay*365))
	t.Logf("OmikujiPodSkew, fair balancer, the catalogue's pods: %.2g per evaluation without for:, %.2g with for: %s; at most %.2g false alarms a day (one in %.0f years)",
		skewOne, skew, SkewFor, skew*evalsPerDay, 1/(skew*evalsPerDay*365))
	if drift*evalsPerDay > 1e-6 || skew*evalsPerDay > 1e-5 {
		t.Errorf("false alarms too frequent: drift %.2g a day (want ≤ 1e-6), skew %.2g a day (want ≤ 1e-5)", drift*evalsPerDay, skew*evalsPerDay)
	}
	// The worst share the rules meet in a small fortune of a large shrine,
	// 1 endpoint in 20: still rare, and only a bound.
	worst := worstOverN(DriftMinDraws, 0.05, DriftZ, true, window, mustDuration(t, DriftFor))
	t.Logf("OmikujiOddsDrift at a share of 1/20: %.2g per evaluation with for:", worst)
	if worst*evalsPerDay > 1e-5 {
		t.Errorf("a 1/20 share false-alarms %.2g a day", worst*evalsPerDay)
	}
}

// The computation itself, against the normal tail it approaches for large n.
func TestBinomialTailApproachesNormal(t *testing.T) {
	got := bothEnds(200000, 0.5, 3, true, 0)
	want := math.Erfc(3 / math.Sqrt2)
	if math.Abs(got-want)/want > 0.05 {
		t.Errorf("P(|z| > 3) for Binomial(200000, 0.5) = %g, want about %g", got, want)
	}
}

func mustDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// worstOverN is the largest, over window draw counts n from nmin up, of the
// chance that the condition holds at both ends of the for: duration.
func worstOverN(nmin int, p, z float64, twoSided bool, window, hold time.Duration) float64 {
	worst := 0.0
	for n := nmin; n <= 20*nmin; n = n*21/20 + 1 {
		worst = max(worst, bothEnds(n, p, z, twoSided, float64(hold)/float64(window)))
	}
	return worst
}

// bothEnds: the windows [0, 1] and [h, 1+h] (h = for/window) with n draws
// each at a steady rate; A and C are the draws only one window holds, B the
// shared ones. It returns P(both z-scores beyond z on the same side); h = 0
// is a single window.
func bothEnds(n int, p, z float64, twoSided bool, h float64) float64 {
	m1 := int(math.Round(float64(n) * h)) // A and C
	m2 := n - m1                          // B
	mu, sd := float64(n)*p, math.Sqrt(float64(n)*p*(1-p))
	hi, lo := mu+z*sd, mu-z*sd
	a, b := pmf(m1, p), pmf(m2, p)
	// cum[x] = P(A < x), so P(A + k > hi) = 1 - cum[floor(hi-k)+1] and
	// P(A + k < lo) = cum[ceil(lo-k)].
	cum := make([]float64, len(a)+1)
	for x, px := range a {
		cum[x+1] = cum[x] + px
	}
	at := func(x float64) float64 { return cum[min(max(int(x), 0), len(a))] }
	total := 0.0
	for k, pk := range b {
		u := 1 - at(math.Floor(hi-float64(k))+1)
		total += pk * u * u
		if twoSided {
			d := at(math.Ceil(lo - float64(k)))
			total += pk * d * d
		}
	}
	return total
}

// pmf is the Binomial(n, p) probability mass function.
func pmf(n int, p float64) []float64 {
	out := make([]float64, n+1)
	lgn, _ := math.Lgamma(float64(n + 1))
	for k := 0; k <= n; k++ {
		lk, _ := math.Lgamma(float64(k + 1))
		lnk, _ := math.Lgamma(float64(n - k + 1))
		out[k] = math.Exp(lgn - lk - lnk + float64(k)*math.Log(p) + float64(n-k)*math.Log1p(-p))
	}
	return out
}
