package audit

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/omikuji/omikuji/internal/fortune"
)

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
	Expect Expectation // zero: the default of the backend kind
	Alpha  float64
	Tests  []string // the tests that decide the verdict; nil: all
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
	Fortunes        []Row             `json:"fortunes"` // one per group
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

// A BackendRow is one backend's count.
type BackendRow struct {
	Name  string `json:"name"`
	Group string `json:"group"`
	Count int    `json:"count"`
}

// stripLength is how many draws the HTML strip shows.
const stripLength = 600

// Analyze audits a sample.
func Analyze(s Sample, a Audit) Report {
	if a.Expect.Kind == "" {
		a.Expect, _ = ParseExpect("", a.Backend, a.Group)
	}
	if a.Tests == nil {
		a.Tests = AllTests
	}
	r := Report{
		URL: Redact(a.URL), Requested: a.Draws, Drawn: len(s.Seq), Concurrency: a.Concurrency,
		KeepAlive: a.KeepAlive, Alpha: a.Alpha, BackendSpec: a.Backend.String(), GroupSpec: a.Group.String(),
		Expect: a.Expect.String(), Tests: a.Tests, Stopped: s.Stopped, BackendsCapped: s.Capped,
		Failures: maps.Clone(s.Failures), FailureExamples: maps.Clone(s.Examples), LikelyCauses: []string{},
		Backends: []BackendRow{}, BackendsWanted: a.Expect.Backends,
	}
	if r.Failures == nil {
		r.Failures, r.FailureExamples = map[string]int{}, map[string]string{}
	}
	for _, n := range r.Failures {
		r.Failed += n
	}
	r.Succeeded = r.Drawn - r.Failed
	r.Strip = slices.Clone(s.Seq[:min(len(s.Seq), stripLength)])

	// Rows: the expectation's groups in its order, then any other group seen.
	groupOf := make([]int, len(s.Backends))
	rowOf := map[string]int{}
	addRow := func(id string, weight int) int {
		i, ok := rowOf[id]
		if !ok {
			i = len(r.Fortunes)
			rowOf[id] = i
			label := ""
			if f, err := fortune.Lookup(id); err == nil && a.Group.Re == nil && (a.Backend.Kind == "" || a.Backend.Kind == KindOmikuji) {
				label = f.Label
			}
			r.Fortunes = append(r.Fortunes, Row{ID: id, Label: label, Weight: weight, PodNames: []string{}})
		}
		return i
	}
	for i, g := range a.Expect.Groups {
		addRow(g, a.Expect.Weights[i])
	}
	if a.Group.Re == nil && (a.Backend.Kind == "" || a.Backend.Kind == KindOmikuji) {
		for _, f := range fortune.Catalogue { // fortunes in catalogue order, whatever --expect says
			addRow(f.ID, 0)
		}
	}
	var others []string
	for _, b := range s.Backends {
		if g := a.Group.Of(b.Name, b.Group); !slices.Contains(a.Expect.Groups, g) {
			others = append(others, g)
		}
	}
	slices.Sort(others)
	for _, g := range slices.Compact(others) {
		addRow(g, 0)
	}
	byGroup := make([][]int, len(r.Fortunes))
	for i, b := range s.Backends {
		g := rowOf[a.Group.Of(b.Name, b.Group)]
		groupOf[i] = g
		row := &r.Fortunes[g]
		row.Count += b.Count
		row.PodNames = append(row.PodNames, b.Name)
		byGroup[g] = append(byGroup[g], b.Count)
		r.Backends = append(r.Backends, BackendRow{Name: b.Name, Group: row.ID, Count: b.Count})
	}
	r.BackendsSeen = len(s.Backends)
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
	r.Backends = rows
	for i, c := range r.Strip {
		if c != Failed {
			r.Strip[i] = order[c]
		}
	}

	observed, weights := make([]int, len(r.Fortunes)), make([]int, len(r.Fortunes))
	total := 0
	for i := range r.Fortunes {
		row := &r.Fortunes[i]
		slices.Sort(row.PodNames)
		row.Pods = len(row.PodNames)
		if a.Expect.Kind == ExpectUniform {
			row.Weight = row.Pods // a group's share is its backends ÷ all backends
		}
		total += row.Weight
	}
	for i := range r.Fortunes {
		row := &r.Fortunes[i]
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
	r.Uniformity = Uniformity(byGroup, a.Alpha)
	if a.Expect.Backends > 0 && r.Succeeded > 0 {
		r.checkBackendCount(a.Expect.Backends)
	}
	seq := make([]int, 0, r.Succeeded)
	for _, c := range s.Seq {
		if c != Failed {
			seq = append(seq, int(c))
		}
	}
	r.Independence = Independence(seq, len(s.Backends), a.Alpha)
	r.Repeats, r.RepeatsExpected = Repeats(seq, len(s.Backends))
	r.judge()
	return r
}

// checkBackendCount makes the uniformity test fail when fewer backends
// answered than uniform:N expects and chance cannot explain it, or when
// more answered.
func (r *Report) checkBackendCount(want int) {
	t := &r.Uniformity
	seen := r.BackendsSeen
	switch {
	case seen > want:
		t.Applicable, t.Passed, t.PValue = true, false, 0
		t.Note = fmt.Sprintf("%d backends answered, more than the %d expected", seen, want)
	case seen < want:
		p, upTo := MissingBackends(seen, want, r.Succeeded, r.Alpha)
		note := fmt.Sprintf("only %d of the %d expected backends answered in %d draws; if all %d answered at random, missing %d of them has %s, plausible only with %d draws or fewer at alpha %g",
			seen, want, r.Succeeded, want, want-seen, boundP(p), upTo, r.Alpha)
		if t.Note != "" {
			note += "; " + t.Note
		}
		t.Note = note
		if p < r.Alpha {
			t.Applicable, t.Passed, t.PValue = true, false, p
		}
	}
}

// boundP prints an upper bound on a p-value.
func boundP(p float64) string {
	if p == 0 {
		return "p < 1e-300"
	}
	return fmt.Sprintf("p ≤ %.3g", p)
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

// judge sets the verdict, the summary and the likely causes.
func (r *Report) judge() {
	var wrong, asideWrong, inapplicable, passed []string
	vacuous := 0
	for _, t := range r.tests() {
		deciding := slices.Contains(r.Tests, t.name)
		switch {
		case !t.test.Passed && deciding:
			wrong = append(wrong, fmt.Sprintf("%s (%s, %s)", t.says, t.name, formatP(t.test.PValue)))
		case !t.test.Passed:
			asideWrong = append(asideWrong, fmt.Sprintf("%s (%s)", t.name, formatP(t.test.PValue)))
		case !t.test.Applicable && t.test.NothingToTest && deciding:
			vacuous++
		case !t.test.Applicable && deciding:
			inapplicable = append(inapplicable, t.name)
		case deciding:
			passed = append(passed, fmt.Sprintf("%s %s", t.name, formatP(t.test.PValue)))
		}
	}
	switch {
	case r.Succeeded == 0:
		r.Verdict = Unreachable
		r.Summary = "No draw succeeded, so there are no odds to audit."
	case len(wrong) > 0:
		r.Verdict = Inconsistent
		r.Summary = "The balancer is not drawing the lot fairly: " + strings.Join(wrong, ", and ") + "."
	case len(inapplicable) > 0:
		r.Verdict = Inconclusive
		r.Summary = fmt.Sprintf("Too few successful draws for %s; draw more (-n).", strings.Join(inapplicable, " and "))
	case vacuous == len(r.Tests):
		r.Verdict = Inconclusive
		r.Summary = "Nothing to compare: a single backend answered every draw (with --expect uniform:N the audit says whether that is too few)."
	default:
		r.Verdict = Consistent
		r.Summary = fmt.Sprintf("The draws match the expectation and show no pattern (%s): the balancer draws the lot.", strings.Join(passed, ", "))
	}
	if len(asideWrong) > 0 && r.Succeeded > 0 {
		r.Summary += fmt.Sprintf(" Not deciding here (--tests %s), but failing: %s.", strings.Join(r.Tests, ","), strings.Join(asideWrong, ", "))
	}
	if r.Failed > 0 && r.Succeeded > 0 {
		r.Summary += fmt.Sprintf(" %d of %d draws failed and are left out of the tests.", r.Failed, r.Drawn)
	}
	if r.BackendsCapped {
		r.Summary += fmt.Sprintf(" More than %d distinct backends answered: only the first %d are counted.", MaxBackends, MaxBackends)
	}
	r.Pass = r.Verdict == Consistent || r.Verdict == Inconclusive
	r.LikelyCauses = append(r.LikelyCauses, r.oddsCauses()...)
	r.LikelyCauses = append(r.LikelyCauses, r.failureCauses()...)
}

// nodeLocal names the traffic policies that keep draws on one node or zone.
const nodeLocal = "a node-local traffic policy (externalTrafficPolicy: Local, or internalTrafficPolicy: Local, balances only over the pods on the node you hit) or a zone-local one (trafficDistribution: PreferClose)"

// oddsCauses names what usually makes a test fail, from the shape of the sample.
func (r *Report) oddsCauses() []string {
	var causes []string
	if !r.Independence.Passed {
		// Repeats of one backend, against chance: far fewer is dealing out
		// in turn, far more is sticking; in between, some other order.
		z := (float64(r.Repeats) - r.RepeatsExpected) / math.Sqrt(max(r.RepeatsExpected, 1))
		repeats := fmt.Sprintf("consecutive draws came from the same backend %d times where chance expects %.0f", r.Repeats, r.RepeatsExpected)
		var cause string
		switch {
		case z > 3:
			cause = fmt.Sprintf("Consecutive draws stick to one backend: %s. Keep-alive pinning (a proxy in between reuses connections), session affinity (sessionAffinity: ClientIP, a sticky cookie) or a backend that answers in bursts.", repeats)
		case z < -3:
			cause = fmt.Sprintf("The balancer deals the backends out in a fixed order instead of choosing at random: %s. That is round-robin cycling (kube-proxy IPVS with rr, a round-robin proxy or ingress in front), or with weights a deterministic weighted cycle (nginx upstream weight=, a smooth weighted round-robin).", repeats)
		default:
			cause = fmt.Sprintf("Which backend comes next follows from the one before, in a fixed pattern (%s, about as chance would): a deterministic weighted cycle (nginx upstream weight=, a smooth weighted round-robin such as HAProxy's or IPVS wrr), or round-robin cycling over backends that share names.", repeats)
		}
		// Dealing backends out in turn also makes the shares too exact:
		// the statistic falls in the lower tail.
		if g := r.GoodnessOfFit; z <= 3 && g.Applicable && g.DF > 0 && (distuv.ChiSquared{K: float64(g.DF)}).CDF(g.Statistic) < r.Alpha {
			cause += " The shares are also closer to the weights than chance allows, as when backends are dealt out in turn."
		}
		causes = append(causes, cause)
	}
	if !r.Uniformity.Passed {
		if r.BackendsWanted > 0 && r.BackendsSeen < r.BackendsWanted {
			causes = append(causes, fmt.Sprintf("Only %d of %d backends answered: %s; backends that are dead or not Ready (no endpoints); session affinity or hash balancing (sessionAffinity: ClientIP, nginx hash $remote_addr) sending this one client to one backend; or keep-alive pinning.", r.BackendsSeen, r.BackendsWanted, nodeLocal))
		} else if r.BackendsWanted > 0 && r.BackendsSeen > r.BackendsWanted {
			causes = append(causes, fmt.Sprintf("%d backends answered where %d were expected: a rollout or scale-up in progress, or uniform:N is not what is deployed.", r.BackendsSeen, r.BackendsWanted))
		}
		if r.Uniformity.DF > 0 && r.Uniformity.Statistic > 0 {
			causes = append(causes, "Backends within a group get unequal shares: a slow or overloaded backend (least-connections or latency-aware balancing sends it fewer draws), a backend flapping between Ready and not Ready, weighted endpoints, or topology-aware routing that prefers the local zone (trafficDistribution: PreferClose).")
		}
	}
	if r.GoodnessOfFit.Passed {
		return causes
	}
	expected := 0
	var missing, unexpected []string
	for _, row := range r.Fortunes {
		if row.Weight > 0 {
			expected++
		}
		if row.Weight > 0 && row.Count == 0 {
			missing = append(missing, row.ID)
		}
		if row.Weight == 0 && row.Count > 0 {
			unexpected = append(unexpected, row.ID)
		}
	}
	specific := len(causes)
	switch {
	case r.KeepAlive:
		causes = append(causes, fmt.Sprintf("Keep-alive pinning, as asked (--keep-alive): each worker (%d here) kept one connection, and the balancer picks a backend only when a connection opens, so all of a worker's draws came from one backend.", r.Concurrency))
	case r.BackendsSeen > 0 && r.BackendsSeen <= r.Concurrency && r.BackendsSeen < expected:
		// Fewer backends than expected groups, and no more than one per
		// worker: connections stick to backends somewhere.
		causes = append(causes, fmt.Sprintf("Every draw came from just %d backend(s) although each used a new connection: the Service has sessionAffinity: ClientIP, or a proxy in between keeps connections alive to the backends (keep-alive pinning).", r.BackendsSeen))
	}
	if len(unexpected) > 0 {
		causes = append(causes, fmt.Sprintf("%s came up although --expect gives it weight 0: the expectation is not what is deployed.", strings.Join(unexpected, ", ")))
	}
	if len(missing) > 0 && !r.KeepAlive {
		causes = append(causes, fmt.Sprintf("%s never came up: fewer groups answered than expected. Its backends are dead or not Ready (the Service has no endpoints for them), or %s and the node you hit runs none of them.", strings.Join(missing, ", "), nodeLocal))
	}
	if len(causes) == specific {
		causes = append(causes, fmt.Sprintf("The shares differ from the weights: compare the backends seen per group with the replicas. A backend that is not Ready or is slow takes fewer draws; %s; or --expect does not match what is deployed.", nodeLocal))
	}
	return causes
}

// failureCauses explains failed draws by kind.
func (r *Report) failureCauses() []string {
	var causes []string
	httpErrors := 0
	for kind, n := range r.Failures {
		if strings.HasPrefix(kind, "http_status_") {
			httpErrors += n
		}
	}
	if n := r.Failures[FailRefused]; n > 0 {
		causes = append(causes, fmt.Sprintf("%d connection(s) refused: nothing listens at that address and port (wrong URL or NodePort), the Service has no Ready endpoints, or a backend is dead.", n))
	}
	if n := r.Failures[FailTimeout]; n > 0 {
		causes = append(causes, fmt.Sprintf("%d draw(s) timed out: a firewall or security group drops the packets, the node is unreachable, or a backend is slow or overloaded (see --timeout).", n))
	}
	if n := r.Failures[FailReset]; n > 0 {
		causes = append(causes, fmt.Sprintf("%d connection(s) reset or closed early: backends restarting or terminating mid-draw.", n))
	}
	if n := r.Failures[FailDNS]; n > 0 {
		causes = append(causes, fmt.Sprintf("%d draw(s) failed to resolve the host name.", n))
	}
	if n := r.Failures[FailTLS]; n > 0 {
		causes = append(causes, fmt.Sprintf("%d draw(s) failed the TLS handshake: a certificate the system roots do not trust (use --insecure only for a self-signed test gateway), or TLS spoken to a plain-HTTP port.", n))
	}
	if httpErrors > 0 {
		causes = append(causes, fmt.Sprintf("%d draw(s) answered with an HTTP status other than 200: the URL is not a draw endpoint, a redirect (not followed), or a proxy in front answered instead of a backend (for an Ingress or Gateway, check -H 'Host: …').", httpErrors))
	}
	if n := r.Failures[FailBadBody] + r.Failures[FailUnknown]; n > 0 {
		causes = append(causes, fmt.Sprintf("%d answer(s) were not omikuji draws or were longer than 64 KiB: is the URL an omikuji service, or does --backend say how its answers name the backend?", n))
	}
	if n := r.Failures[FailNoBackend]; n > 0 {
		causes = append(causes, fmt.Sprintf("%d answer(s) did not name a backend the way --backend %s reads it; see failure_examples in --json.", n, r.BackendSpec))
	}
	if n := r.Failures[FailTooMany]; n > 0 {
		causes = append(causes, fmt.Sprintf("%d draw(s) came from backends past the cap of %d distinct names: does the backend name change on every answer (a request ID rather than a host name)?", n, MaxBackends))
	}
	if n := r.Failures[FailOther]; n > 0 {
		causes = append(causes, fmt.Sprintf("%d draw(s) failed otherwise; see failure_examples in --json.", n))
	}
	return causes
}

// formatP prints a p-value briefly; underflow to 0 is shown as a bound.
func formatP(p float64) string {
	if p == 0 {
		return "p < 1e-300"
	}
	return fmt.Sprintf("p = %.3g", p)
}

// barWidth is the number of character cells that stand for 100 %.
const barWidth = 40

// bar draws share (0..1) as a bar of block characters, in eighths of a cell.
func bar(share float64) string {
	eighths := int(share*barWidth*8 + 0.5)
	partial := []string{"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"}
	return strings.Repeat("█", eighths/8) + partial[eighths%8]
}

// padLabel pads a kanji label to width runes with ideographic spaces, which
// are as wide as a kanji, so tabwriter (which counts runes) keeps the
// columns straight in a terminal.
func padLabel(label string, width int) string {
	return label + strings.Repeat("\u3000", max(0, width-utf8.RuneCountInString(label)))
}

// WriteText prints the report as a table and a verdict in plain words.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	connections := "a new connection each"
	if r.KeepAlive {
		connections = "one kept-alive connection per worker"
	}
	fmt.Fprintf(&b, "%d draws from %s, %d at a time, %s.\n", r.Drawn, r.URL, r.Concurrency, connections)
	fmt.Fprintf(&b, "Backend %s, groups %s, expect %s; deciding tests: %s.\n", r.BackendSpec, r.GroupSpec, r.Expect, strings.Join(r.Tests, ","))
	if r.Stopped != "" {
		fmt.Fprintf(&b, "Stopped early: %s.\n", r.Stopped)
	}
	b.WriteString("\n")

	labelWidth := 0
	for _, row := range r.Fortunes {
		labelWidth = max(labelWidth, utf8.RuneCountInString(row.Label))
	}
	// Numbers are right-aligned by their formats, text left-aligned by
	// tabwriter; the bar goes last, where its ragged end does no harm.
	cw := max(len("count"), len(strconv.Itoa(r.Succeeded)))
	var table strings.Builder
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	groupWord, backendWord := "group", "backends"
	if r.BackendSpec == KindOmikuji && r.GroupSpec == "default" {
		groupWord, backendWord = "fortune", "pods"
	}
	fmt.Fprintf(tw, "%s\t%s\texpected\t%*s\tobserved\t%s\t\n", groupWord, padLabel("", labelWidth), cw, "count", backendWord)
	for _, row := range r.Fortunes {
		fmt.Fprintf(tw, "%s\t%s\t%6.1f %%\t%*d\t%6.1f %%\t%4d\t%s\n",
			row.ID, padLabel(row.Label, labelWidth), 100*row.ExpectedShare, cw, row.Count, 100*row.ObservedShare, row.Pods, bar(row.ObservedShare))
	}
	fmt.Fprintf(tw, "total\t%s\t%6.1f %%\t%*d\t\t\t\n", padLabel("", labelWidth), 100.0, cw, r.Succeeded)
	if err := tw.Flush(); err != nil {
		return err
	}
	for line := range strings.Lines(table.String()) {
		b.WriteString(strings.TrimRight(line, " \n") + "\n")
	}
	b.WriteString("\n")
	if len(r.Backends) > 0 {
		parts := make([]string, 0, min(len(r.Backends), maxListedBackends))
		for _, be := range r.Backends[:min(len(r.Backends), maxListedBackends)] {
			parts = append(parts, fmt.Sprintf("%s %d", be.Name, be.Count))
		}
		more := ""
		if len(r.Backends) > maxListedBackends {
			more = fmt.Sprintf(", and %d more (see --json)", len(r.Backends)-maxListedBackends)
		}
		word := backendWord
		if r.BackendsSeen == 1 {
			word = strings.TrimSuffix(word, "s")
		}
		fmt.Fprintf(&b, "%s\n", wrap(fmt.Sprintf("%d %s answered: %s%s.", r.BackendsSeen, word, strings.Join(parts, ", "), more), "", "  "))
	}
	if r.BackendsCapped {
		fmt.Fprintf(&b, "More than %d distinct backends answered: the cap; later newcomers count as %s.\n", MaxBackends, FailTooMany)
	}

	if r.Failed == 0 {
		b.WriteString("Failed draws: none.\n")
	} else {
		kinds := slices.Sorted(maps.Keys(r.Failures))
		parts := make([]string, len(kinds))
		for i, k := range kinds {
			parts[i] = fmt.Sprintf("%s %d", k, r.Failures[k])
		}
		fmt.Fprintf(&b, "Failed draws: %d (%s).\n", r.Failed, strings.Join(parts, ", "))
	}
	for _, t := range r.tests() {
		aside := ""
		if !slices.Contains(r.Tests, t.name) {
			aside = " [not deciding]"
		}
		fmt.Fprintf(&b, "%s\n", wrap(fmt.Sprintf("%s (%s)%s: %s", t.test.Name, t.name, aside, describe(t.test, r.Alpha)), "", "  "))
	}
	if r.Independence.Applicable {
		fmt.Fprintf(&b, "Same backend twice in a row: %d times, %.1f expected by chance.\n", r.Repeats, r.RepeatsExpected)
	}
	fmt.Fprintf(&b, "\n%s\n", wrap(strings.ToUpper(r.Verdict)+". "+r.Summary, "", ""))
	if len(r.LikelyCauses) > 0 {
		b.WriteString("Likely causes:\n")
		for _, c := range r.LikelyCauses {
			fmt.Fprintf(&b, "%s\n", wrap(c, "  - ", "    "))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// maxListedBackends is how many backends the text report names.
const maxListedBackends = 30

// textWidth is where wrap breaks prose lines.
const textWidth = 80

// wrap breaks text into lines of at most textWidth runes at spaces, the
// first line starting with first, the others with rest.
func wrap(text, first, rest string) string {
	var b strings.Builder
	line := first
	lineStart := true
	for _, word := range strings.Fields(text) {
		if !lineStart && utf8.RuneCountInString(line)+1+utf8.RuneCountInString(word) > textWidth {
			b.WriteString(line + "\n")
			line, lineStart = rest, true
		}
		if !lineStart {
			line += " "
		}
		line += word
		lineStart = false
	}
	b.WriteString(line)
	return b.String()
}

func describe(t Test, alpha float64) string {
	if !t.Applicable {
		return "not applicable, " + t.Note
	}
	s := fmt.Sprintf("statistic %.2f, df %d, %s", t.Statistic, t.DF, formatP(t.PValue))
	if t.Passed {
		s += fmt.Sprintf(", passes at alpha %g", alpha)
	} else {
		s += fmt.Sprintf(", FAILS at alpha %g", alpha)
	}
	if t.Note != "" {
		s += " (" + t.Note + ")"
	}
	return s
}
