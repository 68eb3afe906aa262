package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/omikuji/omikuji/internal/audit"
)

// scalingServer answers from two pods, then — as if someone ran kubectl
// scale — from four, and after stopAfter requests cancels the watch as
// Ctrl-C would. Pods are drawn by a seeded generator; at -c 1 the sequence
// is the same every run.
func scalingServer(t *testing.T, scaleAt, stopAfter int64, stop context.CancelFunc) *httptest.Server {
	var n atomic.Int64
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(5, 6))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		pods := 2
		if i > scaleAt {
			pods = 4
		}
		mu.Lock()
		pod := rng.IntN(pods)
		mu.Unlock()
		w.Header().Set("X-Pod", fmt.Sprintf("web-%d", pod))
		if i == stopAfter {
			stop()
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestWatchPrintsOneJSONObjectPerWindowAndNoticesScaling(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := scalingServer(t, 400, 1000, cancel)
	var stdout, stderr strings.Builder
	code := run(ctx, []string{"draw", srv.URL, "--watch", "--rate", "2000", "--window", "200", "-c", "1", "--backend", "header:X-Pod"}, &stdout, &stderr)
	sc := bufio.NewScanner(strings.NewReader(stdout.String()))
	var windows []audit.WindowSummary
	var rest strings.Builder
	for sc.Scan() {
		var w audit.WindowSummary
		if strings.HasPrefix(sc.Text(), "{") && json.Unmarshal(sc.Bytes(), &w) == nil {
			windows = append(windows, w)
			continue
		}
		rest.WriteString(sc.Text() + "\n")
	}
	// A pipe carries JSON lines only; the final text report goes to stderr.
	if len(windows) != 4 || rest.Len() != 0 || strings.Contains(stdout.String(), "\x1b") {
		t.Fatalf("exit %d, %d windows, stderr %q:\n%s", code, len(windows), stderr.String(), stdout.String())
	}
	// Windows 1 and 2 see two pods; window 3 is the first with four.
	for i, w := range windows {
		wantPods, wantChange := 2, false
		if i >= 2 {
			wantPods = 4
		}
		if i == 2 {
			wantChange = true
		}
		if w.Window != i+1 || w.Draws != 200 || w.BackendsSeen != wantPods || w.Changed != wantChange || !w.Pass {
			t.Errorf("window %d: %+v", i+1, w)
		}
	}
	if c := windows[2].Change; c == nil || !strings.Contains(c.Summary, "2 new backend(s): web-2, web-3") || c.At.IsZero() {
		t.Errorf("the change is not described: %+v", windows[2].Change)
	}
	// Ctrl-C: the final report of the last 200 draws, with the change.
	final := stderr.String()
	if code != 0 || !strings.Contains(final, "200 draws from") || !strings.Contains(final, "4 backends answered") ||
		!strings.Contains(final, "Changes of the odds while watching:") || !strings.Contains(final, "window 3: The odds changed") {
		t.Errorf("exit %d, final report:\n%s", code, final)
	}
}

func TestWatchFlags(t *testing.T) {
	srv, requests := fortuneServer(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{srv.URL, "--watch", "--rate", "-1"}, "--rate must be a positive number of draws per second, got -1; for example --rate 5"},
		{[]string{srv.URL, "--watch", "--rate", "0"}, "--rate must be a positive"},
		{[]string{srv.URL, "--rate", "-1"}, "--rate must be a positive"},
		{[]string{srv.URL, "--watch", "--window", "3", "--expect", "great-fortune=1,middle-fortune=2,small-fortune=6,misfortune=1"}, "--window 3: a window must hold at least one draw per expected group (4 here)"},
		{[]string{srv.URL, "--watch", "--window", "5", "--expect", "uniform:10"}, "(10 here)"},
		{[]string{srv.URL, "--watch", "--window", "0"}, "for example --window 150"},
	} {
		code, stdout, stderr := drawCmd(tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) || stdout != "" {
			t.Errorf("draw %q: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
	if requests.Load() != 0 {
		t.Errorf("bad watch flags made %d requests", requests.Load())
	}
}

// With --json, the final report is one more JSON line on the pipe, so that
// `jq` reads all of stdout.
func TestWatchWithJSONOnAPipeEndsWithTheReportAsOneLine(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := scalingServer(t, 1_000_000, 500, cancel) // two pods throughout
	var stdout, stderr strings.Builder
	code := run(ctx, []string{"draw", srv.URL, "--watch", "--json", "--rate", "2000", "--window", "200", "-c", "1", "--backend", "header:X-Pod"}, &stdout, &stderr)
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	for i, line := range lines {
		if !json.Valid([]byte(line)) {
			t.Fatalf("stdout line %d is not JSON: %q", i+1, line)
		}
	}
	var final audit.Report
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &final); err != nil || final.URL == "" || final.Drawn != 200 || len(lines) != 3 {
		t.Errorf("exit %d, %d lines, last %+v (%v); stderr %q", code, len(lines), final, err, stderr.String())
	}
	if code != 0 || stderr.String() != "" {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}
