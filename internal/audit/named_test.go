package audit

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseExpectNames(t *testing.T) {
	header := mustBackend(t, "header:X-Pod")
	e, err := ParseExpect("uniform:web-a,web-b,10.0.0.7:8080", header, GroupSpec{})
	if err != nil || e.Kind != ExpectUniform || e.Backends != 3 || !slices.Equal(e.Names, []string{"web-a", "web-b", "10.0.0.7:8080"}) || e.String() != "uniform:web-a,web-b,10.0.0.7:8080" {
		t.Errorf("uniform:NAMES = %+v, %v", e, err)
	}
	// A single whole number is still uniform:N; a name may hold digits.
	if e, err := ParseExpect("uniform:12", header, GroupSpec{}); err != nil || e.Backends != 12 || e.Names != nil {
		t.Errorf("uniform:12 = %+v, %v", e, err)
	}
	if e, err := ParseExpect("uniform:12,13", header, GroupSpec{}); err != nil || len(e.Names) != 2 {
		t.Errorf("uniform:12,13 = %+v, %v", e, err)
	}
	many := make([]string, MaxExpectedBackends+1)
	for i := range many {
		many[i] = fmt.Sprintf("pod-%d", i)
	}
	for spec, want := range map[string]string{
		"uniform:":                            "an empty name",
		"uniform:a,,b":                        "an empty name",
		"uniform:a,b,a":                       `name "a" is given twice`,
		"uniform:a b":                         `name "a b" has a character other than`,
		"uniform:a\x1b[2J":                    "has a character other than",
		"uniform:" + strings.Repeat("x", 254): "longer than 253 characters",
		"uniform:" + strings.Join(many, ","):  "lists more than 1000 names",
		"uniform:0":                           "N in uniform:N must be a whole number from 1 to 1000",
	} {
		_, err := ParseExpect(spec, header, GroupSpec{})
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "--expect") || len(err.Error()) > 400 {
			t.Errorf("%.40q: error %v, want one saying %q", spec, err, want)
		}
		if err != nil && err.Error() != strings.ToValidUTF8(err.Error(), "") {
			t.Errorf("%.40q: error is not valid UTF-8", spec)
		}
	}
}

// drawNamed draws from a server answering as names at random and judges it
// against expect; until asks for --until decided.
func drawNamed(t *testing.T, names []string, draws int, expect string, until bool) Report {
	t.Helper()
	srv := randomServer(t, names, func(w http.ResponseWriter, _ *http.Request, name string) { w.Header().Set("X-Pod", name) })
	o := Options{URL: srv.URL, Draws: draws, Concurrency: 1, Timeout: 5 * time.Second, Backend: mustBackend(t, "header:X-Pod")}
	e, err := ParseExpect(expect, o.Backend, GroupSpec{})
	if err != nil {
		t.Fatal(err)
	}
	a := Audit{Options: o, Expect: e, Alpha: 0.001}
	if until {
		a.Until = UntilDecided
	}
	s, err := DrawUntil(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	return Analyze(s, a)
}

func backendRow(r Report, name string) (BackendRow, bool) {
	for _, b := range r.Backends {
		if b.Name == name {
			return b, true
		}
	}
	return BackendRow{}, false
}

func TestUniformNamesOnRealListeners(t *testing.T) {
	four := []string{"web-a", "web-b", "web-c", "web-d"}
	listed := "uniform:" + strings.Join(four, ",")

	// The listed backends, all answering at random: consistent.
	r := drawNamed(t, four, 1200, listed, false)
	if r.Verdict != Consistent || r.BackendsSilent != 0 || r.BackendsUnexpected != nil || r.GoodnessOfFit.DF != 3 || r.Anytime.Fit.Rejected {
		t.Errorf("the listed set: %s — %s; fit %+v", r.Verdict, r.Summary, r.GoodnessOfFit)
	}

	// A fifth backend answers although it is not listed: it fails the fit
	// outright, by name, in both kinds of test.
	r = drawNamed(t, append(slices.Clone(four), "web-stale"), 1200, listed, false)
	row, ok := backendRow(r, "web-stale")
	if r.Verdict != Inconsistent || r.GoodnessOfFit.Passed || r.GoodnessOfFit.PValue != 0 || !strings.Contains(r.GoodnessOfFit.Note, "does not list: web-stale") ||
		!slices.Equal(r.BackendsUnexpected, []string{"web-stale"}) || !ok || row.Group != "web-stale" || !r.Anytime.Fit.Rejected {
		t.Errorf("an unlisted backend: %s — %s; fit %+v; unexpected %v; anytime fit %+v", r.Verdict, r.Summary, r.GoodnessOfFit, r.BackendsUnexpected, r.Anytime.Fit)
	}
	if causes := strings.Join(r.LikelyCauses, " "); !strings.Contains(causes, "web-stale came up although --expect gives it weight 0") {
		t.Errorf("causes do not name the unlisted backend: %s", causes)
	}

	// A listed backend never answers: a row with count 0, named in the
	// uniformity note, and the fit counts it.
	r = drawNamed(t, four[:3], 1200, listed, false)
	row, ok = backendRow(r, "web-d")
	if r.Verdict != Inconsistent || !ok || row.Count != 0 || r.BackendsSilent != 1 || r.BackendsSeen != 3 || r.BackendsWanted != 4 ||
		r.Uniformity.Passed || !strings.Contains(r.Uniformity.Note, "never answered: web-d") || r.GoodnessOfFit.Passed || !r.Anytime.Fit.Rejected {
		t.Errorf("a silent listed backend: %s — %s; row %+v; uniformity %+v; fit %+v", r.Verdict, r.Summary, row, r.Uniformity, r.GoodnessOfFit)
	}
}

// --until decided stops at the first draw of an unlisted backend, and soon
// when a listed one stays silent.
func TestUniformNamesUntilDecidedStopsEarly(t *testing.T) {
	four := []string{"web-a", "web-b", "web-c", "web-d"}
	listed := "uniform:" + strings.Join(four, ",")
	r := drawNamed(t, append(slices.Clone(four), "web-stale"), 2000, listed, true)
	if r.Verdict != Inconsistent || r.Drawn > 100 || !strings.HasPrefix(r.Stopped, "decided after") || !strings.Contains(r.Stopped, "fit rejects") {
		t.Errorf("an unlisted backend: %d draws, stopped %q: %s", r.Drawn, r.Stopped, r.Summary)
	}
	if row, ok := backendRow(r, "web-stale"); !ok || row.Count != 1 {
		t.Errorf("the run should stop at the unlisted backend's first draw: %+v", r.Backends)
	}
	t.Logf("unlisted: %d draws, %s", r.Drawn, r.Stopped)
	r = drawNamed(t, four[:3], 2000, listed, true)
	if r.Verdict != Inconsistent || r.Drawn > 500 || !strings.HasPrefix(r.Stopped, "decided after") {
		t.Errorf("a silent listed backend: %d draws, stopped %q: %s", r.Drawn, r.Stopped, r.Summary)
	}
	t.Logf("silent: %d draws, %s", r.Drawn, r.Stopped)
	r = drawNamed(t, four, 2000, listed, true)
	if r.Verdict != Consistent || r.Drawn != 2000 || r.Stopped != "" {
		t.Errorf("the listed set: %d draws, stopped %q: %s", r.Drawn, r.Stopped, r.Summary)
	}
}
