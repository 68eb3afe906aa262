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

// A Change is a moment the anytime-valid tests restarted: the endpoints
// changed (Kind "change"), or a deciding test rejected (Kind "alarm").
type Change struct {
	At     time.Time `json:"at"`
	Window int       `json:"window"`
	Kind   string    `json:"kind"`
	// PValue is, for a change, the chi-square test of the window's
	// backends against the window before (information only); for an
	// alarm, the smallest always-valid p-value of the deciding tests.
	PValue  float64 `json:"p_value"`
	Summary string  `json:"summary"`
	// Count is, in the list a watch returns, how many alarms in a row
	// this entry stands for (one alarm like it after another).
	Count int       `json:"count,omitempty"`
	Last  time.Time `json:"last,omitzero"` // the last of them
}

// Text is the change's summary, with how many times in a row it came.
func (c Change) Text() string {
	if c.Count > 1 {
		return fmt.Sprintf("%s (%d times in a row, the last at %s)", c.Summary, c.Count, c.Last.Format("15:04:05"))
	}
	return c.Summary
}

// Kinds of Change.
const (
	KindChange = "change"
	KindAlarm  = "alarm"
)

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
	// Verdict, Pass and Summary are the anytime-valid tests': inconsistent
	// when a deciding test rejected during the window.
	Verdict string  `json:"verdict"`
	Pass    bool    `json:"pass"`
	Summary string  `json:"summary"`
	Changed bool    `json:"changed"`
	Change  *Change `json:"change,omitempty"`
	// Alarms are the window's alarms; Anytime the tests at its end, over
	// the draws since they last (re)started.
	Alarms  []Change      `json:"alarms,omitempty"`
	Anytime AnytimeResult `json:"anytime"`
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
	m := NewModel(w.Backend, w.Group, w.Expect)
	tests := w.Tests
	if tests == nil {
		tests = AllTests
	}
	var (
		mu      sync.Mutex
		ring    = make([]Outcome, 0, w.Window) // the last Window draws, oldest first once full
		next    int
		changes []Change
		// The anytime-valid tests, restarted after each alarm and change.
		monitor   = NewMonitor(anytimeOptions(w.Audit, m), w.Window)
		number    = newNumbering(m)
		names     []string // backend number → name
		succeeded int      // successful draws so far
		alarmAt   = -1     // succeeded at the last alarm
		lastAlarm Change
		alarmKey  string // which tests rejected at the last alarm
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
		mu.Lock()
		r.Anytime, r.AnytimeDecides = monitor.Current(), true
		recent := alarmAt >= 0 && succeeded-alarmAt < w.Window
		alarm := lastAlarm
		mu.Unlock()
		r.LikelyCauses = []string{}
		r.judge()
		if recent { // an alarm within the last window's worth of draws stays in view
			r.Verdict, r.Pass, r.Summary = Inconsistent, false, alarm.Summary
		}
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
		window        = newRecorder(w.Window)
		filled        int
		n             = 1
		start         = time.Now()
		previous      map[string]int
		windowAlarms  []Change
		windowChanged []string // the monitor's reasons for changes in this window
	)
	emit := newInStartOrder(func(out Outcome) {
		mu.Lock()
		if len(ring) < w.Window {
			ring = append(ring, out)
		} else {
			ring[next] = out
			next = (next + 1) % w.Window
		}
		if out.Failure == "" {
			g, b := number.of(out)
			if b == len(names) {
				names = append(names, out.Backend)
			}
			succeeded++
			observe := monitor.Observe
			if !m.weighs(out.Backend) {
				observe = monitor.ObserveUnexpected
			}
			if rs := observe(g, b, tests); rs != nil {
				if rs.Alarm {
					p := min(rs.Result.Fit.PValue, rs.Result.Uniformity.PValue, rs.Result.Independence.PValue)
					lastAlarm = Change{At: time.Now().UTC(), Window: n, Kind: KindAlarm, PValue: p,
						Summary: fmt.Sprintf("Alarm after %d draws: %s. The anytime-valid tests restarted.", rs.Draws, rejectedNames(rs.Result, tests))}
					alarmAt = succeeded
					windowAlarms = append(windowAlarms, lastAlarm)
					// A fault that stays alarms again and again: one entry
					// counts them, so that the list stays short.
					key := fmt.Sprint(rs.Result.Fit.Rejected, rs.Result.Uniformity.Rejected, rs.Result.Independence.Rejected)
					if last := len(changes) - 1; last >= 0 && changes[last].Kind == KindAlarm && key == alarmKey {
						changes[last].Count++
						changes[last].Last = lastAlarm.At
					} else {
						lastAlarm.Count = 1
						changes = append(changes, lastAlarm)
					}
					alarmKey = key
				} else {
					windowChanged = append(windowChanged, rs.Reason(func(b int) string { return names[b] }))
				}
			}
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
		mu.Lock()
		r.Anytime, r.AnytimeDecides = monitor.Current(), true
		alarms, reasons := windowAlarms, windowChanged
		windowAlarms, windowChanged = nil, nil
		mu.Unlock()
		r.LikelyCauses = []string{}
		r.judge()
		sum := WindowSummary{Window: n, Start: start.UTC(), End: end.UTC(), Draws: r.Drawn, Succeeded: r.Succeeded, Failures: r.Failures,
			Groups: r.Groups, BackendsSeen: r.BackendsSeen, FitP: r.GoodnessOfFit.PValue, UniformP: r.Uniformity.PValue,
			IndependenceP: r.Independence.PValue, Verdict: r.Verdict, Pass: r.Pass, Summary: r.Summary, Alarms: alarms, Anytime: r.Anytime}
		if len(alarms) > 0 {
			sum.Verdict, sum.Pass, sum.Summary = Inconsistent, false, alarms[len(alarms)-1].Summary
		}
		if len(reasons) > 0 {
			c := describeChange(previous, counts, reasons)
			c.At, c.Window = sum.End, n
			sum.Changed, sum.Change = true, &c
			mu.Lock()
			changes = append(changes, c)
			mu.Unlock()
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

// describeChange says how the backends moved between two windows when the
// monitor saw the endpoints change: the backends new and gone between the
// windows, else the monitor's own reasons. Its p-value, the chi-square test
// of the two windows, is information only.
func describeChange(before, after map[string]int, reasons []string) Change {
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
	var what []string
	if len(added) > 0 {
		what = append(what, fmt.Sprintf("%d new backend(s): %s", len(added), listSome(added)))
	}
	if len(gone) > 0 {
		what = append(what, fmt.Sprintf("%d backend(s) gone: %s", len(gone), listSome(gone)))
	}
	if len(what) == 0 || before == nil {
		what = reasons
	}
	p := 0.0
	if before != nil {
		p = Homogeneity(a, b, 0.5).PValue
	}
	return Change{Kind: KindChange, PValue: p, Summary: fmt.Sprintf("The odds changed: %s. The anytime-valid tests restarted: judged from now on against the backends now answering.", strings.Join(what, "; "))}
}

// WriteLive draws the live view: the sliding window's shares against the
// expected ones, the backends seen, the running verdict and the changes.
// With colour, the verdict is green or red.
func WriteLive(w io.Writer, r Report, changes []Change, colour bool, now time.Time) error {
	var b strings.Builder
	fmt.Fprintf(&b, "omikuji draw --watch %s   %s\n", r.URL, now.UTC().Format("15:04:05 UTC"))
	if r.Drawn < r.Requested {
		fmt.Fprintf(&b, "filling the first window (%d of %d), %d failed; %d backends answering\n\n", r.Drawn, r.Requested, r.Failed, r.BackendsSeen)
	} else {
		fmt.Fprintf(&b, "last %d draws (window %d), %d failed; %d backends answering\n\n", r.Drawn, r.Requested, r.Failed, r.BackendsSeen)
	}
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
	a := r.Anytime
	fmt.Fprintf(&b, "\n%s  anytime-valid over %d draws: fit %s, uniform %s, independence %s\n", verdict, a.Draws,
		liveAnytime(a.Fit), liveAnytime(a.Uniformity), liveAnytime(a.Independence))
	fmt.Fprintf(&b, "%s\n", wrap(r.Summary, "", ""))
	fmt.Fprintf(&b, "last window, chi-square (information): fit %s, uniform %s, independence %s\n", liveP(r.GoodnessOfFit), liveP(r.Uniformity), liveP(r.Independence))
	if len(changes) > 0 {
		b.WriteString("\nAlarms and changes (each restarts the anytime-valid tests):\n")
		for _, c := range changes[max(0, len(changes)-5):] {
			fmt.Fprintf(&b, "%s\n", wrap(c.At.Format("15:04:05")+" "+c.Text(), "  ", "    "))
		}
	}
	b.WriteString("\nCtrl-C ends with the final report.\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func liveAnytime(t AnytimeTest) string {
	return strings.TrimPrefix(formatP(t.PValue, "≤"), "p ")
}

func liveP(t Test) string {
	if !t.Applicable {
		return "n/a"
	}
	return strings.TrimPrefix(formatP(t.PValue, "="), "p = ")
}
