package audit

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The watch stage: one sampler drawing until stopped, its outcomes judged
// window by window, and the live view.

// A Watch draws continuously and judges each window of draws, so that a
// change of the odds — kubectl scale, a new canary weight — shows as it
// happens. Its zero Rate and Expect take the watch's defaults: DefaultRate,
// and the backends answering now, all equally likely. Options.Draws is not
// used.
type Watch struct {
	Audit
	Window int           // draws per judged window, such as DefaultWindow
	Every  time.Duration // how often the live view is redrawn; 0: never
	// Live, if set, is called every Every with the sliding window of the
	// last Window draws judged, and the changes so far.
	Live func(Report, []Change)
	// Completed, if set, is called with each completed window.
	Completed func(WindowSummary)
}

// A Change is a window whose shares differ from the window before.
type Change struct {
	At      time.Time `json:"at"`
	Window  int       `json:"window"`
	PValue  float64   `json:"p_value"`
	Summary string    `json:"summary"`
}

// A WindowSummary is one completed window: one JSON line of --watch.
type WindowSummary struct {
	Window        int            `json:"window"`
	Start         time.Time      `json:"start"`
	End           time.Time      `json:"end"`
	Draws         int            `json:"draws"`
	Succeeded     int            `json:"succeeded"`
	Failures      map[string]int `json:"failures"`
	Groups        []Row          `json:"groups"`
	BackendsSeen  int            `json:"backends_seen"`
	FitP          float64        `json:"fit_p"`
	UniformP      float64        `json:"uniform_p"`
	IndependenceP float64        `json:"independence_p"`
	Verdict       string         `json:"verdict"`
	Pass          bool           `json:"pass"`
	Summary       string         `json:"summary"`
	Changed       bool           `json:"changed"`
	Change        *Change        `json:"change,omitempty"`
}

// The window a watch judges at a time.
const (
	DefaultWindow = 150
	MaxWindow     = 100_000
)

// withDefaults fills in what a watch takes by default: DefaultRate and, for a zero Expect, the backends answering now, all
// equally likely (scaling changes what to expect; that is what kube-proxy
// promises).
func (w Watch) withDefaults() Watch {
	if w.Rate == 0 {
		w.Rate = DefaultRate
	}
	w.Expect = w.Expect.or(Expectation{Kind: ExpectUniform})
	return w
}

// Validate reports the first problem with the watch, before anything is
// drawn. Options.Draws is not used: a watch draws until it is stopped.
func (w Watch) Validate() error {
	w = w.withDefaults()
	o := w.Options
	o.Draws = 1 // not used
	if err := o.Validate(); err != nil {
		return err
	}
	groups := 0
	for _, wt := range w.Expect.Weights {
		if wt > 0 {
			groups++
		}
	}
	groups = max(groups, w.Expect.Backends, 2)
	if w.Window < groups || w.Window > MaxWindow {
		return &FieldError{"Window", strconv.Itoa(w.Window), fmt.Sprintf("%d: a window must hold at least one draw per expected group (%d here) and at most %d draws", w.Window, groups, MaxWindow), strconv.Itoa(max(DefaultWindow, 10*groups))}
	}
	return nil
}

// Run draws until ctx is done or MaxTime passes, from one sampler that runs
// throughout, judges each window of Window draws in start order, and
// returns the report of the last Window draws (the sliding window) with
// the changes seen. w must be valid.
func (w Watch) Run(ctx context.Context) (Report, []Change) {
	w = w.withDefaults()
	var (
		mu      sync.Mutex
		ring    = make([]Outcome, 0, w.Window) // the last Window draws, oldest first once full
		next    int
		changes []Change
	)
	judgeRing := func() Report {
		mu.Lock()
		outs := make([]Outcome, 0, len(ring))
		outs = append(outs, ring[next:]...)
		outs = append(outs, ring[:next]...)
		mu.Unlock()
		rec := newRecorder(len(outs))
		for i, out := range outs {
			rec.record(i, out)
		}
		a := w.Audit
		a.Draws = len(outs)
		r := Analyze(rec.sample(), a)
		r.Requested = w.Window
		return r
	}
	if w.Live != nil && w.Every > 0 {
		done := make(chan struct{})
		defer close(done)
		ticker := time.NewTicker(w.Every)
		defer ticker.Stop()
		go func() {
			for {
				select {
				case <-ticker.C:
					r := judgeRing()
					mu.Lock()
					cs := slices.Clone(changes)
					mu.Unlock()
					w.Live(r, cs)
				case <-done:
					return
				}
			}
		}()
	}

	// The window being filled, one draw at a time in start order.
	var (
		window   = newRecorder(w.Window)
		filled   int
		n        = 1
		start    = time.Now()
		previous map[string]int
	)
	emit := newInStartOrder(func(out Outcome) {
		mu.Lock()
		if len(ring) < w.Window {
			ring = append(ring, out)
		} else {
			ring[next] = out
			next = (next + 1) % w.Window
		}
		mu.Unlock()
		window.record(filled, out)
		if filled++; filled < w.Window {
			return
		}
		s := window.sample()
		window, filled = newRecorder(w.Window), 0
		a := w.Audit
		a.Draws = len(s.Seq)
		r := Analyze(s, a)
		counts := map[string]int{}
		for _, b := range r.Backends {
			counts[b.Name] += b.Count
		}
		end := time.Now()
		sum := WindowSummary{Window: n, Start: start.UTC(), End: end.UTC(), Draws: r.Drawn, Succeeded: r.Succeeded, Failures: r.Failures,
			Groups: r.Groups, BackendsSeen: r.BackendsSeen, FitP: r.GoodnessOfFit.PValue, UniformP: r.Uniformity.PValue,
			IndependenceP: r.Independence.PValue, Verdict: r.Verdict, Pass: r.Pass, Summary: r.Summary}
		if previous != nil {
			if c, changed := compareWindows(previous, counts, w.Alpha); changed {
				c.At, c.Window = sum.End, n
				sum.Changed, sum.Change = true, &c
				mu.Lock()
				changes = append(changes, c)
				mu.Unlock()
			}
		}
		previous, start = counts, end
		n++
		if w.Completed != nil {
			w.Completed(sum)
		}
	})
	o := w.Options
	o.Draws = 0 // until stopped
	sample(ctx, o, emit.put)
	return judgeRing(), changes
}

// compareWindows says whether the backends' shares moved between two windows.
func compareWindows(before, after map[string]int, alpha float64) (Change, bool) {
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range before {
			if !yield(k) {
				return
			}
		}
		for k := range after {
			if _, ok := before[k]; !ok && !yield(k) {
				return
			}
		}
	})
	a, b := make([]int, len(names)), make([]int, len(names))
	var gone, added []string
	for i, name := range names {
		a[i], b[i] = before[name], after[name]
		if a[i] > 0 && b[i] == 0 {
			gone = append(gone, name)
		}
		if a[i] == 0 && b[i] > 0 {
			added = append(added, name)
		}
	}
	t := Homogeneity(a, b, alpha)
	if t.Passed {
		return Change{}, false
	}
	var what []string
	if len(added) > 0 {
		what = append(what, fmt.Sprintf("%d new backend(s): %s", len(added), listSome(added)))
	}
	if len(gone) > 0 {
		what = append(what, fmt.Sprintf("%d backend(s) gone: %s", len(gone), listSome(gone)))
	}
	if len(what) == 0 {
		what = append(what, "the same backends with different shares")
	}
	return Change{PValue: t.PValue, Summary: fmt.Sprintf("The odds changed (%s): %s. Judged from now on against the backends now answering.", formatP(t.PValue, "="), strings.Join(what, "; "))}, true
}

func listSome(names []string) string {
	if len(names) > 5 {
		return strings.Join(names[:5], ", ") + fmt.Sprintf(" and %d more", len(names)-5)
	}
	return strings.Join(names, ", ")
}

// WriteLive draws the live view: the sliding window's shares against the
// expected ones, the backends seen, the running verdict and the changes.
// With colour, the verdict is green or red.
func WriteLive(w io.Writer, r Report, changes []Change, colour bool, now time.Time) error {
	var b strings.Builder
	fmt.Fprintf(&b, "omikuji draw --watch %s   %s\n", r.URL, now.UTC().Format("15:04:05 UTC"))
	fmt.Fprintf(&b, "last %d draws (window %d), %d failed; %d backends answering\n\n", r.Drawn, r.Requested, r.Failed, r.BackendsSeen)
	width := 0
	for _, row := range r.Groups {
		width = max(width, len(row.ID))
	}
	for _, row := range r.Groups {
		fmt.Fprintf(&b, "%-*s %6.1f %% of %6.1f %% expected  %3d backend(s)  %s\n", width, row.ID, 100*row.ObservedShare, 100*row.ExpectedShare, row.Pods, bar(row.ObservedShare/2))
	}
	verdict := strings.ToUpper(r.Verdict)
	if colour {
		code := "32"
		if !r.Pass {
			code = "31"
		}
		verdict = "\x1b[1;" + code + "m" + verdict + "\x1b[0m"
	}
	fmt.Fprintf(&b, "\n%s  fit %s, uniform %s, independence %s\n", verdict, liveP(r.GoodnessOfFit), liveP(r.Uniformity), liveP(r.Independence))
	fmt.Fprintf(&b, "%s\n", wrap(r.Summary, "", ""))
	if len(changes) > 0 {
		b.WriteString("\nChanges:\n")
		for _, c := range changes[max(0, len(changes)-5):] {
			fmt.Fprintf(&b, "%s\n", wrap(c.At.Format("15:04:05")+" "+c.Summary, "  ", "    "))
		}
	}
	b.WriteString("\nCtrl-C ends with the final report.\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func liveP(t Test) string {
	if !t.Applicable {
		return "n/a"
	}
	return strings.TrimPrefix(formatP(t.PValue, "="), "p = ")
}
