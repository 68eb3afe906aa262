package main

import (
	"fmt"
	"io"
	"time"
)

// A window is one phase's run, from its first dial to its last close. A
// draw under way at any moment of it is the window's own.
type window struct {
	phase            string
	start, end       time.Time
	opened, cutEarly int
}

type report struct {
	target           string
	nofile           int
	windows          []window
	probes           []probe
	baseFDs, baseRSS int // baseRSS: the most in the first round
	freshRSS         int // 3 s after start
	memLimitKiB      int // GOMEMLIMIT; 0: none
	peakFDs, peakRSS int
	endFDs, endRSS   int
	settled          bool
	settle           time.Duration
}

// overlaps says whether a draw was under way at some point in w: one in
// flight when a burst begins is the burst's.
func (w window) overlaps(p probe) bool { return !p.start.After(w.end) && !p.end.Before(w.start) }

func (r *report) inWindow(p probe) bool {
	for _, w := range r.windows {
		if w.overlaps(p) {
			return true
		}
	}
	return false
}

// outside counts the draws outside every window, and how many of them
// failed.
func (r *report) outside() (draws, failed int) {
	for _, p := range r.probes {
		if !r.inWindow(p) {
			draws++
			if !p.ok {
				failed++
			}
		}
	}
	return draws, failed
}

// during counts the draws under way in w, and how many failed.
func (w window) during(probes []probe) (draws, failed int) {
	for _, p := range probes {
		if w.overlaps(p) {
			draws++
			if !p.ok {
				failed++
			}
		}
	}
	return draws, failed
}

// recovery is the time from w's end to the end of the first successful
// draw started after it; ok is false if none succeeded.
func (w window) recovery(probes []probe) (time.Duration, bool) {
	for _, p := range probes {
		if p.start.After(w.end) && p.ok {
			return p.end.Sub(w.end), true
		}
	}
	return 0, false
}

// failedOutside describes up to n draws that failed outside every window,
// each by when it started after the last window before it.
func (r *report) failedOutside(n int) []string {
	var out []string
	for _, p := range r.probes {
		if p.ok || r.inWindow(p) || len(out) == n {
			continue
		}
		where := "before the first window"
		for i, w := range r.windows {
			if w.end.Before(p.start) {
				where = fmt.Sprintf("%.2f s after %s (window %d)", p.start.Sub(w.end).Seconds(), w.phase, i+1)
			}
		}
		out = append(out, fmt.Sprintf("%s, took %.2f s", where, p.end.Sub(p.start).Seconds()))
	}
	return out
}

func (r *report) worstRecovery() (time.Duration, bool) {
	worst := time.Duration(0)
	for _, w := range r.windows {
		d, ok := w.recovery(r.probes)
		if !ok {
			return 0, false
		}
		worst = max(worst, d)
	}
	return worst, true
}

func (r *report) met() bool {
	_, failed := r.outside()
	worst, ok := r.worstRecovery()
	return failed == 0 && ok && worst <= maxRecovery && r.settled && r.underLimit()
}

// underLimit: the RSS never went over the memory limit (none: true).
func (r *report) underLimit() bool { return r.memLimitKiB == 0 || r.peakRSS <= r.memLimitKiB }

func (r *report) print(out io.Writer) {
	fmt.Fprintf(out, "\n== %s (descriptor limit %s)\n", r.target, limitName(r.nofile))
	fmt.Fprintf(out, "%-13s %6s %7s %8s %8s %7s %9s\n", "phase", "conns", "ended", "window", "draws", "failed", "recovery")
	for _, w := range r.windows {
		draws, failed := w.during(r.probes)
		rec := "never"
		if d, ok := w.recovery(r.probes); ok {
			rec = fmt.Sprintf("%.2fs", d.Seconds())
		}
		fmt.Fprintf(out, "%-13s %6d %7d %7.1fs %8d %7d %9s\n", w.phase, w.opened, w.cutEarly, w.end.Sub(w.start).Seconds(), draws, failed, rec)
	}
	draws, failed := r.outside()
	worst, ok := r.worstRecovery()
	worstText := "never"
	if ok {
		worstText = fmt.Sprintf("%.2f s", worst.Seconds())
	}
	fmt.Fprintf(out, "draws outside the windows: %d, failed: %d; worst recovery: %s\n", draws, failed, worstText)
	for _, f := range r.failedOutside(10) {
		fmt.Fprintf(out, "  failed outside: %s\n", f)
	}
	fmt.Fprintf(out, "descriptors: baseline %d, peak %d, end %d; RSS KiB: fresh start %d, baseline (the most in round 1) %d, peak %d, end %d\n",
		r.baseFDs, r.peakFDs, r.endFDs, r.freshRSS, r.baseRSS, r.peakRSS, r.endRSS)
	if r.memLimitKiB > 0 {
		under := "under"
		if !r.underLimit() {
			under = "OVER"
		}
		fmt.Fprintf(out, "RSS peak %d KiB: %s the memory limit (GOMEMLIMIT) of %d KiB\n", r.peakRSS, under, r.memLimitKiB)
	}
	back := "back to baseline"
	if !r.settled {
		back = "NOT back to baseline"
	}
	fmt.Fprintf(out, "descriptors and RSS (within %d KiB) %s %.1f s after the battery\n", rssSlackKiB, back, r.settle.Seconds())
	fmt.Fprintf(out, "RESULT target=%s failed_outside=%d worst_recovery_s=%s peak_fds=%d peak_rss_kib=%d settled=%v\n",
		r.target, failed, trimUnit(worstText), r.peakFDs, r.peakRSS, r.settled)
}

func trimUnit(s string) string {
	if len(s) > 2 && s[len(s)-2:] == " s" {
		return s[:len(s)-2]
	}
	return s
}
