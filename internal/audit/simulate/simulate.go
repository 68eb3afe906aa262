// Package simulate draws from seeded simulated balancers and judges the
// draws as the audit does: with the anytime-valid e-processes after every
// draw, with the fixed-n tests of `omikuji draw` once per n draws, and with
// the windowed tests of today's `--watch` once per window. The calibration
// test of this package and bench/sequential use it; nothing here ships in
// the omikuji binary.
package simulate

import (
	"math/rand/v2"

	"github.com/omikuji/omikuji/internal/audit"
)

// A Balancer picks the pod of each draw.
type Balancer interface {
	Next(rng *rand.Rand) int
}

// A Scenario is a system of pods in groups with what a user expects of
// it, and the balancer in front of it.
type Scenario struct {
	Name string
	// Expected are the expected weights per group; nil: every pod equally
	// likely (--expect uniform), each pod a group of its own.
	Expected []int
	PodGroup []int // each pod's group
	// KnowsPods says that the expectation states how many pods there are:
	// with Expected, that its weights are the groups' pod counts (omikuji's
	// catalogue, the default expectation); without, uniform:N with N the
	// number of pods.
	KnowsPods bool
	Balancer  func() Balancer
}

// Catalogue is omikuji's ten pods: 1/2/6/1 replicas of four fortunes,
// expected at 10/20/60/10 % by the catalogue's default expectation, which
// states the pods.
func catalogue(name string, balancer func() Balancer) Scenario {
	return Scenario{Name: name, Expected: []int{1, 2, 6, 1}, PodGroup: []int{0, 1, 1, 2, 2, 2, 2, 2, 2, 3}, KnowsPods: true, Balancer: balancer}
}

// weights is a catalogue scenario judged against the same weights given
// as --expect, which states no pods.
func weights(name string, balancer func() Balancer) Scenario {
	s := catalogue(name, balancer)
	s.KnowsPods = false
	return s
}

// uniform is ten pods, each its own group, expected equally often:
// --expect uniform:10 when knowsPods, else --expect uniform (which nine
// pods answering at random satisfy: no test can see a silent tenth).
func uniform(name string, knowsPods bool, balancer func() Balancer) Scenario {
	pods := make([]int, 10)
	for i := range pods {
		pods[i] = i
	}
	return Scenario{Name: name, PodGroup: pods, KnowsPods: knowsPods, Balancer: balancer}
}

// Fair is a random balancer over omikuji's ten pods, judged against the
// catalogue's default expectation: the null hypothesis of every test.
func Fair() Scenario {
	return catalogue("fair random over 10 pods", func() Balancer { return NewRandom(ones(10)) })
}

// Fairs are a random balancer over ten pods judged against each kind of
// expectation: the catalogue's (pods known), the same weights given with
// --expect (pods not known) and uniform:10.
func Fairs() []Scenario {
	fair := func() Balancer { return NewRandom(ones(10)) }
	return []Scenario{Fair(), weights("fair random over 10 pods, --expect given as weights", fair),
		uniform("fair random over 10 pods, --expect uniform:10", true, fair)}
}

// Options are the anytime-valid audit's options for the scenario.
func (s Scenario) Options(alpha float64) audit.AnytimeOptions {
	o := audit.AnytimeOptions{Alpha: alpha}
	if s.Expected == nil {
		if s.KnowsPods {
			o.Backends = len(s.PodGroup)
		}
		return o
	}
	for _, x := range s.Expected {
		o.Weights = append(o.Weights, float64(x))
	}
	if s.KnowsPods {
		o.GroupBackends = s.Expected
	}
	return o
}

// Faults are the power benchmark's scenarios.
func Faults() []Scenario {
	halfShare := ones(10)
	halfShare[3] = 0.5
	staleSmall := ones(10)
	staleSmall[3] = 0
	staleOnly := ones(10)
	staleOnly[9] = 0
	return []Scenario{
		catalogue("one pod of ten never drawn (misfortune's only pod)", func() Balancer { return NewRandom(staleOnly) }),
		catalogue("one pod of ten never drawn (one of small-fortune's six)", func() Balancer { return NewRandom(staleSmall) }),
		weights("the same, --expect given as weights (pods not known)", func() Balancer { return NewRandom(staleSmall) }),
		uniform("one pod of ten never drawn, --expect uniform:10", true, func() Balancer { return NewRandom(staleSmall) }),
		catalogue("one pod of six at half share", func() Balancer { return NewRandom(halfShare) }),
		catalogue("round-robin over ten pods", func() Balancer { return &RoundRobin{Pods: 10} }),
		{Name: "canary at 15 % where 10 % expected", Expected: []int{9, 1}, PodGroup: []int{0, 1},
			Balancer: func() Balancer { return NewRandom([]float64{85, 15}) }},
		catalogue("keep-alive sticking: a quarter of draws repeat the last pod", func() Balancer { return &Sticky{Random: NewRandom(ones(10)), Repeat: 0.25, last: -1} }),
	}
}

func ones(n int) []float64 {
	w := make([]float64, n)
	for i := range w {
		w[i] = 1
	}
	return w
}

// Random picks each pod with probability proportional to its weight,
// independently of every other draw.
type Random struct{ cumulative []float64 }

// NewRandom is a random balancer with the given pod weights.
func NewRandom(weights []float64) *Random {
	r := &Random{cumulative: make([]float64, len(weights))}
	sum := 0.0
	for i, w := range weights {
		sum += w
		r.cumulative[i] = sum
	}
	for i := range r.cumulative {
		r.cumulative[i] /= sum
	}
	return r
}

// Next draws a pod.
func (r *Random) Next(rng *rand.Rand) int {
	x := rng.Float64()
	for i, c := range r.cumulative {
		if x < c {
			return i
		}
	}
	return len(r.cumulative) - 1
}

// RoundRobin deals the pods out in turn, from a random first one.
type RoundRobin struct {
	Pods    int
	next    int
	started bool
}

// Next draws a pod.
func (r *RoundRobin) Next(rng *rand.Rand) int {
	if !r.started {
		r.next, r.started = rng.IntN(r.Pods), true
	}
	p := r.next
	r.next = (r.next + 1) % r.Pods
	return p
}

// Sticky repeats the last pod with probability Repeat, as a kept-alive
// connection does, and otherwise draws at random.
type Sticky struct {
	*Random
	Repeat float64
	last   int
}

// Next draws a pod.
func (s *Sticky) Next(rng *rand.Rand) int {
	if s.last < 0 || rng.Float64() >= s.Repeat {
		s.last = s.Random.Next(rng)
	}
	return s.last
}

// A Judge looks at each draw and says whether it alarms by then.
type Judge interface {
	Observe(pod int) (alarm bool)
}

// Run draws up to max draws from a fresh balancer of the scenario and
// returns the number of draws at the judge's first alarm, or 0 if none.
func Run(s Scenario, j Judge, max int, rng *rand.Rand) int {
	b := s.Balancer()
	for n := 1; n <= max; n++ {
		if j.Observe(b.Next(rng)) {
			return n
		}
	}
	return 0
}

// Anytime judges with the audit's anytime-valid tests after every draw;
// it alarms when any of them reaches 1/Alpha.
type Anytime struct {
	Alpha    float64
	Audit    *audit.Anytime
	podGroup []int
	number   []int // each pod's backend number in order of appearance, −1 before
	seen     int
}

// NewAnytime is an anytime-valid judge for the scenario's pods, with the
// audit's prior concentrations.
func NewAnytime(s Scenario, alpha float64) *Anytime {
	return NewAnytimeWith(s, alpha, 0, 0)
}

// NewAnytimeWith is an anytime-valid judge with other prior
// concentrations, to compare them (0: the audit's).
func NewAnytimeWith(s Scenario, alpha, fitConcentration, uniformConcentration float64) *Anytime {
	o := s.Options(alpha)
	o.FitConcentration, o.UniformConcentration = fitConcentration, uniformConcentration
	a := &Anytime{Alpha: alpha, podGroup: s.PodGroup, number: make([]int, len(s.PodGroup)), Audit: audit.NewAnytime(o)}
	for i := range a.number {
		a.number[i] = -1
	}
	return a
}

// Observe adds a draw of pod.
func (a *Anytime) Observe(pod int) bool {
	if a.number[pod] < 0 {
		a.number[pod] = a.seen
		a.seen++
	}
	a.Audit.Observe(a.podGroup[pod], a.number[pod])
	fit, uniform, independence := a.Audit.PValues()
	return min(fit, uniform, independence) <= a.Alpha
}

// Fixed judges every block of N draws with the chi-square tests of
// `omikuji draw -n N` (fit, uniformity, independence), each at Alpha; with
// Windowed it also compares each block's backends with the block before,
// as `--watch` does to notice that the odds changed. With a uniform
// expectation every pod that answered weighs one, and uniform:N also asks
// whether fewer than N answering is plausible.
type Fixed struct {
	N         int
	Alpha     float64
	Windowed  bool
	Expected  []int
	PodGroup  []int
	KnowsPods bool
	block     []int
	previous  []int // the previous block's draws per pod
}

// NewFixed judges blocks of n draws as `omikuji draw -n n` does.
func NewFixed(s Scenario, n int, alpha float64) *Fixed {
	return &Fixed{N: n, Alpha: alpha, Expected: s.Expected, PodGroup: s.PodGroup, KnowsPods: s.KnowsPods}
}

// NewWindowed judges windows of n draws as `--watch --window n` does.
func NewWindowed(s Scenario, n int, alpha float64) *Fixed {
	f := NewFixed(s, n, alpha)
	f.Windowed = true
	return f
}

// Observe adds a draw of pod.
func (f *Fixed) Observe(pod int) bool {
	f.block = append(f.block, pod)
	if len(f.block) < f.N {
		return false
	}
	pods := make([]int, len(f.PodGroup))
	for _, p := range f.block {
		pods[p]++
	}
	var groups, expected []int
	if f.Expected != nil {
		groups, expected = make([]int, len(f.Expected)), f.Expected
		for p, c := range pods {
			groups[f.PodGroup[p]] += c
		}
	}
	byGroup := make([][]int, len(f.Expected))
	seen := 0
	for p, c := range pods {
		if c == 0 {
			continue // the audit knows only the backends that answered
		}
		seen++
		if f.Expected == nil {
			groups, expected = append(groups, c), append(expected, 1)
		} else {
			byGroup[f.PodGroup[p]] = append(byGroup[f.PodGroup[p]], c)
		}
	}
	alarm := !audit.GoodnessOfFit(groups, expected, f.Alpha).Passed ||
		!audit.Uniformity(byGroup, f.Alpha).Passed ||
		!audit.Independence(f.block, len(f.PodGroup), f.Alpha).Passed
	if f.Expected == nil && f.KnowsPods && seen < len(f.PodGroup) {
		if p, _ := audit.MissingBackends(seen, len(f.PodGroup), f.N, f.Alpha); p < f.Alpha {
			alarm = true
		}
	}
	if f.Windowed && f.previous != nil && !audit.Homogeneity(f.previous, pods, f.Alpha).Passed {
		alarm = true
	}
	f.previous = pods
	f.block = f.block[:0]
	return alarm
}
