package audit

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// The measure stage: a sample's counts against the Model, rows per group
// and per backend, and the three tests. The verdict comes after.

// Verdicts, from best to worst.
const (
	Consistent   = "consistent"   // every deciding test passes
	Inconclusive = "inconclusive" // too few draws for a deciding test; nothing shown wrong
	Inconsistent = "inconsistent" // a deciding test failed at Alpha
	Unreachable  = "unreachable"  // no draw succeeded
)

// An Audit is everything that says how to judge a sample.
type Audit struct {
	Options
	Group  GroupSpec
	Expect Expectation // zero: the default of the backend kind (NewModel)
	Alpha  float64
	Tests  []string // the tests that decide the verdict; nil: all
	// Until (UntilDecided) and Precision make DrawUntil stop early, and
	// the anytime-valid tests decide the verdict (see until.go).
	Until     string
	Precision float64
}

// A Report is the audit of a sample: what --json prints. Its fields are the
// stable schema documented in docs/draw.md. For omikuji's backend the groups
// are the fortunes and the backends pods; the field names keep those words.
type Report struct {
	URL             string            `json:"url"`
	Requested       int               `json:"draws_requested"`
	Drawn           int               `json:"draws"` // finished: succeeded + failed
	Succeeded       int               `json:"succeeded"`
	Failed          int               `json:"failed"`
	Concurrency     int               `json:"concurrency"`
	KeepAlive       bool              `json:"keep_alive"`
	Alpha           float64           `json:"alpha"`
	BackendSpec     string            `json:"backend"`
	GroupSpec       string            `json:"group"`
	Expect          string            `json:"expect"`
	Tests           []string          `json:"tests"`
	Stopped         string            `json:"stopped,omitempty"`
	Groups          []Row             `json:"fortunes"` // one per group; the JSON keeps the word from when groups were always fortunes
	Backends        []BackendRow      `json:"backends"`
	BackendsSeen    int               `json:"backends_seen"`
	BackendsWanted  int               `json:"backends_expected,omitempty"`
	BackendsCapped  bool              `json:"backends_capped"`
	Failures        map[string]int    `json:"failures"`
	FailureExamples map[string]string `json:"failure_examples"`
	GoodnessOfFit   Test              `json:"goodness_of_fit"`
	Uniformity      Test              `json:"uniformity"`
	Independence    Test              `json:"independence"`
	Repeats         int               `json:"repeats"`
	RepeatsExpected float64           `json:"repeats_expected"`
	Verdict         string            `json:"verdict"`
	Pass            bool              `json:"pass"`
	Summary         string            `json:"summary"`
	LikelyCauses    []string          `json:"likely_causes"`
	// FortuneGroups says that the groups are omikuji's fortunes.
	FortuneGroups bool `json:"fortune_groups"`
	// SharedNames lists backend names that answered as two groups or more.
	SharedNames []SharedName `json:"shared_names,omitempty"`
	// With uniform:NAME,...: how many listed backends never answered (rows
	// in Backends with count 0), and the backends that answered unlisted.
	BackendsSilent     int      `json:"backends_silent,omitempty"`
	BackendsUnexpected []string `json:"backends_unexpected,omitempty"`
	// Anytime are the anytime-valid tests over the same draws in start
	// order: valid whenever the draws stopped. AnytimeDecides says they,
	// not the chi-square tests, decide the verdict (--until, --precision,
	// --watch). Precision is the half-width asked for, and Guarantee what
	// a pass then guarantees.
	Anytime        AnytimeResult `json:"anytime"`
	AnytimeDecides bool          `json:"anytime_decides"`
	Precision      float64       `json:"precision,omitempty"`
	Guarantee      string        `json:"guarantee,omitempty"`

	// Strip is the first draws in start order (an index into Backends, or
	// Failed), for the HTML report's strip of draws.
	Strip []int32 `json:"-"`
}

// A Row is one group's line of the report (a fortune's, for omikuji).
type Row struct {
	ID            string   `json:"id"`
	Label         string   `json:"label"`
	Weight        int      `json:"expected_weight"`
	ExpectedShare float64  `json:"expected_share"` // 0..1
	Count         int      `json:"count"`
	ObservedShare float64  `json:"observed_share"` // 0..1 of successful draws
	Low           float64  `json:"observed_low"`   // 95 % Wilson interval of the observed share
	High          float64  `json:"observed_high"`
	Pods          int      `json:"pods"` // distinct backends seen serving it
	PodNames      []string `json:"pod_names"`
}

// A SharedName is a backend name that answered as several groups: the
// names are not unique, and each answer counts in the group it named.
type SharedName struct {
	Name   string   `json:"name"`
	Groups []string `json:"groups"`
}

// A BackendRow is one backend's count.
type BackendRow struct {
	Name  string `json:"name"`
	Group string `json:"group"`
	Count int    `json:"count"`
}

// stripLength is how many draws the HTML strip shows.
const stripLength = 600

// measure counts a sample against what a expects: the rows per group and
// per backend, and the three tests. The verdict is judged after.
func measure(s Sample, a Audit) Report {
	m := NewModel(a.Backend, a.Group, a.Expect)
	tests := a.Tests
	if tests == nil {
		tests = AllTests
	}
	r := Report{
		URL: Redact(a.URL), Requested: a.Draws, Drawn: len(s.Seq), Concurrency: a.Concurrency,
		KeepAlive: a.KeepAlive, Alpha: a.Alpha, BackendSpec: a.Backend.String(), GroupSpec: a.Group.String(),
		Expect: m.Expect.String(), Tests: tests, Stopped: s.Stopped, BackendsCapped: s.Capped,
		Failures: maps.Clone(s.Failures), FailureExamples: maps.Clone(s.Examples), LikelyCauses: []string{},
		Backends: []BackendRow{}, BackendsWanted: m.backendsWanted(), FortuneGroups: m.FortuneGroups,
	}
	if r.Failures == nil {
		r.Failures, r.FailureExamples = map[string]int{}, map[string]string{}
	}
	for _, n := range r.Failures {
		r.Failed += n
	}
	r.Succeeded = r.Drawn - r.Failed
	r.Strip = slices.Clone(s.Seq[:min(len(s.Seq), stripLength)])

	// Rows: the model's groups in its order, then any other group seen.
	rowOf := map[string]int{}
	addRow := func(id string, weight int) {
		if _, ok := rowOf[id]; !ok {
			rowOf[id] = len(r.Groups)
			r.Groups = append(r.Groups, Row{ID: id, Label: m.label(id), Weight: weight, PodNames: []string{}})
		}
	}
	for _, g := range m.groups() {
		addRow(g.Group, g.Weight)
	}
	var others []string
	for _, b := range s.Backends {
		if g := m.groupOf(b.Name, b.Group); !m.expects(g) {
			others = append(others, g)
		}
	}
	slices.Sort(others)
	for _, g := range slices.Compact(others) {
		addRow(g, 0)
	}
	// uniform:NAME,... lists backends that may stay silent: rows with
	// count 0, in the group their name gives.
	silent := m.silent(s.Backends)
	for _, b := range silent {
		addRow(b.Group, 0)
	}
	byGroup := make([][]int, len(r.Groups))
	members := make([]int, len(r.Groups)) // backends that weigh, per group
	var unexpected []string
	listedSeen, unexpectedDraws := 0, 0
	for _, b := range s.Backends {
		g := rowOf[m.groupOf(b.Name, b.Group)]
		row := &r.Groups[g]
		row.Count += b.Count
		row.PodNames = append(row.PodNames, b.Name)
		byGroup[g] = append(byGroup[g], b.Count)
		r.Backends = append(r.Backends, BackendRow{Name: b.Name, Group: row.ID, Count: b.Count})
		if m.weighs(b.Name) {
			members[g]++
			listedSeen++
		} else {
			unexpected, unexpectedDraws = append(unexpected, b.Name), unexpectedDraws+b.Count
		}
	}
	for _, b := range silent {
		g := rowOf[b.Group]
		byGroup[g] = append(byGroup[g], 0)
		members[g]++
		r.Backends = append(r.Backends, b)
	}
	r.BackendsSeen = len(s.Backends)
	slices.Sort(unexpected)
	r.BackendsSilent, r.BackendsUnexpected = len(silent), slices.Compact(unexpected)
	r.SharedNames = sharedNames(s.Backends)
	order := make([]int32, len(r.Backends)) // sample index → sorted index
	sorted := make([]int, len(r.Backends))
	for i := range sorted {
		sorted[i] = i
	}
	slices.SortStableFunc(sorted, func(x, y int) int {
		return strings.Compare(r.Backends[x].Group+"\x00"+r.Backends[x].Name, r.Backends[y].Group+"\x00"+r.Backends[y].Name)
	})
	rows := make([]BackendRow, len(sorted))
	for to, from := range sorted {
		rows[to], order[from] = r.Backends[from], int32(to)
	}
	order = order[:len(s.Backends)]
	r.Backends = rows
	for i, c := range r.Strip {
		if c != Failed {
			r.Strip[i] = order[c]
		}
	}

	observed, weights := make([]int, len(r.Groups)), make([]int, len(r.Groups))
	total := 0
	for i := range r.Groups {
		row := &r.Groups[i]
		slices.Sort(row.PodNames)
		row.Pods = len(row.PodNames)
		row.Weight = m.weight(row.Weight, members[i]) // uniform: a group's share is its backends ÷ all backends
		total += row.Weight
	}
	for i := range r.Groups {
		row := &r.Groups[i]
		if total > 0 {
			row.ExpectedShare = float64(row.Weight) / float64(total)
		}
		if r.Succeeded > 0 {
			row.ObservedShare = float64(row.Count) / float64(r.Succeeded)
			row.Low, row.High = wilson(row.Count, r.Succeeded)
		}
		observed[i], weights[i] = row.Count, row.Weight
	}
	r.GoodnessOfFit = GoodnessOfFit(observed, weights, a.Alpha)
	if len(unexpected) > 0 {
		r.GoodnessOfFit.Applicable, r.GoodnessOfFit.Passed, r.GoodnessOfFit.PValue = true, false, 0
		r.GoodnessOfFit.Note = fmt.Sprintf("%d draws answered by %d backend(s) that --expect does not list: %s", unexpectedDraws, len(unexpected), listSome(unexpected))
	}
	r.Uniformity = Uniformity(byGroup, a.Alpha)
	if want := m.backendsWanted(); want > 0 && r.Succeeded > 0 {
		var never []string
		for _, b := range silent {
			never = append(never, b.Name)
		}
		r.checkBackendCount(listedSeen, want, never)
	}
	seq := make([]int, 0, r.Succeeded)
	for _, c := range s.Seq {
		if c != Failed {
			seq = append(seq, int(c))
		}
	}
	r.Independence = Independence(seq, len(s.Backends), a.Alpha)
	r.Repeats, r.RepeatsExpected = Repeats(seq, len(s.Backends))

	// The anytime-valid tests, over the same draws in start order.
	groupOf := make([]int, len(s.Backends))
	weighs := make([]bool, len(s.Backends))
	for i, b := range s.Backends {
		groupOf[i], weighs[i] = rowOf[m.groupOf(b.Name, b.Group)], m.weighs(b.Name)
	}
	r.Anytime = Replay(anytimeOptions(a, m), s.Seq, groupOf, weighs) // rows begin with the model's groups
	for i := range r.Anytime.Shares {
		r.Anytime.Shares[i].ID = r.Groups[i].ID
	}
	r.AnytimeDecides = a.Until != "" || a.Precision > 0
	r.Precision = a.Precision
	return r
}

// anytimeOptions are the anytime-valid tests' options for an audit: its
// alpha, the precision asked for or the draws planned, the expected
// weights of the model's groups (nil with a uniform expectation, where the
// fit asks whether every backend is equally likely) and the number of
// backends where the expectation states it: N of uniform:N, and each
// fortune's pods in the catalogue's default expectation. A weight given
// with --expect is only a weight: it may be a replica count or not.
func anytimeOptions(a Audit, m Model) AnytimeOptions {
	o := AnytimeOptions{Alpha: a.Alpha, Precision: a.Precision, Planned: a.Draws, Backends: m.backendsWanted()}
	if m.Expect.Kind != ExpectUniform {
		for _, g := range m.groups() {
			o.Weights = append(o.Weights, float64(g.Weight))
			if m.podsKnown() {
				o.GroupBackends = append(o.GroupBackends, g.Weight)
			}
		}
	}
	return o
}

// sharedNames lists the backend names that answered as more than one group:
// names that are not unique, such as replicas sharing a host name.
func sharedNames(backends []Backend) []SharedName {
	groups := map[string][]string{}
	var names []string
	for _, b := range backends {
		if b.Group == "" {
			continue
		}
		if _, ok := groups[b.Name]; !ok {
			names = append(names, b.Name)
		}
		if !slices.Contains(groups[b.Name], b.Group) {
			groups[b.Name] = append(groups[b.Name], b.Group)
		}
	}
	var shared []SharedName
	for _, name := range names {
		if len(groups[name]) > 1 {
			shared = append(shared, SharedName{Name: name, Groups: slices.Sorted(slices.Values(groups[name]))})
		}
	}
	return shared
}

// checkBackendCount makes the uniformity test fail when fewer backends
// answered than uniform:N expects and chance cannot explain it, or when
// more answered: seen of them answered (with uniform:NAME,..., listed
// ones), and never are the listed ones that did not.
func (r *Report) checkBackendCount(seen, want int, never []string) {
	t := &r.Uniformity
	switch {
	case seen > want:
		t.Applicable, t.Passed, t.PValue = true, false, 0
		t.Note = fmt.Sprintf("%d backends answered, more than the %d expected", seen, want)
	case seen < want:
		p, upTo := MissingBackends(seen, want, r.Succeeded, r.Alpha)
		note := fmt.Sprintf("only %d of the %d expected backends answered in %d draws; if all %d answered at random, missing %d of them has %s, plausible only with %d draws or fewer at alpha %g",
			seen, want, r.Succeeded, want, want-seen, formatP(p, "≤"), upTo, r.Alpha)
		if len(never) > 0 {
			note += "; never answered: " + listSome(never)
		}
		if t.Note != "" {
			note += "; " + t.Note
		}
		t.Note = note
		if p < r.Alpha {
			t.Applicable, t.Passed, t.PValue = true, false, p
		}
	}
}

// wilson is the 95 % Wilson score interval of a proportion k/n.
func wilson(k, n int) (low, high float64) {
	const z = 1.959963984540054
	p, nn := float64(k)/float64(n), float64(n)
	center := (p + z*z/(2*nn)) / (1 + z*z/nn)
	half := z / (1 + z*z/nn) * math.Sqrt(p*(1-p)/nn+z*z/(4*nn*nn))
	return max(0, center-half), min(1, center+half)
}

// ExitCode is what the draw command exits with: 0 consistent (or too few
// draws to say otherwise), 1 a deciding test failed, 2 nothing could be drawn.
func (r Report) ExitCode() int {
	switch r.Verdict {
	case Unreachable:
		return 2
	case Inconsistent:
		return 1
	}
	return 0
}

// tests pairs each test with its --tests name and what its failure means.
func (r *Report) tests() []struct {
	name string
	test Test
	says string
} {
	return []struct {
		name string
		test Test
		says string
	}{
		{TestFit, r.GoodnessOfFit, "the group shares do not match the expected odds"},
		{TestUniform, r.Uniformity, "the backends within a group do not share its draws evenly"},
		{TestIndependence, r.Independence, "each draw depends on the one before it"},
	}
}
