package audit

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/omikuji/omikuji/internal/fortune"
)

// The expectation stage: groups, the expected weights and the tests that
// decide come together in a Model, the one expectation model the analysis
// judges every sample against (see the package comment).

// fortuneMode reports whether answers are grouped by the fortune they name:
// omikuji's backend with the default groups. It is the one place that
// decides omikuji mode; everything else asks a Model or a Report.
func fortuneMode(b BackendSpec, g GroupSpec) bool { return b.answersGroup() && g.Re == nil }

// A GroupSpec maps backend names to groups. A nil Re is the default of the
// backend kind: the fortune for omikuji, otherwise each backend on its own.
type GroupSpec struct{ Re *regexp.Regexp }

// String is the spec as --group takes it.
func (g GroupSpec) String() string {
	if g.Re == nil {
		return "default"
	}
	return "regex:" + g.Re.String()
}

// ParseGroup parses --group: default | regex:RE.
func ParseGroup(spec string) (GroupSpec, error) {
	if spec == "" || spec == "default" {
		return GroupSpec{}, nil
	}
	expr, ok := strings.CutPrefix(spec, "regex:")
	if !ok {
		return GroupSpec{}, fmt.Errorf("--group %q: want default or regex:RE, for example regex:^(.+)-[a-z0-9]+-[a-z0-9]+$ to group pods by Deployment", spec)
	}
	re, err := compileWithGroup(expr)
	if err != nil {
		return GroupSpec{}, fmt.Errorf("--group %q: %v; for example regex:^(.+)-[a-z0-9]+-[a-z0-9]+$", spec, err)
	}
	return GroupSpec{Re: re}, nil
}

// Of is the group of a backend: the first capture group of the regexp, or
// the backend's own name when it does not match; with the default spec, the
// group the answer gave (the fortune) or else the backend's name.
func (g GroupSpec) Of(backend, answered string) string {
	if g.Re == nil {
		if answered != "" {
			return answered
		}
		return backend
	}
	if m := g.Re.FindStringSubmatch(backend); m != nil && m[1] != "" {
		return m[1]
	}
	return backend
}

// Expectation kinds.
const (
	ExpectCatalogue = "catalogue" // omikuji's default replica counts
	ExpectUniform   = "uniform"   // every backend that answered, or every one listed, equally likely
	ExpectWeights   = "weights"   // weights per group
)

// An Expectation is what --expect says the shares should be. Its zero
// value is the default of the backend kind (see NewModel).
type Expectation struct {
	Kind     string
	Backends int      // uniform:N, or the number of Names; 0 when not given
	Names    []string // uniform:NAME,...: the backends expected, and no others
	Groups   []string // ExpectWeights and ExpectCatalogue: groups in order
	Weights  []int    // their weights
}

// String is the expectation as --expect takes it.
func (e Expectation) String() string {
	switch e.Kind {
	case ExpectUniform:
		if len(e.Names) > 0 {
			return "uniform:" + strings.Join(e.Names, ",")
		}
		if e.Backends > 0 {
			return "uniform:" + strconv.Itoa(e.Backends)
		}
		return "uniform"
	}
	parts := make([]string, len(e.Groups))
	for i, g := range e.Groups {
		parts[i] = g + "=" + strconv.Itoa(e.Weights[i])
	}
	return strings.Join(parts, ",")
}

// MaxExpectedBackends bounds uniform:N and the names of uniform:NAME,...
const MaxExpectedBackends = MaxBackends

// MaxBackendName bounds each name of uniform:NAME,... (a DNS name's length).
const MaxBackendName = 253

// ParseExpect parses --expect: "" (the default of the backend kind) |
// uniform | uniform:N | uniform:NAME,... | id=w,... For the omikuji backend
// with its fortune groups, ids are catalogue fortunes and the ones left out
// weigh 0. A single whole number after uniform: is N, anything else names.
func ParseExpect(spec string, backend BackendSpec, group GroupSpec) (Expectation, error) {
	fortuneGroups := fortuneMode(backend, group)
	if spec == "" {
		return defaultExpectation(fortuneGroups), nil
	}
	if spec == "uniform" {
		return Expectation{Kind: ExpectUniform}, nil
	}
	if n, ok := strings.CutPrefix(spec, "uniform:"); ok {
		if !wholeNumber(n) {
			return parseNames(spec, n)
		}
		v, err := strconv.Atoi(n)
		if err != nil || v < 1 || v > MaxExpectedBackends {
			return Expectation{}, fmt.Errorf("--expect %q: N in uniform:N must be a whole number from 1 to %d, for example uniform:3", spec, MaxExpectedBackends)
		}
		return Expectation{Kind: ExpectUniform, Backends: v}, nil
	}
	if fortuneGroups {
		counts, err := fortune.ParseCounts(spec)
		if err != nil {
			return Expectation{}, fmt.Errorf("--expect %q: %v; for example %s, uniform or uniform:10", spec, err, fortune.DefaultReplicas())
		}
		e := catalogueExpectation(counts)
		e.Kind = ExpectWeights
		return e, nil
	}
	e := Expectation{Kind: ExpectWeights}
	total := 0
	for part := range strings.SplitSeq(spec, ",") {
		name, w, ok := strings.Cut(part, "=")
		name = strings.TrimSpace(name)
		v, err := strconv.Atoi(strings.TrimSpace(w))
		switch {
		case !ok || name == "" || err != nil || v < 0 || v > 1_000_000:
			return Expectation{}, fmt.Errorf("--expect %q: want group=weight pairs with whole weights from 0 to 1000000, for example stable=9,canary=1, or uniform, or uniform:3", spec)
		case slices.Contains(e.Groups, name):
			return Expectation{}, fmt.Errorf("--expect %q: group %q is given twice; for example stable=9,canary=1", spec, name)
		case len(e.Groups) == MaxBackends:
			return Expectation{}, fmt.Errorf("--expect: more than %d groups", MaxBackends)
		}
		e.Groups, e.Weights = append(e.Groups, name), append(e.Weights, v)
		total += v
	}
	if total == 0 {
		return Expectation{}, fmt.Errorf("--expect %q: the weights sum to 0; for example stable=9,canary=1", spec)
	}
	return e, nil
}

// wholeNumber says whether s is digits only: uniform:N rather than a name.
func wholeNumber(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// parseNames parses the names of uniform:NAME,... Names are what backends
// answer with (pod or host names): letters, digits and . _ - : @ / +.
func parseNames(spec, list string) (Expectation, error) {
	const example = "for example uniform:web-7d4b9c-x2x8q,web-7d4b9c-z9k2m"
	e := Expectation{Kind: ExpectUniform}
	for name := range strings.SplitSeq(list, ",") {
		switch {
		case name == "":
			return Expectation{}, fmt.Errorf("--expect %q: an empty name in uniform:NAME,...; %s", short(spec), example)
		case len(name) > MaxBackendName:
			return Expectation{}, fmt.Errorf("--expect %q: a name longer than %d characters in uniform:NAME,...; %s", short(spec), MaxBackendName, example)
		case strings.Trim(name, nameChars) != "":
			return Expectation{}, fmt.Errorf("--expect %q: name %q has a character other than letters, digits and . _ - : @ / +; %s", short(spec), name, example)
		case len(e.Names) == MaxExpectedBackends:
			return Expectation{}, fmt.Errorf("--expect: uniform:NAME,... lists more than %d names", MaxExpectedBackends)
		case slices.Contains(e.Names, name):
			return Expectation{}, fmt.Errorf("--expect %q: name %q is given twice; %s", short(spec), name, example)
		}
		e.Names = append(e.Names, name)
	}
	e.Backends = len(e.Names)
	return e, nil
}

const nameChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:@/+"

// short is a flag's value cut for an error message.
func short(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// or is e, or def when e is zero: the one place a zero Expectation is
// recognised.
func (e Expectation) or(def Expectation) Expectation {
	if e.Kind != "" {
		return e
	}
	return def
}

// defaultExpectation is what an audit expects when nothing is said: the
// catalogue's replica counts for omikuji's fortunes, else every backend
// that answers equally likely.
func defaultExpectation(fortuneGroups bool) Expectation {
	if fortuneGroups {
		return catalogueExpectation(fortune.DefaultReplicas())
	}
	return Expectation{Kind: ExpectUniform}
}

func catalogueExpectation(c fortune.Counts) Expectation {
	e := Expectation{Kind: ExpectCatalogue}
	for _, f := range fortune.Catalogue {
		e.Groups, e.Weights = append(e.Groups, f.ID), append(e.Weights, c[f.ID])
	}
	return e
}

// The tests --tests chooses from.
const (
	TestFit          = "fit"
	TestUniform      = "uniform"
	TestIndependence = "independence"
)

// AllTests is the default of --tests.
var AllTests = []string{TestFit, TestUniform, TestIndependence}

// ParseTests parses --tests: a comma-separated subset of fit,uniform,independence.
func ParseTests(spec string) ([]string, error) {
	var tests []string
	for t := range strings.SplitSeq(spec, ",") {
		t = strings.TrimSpace(t)
		if !slices.Contains(AllTests, t) {
			return nil, fmt.Errorf("--tests %q: %q is not a test; choose from fit,uniform,independence, for example --tests fit", spec, t)
		}
		if !slices.Contains(tests, t) {
			tests = append(tests, t)
		}
	}
	return tests, nil
}

// A Model is what an audit expects of every group and every backend. Build
// it with NewModel; the analysis asks it, and nothing else, which group a
// backend counts in, which groups to show and what each should weigh.
type Model struct {
	// FortuneGroups says that the groups are omikuji's fortunes, named by
	// each answer: rows carry the catalogue's labels and every fortune is
	// shown.
	FortuneGroups bool
	Group         GroupSpec
	Expect        Expectation // never zero
	listed        map[string]bool
}

// NewModel resolves what an audit expects. A zero Expectation is the
// default of the backend kind, the same as ParseExpect("").
func NewModel(backend BackendSpec, group GroupSpec, expect Expectation) Model {
	fortunes := fortuneMode(backend, group)
	m := Model{FortuneGroups: fortunes, Group: group, Expect: expect.or(defaultExpectation(fortunes))}
	if len(m.Expect.Names) > 0 {
		m.listed = make(map[string]bool, len(m.Expect.Names))
		for _, name := range m.Expect.Names {
			m.listed[name] = true
		}
	}
	return m
}

// groupOf is the group a backend counts in, given the group its answer
// named: each answer for itself, so a name that answered as two groups
// counts in both. A backend that uniform:NAME,... does not list is a group
// of its own, named after it, which weighs 0.
func (m Model) groupOf(backend, answered string) string {
	if !m.weighs(backend) {
		return backend
	}
	return m.Group.Of(backend, answered)
}

// weighs says whether a backend counts in the expected shares: every one,
// unless uniform:NAME,... lists the backends and this is not one of them.
func (m Model) weighs(backend string) bool {
	return len(m.Expect.Names) == 0 || m.listed[backend]
}

// silent are the backends uniform:NAME,... lists that did not answer, in
// its order, each with the group it counts in: its name's by the group
// spec (with omikuji's fortunes, where only an answer names the group, its
// own name).
func (m Model) silent(answered []Backend) []BackendRow {
	if len(m.Expect.Names) == 0 {
		return nil
	}
	seen := map[string]bool{}
	for _, b := range answered {
		seen[b.Name] = true
	}
	var rows []BackendRow
	for _, name := range m.Expect.Names {
		if !seen[name] {
			rows = append(rows, BackendRow{Name: name, Group: m.Group.Of(name, "")})
		}
	}
	return rows
}

// label is a group's label: a fortune's kanji in fortune mode.
func (m Model) label(group string) string {
	if !m.FortuneGroups {
		return ""
	}
	if f, err := fortune.Lookup(group); err == nil {
		return f.Label
	}
	return ""
}

// A GroupWeight is one group the model expects, and its weight.
type GroupWeight struct {
	Group  string
	Weight int
}

// groups lists the groups shown whatever answers: the expectation's, in its
// order, then in fortune mode every other fortune with weight 0.
func (m Model) groups() []GroupWeight {
	var gs []GroupWeight
	for i, g := range m.Expect.Groups {
		gs = append(gs, GroupWeight{g, m.Expect.Weights[i]})
	}
	if m.FortuneGroups {
		for _, f := range fortune.Catalogue {
			if !m.expects(f.ID) {
				gs = append(gs, GroupWeight{f.ID, 0})
			}
		}
	}
	return gs
}

// expects reports whether the expectation names group.
func (m Model) expects(group string) bool { return slices.Contains(m.Expect.Groups, group) }

// weight is a group's expected weight, given its weight in groups() (0 for
// a group nobody expected) and how many of its backends weigh: with a
// uniform expectation every backend that answers weighs one, or with
// uniform:NAME,... every listed one, silent or not.
func (m Model) weight(declared, backends int) int {
	if m.Expect.Kind == ExpectUniform {
		return backends
	}
	return declared
}

// backendsWanted is how many backends must answer (uniform:N or the
// names of uniform:NAME,...), or 0.
func (m Model) backendsWanted() int {
	if len(m.Expect.Names) > 0 {
		return len(m.Expect.Names)
	}
	return m.Expect.Backends
}

// podsKnown says that the expected weights are the groups' numbers of
// backends: the catalogue's default replica counts of omikuji's fortunes.
func (m Model) podsKnown() bool { return m.FortuneGroups && m.Expect.Kind == ExpectCatalogue }
