package audit

import (
	"fmt"
	"math"
)

// An Anytime audit runs the three e-processes of sequential.go on a stream
// of successful draws and says what they show: always-valid p-values and
// confidence sequences for the group shares. It is what `--watch`,
// `--until decided` and `--precision` judge by.
type Anytime struct {
	alpha        float64
	uniformMode  bool // every backend equally likely: the fit is uniformity over all backends
	expected     []float64
	concentrate  []float64 // each share's confidence-sequence prior concentration
	fit          *SequentialFit
	all          *SequentialUniformity // the fit in uniform mode
	uniform      *SequentialUniformity
	independence *SequentialIndependence
	groups       []int // draws per group, also in uniform mode
	draws        int
}

// AnytimeOptions say what an Anytime audit expects.
type AnytimeOptions struct {
	// Weights are the expected weights per group, or nil when every
	// backend is expected equally often (uniform).
	Weights []float64
	Alpha   float64
	// Precision is the confidence sequences' target half-width (0.01: ±1
	// point); 0 when none is asked for. With Planned draws it sets the
	// sequences' priors (see ShareConcentration).
	Precision float64
	// Planned is how many draws are expected, when no precision is asked
	// for: the sequences are made tightest there. 0: 10 000.
	Planned int
	// GroupBackends are how many backends each group has (in the order of
	// Weights), when the expectation says so (omikuji's catalogue: its pod
	// counts); 0 or missing: not known. A group's uniformity then counts
	// its backends that have not answered yet.
	GroupBackends []int
	// Backends is how many backends there are in all with nil Weights
	// (uniform:N), or 0 when not known. The fit then counts the backends
	// that have not answered yet.
	Backends int
	// The priors' concentrations; 0: FitConcentration and
	// UniformConcentration.
	FitConcentration, UniformConcentration float64
}

// NewAnytime starts an anytime-valid audit.
func NewAnytime(o AnytimeOptions) *Anytime {
	fitC, uniformC := o.FitConcentration, o.UniformConcentration
	if fitC <= 0 {
		fitC = FitConcentration
	}
	if uniformC <= 0 {
		uniformC = UniformConcentration
	}
	a := &Anytime{alpha: o.Alpha, uniformMode: o.Weights == nil, uniform: NewSequentialUniformity(uniformC),
		independence: NewSequentialIndependence()}
	for g, k := range o.GroupBackends {
		if k > 0 {
			a.uniform.Expect(g, k)
		}
	}
	if a.uniformMode {
		a.all = NewSequentialUniformity(uniformC)
		if o.Backends > 0 {
			a.all.Expect(0, o.Backends)
		}
	} else {
		total := 0.0
		for _, w := range o.Weights {
			total += w
		}
		a.fit = NewSequentialFit(o.Weights, fitC)
		for _, w := range o.Weights {
			a.expected = append(a.expected, w/total)
		}
		planned := o.Planned
		if planned <= 0 {
			planned = 10_000
		}
		for _, p := range a.expected {
			precision := o.Precision
			if precision <= 0 {
				// The half-width a share near p reaches after planned draws.
				k := float64(max(2, len(o.Weights)))
				precision = math.Sqrt(max(p*(1-p), 0.01) * 2 * math.Log(k/o.Alpha) / float64(planned))
			}
			a.concentrate = append(a.concentrate, ShareConcentration(p, precision))
		}
	}
	return a
}

// ObserveUnexpected adds a successful draw of a backend the expectation
// does not list (uniform:NAME,...): a draw of probability 0 under it, so
// the fit rejects outright.
func (a *Anytime) ObserveUnexpected(g, b int) {
	a.Observe(g, b)
	if a.uniformMode {
		a.all.set(math.Inf(1))
	} else {
		a.fit.set(math.Inf(1))
	}
}

// Observe adds a successful draw of backend number b (0, 1, 2, … in the
// order backends first answered) in group g (the index of its row).
func (a *Anytime) Observe(g, b int) {
	a.draws++
	for g >= len(a.groups) {
		a.groups = append(a.groups, 0)
	}
	a.groups[g]++
	if a.uniformMode {
		a.all.Observe(0, b)
	} else {
		a.fit.Observe(g)
	}
	a.uniform.Observe(g, b)
	a.independence.Observe(b)
}

// Draws is the number of draws observed.
func (a *Anytime) Draws() int { return a.draws }

// PValues are the always-valid p-values of fit, uniformity and
// independence: cheap enough to ask after every draw.
func (a *Anytime) PValues() (fitP, uniformP, independenceP float64) {
	if a.uniformMode {
		fitP = a.all.PValue()
	} else {
		fitP = a.fit.PValue()
	}
	return fitP, a.uniform.PValue(), a.independence.PValue()
}

// An AnytimeTest is one anytime-valid test as reported.
type AnytimeTest struct {
	Name string `json:"name"`
	// PValue is the always-valid p-value: valid whenever the draws stop,
	// and however often it was looked at.
	PValue   float64 `json:"p_value"`
	Rejected bool    `json:"rejected"` // PValue ≤ alpha: the test found a fault
	// Log10E is the current e-value, as a power of ten (capped at ±300).
	Log10E float64 `json:"log10_e_value"`
}

// A ShareInterval is one group's time-uniform confidence sequence.
type ShareInterval struct {
	ID       string  `json:"id"` // the group's, as in the report's rows
	Expected float64 `json:"expected_share"`
	Observed float64 `json:"observed_share"`
	Low      float64 `json:"low"`
	High     float64 `json:"high"`
}

// An AnytimeResult is what the anytime-valid tests show after Draws.
type AnytimeResult struct {
	Draws        int         `json:"draws"`
	Fit          AnytimeTest `json:"fit"`
	Uniformity   AnytimeTest `json:"uniformity"`
	Independence AnytimeTest `json:"independence"`
	// Shares are the groups' confidence sequences, simultaneous at
	// Confidence over every group and every draw; none in uniform mode.
	Shares     []ShareInterval `json:"shares,omitempty"`
	Confidence float64         `json:"confidence"`
}

func anytimeTest(name string, e *EProcess, alpha float64) AnytimeTest {
	return AnytimeTest{Name: name, PValue: e.PValue(), Rejected: e.Rejects(alpha), Log10E: max(-300, min(300, e.LogE()/math.Ln10))}
}

// Result is what the tests show now.
func (a *Anytime) Result() AnytimeResult {
	r := AnytimeResult{Draws: a.draws, Confidence: 1 - a.alpha,
		Uniformity:   anytimeTest("anytime-valid uniformity of backends within each group", &a.uniform.EProcess, a.alpha),
		Independence: anytimeTest("anytime-valid independence of consecutive draws", &a.independence.EProcess, a.alpha)}
	if a.uniformMode {
		r.Fit = anytimeTest("anytime-valid fit: every backend equally likely", &a.all.EProcess, a.alpha)
		return r
	}
	r.Fit = anytimeTest("anytime-valid fit of the group shares", &a.fit.EProcess, a.alpha)
	counts := a.fit.Counts()
	each := a.alpha / float64(max(1, len(counts)))
	for g, c := range counts {
		s := ShareInterval{}
		conc := 1.0
		if g < len(a.expected) {
			s.Expected, conc = a.expected[g], a.concentrate[g]
		}
		if a.draws > 0 {
			s.Observed = float64(c) / float64(a.draws)
		}
		in := BetaMixtureInterval(c, a.draws, s.Expected, conc, each)
		s.Low, s.High = in.Low, in.High
		r.Shares = append(r.Shares, s)
	}
	return r
}

// Decided says whether a deciding test has found a fault: fit, uniform or
// independence as named in tests (nil: all).
func (r AnytimeResult) Decided(tests []string) bool {
	return (decides("fit", tests) && r.Fit.Rejected) || (decides("uniform", tests) && r.Uniformity.Rejected) ||
		(decides("independence", tests) && r.Independence.Rejected)
}

// decides says whether the test called name decides, by tests (nil: all).
func decides(name string, tests []string) bool {
	if tests == nil {
		return true
	}
	for _, t := range tests {
		if t == name {
			return true
		}
	}
	return false
}

// Within says whether every share's confidence sequence lies within
// ±precision of its expected share: the guarantee `--precision` gives.
func (r AnytimeResult) Within(precision float64) bool {
	if len(r.Shares) == 0 {
		return false
	}
	for _, s := range r.Shares {
		if s.Low < s.Expected-precision || s.High > s.Expected+precision {
			return false
		}
	}
	return true
}

// Narrow says whether every share's confidence sequence is narrower than
// ±precision: the shares are known that well, within or not.
func (r AnytimeResult) Narrow(precision float64) bool {
	if len(r.Shares) == 0 {
		return false
	}
	for _, s := range r.Shares {
		if (s.High-s.Low)/2 > precision {
			return false
		}
	}
	return true
}

// Replay runs an Anytime audit over a finished sample's draws in the order
// they started: seq holds an index into the backends for each draw, or a
// negative number for a failed one; groupOf gives each backend's group
// index, and weighs whether it is expected at all (nil: every one is; see
// ObserveUnexpected). It is what a report shows beside its fixed-n tests.
func Replay(o AnytimeOptions, seq []int32, groupOf []int, weighs []bool) AnytimeResult {
	a := NewAnytime(o)
	number := make([]int, len(groupOf))
	for i := range number {
		number[i] = -1
	}
	seen := 0
	for _, b := range seq {
		if b < 0 {
			continue
		}
		if number[b] < 0 {
			number[b], seen = seen, seen+1
		}
		if weighs != nil && !weighs[b] {
			a.ObserveUnexpected(groupOf[b], number[b])
		} else {
			a.Observe(groupOf[b], number[b])
		}
	}
	return a.Result()
}

// points says a share's half-width in percentage points: "1 point",
// "0.5 points".
func points(share float64) string {
	if p := 100 * share; p != 1 {
		return fmt.Sprintf("%g points", p)
	}
	return "1 point"
}
