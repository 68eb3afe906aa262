package audit

import (
	"fmt"
	"io"
	"maps"
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
	Consistent   = "consistent"   // both tests pass
	Inconclusive = "inconclusive" // too few draws to test; nothing shown wrong
	Inconsistent = "inconsistent" // a test failed at Alpha
	Unreachable  = "unreachable"  // no draw succeeded
)

// A Report is the audit of a sample: what --json prints. Its fields are the
// stable schema documented in docs/draw.md.
type Report struct {
	URL             string            `json:"url"`
	Requested       int               `json:"draws_requested"`
	Drawn           int               `json:"draws"` // finished: succeeded + failed
	Succeeded       int               `json:"succeeded"`
	Failed          int               `json:"failed"`
	Concurrency     int               `json:"concurrency"`
	KeepAlive       bool              `json:"keep_alive"`
	Alpha           float64           `json:"alpha"`
	Stopped         string            `json:"stopped,omitempty"`
	Fortunes        []Row             `json:"fortunes"`
	Failures        map[string]int    `json:"failures"`
	FailureExamples map[string]string `json:"failure_examples"`
	GoodnessOfFit   Test              `json:"goodness_of_fit"`
	Independence    Test              `json:"independence"`
	Verdict         string            `json:"verdict"`
	Pass            bool              `json:"pass"`
	Summary         string            `json:"summary"`
	LikelyCauses    []string          `json:"likely_causes"`
}

// A Row is one fortune's line of the report.
type Row struct {
	ID            string   `json:"id"`
	Label         string   `json:"label"`
	Weight        int      `json:"expected_weight"`
	ExpectedShare float64  `json:"expected_share"` // 0..1
	Count         int      `json:"count"`
	ObservedShare float64  `json:"observed_share"` // 0..1 of successful draws
	Pods          int      `json:"pods"`           // distinct pods seen serving it
	PodNames      []string `json:"pod_names"`
}

// Analyze audits a sample drawn with o against the expected weights at
// significance level alpha.
func Analyze(s Sample, o Options, expect fortune.Counts, alpha float64) Report {
	r := Report{
		URL: o.URL, Requested: o.Draws, Drawn: len(s.Outcomes), Concurrency: o.Concurrency,
		KeepAlive: o.KeepAlive, Alpha: alpha, Stopped: s.Stopped,
		Failures: map[string]int{}, FailureExamples: map[string]string{}, LikelyCauses: []string{},
	}
	index := make(map[string]int, len(fortune.Catalogue))
	pods := make([]map[string]bool, len(fortune.Catalogue))
	for i, f := range fortune.Catalogue {
		index[f.ID] = i
		pods[i] = map[string]bool{}
		r.Fortunes = append(r.Fortunes, Row{ID: f.ID, Label: f.Label, Weight: expect[f.ID]})
	}
	var seq []int
	for _, out := range s.Outcomes {
		if out.Failure != "" {
			r.Failed++
			r.Failures[out.Failure]++
			if _, ok := r.FailureExamples[out.Failure]; !ok {
				r.FailureExamples[out.Failure] = out.Err
			}
			continue
		}
		i := index[out.Fortune]
		r.Succeeded++
		r.Fortunes[i].Count++
		if out.Pod != "" {
			pods[i][out.Pod] = true
		}
		seq = append(seq, i)
	}
	observed, weights := make([]int, len(r.Fortunes)), make([]int, len(r.Fortunes))
	for i := range r.Fortunes {
		row := &r.Fortunes[i]
		row.ExpectedShare = float64(row.Weight) / float64(expect.Total())
		if r.Succeeded > 0 {
			row.ObservedShare = float64(row.Count) / float64(r.Succeeded)
		}
		row.PodNames = append([]string{}, slices.Sorted(maps.Keys(pods[i]))...) // [] rather than null in JSON
		row.Pods = len(row.PodNames)
		observed[i], weights[i] = row.Count, row.Weight
	}
	r.GoodnessOfFit = GoodnessOfFit(observed, weights, alpha)
	r.Independence = Independence(seq, len(fortune.Catalogue), alpha)
	r.judge()
	return r
}

// ExitCode is what the draw command exits with: 0 consistent (or too few
// draws to say otherwise), 1 a test failed, 2 nothing could be drawn.
func (r Report) ExitCode() int {
	switch r.Verdict {
	case Unreachable:
		return 2
	case Inconsistent:
		return 1
	}
	return 0
}

// judge sets the verdict, the summary and the likely causes.
func (r *Report) judge() {
	gof, ind := r.GoodnessOfFit, r.Independence
	switch {
	case r.Succeeded == 0:
		r.Verdict = Unreachable
		r.Summary = "No draw succeeded, so there are no odds to audit."
	case !gof.Passed || !ind.Passed:
		r.Verdict = Inconsistent
		var wrong []string
		if !gof.Passed {
			wrong = append(wrong, fmt.Sprintf("the shares do not match the expected odds (%s)", formatP(gof.PValue)))
		}
		if !ind.Passed {
			wrong = append(wrong, fmt.Sprintf("each draw depends on the one before it (%s)", formatP(ind.PValue)))
		}
		r.Summary = "The balancer is not drawing the lot fairly: " + strings.Join(wrong, ", and ") + "."
	case !gof.Applicable || !ind.Applicable:
		r.Verdict = Inconclusive
		r.Summary = "Too few successful draws to judge the odds; draw more (-n)."
	default:
		r.Verdict = Consistent
		r.Summary = fmt.Sprintf("The draws match the expected odds (%s) and show no pattern from one draw to the next (%s): the balancer draws the lot.",
			formatP(gof.PValue), formatP(ind.PValue))
	}
	if r.Failed > 0 && r.Succeeded > 0 {
		r.Summary += fmt.Sprintf(" %d of %d draws failed and are left out of the tests.", r.Failed, r.Drawn)
	}
	r.Pass = r.Verdict == Consistent || r.Verdict == Inconclusive
	r.LikelyCauses = append(r.LikelyCauses, r.oddsCauses()...)
	r.LikelyCauses = append(r.LikelyCauses, r.failureCauses()...)
}

// oddsCauses names what usually makes a test fail, from the shape of the sample.
func (r *Report) oddsCauses() []string {
	var causes []string
	if !r.Independence.Passed {
		cause := "The balancer cycles through the pods instead of choosing at random: kube-proxy in IPVS mode with the round-robin (rr) scheduler, or a round-robin proxy or ingress in front of the Service."
		// Dealing pods out in turn also makes the shares too exact: the
		// statistic falls in the lower tail, where chance rarely puts it.
		if g := r.GoodnessOfFit; g.Applicable && g.DF > 0 && (distuv.ChiSquared{K: float64(g.DF)}).CDF(g.Statistic) < r.Alpha {
			cause += " The shares are also closer to the weights than chance allows, as when pods are dealt out in turn."
		}
		causes = append(causes, cause)
	}
	if r.GoodnessOfFit.Passed {
		return causes
	}
	podsSeen, expected := 0, 0
	var missing, unexpected []string
	for _, row := range r.Fortunes {
		podsSeen += row.Pods
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
		causes = append(causes, fmt.Sprintf("Keep-alive pinning, as asked (--keep-alive): each worker (%d here) kept one connection, and the balancer picks a pod only when a connection opens, so all of a worker's draws came from one pod.", r.Concurrency))
	case podsSeen > 0 && podsSeen <= r.Concurrency && podsSeen < expected:
		// Fewer pods than expected fortunes, and no more than one per
		// worker: connections stick to pods somewhere.
		causes = append(causes, fmt.Sprintf("Every draw came from just %d pod(s) although each used a new connection: the Service has sessionAffinity: ClientIP, or a proxy in between keeps connections alive to the pods (keep-alive pinning).", podsSeen))
	}
	if len(unexpected) > 0 {
		causes = append(causes, fmt.Sprintf("%s came up although --expect gives it weight 0: the expectation is not what is deployed.", strings.Join(unexpected, ", ")))
	}
	if len(missing) > 0 && !r.KeepAlive {
		causes = append(causes, fmt.Sprintf("%s never came up: its pods are not Ready (the Service has no endpoints for them), or the Service has externalTrafficPolicy: Local and the node you hit runs none of them.", strings.Join(missing, ", ")))
	}
	if len(causes) == specific {
		causes = append(causes, "The shares differ from the weights: compare the pods seen per fortune with the replica counts. A pod that is not Ready takes no draws; with externalTrafficPolicy: Local a node balances only over its own pods; or --expect does not match the deployed replicas.")
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
		causes = append(causes, fmt.Sprintf("%d connection(s) refused: nothing listens at that address and port (wrong URL or NodePort), or the Service has no Ready endpoints.", n))
	}
	if n := r.Failures[FailTimeout]; n > 0 {
		causes = append(causes, fmt.Sprintf("%d draw(s) timed out: a firewall or security group drops the packets, the node is unreachable, or pods are overloaded (see --timeout).", n))
	}
	if n := r.Failures[FailReset]; n > 0 {
		causes = append(causes, fmt.Sprintf("%d connection(s) reset or closed early: pods restarting or terminating mid-draw.", n))
	}
	if n := r.Failures[FailDNS]; n > 0 {
		causes = append(causes, fmt.Sprintf("%d draw(s) failed to resolve the host name.", n))
	}
	if httpErrors > 0 {
		causes = append(causes, fmt.Sprintf("%d draw(s) answered with an HTTP error status: the URL is not a draw endpoint, or a proxy in front answered instead of a pod.", httpErrors))
	}
	if n := r.Failures[FailBadBody] + r.Failures[FailUnknown]; n > 0 {
		causes = append(causes, fmt.Sprintf("%d answer(s) were not omikuji draws: is the URL an omikuji service?", n))
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
	fmt.Fprintf(tw, "fortune\t%s\texpected\t%*s\tobserved\tpods\t\n", padLabel("", labelWidth), cw, "count")
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
	for _, t := range []Test{r.GoodnessOfFit, r.Independence} {
		fmt.Fprintf(&b, "%s: %s\n", t.Name, describe(t, r.Alpha))
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
