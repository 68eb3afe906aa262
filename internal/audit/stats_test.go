package audit

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// defaultWeights are the catalogue's odds 1/2/6/1, written out so these
// tests stand on their own.
var defaultWeights = []int{1, 2, 6, 1}

func TestGoodnessOfFitMatchesAHandComputedValue(t *testing.T) {
	// 30 vs 70 against 50/50: statistic 2·20²/50 = 16 on 1 df, and
	// P(χ²₁ > x) = erfc(√(x/2)).
	got := GoodnessOfFit([]int{30, 70}, []int{1, 1}, 0.001)
	want := math.Erfc(math.Sqrt(8))
	if !got.Applicable || got.DF != 1 || math.Abs(got.Statistic-16) > 1e-12 || math.Abs(got.PValue-want) > 1e-12*want+1e-15 {
		t.Fatalf("got %+v, want statistic 16, df 1, p %g", got, want)
	}
	if got.Passed != (want >= 0.001) {
		t.Errorf("passed = %v at alpha 0.001 with p %g", got.Passed, want)
	}
}

func TestGoodnessOfFitZeroWeight(t *testing.T) {
	never := GoodnessOfFit([]int{10, 20, 60, 10}, []int{1, 2, 6, 0}, 0.001)
	if never.Passed || never.PValue != 0 || !never.Applicable || never.Note == "" {
		t.Errorf("a draw of a weight-0 fortune must fail the test: %+v", never)
	}
	if math.IsInf(never.Statistic, 0) || math.IsNaN(never.Statistic) {
		t.Errorf("statistic must stay finite for JSON: %v", never.Statistic)
	}
	fine := GoodnessOfFit([]int{100, 200, 600, 0}, []int{1, 2, 6, 0}, 0.001)
	if !fine.Passed || fine.DF != 2 || fine.Statistic != 0 {
		t.Errorf("exact shares with a weight-0 fortune undrawn: %+v", fine)
	}
}

func TestGoodnessOfFitMergesSparseCells(t *testing.T) {
	// n = 16 expects 1.6, 3.2, 9.6, 1.6: the two 1.6 merge into 3.2, then
	// the two 3.2 into 6.4, leaving 6.4 vs 9.6 on 1 df.
	got := GoodnessOfFit([]int{1, 2, 12, 1}, defaultWeights, 0.001)
	if !got.Applicable || got.DF != 1 {
		t.Fatalf("got %+v, want the sparse cells merged to df 1", got)
	}
	want := (4-6.4)*(4-6.4)/6.4 + (12-9.6)*(12-9.6)/9.6
	if math.Abs(got.Statistic-want) > 1e-12 {
		t.Errorf("statistic %v, want %v", got.Statistic, want)
	}
	few := GoodnessOfFit([]int{0, 1, 2, 0}, defaultWeights, 0.001)
	if few.Applicable || !few.Passed || few.Note == "" {
		t.Errorf("3 draws cannot be tested: %+v", few)
	}
}

// drawSeq draws n categories with the given weights from a seeded generator.
func drawSeq(rng *rand.Rand, n int, weights []int) []int {
	total := 0
	for _, w := range weights {
		total += w
	}
	seq := make([]int, n)
	for i := range seq {
		x := rng.IntN(total)
		for c, w := range weights {
			if x < w {
				seq[i] = c
				break
			}
			x -= w
		}
	}
	return seq
}

func counts(seq []int, k int) []int {
	c := make([]int, k)
	for _, x := range seq {
		c[x]++
	}
	return c
}

// Under the null hypothesis a p-value is uniform, so about 5 % of honest
// samples fall below 0.05. This checks both tests are calibrated — neither
// blind nor trigger-happy — on 2000 seeded samples: the expected 100
// rejections have a standard deviation near 10, the bounds sit 4 away.
func TestTestsAreCalibratedOnFairDraws(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const samples, draws = 2000, 1000
	gofRejects, indRejects := 0, 0
	for range samples {
		seq := drawSeq(rng, draws, defaultWeights)
		if GoodnessOfFit(counts(seq, 4), defaultWeights, 0.05).PValue < 0.05 {
			gofRejects++
		}
		ind := Independence(seq, 4, 0.05)
		// A rare fortune drawn fewer than 71 times gets merged (71² / 999 ≥ 5).
		if !ind.Applicable || (ind.DF != 9 && ind.DF != 4) {
			t.Fatalf("1000 draws at 10/20/60/10 %% must give a 4×4 or 3×3 table: %+v", ind)
		}
		if ind.PValue < 0.05 {
			indRejects++
		}
	}
	for name, rejects := range map[string]int{"goodness of fit": gofRejects, "independence": indRejects} {
		if rejects < 60 || rejects > 140 {
			t.Errorf("%s rejected %d of %d fair samples at 0.05, want about 100", name, rejects, samples)
		}
	}
}

func TestIndependenceCatchesRoundRobin(t *testing.T) {
	// Ten pods in a fixed order, one per draw: the odds are exact, but each
	// fortune predicts the next.
	cycle := []int{0, 1, 1, 2, 2, 2, 2, 2, 2, 3}
	var seq []int
	for range 300 {
		seq = append(seq, cycle...)
	}
	ind := Independence(seq, 4, 0.001)
	if ind.Passed || ind.PValue > 1e-10 {
		t.Errorf("round-robin sequence: %+v, want p < 1e-10", ind)
	}
	gof := GoodnessOfFit(counts(seq, 4), defaultWeights, 0.001)
	if !gof.Passed || gof.Statistic != 0 {
		t.Errorf("round-robin gives the exact odds: %+v", gof)
	}
}

func TestGoodnessOfFitCatchesAWrongExpectation(t *testing.T) {
	seq := drawSeq(rand.New(rand.NewPCG(3, 4)), 3000, defaultWeights)
	got := GoodnessOfFit(counts(seq, 4), []int{1, 1, 1, 1}, 0.001)
	if got.Passed || got.PValue > 1e-10 {
		t.Errorf("10/20/60/10 draws against even weights: %+v, want p < 1e-10", got)
	}
	right := GoodnessOfFit(counts(seq, 4), defaultWeights, 0.001)
	if !right.Passed || right.PValue < 0.01 {
		t.Errorf("same draws against their own odds: %+v", right)
	}
}

func TestIndependenceSparseAndDegenerate(t *testing.T) {
	if got := Independence([]int{2}, 4, 0.001); got.Applicable || !got.Passed {
		t.Errorf("one draw: %+v", got)
	}
	same := make([]int, 500)
	if got := Independence(same, 4, 0.001); got.Applicable || !got.Passed || got.Note == "" {
		t.Errorf("one fortune only: %+v", got)
	}
	// 100 draws at 10/20/60/10: the rare fortunes (about 10 each, expecting
	// about 1 pair with themselves) must be merged before testing.
	seq := drawSeq(rand.New(rand.NewPCG(5, 6)), 100, defaultWeights)
	got := Independence(seq, 4, 0.001)
	if !got.Applicable || got.DF >= 9 || got.DF < 1 {
		t.Errorf("100 draws: %+v, want rare fortunes merged (df < 9)", got)
	}
	// Independence ignores which fortunes were expected: category 3 alone
	// at the end only closes a pair, so it forms a column but no row.
	if got := Independence([]int{0, 1, 0, 1, 3}, 4, 0.001); got.Applicable {
		t.Errorf("5 draws cannot be tested: %+v", got)
	}
}

// FuzzStatistics feeds both tests arbitrary sequences and weights: they must
// never panic and must always give JSON-safe numbers and a sane verdict.
func FuzzStatistics(f *testing.F) {
	f.Add([]byte{0, 1, 2, 2, 2, 3, 2, 1, 2, 2}, []byte{1, 2, 6, 1})
	f.Add([]byte{3, 3, 3}, []byte{0, 0, 0, 1})
	f.Add([]byte{}, []byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, raw, rawWeights []byte) {
		weights := make([]int, 4)
		total := 0
		for i := range weights {
			if i < len(rawWeights) {
				weights[i] = int(rawWeights[i])
			}
			total += weights[i]
		}
		if total == 0 {
			weights[0] = 1
		}
		seq := make([]int, len(raw))
		for i, b := range raw {
			seq[i] = int(b) % 4
		}
		for _, got := range []Test{GoodnessOfFit(counts(seq, 4), weights, 0.001), Independence(seq, 4, 0.001)} {
			for _, x := range []float64{got.Statistic, got.PValue} {
				if math.IsNaN(x) || math.IsInf(x, 0) || x < 0 {
					t.Fatalf("%s: statistic or p not a finite non-negative number: %+v", got.Name, got)
				}
			}
			if got.PValue > 1 || got.DF < 0 || (got.Applicable && got.DF == 0 && got.PValue != 0) {
				t.Fatalf("%s: %+v", got.Name, got)
			}
			if !got.Applicable && !got.Passed {
				t.Fatalf("%s: failed without being applicable: %+v", got.Name, got)
			}
			if got.Applicable && got.Passed != (got.PValue >= 0.001) {
				t.Fatalf("%s: passed disagrees with p: %+v", got.Name, got)
			}
		}
	})
}

// The new tests, calibrated the same way, where chi-square approximations
// are most at risk: many backends and few draws. 100 backends over 1000
// draws make a 10 000-cell pair table expecting 0.1 pair per cell; merged,
// the test must still reject about 5 % of fair samples, no more.
func TestManyBackendsFewDrawsAreCalibrated(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const samples, draws, backends = 2000, 1000, 100
	flat := make([]int, backends)
	for i := range flat {
		flat[i] = 1
	}
	uniRejects, indRejects, homRejects := 0, 0, 0
	for range samples {
		seq := drawSeq(rng, draws, flat)
		c := counts(seq, backends)
		// Two groups of 50 backends, tested for uniformity within each.
		if u := Uniformity([][]int{c[:50], c[50:]}, 0.05); !u.Applicable {
			t.Fatalf("1000 draws over 2×50 backends: %+v", u)
		} else if u.PValue < 0.05 {
			uniRejects++
		}
		ind := Independence(seq, backends, 0.05)
		if !ind.Applicable || ind.DF < 4 {
			t.Fatalf("1000 draws over 100 backends: %+v, want a merged table of several categories", ind)
		}
		if ind.PValue < 0.05 {
			indRejects++
		}
		other := counts(drawSeq(rng, draws, flat), backends)
		if Homogeneity(c, other, 0.05).PValue < 0.05 {
			homRejects++
		}
	}
	for name, rejects := range map[string]int{"uniformity": uniRejects, "independence": indRejects, "homogeneity": homRejects} {
		if rejects < 60 || rejects > 140 {
			t.Errorf("%s rejected %d of %d fair samples at 0.05, want about 100", name, rejects, samples)
		}
	}
}

// The merged table keeps its power: round-robin over 100 backends, 1000
// draws, fails with p far below any alpha.
func TestIndependenceCatchesRoundRobinOverManyBackends(t *testing.T) {
	seq := make([]int, 1000)
	for i := range seq {
		seq[i] = i % 100
	}
	if got := Independence(seq, 100, 0.001); !got.Applicable || got.PValue > 1e-20 {
		t.Errorf("round-robin over 100 backends: %+v", got)
	}
	if obs, exp := Repeats(seq, 100); obs != 0 || exp < 8 || exp > 10 {
		t.Errorf("repeats %d, expected %.1f; want 0 and about 9", obs, exp)
	}
}

func TestMissingBackends(t *testing.T) {
	// 300 draws over 3 backends missing 1: p ≤ 3·(2/3)^300.
	p, upTo := MissingBackends(2, 3, 300, 1e-6)
	if want := 3 * math.Pow(2.0/3, 300); math.Abs(p-want) > 1e-6*want {
		t.Errorf("p = %g, want %g", p, want)
	}
	// 3·(2/3)^n ≥ 1e-6 for n ≤ 36.
	if upTo != 36 {
		t.Errorf("plausible up to %d draws, want 36", upTo)
	}
	if p, _ := MissingBackends(2, 3, 3, 1e-6); p < 0.5 {
		t.Errorf("3 draws missing one of 3 backends is likely, got p = %g", p)
	}
	if p, _ := MissingBackends(3, 3, 10, 1e-6); p != 1 {
		t.Errorf("none missing: p = %g", p)
	}
}

func TestHomogeneitySeesANewBackend(t *testing.T) {
	before := []int{100, 100, 0, 0}
	after := []int{50, 50, 50, 50}
	if got := Homogeneity(before, after, 0.001); got.Passed || got.PValue > 1e-20 {
		t.Errorf("two pods become four: %+v", got)
	}
	if got := Homogeneity([]int{100, 100}, []int{103, 97}, 0.001); !got.Passed {
		t.Errorf("the same pods: %+v", got)
	}
}

func FuzzUniformityAndHomogeneity(f *testing.F) {
	f.Add([]byte{10, 20, 30, 0, 5}, uint8(2))
	f.Add([]byte{}, uint8(1))
	f.Fuzz(func(t *testing.T, raw []byte, split uint8) {
		c := make([]int, len(raw))
		for i, b := range raw {
			c[i] = int(b)
		}
		k := min(int(split), len(c))
		other := slices.Clone(c)
		slices.Reverse(other)
		for _, got := range []Test{Uniformity([][]int{c[:k], c[k:]}, 0.001), Homogeneity(c, other, 0.001)} {
			if math.IsNaN(got.PValue) || got.PValue < 0 || got.PValue > 1 || math.IsNaN(got.Statistic) || got.Statistic < 0 || got.DF < 0 {
				t.Fatalf("%s: %+v", got.Name, got)
			}
			if !got.Applicable && !got.Passed || got.Applicable && got.Passed != (got.PValue >= 0.001) {
				t.Fatalf("%s: %+v", got.Name, got)
			}
		}
	})
}
