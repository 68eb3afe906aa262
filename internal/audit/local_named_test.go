package audit_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/omikuji/omikuji/internal/audit"
	"github.com/omikuji/omikuji/internal/local"
)

// uniform:NAMES with omikuji's own backend: the groups stay the fortunes
// their answers name, every listed pod weighs one, a pod left out of the
// list is unexpected and a listed pod that does not exist stays silent.
func TestLocalUniformNames(t *testing.T) {
	sys := startLocal(t, local.Random, false)
	var pods []string
	for _, r := range sys.Replicas() {
		pods = append(pods, r.Pod)
	}
	run := func(names []string, draws int, until bool) audit.Report {
		t.Helper()
		o := audit.Options{URL: sys.URL(), Draws: draws, Concurrency: 1, Timeout: 5 * time.Second}
		e, err := audit.ParseExpect("uniform:"+strings.Join(names, ","), audit.BackendSpec{Kind: audit.KindOmikuji}, audit.GroupSpec{})
		if err != nil {
			t.Fatal(err)
		}
		a := audit.Audit{Options: o, Expect: e, Alpha: alpha}
		if until {
			a.Until = audit.UntilDecided
		}
		s, err := audit.DrawUntil(context.Background(), a)
		if err != nil {
			t.Fatal(err)
		}
		return audit.Analyze(s, a)
	}

	// Every pod listed: the fortunes' weights are their pods, 1/2/6/1.
	r := run(pods, 1500, false)
	if r.Verdict != audit.Consistent || !r.FortuneGroups || r.GoodnessOfFit.DF != 3 || r.Groups[2].Weight != 6 || r.BackendsSilent != 0 {
		t.Errorf("every pod listed: %s — %s; rows %+v", r.Verdict, r.Summary, r.Groups)
	}

	// One pod left out answers anyway: --until decided stops at its first
	// draw, with the pod named.
	left := pods[len(pods)-1]
	r = run(pods[:len(pods)-1], 1500, true)
	if r.Verdict != audit.Inconsistent || r.Drawn >= 200 || !strings.Contains(r.Stopped, "fit rejects") || !slices.Equal(r.BackendsUnexpected, []string{left}) {
		t.Errorf("%s left out: %d draws, stopped %q, unexpected %v: %s", left, r.Drawn, r.Stopped, r.BackendsUnexpected, r.Summary)
	}
	t.Logf("%s left out: %d draws, %s", left, r.Drawn, r.Stopped)

	// A listed pod that never answers: a backend row with count 0, in a
	// row of its own (only an answer names a fortune).
	ghost := "small-fortune-zzzzz"
	r = run(append(slices.Clone(pods), ghost), 1000, false)
	var row audit.BackendRow
	for _, b := range r.Backends {
		if b.Name == ghost {
			row = b
		}
	}
	if r.Verdict != audit.Inconsistent || row.Name != ghost || row.Count != 0 || row.Group != ghost || r.BackendsSilent != 1 ||
		!strings.Contains(r.Uniformity.Note, "never answered: "+ghost) || r.GoodnessOfFit.Passed {
		t.Errorf("a silent listed pod: %s — %s; row %+v; uniformity %+v; fit %+v", r.Verdict, r.Summary, row, r.Uniformity, r.GoodnessOfFit)
	}
}
