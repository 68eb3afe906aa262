package audit

import (
	"strings"
	"testing"

	"github.com/omikuji/omikuji/internal/fortune"
)

// A pass on the deciding tests that a test which does not decide
// contradicts reads as one message: it passes, says what fails and claims
// no more than was decided ("show no pattern … draws the lot" would
// contradict the failing test and its likely causes).
func TestPassWithAFailingTestThatDoesNotDecideIsOneMessage(t *testing.T) {
	// Exact odds in a fixed cycle: fit passes, independence fails.
	var seq []int
	for range 100 {
		for c, f := range fortune.Catalogue {
			for range f.Replicas {
				seq = append(seq, c)
			}
		}
	}
	a := omikujiAudit(Options{URL: "http://127.0.0.1/", Draws: len(seq), Concurrency: 1}, fortune.DefaultReplicas(), 0.001)
	a.Tests = []string{TestFit}
	r := Analyze(sampleOf(seq, 1), a)
	if r.Verdict != Consistent || !r.Pass || r.Independence.Passed {
		t.Fatalf("%s, independence %+v", r.Verdict, r.Independence)
	}
	for _, bad := range []string{"show no pattern", ": the balancer draws the lot"} {
		if strings.Contains(r.Summary, bad) {
			t.Errorf("the summary claims %q although independence fails: %s", bad, r.Summary)
		}
	}
	for _, want := range []string{"The deciding test passes (fit p = ", "so the run passes", "Not deciding here (--tests fit), but failing: each draw depends on the one before it (independence, p < 1e-300)", "does not show that the balancer draws the lot"} {
		if !strings.Contains(r.Summary, want) {
			t.Errorf("the summary lacks %q: %s", want, r.Summary)
		}
	}
	if len(r.LikelyCauses) == 0 {
		t.Error("the failing test's likely causes are gone")
	}
}
