package audit

import (
	"fmt"
	"slices"
	"strings"
)

// The verdict stage: Analyze measures a sample against its Model, then
// judges it: the verdict, a summary in plain words and the likely causes.

// Analyze audits a sample.
func Analyze(s Sample, a Audit) Report {
	r := measure(s, a)
	r.judge()
	return r
}

// judge sets the verdict, the summary and the likely causes.
func (r *Report) judge() {
	var wrong, asideWrong, inapplicable, passed []string
	vacuous := 0
	for _, t := range r.tests() {
		deciding := slices.Contains(r.Tests, t.name)
		switch {
		case !t.test.Passed && deciding:
			wrong = append(wrong, fmt.Sprintf("%s (%s, %s)", t.says, t.name, formatP(t.test.PValue, "=")))
		case !t.test.Passed:
			asideWrong = append(asideWrong, fmt.Sprintf("%s (%s)", t.name, formatP(t.test.PValue, "=")))
		case !t.test.Applicable && t.test.NothingToTest && deciding:
			vacuous++
		case !t.test.Applicable && deciding:
			inapplicable = append(inapplicable, t.name)
		case deciding:
			passed = append(passed, fmt.Sprintf("%s %s", t.name, formatP(t.test.PValue, "=")))
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
	for _, n := range r.SharedNames {
		r.Summary += " " + n.Sentence()
	}
	r.Pass = r.Verdict == Consistent || r.Verdict == Inconclusive
	r.LikelyCauses = append(r.LikelyCauses, r.oddsCauses()...)
	r.LikelyCauses = append(r.LikelyCauses, r.failureCauses()...)
}

// Sentence says in plain words what a shared name means and how to fix it.
func (n SharedName) Sentence() string {
	return fmt.Sprintf("Backend `%s` answered as %s: the backend names are not unique, e.g. several replicas sharing a host name; give each its own `--pod`.", n.Name, andList(n.Groups))
}

// andList joins words as "a, b and c".
func andList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}
