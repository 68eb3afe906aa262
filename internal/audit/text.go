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
)

// The text stage: the report as text, for a terminal or a log.

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
	for _, row := range r.Groups {
		labelWidth = max(labelWidth, utf8.RuneCountInString(row.Label))
	}
	// Numbers are right-aligned by their formats, text left-aligned by
	// tabwriter; the bar goes last, where its ragged end does no harm.
	cw := max(len("count"), len(strconv.Itoa(r.Succeeded)))
	var table strings.Builder
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	groupWord, backendWord := "group", "backends"
	if r.FortuneGroups {
		groupWord, backendWord = "fortune", "pods"
	}
	fmt.Fprintf(tw, "%s\t%s\texpected\t%*s\tobserved\t%s\t\n", groupWord, padLabel("", labelWidth), cw, "count", backendWord)
	for _, row := range r.Groups {
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
	// Rows with count 0 are listed backends that never answered.
	var answered, silent []BackendRow
	for _, be := range r.Backends {
		if be.Count > 0 {
			answered = append(answered, be)
		} else {
			silent = append(silent, be)
		}
	}
	if len(answered) > 0 {
		parts := make([]string, 0, min(len(answered), maxListedBackends))
		shared := map[string]bool{}
		for _, n := range r.SharedNames {
			shared[n.Name] = true
		}
		for _, be := range answered[:min(len(answered), maxListedBackends)] {
			if shared[be.Name] { // one name, several groups: say which is which
				parts = append(parts, fmt.Sprintf("%s (as %s) %d", be.Name, be.Group, be.Count))
				continue
			}
			parts = append(parts, fmt.Sprintf("%s %d", be.Name, be.Count))
		}
		more := ""
		if len(answered) > maxListedBackends {
			more = fmt.Sprintf(", and %d more (see --json)", len(answered)-maxListedBackends)
		}
		word := backendWord
		if r.BackendsSeen == 1 {
			word = strings.TrimSuffix(word, "s")
		}
		fmt.Fprintf(&b, "%s\n", wrap(fmt.Sprintf("%d %s answered: %s%s.", r.BackendsSeen, word, strings.Join(parts, ", "), more), "", "  "))
	}
	if len(silent) > 0 {
		names := make([]string, len(silent))
		for i, be := range silent {
			names[i] = be.Name
		}
		fmt.Fprintf(&b, "%s\n", wrap(fmt.Sprintf("Listed in --expect but never answered: %s.", listSome(names)), "", "  "))
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
	if r.Succeeded > 0 {
		b.WriteString(anytimeText(r))
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

// anytimeText is the anytime-valid tests' lines: their always-valid
// p-values and the shares' confidence sequences.
func anytimeText(r Report) string {
	a := r.Anytime
	role := "not deciding"
	if r.AnytimeDecides {
		role = "deciding"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", wrap(fmt.Sprintf("Anytime-valid tests (%s; valid whenever the draws stop): fit %s, uniform %s, independence %s.",
		role, formatP(a.Fit.PValue, "≤"), formatP(a.Uniformity.PValue, "≤"), formatP(a.Independence.PValue, "≤")), "", "  "))
	if len(a.Shares) > 0 {
		parts := make([]string, len(a.Shares))
		for i, s := range a.Shares {
			parts[i] = fmt.Sprintf("%s %.1f–%.1f %%", s.ID, 100*s.Low, 100*s.High)
		}
		fmt.Fprintf(&b, "%s\n", wrap(fmt.Sprintf("Confidence sequences at %g %%, all shares at once: %s.", 100*a.Confidence, strings.Join(parts, ", ")), "", "  "))
	}
	return b.String()
}

func describe(t Test, alpha float64) string {
	if !t.Applicable {
		return "not applicable, " + t.Note
	}
	s := fmt.Sprintf("statistic %.2f, df %d, %s", t.Statistic, t.DF, formatP(t.PValue, "="))
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
