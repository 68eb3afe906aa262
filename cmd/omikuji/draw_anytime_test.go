package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/omikuji/omikuji/internal/audit"
)

func TestUntilAndPrecisionFlags(t *testing.T) {
	srv, requests := fortuneServer(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{srv.URL, "--until", "soon"}, `--until "soon": the only stop is "decided"; for example --until decided`},
		{[]string{srv.URL, "--precision", "0"}, "--precision must be a share between 0 and 0.5, got 0; for example --precision 0.01"},
		{[]string{srv.URL, "--precision", "1"}, "--precision must be a share between 0 and 0.5"},
		{[]string{srv.URL, "--watch", "--until", "decided"}, "--watch never stops"},
		{[]string{srv.URL, "--watch", "--precision", "0.01"}, "--watch never stops"},
	} {
		code, stdout, stderr := drawCmd(tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) || stdout != "" {
			t.Errorf("draw %q: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
	if requests.Load() != 0 {
		t.Errorf("bad flags made %d requests", requests.Load())
	}
}

// A fair server at the catalogue's odds: --precision 0.05 ends with the
// guarantee long before -n, and --until decided runs to -n and passes.
func TestPrecisionGivesAGuarantee(t *testing.T) {
	srv, _ := fortuneServer(t, 3)
	code, stdout, stderr := drawCmd(srv.URL, "--precision", "0.05", "-c", "1", "--json")
	var r audit.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil || code != 0 {
		t.Fatalf("exit %d, %v, stderr %q", code, err, stderr)
	}
	if !r.AnytimeDecides || r.Verdict != audit.Consistent || r.Guarantee != "every share is within ±5 points of expected, at 99.9 % confidence" ||
		r.Drawn >= audit.MaxDraws || !strings.Contains(r.Stopped, "within ±5 points of expected") {
		t.Errorf("%d draws, stopped %q, %s: %s (guarantee %q)", r.Drawn, r.Stopped, r.Verdict, r.Summary, r.Guarantee)
	}
	t.Logf("±5 points after %d draws", r.Drawn)
	code, stdout, _ = drawCmd(srv.URL, "--until", "decided", "-n", "300", "-c", "1")
	if code != 0 || !strings.Contains(stdout, "Anytime-valid tests (deciding;") || !strings.Contains(stdout, "CONSISTENT. No anytime-valid test found a fault in 300 draws") {
		t.Errorf("exit %d:\n%s", code, stdout)
	}
}

// Ten backends expected, one never answers: --expect uniform:10 --until
// decided finds it in a few hundred draws; told only "uniform", nothing
// can see it, and the run goes on to -n and passes.
func TestUntilDecidedFindsASilentBackendOfTheExpectedTen(t *testing.T) {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(24, 10))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		pod := rng.IntN(9) // pod-9 never answers
		mu.Unlock()
		w.Header().Set("X-Pod", fmt.Sprintf("pod-%d", pod))
	}))
	t.Cleanup(srv.Close)
	code, stdout, stderr := drawCmd(srv.URL, "--backend", "header:X-Pod", "--expect", "uniform:10", "--until", "decided", "-n", "2000", "-c", "1", "--json")
	var r audit.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil || code != 1 {
		t.Fatalf("uniform:10: exit %d, %v, stderr %q", code, err, stderr)
	}
	if !r.AnytimeDecides || r.Verdict != audit.Inconsistent || !r.Anytime.Fit.Rejected || r.Drawn > 500 || !strings.HasPrefix(r.Stopped, "decided after") {
		t.Errorf("uniform:10: %d draws, stopped %q, %s: %s", r.Drawn, r.Stopped, r.Verdict, r.Summary)
	}
	t.Logf("uniform:10, one silent: %s", r.Stopped)
	code, stdout, stderr = drawCmd(srv.URL, "--backend", "header:X-Pod", "--expect", "uniform", "--until", "decided", "-n", "1000", "-c", "1", "--json")
	r = audit.Report{}
	if err := json.Unmarshal([]byte(stdout), &r); err != nil || code != 0 || r.Drawn != 1000 || r.Stopped != "" {
		t.Errorf("uniform: exit %d, %v, %d draws, stopped %q, stderr %q", code, err, r.Drawn, r.Stopped, stderr)
	}
}

// --expect uniform:NAMES: bad names exit 2 before any draw; a stale
// backend still answering and a listed one never reached are both named,
// in the JSON and the text, and --until decided stops on them early.
func TestExpectUniformNames(t *testing.T) {
	srv, requests := fortuneServer(t)
	for _, tc := range []struct{ spec, want string }{
		{"uniform:a,,b", `--expect "uniform:a,,b": an empty name in uniform:NAME,...; for example uniform:web-7d4b9c-x2x8q,web-7d4b9c-z9k2m`},
		{"uniform:a,b,a", `name "a" is given twice`},
		{"uniform:a;b", `name "a;b" has a character other than letters, digits and . _ - : @ / +`},
	} {
		code, stdout, stderr := drawCmd(srv.URL, "--expect", tc.spec)
		if code != 2 || !strings.Contains(stderr, tc.want) || stdout != "" {
			t.Errorf("--expect %q: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.spec, code, stdout, stderr, tc.want)
		}
	}
	if requests.Load() != 0 {
		t.Errorf("bad --expect made %d requests", requests.Load())
	}

	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(5, 6))
	pods := []string{"web-a", "web-b", "web-c", "web-old"} // web-old is stale; web-new is never reached
	backends := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		pod := pods[rng.IntN(len(pods))]
		mu.Unlock()
		w.Header().Set("X-Pod", pod)
	}))
	t.Cleanup(backends.Close)
	expect := "uniform:web-a,web-b,web-c,web-new"
	code, stdout, stderr := drawCmd(backends.URL, "--backend", "header:X-Pod", "--expect", expect, "-n", "400", "-c", "1", "--json")
	var r audit.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil || code != 1 {
		t.Fatalf("exit %d, %v, stderr %q", code, err, stderr)
	}
	silent := false
	for _, b := range r.Backends {
		silent = silent || (b.Name == "web-new" && b.Count == 0)
	}
	if r.Expect != expect || !silent || r.BackendsSilent != 1 || len(r.BackendsUnexpected) != 1 || r.BackendsUnexpected[0] != "web-old" ||
		!strings.Contains(r.GoodnessOfFit.Note, "does not list: web-old") || !strings.Contains(r.Uniformity.Note, "never answered: web-new") {
		t.Errorf("report: expect %q, backends %+v, unexpected %v, fit %+v, uniformity %+v", r.Expect, r.Backends, r.BackendsUnexpected, r.GoodnessOfFit, r.Uniformity)
	}
	code, stdout, _ = drawCmd(backends.URL, "--backend", "header:X-Pod", "--expect", expect, "-n", "400", "-c", "1")
	for _, want := range []string{"web-new", "web-old came up although --expect gives it weight 0", "INCONSISTENT"} {
		if code != 1 || !strings.Contains(stdout, want) {
			t.Errorf("text lacks %q (exit %d):\n%s", want, code, stdout)
		}
	}
	code, stdout, _ = drawCmd(backends.URL, "--backend", "header:X-Pod", "--expect", expect, "--until", "decided", "-n", "2000", "-c", "1", "--json")
	r = audit.Report{}
	if err := json.Unmarshal([]byte(stdout), &r); err != nil || code != 1 || r.Drawn > 50 || !strings.Contains(r.Stopped, "fit rejects") {
		t.Errorf("--until decided: exit %d, %v, %d draws, stopped %q", code, err, r.Drawn, r.Stopped)
	}
	t.Logf("--until decided: %s", r.Stopped)
}
