package audit

import (
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

// MinExpected is the smallest expected count a chi-square cell may have.
// Below it the chi-square approximation of the statistic's distribution is
// poor, so sparse cells are merged (see GoodnessOfFit and Independence).
const MinExpected = 5

// A Test is the outcome of one chi-square test. Statistic, DF and PValue are
// zero when the test is not applicable (too few draws to judge).
type Test struct {
	Name       string  `json:"name"`
	Applicable bool    `json:"applicable"`
	Statistic  float64 `json:"statistic"`
	DF         int     `json:"df"`
	PValue     float64 `json:"p_value"`
	Passed     bool    `json:"passed"` // true also when not applicable: nothing was shown wrong
	// NothingToTest says the test is not applicable whatever the number of
	// draws: a single group, a single backend per group, a single backend.
	NothingToTest bool   `json:"nothing_to_test,omitempty"`
	Note          string `json:"note,omitempty"`
}

// A cell pairs an observed count with the count expected under the null hypothesis.
type cell struct{ observed, expected float64 }

// mergeSparse merges the cells with the smallest expected counts into their
// next-smallest neighbour until every cell expects at least MinExpected (or
// one cell is left). Merging keeps the test valid: it asks the same question
// of coarser categories.
func mergeSparse(cells []cell) []cell {
	cells = slices.Clone(cells)
	byExpected := func(a, b cell) int {
		switch {
		case a.expected < b.expected:
			return -1
		case a.expected > b.expected:
			return 1
		}
		return 0
	}
	slices.SortStableFunc(cells, byExpected)
	for len(cells) > 1 && cells[0].expected < MinExpected {
		cells[1].observed += cells[0].observed
		cells[1].expected += cells[0].expected
		cells = cells[1:]
		slices.SortStableFunc(cells, byExpected)
	}
	return cells
}

// chiSquare computes the statistic over cells and its upper-tail p-value
// with df degrees of freedom.
func chiSquare(cells []cell, df int) (statistic, p float64) {
	obs := make([]float64, len(cells))
	exp := make([]float64, len(cells))
	for i, c := range cells {
		obs[i], exp[i] = c.observed, c.expected
	}
	statistic = stat.ChiSquare(obs, exp)
	return statistic, distuv.ChiSquared{K: float64(df)}.Survival(statistic)
}

// GoodnessOfFit tests whether observed counts follow the expected weights
// (same order, weights ≥ 0 with a positive sum).
//
// A fortune with weight 0 should never be drawn: if it is, the test fails
// with p = 0 (the statistic covers the other fortunes only, as the expected
// count 0 has no finite chi-square term). Sparse cells are merged as in
// mergeSparse; fewer than two cells left means there is nothing to test.
func GoodnessOfFit(observed, weights []int, alpha float64) Test {
	t := Test{Name: "chi-square goodness of fit", Passed: true}
	n, totalWeight, impossible := 0, 0, 0
	for i, o := range observed {
		n += o
		totalWeight += weights[i]
		if weights[i] == 0 {
			impossible += o
		}
	}
	if n == 0 || totalWeight == 0 {
		t.Note = "no successful draws"
		return t
	}
	var cells []cell
	for i, w := range weights {
		if w > 0 {
			cells = append(cells, cell{float64(observed[i]), float64(n) * float64(w) / float64(totalWeight)})
		}
	}
	t.NothingToTest = len(cells) < 2 && impossible == 0
	cells = mergeSparse(cells)
	if len(cells) >= 2 {
		t.Applicable = true
		t.DF = len(cells) - 1
		t.Statistic, t.PValue = chiSquare(cells, t.DF)
	}
	if impossible > 0 {
		t.Applicable = true
		t.PValue = 0
		t.Note = fmt.Sprintf("%d draws of fortunes expected never to come", impossible)
	} else if t.NothingToTest {
		t.Note = "only one group is expected: nothing to compare"
	} else if !t.Applicable {
		t.Note = fmt.Sprintf("too few draws: fewer than two groups expect %d or more", MinExpected)
	}
	t.Passed = !t.Applicable || t.PValue >= alpha
	return t
}

// Independence tests whether each draw is independent of the one before it:
// a chi-square test of independence on the table of consecutive pairs
// (seq[i], seq[i+1]). A balancer that cycles through its pods (round-robin)
// makes the next fortune predictable from the last one and fails it badly.
//
// seq holds category numbers in 0..k-1. Rare categories are merged, smallest
// first, until every cell of the table expects at least MinExpected pairs;
// categories that never open (or never close) a pair are left out. Fewer than
// two categories left means there is nothing to test.
func Independence(seq []int, k int, alpha float64) Test {
	t := Test{Name: "chi-square independence of consecutive draws", Passed: true}
	pairs := len(seq) - 1
	if pairs < 1 {
		t.Note = "fewer than two successful draws"
		return t
	}
	freq := make([]int, k)
	for _, c := range seq {
		freq[c]++
	}
	type bucket struct {
		members []int
		freq    int
	}
	var buckets []bucket
	for c, f := range freq {
		if f > 0 {
			buckets = append(buckets, bucket{[]int{c}, f})
		}
	}
	byFreq := func(a, b bucket) int { return a.freq - b.freq }
	slices.SortStableFunc(buckets, byFreq)
	// The sparsest cell pairs the rarest bucket with itself. Merge the two
	// rarest buckets while that cell expects too few pairs. Margins are
	// approximated by the frequencies in the whole sequence, which differ
	// from the row and column sums by at most one.
	for len(buckets) > 1 && float64(buckets[0].freq)*float64(buckets[0].freq)/float64(pairs) < MinExpected {
		buckets[1] = bucket{append(buckets[0].members, buckets[1].members...), buckets[0].freq + buckets[1].freq}
		buckets = buckets[1:]
		slices.SortStableFunc(buckets, byFreq)
	}
	groups := len(buckets)
	group := make([]int, k)
	for g, b := range buckets {
		for _, c := range b.members {
			group[c] = g
		}
	}
	if len(buckets) < 2 && len(buckets[0].members) == 1 {
		t.NothingToTest = true
		t.Note = "only one backend drawn: nothing to compare"
		return t
	}
	if groups < 2 {
		t.Note = fmt.Sprintf("too few draws: the rare backends merged into one category still expect fewer than %d pairs", MinExpected)
		return t
	}
	table := make([][]int, groups)
	for i := range table {
		table[i] = make([]int, groups)
	}
	rows, cols := make([]int, groups), make([]int, groups)
	for i := 0; i < pairs; i++ {
		a, b := group[seq[i]], group[seq[i+1]]
		table[a][b]++
		rows[a]++
		cols[b]++
	}
	var cells []cell
	usedRows, usedCols := 0, 0
	for a := range groups {
		if rows[a] > 0 {
			usedRows++
		}
	}
	for b := range groups {
		if cols[b] > 0 {
			usedCols++
		}
	}
	for a := range groups {
		for b := range groups {
			if rows[a] == 0 || cols[b] == 0 {
				continue
			}
			cells = append(cells, cell{float64(table[a][b]), float64(rows[a]) * float64(cols[b]) / float64(pairs)})
		}
	}
	t.DF = (usedRows - 1) * (usedCols - 1)
	if t.DF < 1 {
		t.DF = 0
		t.Note = "too few draws: a category only opens or only closes pairs"
		return t
	}
	t.Applicable = true
	t.Statistic, t.PValue = chiSquare(cells, t.DF)
	t.Passed = t.PValue >= alpha
	return t
}

// Uniformity tests whether the backends within each group share its draws
// equally, as kube-proxy promises for the pods behind a Service: a
// goodness-of-fit test per group against equal shares, sparse cells merged
// as in mergeSparse. Given the groups' totals the per-group statistics are
// independent, so their sum is tested on the sum of their degrees of
// freedom. counts[g] holds the draws of each backend of group g; groups with
// a single backend (or too few draws to merge into two cells) say nothing.
func Uniformity(counts [][]int, alpha float64) Test {
	t := Test{Name: "chi-square uniformity of backends within each group", Passed: true}
	var statistic float64
	t.NothingToTest = true
	for _, group := range counts {
		n := 0
		for _, c := range group {
			n += c
		}
		if len(group) < 2 || n == 0 {
			continue
		}
		t.NothingToTest = false
		cells := make([]cell, len(group))
		for i, c := range group {
			cells[i] = cell{float64(c), float64(n) / float64(len(group))}
		}
		cells = mergeSparse(cells)
		if len(cells) < 2 {
			continue
		}
		s, _ := chiSquare(cells, len(cells)-1)
		statistic += s
		t.DF += len(cells) - 1
	}
	if t.NothingToTest {
		t.Note = "every group has a single backend: nothing to compare"
		return t
	}
	if t.DF == 0 {
		t.Note = fmt.Sprintf("too few draws: no group has two backends with %d or more expected draws each", MinExpected)
		return t
	}
	t.Applicable = true
	t.Statistic = statistic
	t.PValue = distuv.ChiSquared{K: float64(t.DF)}.Survival(statistic)
	t.Passed = t.PValue >= alpha
	return t
}

// MissingBackends bounds the chance that n independent uniform draws over
// expected backends leave at least expected−seen of them out: by the union
// bound over which ones are missed, C(N, m)·(1 − m/N)ⁿ. It also returns the
// largest n at which that bound still reaches alpha: how few draws chance
// alone would need to miss that many.
func MissingBackends(seen, expected, n int, alpha float64) (p float64, plausibleUpTo int) {
	m := expected - seen
	if m <= 0 {
		return 1, 0
	}
	if m >= expected {
		return 0, 0 // nothing answered: not a question of chance
	}
	logChoose := lgamma(expected+1) - lgamma(m+1) - lgamma(expected-m+1)
	logMiss := math.Log1p(-float64(m) / float64(expected))
	p = math.Exp(min(0, logChoose+float64(n)*logMiss))
	plausibleUpTo = max(0, int(math.Floor((math.Log(alpha)-logChoose)/logMiss)))
	return p, plausibleUpTo
}

func lgamma(x int) float64 {
	v, _ := math.Lgamma(float64(x))
	return v
}

// Repeats counts consecutive draws from the same backend and what
// independence expects: given the counts f of each backend, a random order
// of the n draws repeats Σ f(f−1)/n times on average over n−1 pairs.
// Round-robin repeats far less, pinning and affinity far more.
func Repeats(seq []int, k int) (observed int, expected float64) {
	if len(seq) < 2 {
		return 0, 0
	}
	freq := make([]int, k)
	for i, c := range seq {
		freq[c]++
		if i > 0 && seq[i-1] == c {
			observed++
		}
	}
	for _, f := range freq {
		expected += float64(f) * float64(f-1)
	}
	return observed, expected / float64(len(seq))
}

// Homogeneity tests whether two samples of counts over the same categories
// (backends) come from the same shares: a chi-square test on the 2×k table.
// Categories are merged, rarest first, until every cell expects at least
// MinExpected; a category seen in only one sample stays a cell of its own
// when it is common enough, which is how a new or vanished backend shows.
func Homogeneity(a, b []int, alpha float64) Test {
	t := Test{Name: "chi-square homogeneity of two windows", Passed: true}
	na, nb := 0, 0
	type column struct{ a, b int }
	var cols []column
	for i := range a {
		if a[i]+b[i] > 0 {
			cols = append(cols, column{a[i], b[i]})
		}
		na += a[i]
		nb += b[i]
	}
	n := na + nb
	if na == 0 || nb == 0 {
		t.Note = "a window without successful draws"
		return t
	}
	small := min(na, nb)
	slices.SortStableFunc(cols, func(x, y column) int { return (x.a + x.b) - (y.a + y.b) })
	// The sparsest cell is the smaller sample's share of the rarest column.
	for len(cols) > 1 && float64(cols[0].a+cols[0].b)*float64(small)/float64(n) < MinExpected {
		cols[1] = column{cols[0].a + cols[1].a, cols[0].b + cols[1].b}
		cols = cols[1:]
		slices.SortStableFunc(cols, func(x, y column) int { return (x.a + x.b) - (y.a + y.b) })
	}
	if len(cols) < 2 {
		t.Note = "too few draws to compare the windows"
		return t
	}
	var cells []cell
	for _, c := range cols {
		total := float64(c.a + c.b)
		cells = append(cells, cell{float64(c.a), total * float64(na) / float64(n)}, cell{float64(c.b), total * float64(nb) / float64(n)})
	}
	t.Applicable = true
	t.DF = len(cols) - 1
	t.Statistic, t.PValue = chiSquare(cells, t.DF)
	t.Passed = t.PValue >= alpha
	return t
}

// formatP prints a p-value briefly, "p = 0.012", or with rel "≤" as an
// upper bound, "p ≤ 0.012"; underflow to 0 is shown as a bound either way.
func formatP(p float64, rel string) string {
	if p == 0 {
		return "p < 1e-300"
	}
	return fmt.Sprintf("p %s %.3g", rel, p)
}
