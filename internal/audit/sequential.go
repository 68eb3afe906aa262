package audit

// Anytime-valid versions of the three tests: e-processes that may be
// looked at after every draw and stopped whenever one likes.
//
// An e-process E_t is a nonnegative process whose expectation under the
// null hypothesis stays at most 1 at every stopping time. By Ville's
// inequality a true null drives it to 1/alpha or above, ever, with
// probability at most alpha; so "reject once max E_t ≥ 1/alpha" is a test
// at level alpha however often it is looked at, and 1/max_{s≤t} E_s is a
// p-value that stays valid at any stopping time (the always-valid p-value).
//
// Each e-process here is a likelihood ratio: a predictable forecast of the
// next draw (it uses only the draws before it) against the null's
// probability of that draw. It updates in O(1) per draw, with counts only.
//
//   - Fit: group shares against expected weights. The forecast is the
//     posterior predictive of a Dirichlet prior centred on the expected
//     shares, concentration FitConcentration: the Dirichlet-multinomial
//     Bayes factor of Lindon & Malek, "Anytime-Valid Inference for
//     Multinomial Count Data" (NeurIPS 2022).
//   - Uniformity: the backends within each group against equal shares,
//     given which group each draw came from. Each group has its own
//     symmetric Dirichlet forecast over the backends seen in it so far, or
//     over all of them when the expectation says how many there are.
//   - Independence: consecutive draws against "independent, identically
//     distributed, with unknown shares". The forecast is a first-order
//     Markov chain fitted on the draws so far (Krichevsky–Trofimov: each
//     transition count plus 1/2); the null's probability is its maximum
//     likelihood on all draws so far, which makes the ratio an e-process by
//     universal inference (Wasserman, Ramdas & Balakrishnan, PNAS 2020).
//
// The prior's concentration c acts as c pseudo-draws at the expected
// shares. Evidence accrues only once the real draws outweigh it, so a
// large c is slow on gross faults; a small c spreads the prior so thin
// that a small deviation costs an Occam penalty of about (k−1)/2·log(n/c)
// before it counts. The best c for a deviation of Kullback–Leibler
// divergence D per draw is about (k−1)/(2D). The defaults below were
// chosen from the power benchmark (bench/sequential): they aim at the
// subtle faults (a canary at 15 % instead of 10 %: D ≈ 0.012; one pod of
// six at half share), since gross faults are found within a few hundred
// draws at any c.
//
// Draws that the null says cannot happen (a group expected never to come)
// make the fit's e-value infinite: under the null they have probability 0.

import "math"

// Prior concentrations, in pseudo-draws; see the package comment above.
const (
	// FitConcentration is the Dirichlet prior's total weight for the fit,
	// spread over the groups in proportion to their expected shares.
	FitConcentration = 100
	// UniformConcentration is the symmetric Dirichlet prior's weight per
	// backend for the uniformity of backends within a group.
	UniformConcentration = 16
	// markovSmoothing is added to every transition count of the
	// independence test's Markov forecast.
	markovSmoothing = 0.5
)

// An EProcess is a running e-value on the log scale, with its running
// maximum.
type EProcess struct {
	logE, maxLogE float64
}

// LogE is the log of the current e-value.
func (e *EProcess) LogE() float64 { return e.logE }

// MaxLogE is the log of the largest e-value so far (at least 0: E_0 = 1).
func (e *EProcess) MaxLogE() float64 { return e.maxLogE }

// PValue is the always-valid p-value, 1 / the largest e-value so far.
func (e *EProcess) PValue() float64 { return math.Exp(-e.maxLogE) }

// Rejects says whether the e-value has ever reached 1/alpha.
func (e *EProcess) Rejects(alpha float64) bool { return e.maxLogE >= -math.Log(alpha) }

func (e *EProcess) set(logE float64) {
	e.logE = logE
	e.maxLogE = max(e.maxLogE, logE)
}

// SequentialFit is the anytime-valid test of group shares against
// expected weights: the Dirichlet-multinomial mixture e-process.
type SequentialFit struct {
	EProcess
	prior    []float64 // Dirichlet parameters, concentration · expected share
	logShare []float64 // log expected share
	priorSum float64
	counts   []int // draws per group, also of groups expected never to come
	n        int   // draws of groups with a positive weight
	all      int   // all draws
}

// NewSequentialFit starts the fit's e-process for groups with the given
// weights (≥ 0, positive sum) and prior concentration (> 0).
func NewSequentialFit(weights []float64, concentration float64) *SequentialFit {
	total := 0.0
	for _, w := range weights {
		total += w
	}
	f := &SequentialFit{prior: make([]float64, len(weights)), logShare: make([]float64, len(weights)), counts: make([]int, len(weights))}
	for i, w := range weights {
		f.prior[i] = concentration * w / total
		f.logShare[i] = math.Log(w / total)
	}
	f.priorSum = concentration
	return f
}

// Observe adds a draw of group g (≥ 0; a group beyond the weights weighs 0).
func (f *SequentialFit) Observe(g int) {
	for g >= len(f.counts) {
		f.counts = append(f.counts, 0)
	}
	f.all++
	if g >= len(f.prior) || f.prior[g] == 0 {
		f.counts[g]++
		f.set(math.Inf(1)) // impossible under the null
		return
	}
	// The Pólya urn's predictive probability of g over the null's.
	f.set(f.logE + math.Log((f.prior[g]+float64(f.counts[g]))/(f.priorSum+float64(f.n))) - f.logShare[g])
	f.counts[g]++
	f.n++
}

// Counts are the draws per group so far (do not modify).
func (f *SequentialFit) Counts() []int { return f.counts }

// Draws is the number of draws observed.
func (f *SequentialFit) Draws() int { return f.all }

// An Interval is a confidence interval for a share, 0..1.
type Interval struct {
	Low  float64 `json:"low"`
	High float64 `json:"high"`
}

// HalfWidth is half the interval's width.
func (i Interval) HalfWidth() float64 { return (i.High - i.Low) / 2 }

// Intervals are time-uniform confidence sequences for every group's share
// of all draws (groups beyond the weights included), simultaneous at
// confidence 1−alpha: the chance that any share ever leaves its interval,
// at any draw, is at most alpha. Each is a Beta-binomial mixture confidence
// sequence at alpha/k (the union bound over the k groups), with a Beta
// prior centred on the group's expected share; concentration sets where it
// is tightest (see ShareConcentration).
func (f *SequentialFit) Intervals(alpha, concentration float64) []Interval {
	out := make([]Interval, len(f.counts))
	each := alpha / float64(len(f.counts))
	for g, c := range f.counts {
		share := 0.0
		if g < len(f.logShare) {
			share = math.Exp(f.logShare[g])
		}
		out[g] = BetaMixtureInterval(c, f.all, share, concentration, each)
	}
	return out
}

// ShareConcentration is the Beta prior's concentration that makes the
// confidence sequence of a share near p tightest when it has narrowed to
// ±precision: a prior whose standard deviation is the precision itself
// (the mixture's width at n draws is about √(p(1−p)(2·log(1/α) +
// log(1+n/c))/n), minimised near n where n/c ≈ 2·log(1/α)).
func ShareConcentration(p, precision float64) float64 {
	p = min(max(p, 0.01), 0.99)
	return max(1, p*(1-p)/(precision*precision))
}

// BetaMixtureInterval is the time-uniform confidence sequence, at level
// alpha, for a share after k of n draws: the shares p at which the
// Beta(c·m, c·(1−m)) mixture of likelihood ratios against p, a test
// martingale if p is the true share, is still below 1/alpha. m is the
// prior's mean (clamped into [0.5/c, 1−0.5/c]) and c its concentration.
func BetaMixtureInterval(k, n int, m, c, alpha float64) Interval {
	if n == 0 {
		return Interval{0, 1}
	}
	m = min(max(m, 0.5/c), 1-0.5/c)
	a, b := c*m, c*(1-m)
	s, f := float64(k), float64(n-k)
	mix := lbeta(a+s, b+f) - lbeta(a, b)
	bound := -math.Log(alpha)
	logM := func(p float64) float64 { return mix - s*math.Log(p) - f*math.Log1p(-p) }
	// log M is convex in p, at most 0 at k/n (a mixture never beats the
	// maximum likelihood): the set below the bound is an interval around it.
	hat := s / float64(n)
	in := Interval{0, 1}
	if k > 0 {
		in.Low = bisect(logM, bound, 0, hat)
	}
	if k < n {
		in.High = bisect(logM, bound, 1, hat)
	}
	return in
}

// bisect finds where the convex g crosses bound between out (g ≥ bound, or
// beyond the domain) and in (g < bound). If every point it tried was below
// the bound the crossing lies closer to out than 64 halvings reach, and it
// returns out: the interval errs wide, never narrow.
func bisect(g func(float64) float64, bound, out, in float64) float64 {
	start := out
	for range 64 {
		mid := (out + in) / 2
		if mid == out || mid == in {
			break
		}
		if g(mid) >= bound {
			out = mid
		} else {
			in = mid
		}
	}
	if out == start {
		return start
	}
	return in
}

func lbeta(a, b float64) float64 {
	x, _ := math.Lgamma(a)
	y, _ := math.Lgamma(b)
	z, _ := math.Lgamma(a + b)
	return x + y - z
}

// SequentialUniformity is the anytime-valid test that the backends within
// each group share its draws equally.
//
// The null says only: given the draws so far and the group of the next
// draw, its backend is equally likely to be any of the group's backends.
// It says nothing of the groups' shares, so the fit can be wrong and this
// test still valid. Since the group's backends are not known in advance, a
// draw counts only if its backend was seen in the group before: given
// that, the null makes it uniform over those seen. The draw's factor is
// the forecast's probability of its backend over 1/seen, whose
// expectation under the null, given everything before it and its group,
// is 1. One factor per draw, whichever group it is in, so the product over
// all draws of all groups is a test martingale: the groups' e-processes are
// multiplied, which is valid here because they never move at the same
// draw and each has conditional expectation 1 when it moves.
//
// When a group's number of backends k is known in advance (Expect), the
// null says more: each of its k backends, answered yet or not, has
// probability 1/k. Then every draw of the group counts, its backend's
// first draw too: the forecast is over all k backends, those not seen yet
// with a count of 0, against 1/k. A backend that never answers keeps its
// forecast at the prior while the others' grow, so the e-value grows by
// about log(k/(k−1)) per draw of the group: a silent backend is found. A
// backend beyond the k has probability 0 under the null: one draw of it
// makes the e-value infinite.
type SequentialUniformity struct {
	EProcess
	prior  float64
	groups []uniformGroup
}

type uniformGroup struct {
	counts []int32 // draws per backend number; 0: not seen in this group
	seen   int     // backends seen in the group
	n      int     // their draws
	want   int     // backends the group has, when known; 0: not known
}

// NewSequentialUniformity starts the uniformity e-process with a
// symmetric Dirichlet prior of the given weight per backend (> 0).
func NewSequentialUniformity(concentration float64) *SequentialUniformity {
	return &SequentialUniformity{prior: concentration}
}

// Expect says that group g (≥ 0) has k backends (≥ 1), before its first
// draw.
func (u *SequentialUniformity) Expect(g, k int) {
	u.group(g).want = k
}

func (u *SequentialUniformity) group(g int) *uniformGroup {
	for g >= len(u.groups) {
		u.groups = append(u.groups, uniformGroup{})
	}
	return &u.groups[g]
}

// Observe adds a draw of backend b (a number ≥ 0) in group g (≥ 0).
func (u *SequentialUniformity) Observe(g, b int) {
	grp := u.group(g)
	for b >= len(grp.counts) {
		grp.counts = append(grp.counts, 0)
	}
	c := grp.counts[b]
	switch {
	case grp.want > 0 && c == 0 && grp.seen == grp.want:
		u.set(math.Inf(1)) // one backend more than the group has
		grp.seen++
	case grp.want > 0:
		// Forecast (prior + c_b)/(k·prior + n) against 1/k; c_b = 0 for
		// each of the k − seen backends not seen yet.
		k := float64(grp.want)
		u.set(u.logE + math.Log((u.prior+float64(c))*k/(k*u.prior+float64(grp.n))))
		if c == 0 {
			grp.seen++
		}
	case c > 0:
		// Forecast (prior + c_b)/(seen·prior + n) against 1/seen.
		seen := float64(grp.seen)
		u.set(u.logE + math.Log((u.prior+float64(c))*seen/(seen*u.prior+float64(grp.n))))
	default:
		grp.seen++
	}
	grp.counts[b]++
	grp.n++
}

// SequentialIndependence is the anytime-valid test that consecutive draws
// are independent with fixed (unknown) shares.
//
// Its e-value is the likelihood of the draws under an alternative fitted
// as they come (each forecast uses only the draws before it) over their
// maximum likelihood under independence. The maximum is at least the
// likelihood under the true shares, so the e-value is at most a test
// martingale: an e-process (universal inference).
//
// The alternative is the average of two forecasts, itself a forecast:
//   - a first-order Markov chain: the next backend given the last, from
//     the transitions counted so far (each plus 1/2). Round-robin makes
//     the next backend predictable from the last: this finds it within a
//     few cycles.
//   - stay or move: the last backend again with the rate of repeats so
//     far, otherwise another in proportion to its draws. Two numbers to
//     learn instead of k², so it finds keep-alive pinning (too many
//     repeats) and cycling (too few) after far fewer draws than the chain
//     when there are many backends.
//
// As with uniformity, backends are not known in advance: only draws of a
// backend seen before count, and the null's maximum likelihood is taken
// given that (shares among the backends seen). Whenever a new backend
// appears the set changes, so the draws are cut into epochs, one per set
// of backends seen; the product of the epochs' separate maxima bounds the
// maximum of their product. Epochs end when the last backend has shown
// itself, within a few dozen draws of ten backends.
type SequentialIndependence struct {
	EProcess
	prev    int       // the previous draw's backend; −1 before the first
	next    [][]int32 // transitions counted from each backend to each
	rows    []int32   // transitions counted from each backend
	total   []int32   // draws per backend; its length: backends seen
	draws   int       // all draws
	pairs   int       // transitions counted
	repeats int       // of them, the same backend twice
	markov  float64   // log forecast likelihoods of the counted draws
	stay    float64
	// The null's maximum log likelihood: the finished epochs', and the
	// current epoch's from its counts.
	frozen float64
	counts []int32   // draws per backend in the current epoch
	cLogC  []float64 // c·log c of counts
	sumCLC float64   // Σ c·log c over the current epoch
	n      int       // draws in the current epoch
}

// NewSequentialIndependence starts the independence e-process.
func NewSequentialIndependence() *SequentialIndependence {
	return &SequentialIndependence{prev: -1}
}

// Observe adds a draw of backend b. Backends are numbered 0, 1, 2, … in
// the order they first appear: b is at most the number of backends seen.
func (s *SequentialIndependence) Observe(b int) {
	seen := len(s.total)
	if b >= seen { // a new backend: a new epoch
		s.frozen += s.epochLogLikelihood()
		s.sumCLC, s.n = 0, 0
		clear(s.counts)
		clear(s.cLogC)
		for b >= len(s.total) {
			s.total = append(s.total, 0)
			s.counts = append(s.counts, 0)
			s.cLogC = append(s.cLogC, 0)
			s.next = append(s.next, nil)
			s.rows = append(s.rows, 0)
		}
	} else if a := s.prev; a >= 0 {
		k := float64(seen)
		var t int32
		if b < len(s.next[a]) {
			t = s.next[a][b]
		}
		s.markov += math.Log((float64(t) + markovSmoothing) / (float64(s.rows[a]) + markovSmoothing*k))
		repeat := (float64(s.repeats) + markovSmoothing) / (float64(s.pairs) + 2*markovSmoothing)
		if b == a {
			s.stay += math.Log(repeat)
		} else {
			// Another backend in proportion to its draws (each plus 1/2).
			share := func(x int) float64 {
				return (float64(s.total[x]) + markovSmoothing) / (float64(s.draws) + markovSmoothing*k)
			}
			s.stay += math.Log((1 - repeat) * share(b) / (1 - share(a)))
		}
		c := float64(s.counts[b]) + 1
		clc := c * math.Log(c)
		s.sumCLC += clc - s.cLogC[b]
		s.cLogC[b] = clc
		s.counts[b]++
		s.n++
		// log of the average of the two forecasts' likelihoods, over the
		// null's maximum likelihood.
		hi, lo := max(s.markov, s.stay), min(s.markov, s.stay)
		s.set(hi + math.Log1p(math.Exp(lo-hi)) - math.Ln2 - s.frozen - s.epochLogLikelihood())
	}
	if a := s.prev; a >= 0 {
		row := s.next[a]
		for b >= len(row) {
			row = append(row, 0)
		}
		row[b]++
		s.next[a] = row
		s.rows[a]++
		s.pairs++
		if a == b {
			s.repeats++
		}
	}
	s.total[b]++
	s.draws++
	s.prev = b
}

// epochLogLikelihood is the current epoch's maximum log likelihood under
// independence: Σ c·log(c/n) over its counts c.
func (s *SequentialIndependence) epochLogLikelihood() float64 {
	if s.n == 0 {
		return 0
	}
	n := float64(s.n)
	return s.sumCLC - n*math.Log(n)
}
