package audit_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/omikuji/omikuji/internal/audit"
	"github.com/omikuji/omikuji/internal/fortune"
	"github.com/omikuji/omikuji/internal/local"
)

// A newcomer's --watch (default window 150, uniform expectation) against
// `omikuji local --balancer round-robin` alarms within the first window.
func TestWatchAlarmsOnRoundRobinWithinTheFirstWindow(t *testing.T) {
	sys := startLocal(t, local.RoundRobin, false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var first *audit.WindowSummary
	w := audit.Watch{Audit: audit.Audit{Options: audit.Options{URL: sys.URL(), Concurrency: 1, Timeout: 5 * time.Second, Rate: 5000}, Alpha: alpha},
		Window: audit.DefaultWindow,
		Completed: func(s audit.WindowSummary) {
			if first == nil {
				first = &s
				cancel()
			}
		}}
	final, changes := w.Run(ctx)
	if first == nil {
		t.Fatal("no window completed")
	}
	if first.Pass || first.Verdict != audit.Inconsistent || len(first.Alarms) == 0 || !strings.Contains(first.Alarms[0].Summary, "independence rejects") {
		t.Fatalf("first window: %+v", first)
	}
	if len(changes) == 0 || changes[0].Kind != audit.KindAlarm || final.Pass {
		t.Errorf("changes %+v, final %s: %s", changes, final.Verdict, final.Summary)
	}
	t.Logf("first alarm: %s", first.Alarms[0].Summary)
}

// --until decided stops a round-robin run long before -n, and a fair one
// runs to -n and passes.
func TestDrawUntilDecided(t *testing.T) {
	for _, tc := range []struct {
		balancer string
		pass     bool
	}{{local.RoundRobin, false}, {local.Random, true}} {
		sys := startLocal(t, tc.balancer, false)
		o := audit.Options{URL: sys.URL(), Draws: 2000, Concurrency: 1, Timeout: 5 * time.Second}
		a := audit.OmikujiAudit(o, fortune.DefaultReplicas(), alpha)
		a.Until = audit.UntilDecided
		s, err := audit.DrawUntil(context.Background(), a)
		if err != nil {
			t.Fatal(err)
		}
		r := audit.Analyze(s, a)
		switch {
		case !r.AnytimeDecides || r.Pass != tc.pass:
			t.Errorf("%s: %s — %s", tc.balancer, r.Verdict, r.Summary)
		case !tc.pass && (r.Drawn > 200 || !strings.HasPrefix(r.Stopped, "decided after") || !r.Anytime.Independence.Rejected):
			t.Errorf("%s: %d draws, stopped %q, anytime %+v", tc.balancer, r.Drawn, r.Stopped, r.Anytime)
		case tc.pass && (r.Drawn != 2000 || r.Stopped != ""):
			t.Errorf("%s: %d draws, stopped %q", tc.balancer, r.Drawn, r.Stopped)
		}
		t.Logf("%s: %d draws, %s: %s", tc.balancer, r.Drawn, r.Verdict, r.Summary)
	}
}

// A fault that stays alarms again and again; the watch's list keeps one
// entry that counts them.
func TestWatchCountsRepeatedAlarms(t *testing.T) {
	sys := startLocal(t, local.RoundRobin, false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	windows := 0
	w := audit.Watch{Audit: audit.Audit{Options: audit.Options{URL: sys.URL(), Concurrency: 1, Timeout: 5 * time.Second, Rate: 5000}, Alpha: alpha},
		Window: audit.DefaultWindow,
		Completed: func(audit.WindowSummary) {
			if windows++; windows == 3 {
				cancel()
			}
		}}
	_, changes := w.Run(ctx)
	if len(changes) != 1 || changes[0].Count < 15 || !strings.Contains(changes[0].Text(), "times in a row") {
		t.Errorf("450 draws of round-robin: %+v", changes)
	}
}
