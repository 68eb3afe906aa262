package audit

import (
	"fmt"
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
	Note       string  `json:"note,omitempty"`
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
	} else if !t.Applicable {
		t.Note = fmt.Sprintf("too few draws: fewer than two groups of fortunes expect %d or more", MinExpected)
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
	if groups < 2 {
		t.Note = "only one fortune (or group of rare fortunes) drawn: nothing to compare"
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
		t.Note = "only one fortune (or group of rare fortunes) drawn: nothing to compare"
		return t
	}
	t.Applicable = true
	t.Statistic, t.PValue = chiSquare(cells, t.DF)
	t.Passed = t.PValue >= alpha
	return t
}
