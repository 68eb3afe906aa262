package audit

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestSequentialFitIsTheDirichletMultinomialBayesFactor(t *testing.T) {
	// In any order, the product of the Pólya urn's forecasts over the
	// null's probabilities is the Dirichlet-multinomial Bayes factor
	// Γ(A)/Γ(A+n) · Π Γ(aᵢ+nᵢ)/Γ(aᵢ) / Π pᵢ^nᵢ, with aᵢ = c·pᵢ, A = c.
	weights := []float64{1, 2, 6, 1}
	seq := drawSeq(rand.New(rand.NewPCG(5, 6)), 500, defaultWeights)
	f := NewSequentialFit(weights, 50)
	for _, g := range seq {
		f.Observe(g)
	}
	n := counts(seq, 4)
	lg := func(x float64) float64 { v, _ := math.Lgamma(x); return v }
	want := lg(50) - lg(50+500)
	for i, w := range weights {
		p := w / 10
		want += lg(50*p+float64(n[i])) - lg(50*p) - float64(n[i])*math.Log(p)
	}
	if math.Abs(f.LogE()-want) > 1e-9 {
		t.Errorf("log e-value %v, want the Bayes factor's %v", f.LogE(), want)
	}
	if f.MaxLogE() < f.LogE() || f.MaxLogE() < 0 || f.PValue() != math.Exp(-f.MaxLogE()) {
		t.Errorf("running maximum %v and p-value %v inconsistent with log e %v", f.MaxLogE(), f.PValue(), f.LogE())
	}
}

func TestSequentialFitRejectsAGroupExpectedNeverToCome(t *testing.T) {
	f := NewSequentialFit([]float64{1, 0}, FitConcentration)
	for range 100 {
		f.Observe(0)
	}
	if f.Rejects(0.5) {
		t.Fatalf("exact shares rejected: p = %v", f.PValue())
	}
	f.Observe(1)
	f.Observe(2) // a group beyond the weights weighs 0 too
	if f.PValue() != 0 || !f.Rejects(1e-300) {
		t.Errorf("a draw of a weight-0 group: p = %v, want 0", f.PValue())
	}
	if got := f.Counts(); len(got) != 3 || got[1] != 1 || got[2] != 1 || f.Draws() != 102 {
		t.Errorf("counts %v of %d draws, want [100 1 1] of 102", got, f.Draws())
	}
}

func TestSequentialFitFindsAWrongExpectationSoon(t *testing.T) {
	// 10/20/60/10 % drawn against even weights: a Kullback–Leibler
	// divergence of 0.23 per draw, so 1/alpha = 1000 is due after about
	// 30 draws plus the prior's cost.
	rng := rand.New(rand.NewPCG(7, 8))
	f := NewSequentialFit([]float64{1, 1, 1, 1}, FitConcentration)
	n := 0
	for !f.Rejects(0.001) && n < 1000 {
		f.Observe(drawSeq(rng, 1, defaultWeights)[0])
		n++
	}
	if n >= 300 {
		t.Errorf("rejected after %d draws, want fewer than 300", n)
	}
}

func TestBetaMixtureIntervalIsTheSetBelowTheBound(t *testing.T) {
	for _, tc := range []struct {
		k, n int
		m, c float64
	}{{600, 1000, 0.6, 100}, {0, 50, 0.1, 10}, {50, 50, 0.9, 10}, {3, 10000, 0.5, 2400}, {30, 10000, 0.001, 2400}} {
		in := BetaMixtureInterval(tc.k, tc.n, tc.m, tc.c, 0.001)
		hat := float64(tc.k) / float64(tc.n)
		if !(in.Low <= hat && hat <= in.High) || in.Low < 0 || in.High > 1 {
			t.Fatalf("%+v: interval %+v does not hold k/n = %v", tc, in, hat)
		}
		a, b := tc.c*tc.m, tc.c*(1-tc.m)
		logM := func(p float64) float64 {
			return lbeta(a+float64(tc.k), b+float64(tc.n-tc.k)) - lbeta(a, b) - float64(tc.k)*math.Log(p) - float64(tc.n-tc.k)*math.Log1p(-p)
		}
		if tc.c == 2400 && tc.m == 0.5 && in.Low != 0 {
			// The prior far from the data puts the crossing below e^-700.
			t.Errorf("%+v: low end %v, want 0", tc, in.Low)
		}
		for _, end := range []float64{in.Low, in.High} {
			if end > 0 && end < 1 && math.Abs(logM(end)-math.Log(1000)) > 1e-6 {
				t.Errorf("%+v: at the end %v the mixture is e^%v, want 1000 = e^%v", tc, end, logM(end), math.Log(1000))
			}
		}
	}
	if in := BetaMixtureInterval(0, 0, 0.5, 10, 0.01); in != (Interval{0, 1}) {
		t.Errorf("no draws: %+v, want [0, 1]", in)
	}
}

// The confidence sequence holds the true share at every draw at once:
// out of 400 seeded runs of 5000 draws, looked at every 50 draws, it
// missed the share at some look in at most alpha plus 4 standard errors.
func TestBetaMixtureIntervalCoversUniformlyInTime(t *testing.T) {
	const alpha, runs, draws, p = 0.05, 400, 5000, 0.3
	missed := 0
	for r := range runs {
		rng := rand.New(rand.NewPCG(uint64(r), 9))
		k := 0
		for n := 1; n <= draws; n++ {
			if rng.Float64() < p {
				k++
			}
			if n%50 == 0 {
				if in := BetaMixtureInterval(k, n, 0.3, ShareConcentration(0.3, 0.02), alpha); p < in.Low || p > in.High {
					missed++
					break
				}
			}
		}
	}
	limit := alpha + 4*math.Sqrt(alpha*(1-alpha)/runs)
	t.Logf("the sequence lost the true share in %d of %d runs (alpha %g)", missed, runs, alpha)
	if float64(missed)/runs > limit {
		t.Errorf("the sequence lost the true share in %d of %d runs, more than %.3f", missed, runs, limit)
	}
	// And it narrows: ±2 points at 30 % after a few thousand draws.
	in := BetaMixtureInterval(3000, 10000, 0.3, ShareConcentration(0.3, 0.02), alpha)
	if in.HalfWidth() > 0.02 || in.HalfWidth() < 0.005 {
		t.Errorf("after 10000 draws at 30 %%: %+v, want about ±1.5 points", in)
	}
}

func TestSequentialFitIntervalsAreSimultaneous(t *testing.T) {
	f := NewSequentialFit([]float64{1, 2, 6, 1}, FitConcentration)
	for _, g := range drawSeq(rand.New(rand.NewPCG(1, 1)), 20000, defaultWeights) {
		f.Observe(g)
	}
	got := f.Intervals(0.001, 1000)
	for g, in := range got {
		if single := BetaMixtureInterval(f.Counts()[g], 20000, []float64{.1, .2, .6, .1}[g], 1000, 0.001/4); math.Abs(single.Low-in.Low) > 1e-12 || math.Abs(single.High-in.High) > 1e-12 {
			t.Errorf("group %d: %+v, want each at alpha/4: %+v", g, in, single)
		}
		if want := []float64{.1, .2, .6, .1}[g]; want < in.Low || want > in.High {
			t.Errorf("group %d: %+v misses the true share %v", g, in, want)
		}
	}
}

func TestSequentialUniformity(t *testing.T) {
	// Two backends of group 0 strictly alternating: as even as can be,
	// which the forecast does not beat.
	u := NewSequentialUniformity(UniformConcentration)
	for i := range 2000 {
		u.Observe(0, i%2)
		u.Observe(1, 7) // a group of one backend says nothing
	}
	if u.MaxLogE() > 0.01 {
		t.Errorf("even backends: max log e %v, want about 0", u.MaxLogE())
	}
	// One backend of three at half share: 0.2/0.4/0.4 against thirds.
	rng := rand.New(rand.NewPCG(3, 3))
	u = NewSequentialUniformity(UniformConcentration)
	n := 0
	for ; !u.Rejects(0.001) && n < 5000; n++ {
		x := rng.Float64()
		b := 0
		if x >= 0.2 {
			b = 1 + int((x-0.2)/0.4)
		}
		u.Observe(2, b)
	}
	if n >= 2000 {
		t.Errorf("a backend at half share: rejected after %d draws, want fewer than 2000", n)
	}
	// A backend's first draw is no evidence either way.
	u = NewSequentialUniformity(UniformConcentration)
	for b := range 50 {
		u.Observe(0, b)
	}
	if u.LogE() != 0 {
		t.Errorf("first appearances moved the e-value to e^%v", u.LogE())
	}
}

func TestSequentialIndependence(t *testing.T) {
	stopsBy := func(name string, within int, next func(i int) int) {
		t.Helper()
		s := NewSequentialIndependence()
		number := map[int]int{}
		for i := range within {
			x := next(i)
			if _, ok := number[x]; !ok {
				number[x] = len(number)
			}
			s.Observe(number[x])
			if s.Rejects(0.001) {
				return
			}
		}
		t.Errorf("%s: not rejected within %d draws (p = %v)", name, within, s.PValue())
	}
	stopsBy("round-robin over 10", 40, func(i int) int { return i % 10 })
	stopsBy("round-robin over 100", 400, func(i int) int { return i % 100 })
	rng := rand.New(rand.NewPCG(4, 4))
	last := 0
	stopsBy("keep-alive runs: half the draws repeat the last backend", 300, func(int) int {
		if rng.Float64() >= 0.5 {
			last = rng.IntN(10)
		}
		return last
	})
	// Independent draws over 1000 backends: the first appearances are no
	// evidence and the forecasts learn nothing.
	s := NewSequentialIndependence()
	rng = rand.New(rand.NewPCG(5, 5))
	number := map[int]int{}
	for range 20000 {
		x := rng.IntN(1000)
		if _, ok := number[x]; !ok {
			number[x] = len(number)
		}
		s.Observe(number[x])
	}
	if s.Rejects(0.01) {
		t.Errorf("independent draws over 1000 backends rejected: p = %v", s.PValue())
	}
}

// BenchmarkSequential is the cost per draw of the three e-processes,
// which must not grow with the draws: compare -benchtime 10000x with
// 1000000x.
func BenchmarkSequential(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	group := []int{0, 1, 1, 2, 2, 2, 2, 2, 2, 3}
	pods := make([]int, 4096)
	for i := range pods {
		pods[i] = rng.IntN(10)
	}
	f := NewSequentialFit([]float64{1, 2, 6, 1}, FitConcentration)
	u := NewSequentialUniformity(UniformConcentration)
	s := NewSequentialIndependence()
	number, seen := make([]int, 10), 0
	for i := range number {
		number[i] = -1
	}
	b.ResetTimer()
	for i := range b.N {
		p := pods[i%len(pods)]
		if number[p] < 0 {
			number[p] = seen
			seen++
		}
		f.Observe(group[p])
		u.Observe(group[p], p)
		s.Observe(number[p])
	}
}

func TestSequentialUniformityWithKnownBackends(t *testing.T) {
	// With k backends known, the e-value is the symmetric Dirichlet-
	// multinomial Bayes factor over all k cells, those never drawn too.
	const k, a = 4, UniformConcentration
	u := NewSequentialUniformity(a)
	u.Expect(0, k)
	seq := []int{0, 0, 1, 0, 2, 0, 0, 1, 0, 0, 0, 2} // backend 3 never
	counts := make([]int, k)
	for _, b := range seq {
		u.Observe(0, b)
		counts[b]++
	}
	lg := func(x float64) float64 { v, _ := math.Lgamma(x); return v }
	n := float64(len(seq))
	want := lg(k*a) - lg(k*a+n) + n*math.Log(k)
	for _, c := range counts {
		want += lg(a+float64(c)) - lg(a)
	}
	if math.Abs(u.LogE()-want) > 1e-9 {
		t.Errorf("log e %v, want the Bayes factor %v", u.LogE(), want)
	}

	// One backend of ten silent, the others fair: found within a few
	// hundred draws (without the count it is never found: its first
	// draw never comes).
	rng := rand.New(rand.NewPCG(10, 1))
	u = NewSequentialUniformity(a)
	u.Expect(3, 10)
	draws := 0
	for ; !u.Rejects(0.001) && draws < 5000; draws++ {
		u.Observe(3, rng.IntN(9))
	}
	if draws >= 700 {
		t.Errorf("one backend of ten silent: rejected after %d draws, want fewer than 700", draws)
	}

	// All ten fair: the e-value stays near or below 1.
	u = NewSequentialUniformity(a)
	u.Expect(0, 10)
	for range 20_000 {
		u.Observe(0, rng.IntN(10))
	}
	if u.Rejects(0.01) {
		t.Errorf("ten fair backends: max log e %v, rejected at 0.01", u.MaxLogE())
	}

	// An eleventh backend cannot happen under the null.
	u.Observe(0, 10)
	if !math.IsInf(u.LogE(), 1) || !u.Rejects(1e-300) {
		t.Errorf("an eleventh backend of ten: log e %v, want +Inf", u.LogE())
	}
	u.Observe(0, 1)
	if !math.IsInf(u.LogE(), 1) {
		t.Errorf("after the eleventh backend: log e %v, want +Inf to stay", u.LogE())
	}
}
