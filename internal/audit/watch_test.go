package audit

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Before its first full window, the live view says it is filling it ("99 of
// 150"), not that a window of 99 was judged.
func TestWatchSaysItIsFillingTheFirstWindow(t *testing.T) {
	srv := randomServer(t, []string{"web-1", "web-2"}, func(w http.ResponseWriter, _ *http.Request, name string) {
		w.Header().Set("X-Pod", name)
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var first Report
	w := Watch{
		Audit:  Audit{Options: Options{URL: srv.URL, Concurrency: 1, Timeout: 5 * time.Second, Rate: 100, Backend: mustBackend(t, "header:X-Pod")}, Alpha: 0.001},
		Window: 150, Every: 300 * time.Millisecond,
		Live: func(r Report, _ []Change) {
			if first.Requested == 0 {
				first = r
			}
			cancel()
		},
	}
	if err := w.Validate(); err != nil {
		t.Fatal(err)
	}
	w.Run(ctx)
	if first.Drawn == 0 || first.Drawn >= 150 || first.Requested != 150 {
		t.Fatalf("first live view: %d draws of a window of %d; want between 1 and 149 of 150", first.Drawn, first.Requested)
	}
	var b strings.Builder
	if err := WriteLive(&b, first, nil, false, time.Now()); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("filling the first window (%d of 150)", first.Drawn); !strings.Contains(b.String(), want) || strings.Contains(b.String(), "(window ") {
		t.Errorf("the live view does not say %q:\n%s", want, b.String())
	}
}

// MaxTime ends a watch as Ctrl-C does, from the one sampler it runs.
func TestWatchEndsAtMaxTime(t *testing.T) {
	srv := randomServer(t, []string{"web-1", "web-2"}, func(w http.ResponseWriter, _ *http.Request, name string) {
		w.Header().Set("X-Pod", name)
	})
	windows := 0
	w := Watch{
		Audit:     Audit{Options: Options{URL: srv.URL, Concurrency: 2, Timeout: 5 * time.Second, Rate: 500, MaxTime: 700 * time.Millisecond, Backend: mustBackend(t, "header:X-Pod")}, Alpha: 0.001},
		Window:    50,
		Completed: func(WindowSummary) { windows++ },
	}
	if err := w.Validate(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	final, _ := w.Run(context.Background())
	if took := time.Since(start); took < 600*time.Millisecond || took > 3*time.Second || windows < 2 || final.Drawn != 50 {
		t.Errorf("ended after %v with %d windows and a final report of %d draws; want about 0.7 s, several windows, 50", took, windows, final.Drawn)
	}
}

// A watch runs one sampler throughout: with --keep-alive its one worker
// keeps one connection across windows, where restarting per window would
// dial again for each.
func TestWatchKeepsOneSamplerAcrossWindows(t *testing.T) {
	srv := newCycleServer(t, tenPods)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	windows := 0
	w := Watch{
		Audit:  Audit{Options: Options{URL: srv.URL, Concurrency: 1, Timeout: 5 * time.Second, Rate: 2000, KeepAlive: true}, Alpha: 0.001},
		Window: 20,
		Completed: func(WindowSummary) {
			if windows++; windows == 5 {
				cancel()
			}
		},
	}
	if err := w.Validate(); err != nil {
		t.Fatal(err)
	}
	w.Run(ctx)
	if windows < 5 || srv.conns.Load() != 1 {
		t.Errorf("%d windows over %d connections; want 5 over one", windows, srv.conns.Load())
	}
}
