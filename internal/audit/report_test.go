package audit

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/omikuji/omikuji/internal/fortune"
)

// sampleOf turns category numbers into outcomes from pods named after the
// fortune, each drawn at random from pods pods per fortune.
// It goes through the recorder that Draw uses; extra outcomes follow.
func sampleOf(seq []int, pods int, extra ...Outcome) Sample {
	rec := newRecorder(len(seq) + len(extra))
	rng := rand.New(rand.NewPCG(uint64(len(seq)), uint64(pods)))
	for i, c := range seq {
		id := fortune.Catalogue[c].ID
		rec.record(i, Outcome{Backend: id + "-" + string(rune('a'+rng.IntN(pods))), Group: id})
	}
	for i, out := range extra {
		rec.record(len(seq)+i, out)
	}
	return rec.sample()
}

func TestReportJSONSchema(t *testing.T) {
	seq := drawSeq(rand.New(rand.NewPCG(7, 8)), 2000, defaultWeights)
	s := sampleOf(seq, 2, Outcome{Failure: FailTimeout, Err: "i/o timeout"})
	o := Options{URL: "http://127.0.0.1:30081/", Draws: 2001, Concurrency: 8}
	r := Analyze(s, omikujiAudit(o, fortune.DefaultReplicas(), 0.001))
	raw, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	// Decode into plain maps: this is what a script reading --json sees.
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"url", "draws_requested", "draws", "succeeded", "failed", "concurrency", "keep_alive", "alpha",
		"fortunes", "failures", "failure_examples", "goodness_of_fit", "independence", "verdict", "pass", "summary", "likely_causes"} {
		if _, ok := got[key]; !ok {
			t.Errorf("--json lacks %q: %s", key, raw)
		}
	}
	if got["draws"] != 2001.0 || got["succeeded"] != 2000.0 || got["failed"] != 1.0 || got["verdict"] != Consistent || got["pass"] != true {
		t.Errorf("totals or verdict wrong: %s", raw)
	}
	if !strings.Contains(r.Summary, "1 of 2001 draws failed") || !strings.Contains(strings.Join(r.LikelyCauses, " "), "timed out") {
		t.Errorf("a failed draw is not mentioned: %q %q", r.Summary, r.LikelyCauses)
	}
	if f := got["failures"].(map[string]any); f["timeout"] != 1.0 {
		t.Errorf("failures = %v", f)
	}
	rows := got["fortunes"].([]any)
	if len(rows) != len(fortune.Catalogue) {
		t.Fatalf("%d fortune rows", len(rows))
	}
	for i, raw := range rows {
		row := raw.(map[string]any)
		f := fortune.Catalogue[i]
		if row["id"] != f.ID || row["label"] != f.Label || row["expected_weight"] != float64(f.Replicas) || row["pods"] != 2.0 || len(row["pod_names"].([]any)) != 2 {
			t.Errorf("row %d: %v", i, row)
		}
		for _, key := range []string{"expected_share", "count", "observed_share"} {
			if _, ok := row[key].(float64); !ok {
				t.Errorf("row %d lacks %s: %v", i, key, row)
			}
		}
	}
	if empty := Analyze(Sample{}, omikujiAudit(o, fortune.DefaultReplicas(), 0.001)); empty.Groups[0].PodNames == nil {
		t.Errorf("pod_names must be [] rather than null when no pod answered")
	}
	for _, name := range []string{"goodness_of_fit", "independence"} {
		test := got[name].(map[string]any)
		for _, key := range []string{"name", "applicable", "statistic", "df", "p_value", "passed"} {
			if _, ok := test[key]; !ok {
				t.Errorf("%s lacks %s: %v", name, key, test)
			}
		}
	}
}

func TestReportNamesCauses(t *testing.T) {
	cycle := []int{0, 1, 1, 2, 2, 2, 2, 2, 2, 3}
	var rr []int
	for range 300 {
		rr = append(rr, cycle...)
	}
	rrRec := newRecorder(len(rr)) // one pod per place in the cycle, dealt out in turn
	for i, c := range rr {
		id := fortune.Catalogue[c].ID
		rrRec.record(i, Outcome{Backend: fmt.Sprintf("%s-%d", id, i%len(cycle)), Group: id})
	}
	rrSample := rrRec.sample()
	pinned := make([]int, 1000) // every draw a great-fortune
	fair := drawSeq(rand.New(rand.NewPCG(9, 10)), 3000, defaultWeights)
	noMisfortune := make([]int, 0, len(fair))
	for _, c := range fair {
		if c != 3 {
			noMisfortune = append(noMisfortune, c)
		}
	}
	for _, tc := range []struct {
		name      string
		sample    Sample
		keepAlive bool
		verdict   string
		causes    []string
	}{
		{"fair", sampleOf(fair, 1), false, Consistent, nil},
		{"round robin", rrSample, false, Inconsistent, []string{"round-robin", "IPVS", "0 times where chance expects"}},
		{"keep-alive", sampleOf(pinned, 1), true, Inconsistent, []string{"Keep-alive pinning"}},
		{"affinity", sampleOf(pinned, 1), false, Inconsistent, []string{"sessionAffinity: ClientIP"}},
		{"missing", sampleOf(noMisfortune, 1), false, Inconsistent, []string{"misfortune never came up", "not Ready", "externalTrafficPolicy: Local"}},
		{"too few", sampleOf(fair[:3], 1), false, Inconclusive, nil},
	} {
		o := Options{URL: "http://127.0.0.1/", Draws: len(tc.sample.Seq), Concurrency: 1, KeepAlive: tc.keepAlive}
		r := Analyze(tc.sample, omikujiAudit(o, fortune.DefaultReplicas(), 0.001))
		if r.Verdict != tc.verdict {
			t.Errorf("%s: verdict %s (%s), want %s", tc.name, r.Verdict, r.Summary, tc.verdict)
		}
		wantExit := map[string]int{Consistent: 0, Inconclusive: 0, Inconsistent: 1}[tc.verdict]
		if r.ExitCode() != wantExit || r.Pass != (wantExit == 0) {
			t.Errorf("%s: exit %d pass %v, want exit %d", tc.name, r.ExitCode(), r.Pass, wantExit)
		}
		causes := strings.Join(r.LikelyCauses, "\n")
		if tc.causes == nil && causes != "" {
			t.Errorf("%s: causes named for a sample with nothing wrong: %s", tc.name, causes)
		}
		for _, want := range tc.causes {
			if !strings.Contains(causes, want) {
				t.Errorf("%s: causes %q do not mention %q", tc.name, causes, want)
			}
		}
		var text strings.Builder
		if err := r.WriteText(&text); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(text.String(), strings.ToUpper(tc.verdict)) || !strings.Contains(text.String(), "大吉") {
			t.Errorf("%s: text output lacks the verdict or the table:\n%s", tc.name, text.String())
		}
	}
}

func TestTextTableLinesUpInATerminal(t *testing.T) {
	seq := drawSeq(rand.New(rand.NewPCG(11, 12)), 1000, defaultWeights)
	r := Analyze(sampleOf(seq, 1), omikujiAudit(Options{URL: "http://127.0.0.1/", Draws: 1000, Concurrency: 1}, fortune.DefaultReplicas(), 0.001))
	var text strings.Builder
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	// The "%" after the expected share must sit in the same terminal column
	// on every fortune row, kanji being two columns wide.
	col := -1
	for _, line := range strings.Split(text.String(), "\n") {
		if !strings.Contains(line, "%") || !strings.Contains(line, "-fortune") && !strings.HasPrefix(strings.TrimSpace(line), "misfortune") {
			continue
		}
		c := displayWidth(line[:strings.Index(line, "%")])
		if col >= 0 && c != col {
			t.Errorf("columns do not line up:\n%s", text.String())
			break
		}
		col = c
	}
	if col < 0 {
		t.Fatalf("no fortune rows in:\n%s", text.String())
	}
}

// displayWidth counts terminal columns: CJK ideographs and the ideographic
// space take two.
func displayWidth(s string) int {
	w := 0
	for _, r := range s {
		if r >= 0x3000 && r <= 0x9fff {
			w += 2
		} else {
			w++
		}
	}
	return w
}
