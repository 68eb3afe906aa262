package audit

import (
	"fmt"
	"math"
	"strings"
)

// A Monitor runs the anytime-valid audit over a watch that may never end.
// It restarts the tests after an alarm, so that the next fault shows too,
// and when the endpoints change, so that the system is judged as it now
// is.
//
// An endpoint change is a backend that answers for the first time once
// every backend had had its chance (Warmup draws after a start), or a
// backend that has been silent for far longer than its share allows. Both
// rules are tuned so that a system whose backends stay put sees a false
// change about once in ChangeRunLength draws or less often (its average
// run length to a false alarm): a backend missing from the first Warmup
// draws of a start has probability at most k·(1−p)^Warmup (k backends, the
// rarest at share p), once per start; a backend of share p is silent for r
// draws in a row about once in 1/(p·(1−p)^r) draws, and the gap that
// counts as gone is the r that makes that ChangeRunLength.
type Monitor struct {
	opts    AnytimeOptions
	warmup  int
	current *Anytime
	// By backend: its number since the start (−1: not seen since), the
	// draw (since the start) it last answered, its draws since the start.
	number, lastSeen, counts []int
	seen                     int // backends seen since the start
	draws                    int // since the start
	checked                  int // draws at the last check for silent backends
}

// ChangeRunLength is the average number of draws between false endpoint
// changes that the change rules aim at: 10⁹, eleven days at 1000 draws a
// second.
const ChangeRunLength = 1e9

// A Restart says why the tests started again, after how many draws.
type Restart struct {
	Draws  int           // draws since the previous start
	Alarm  bool          // a deciding test found a fault; otherwise the endpoints changed
	Result AnytimeResult // what the tests showed then
	// New are the backends that answered for the first time, Gone those
	// silent too long (the numbers given to Observe).
	New, Gone []int
}

// Reason says in words why the tests restarted; name gives a backend's name.
func (r Restart) Reason(name func(int) string) string {
	list := func(bs []int) string {
		names := make([]string, len(bs))
		for i, b := range bs {
			names[i] = name(b)
		}
		return listSome(names)
	}
	switch {
	case r.Alarm:
		return "after an alarm"
	case len(r.New) > 0 && len(r.Gone) > 0:
		return fmt.Sprintf("the endpoints changed: %d new backend(s): %s; %d backend(s) gone: %s", len(r.New), list(r.New), len(r.Gone), list(r.Gone))
	case len(r.New) > 0:
		return fmt.Sprintf("the endpoints changed: %d new backend(s): %s", len(r.New), list(r.New))
	default:
		return fmt.Sprintf("the endpoints changed: %d backend(s) gone: %s", len(r.Gone), list(r.Gone))
	}
}

// NewMonitor starts a monitor. warmup is the draws after each start in
// which new backends are expected (at least 1; --watch uses its window).
func NewMonitor(o AnytimeOptions, warmup int) *Monitor {
	m := &Monitor{opts: o, warmup: max(1, warmup)}
	m.restart()
	return m
}

func (m *Monitor) restart() {
	m.current = NewAnytime(m.opts)
	for b := range m.number {
		m.number[b], m.lastSeen[b], m.counts[b] = -1, 0, 0
	}
	m.seen, m.draws, m.checked = 0, 0, 0
}

// Observe adds a successful draw of backend b (a number ≥ 0 that names it
// for the whole watch, such as its index in the sample) in group g. It returns a Restart when the tests
// start again at this draw: after an alarm of a deciding test (tests; nil:
// all) or an endpoint change. The draw that shows a new backend is the
// first of the new start.
func (m *Monitor) Observe(g, b int, tests []string) *Restart { return m.draw(g, b, false, tests) }

// ObserveUnexpected is Observe for a draw of a backend the expectation does
// not list (see Anytime.ObserveUnexpected): the fit alarms.
func (m *Monitor) ObserveUnexpected(g, b int, tests []string) *Restart {
	return m.draw(g, b, true, tests)
}

func (m *Monitor) draw(g, b int, unexpected bool, tests []string) *Restart {
	for b >= len(m.number) {
		m.number, m.lastSeen, m.counts = append(m.number, -1), append(m.lastSeen, 0), append(m.counts, 0)
	}
	if m.number[b] < 0 && m.draws >= m.warmup {
		r := &Restart{Draws: m.draws, Result: m.current.Result(), New: []int{b}}
		m.restart()
		m.observe(g, b, unexpected)
		return r
	}
	m.observe(g, b, unexpected)
	fit, uniform, independence := m.current.PValues()
	alpha := m.opts.Alpha
	if (fit <= alpha || uniform <= alpha || independence <= alpha) && m.current.Result().Decided(tests) {
		r := &Restart{Draws: m.draws, Alarm: true, Result: m.current.Result()}
		m.restart()
		return r
	}
	if m.draws-m.checked >= m.warmup { // silent backends, once per warmup's worth of draws
		m.checked = m.draws
		var gone []int
		for b, last := range m.lastSeen {
			if m.number[b] >= 0 && m.silentTooLong(m.counts[b], m.draws-last) {
				gone = append(gone, b)
			}
		}
		if len(gone) > 0 {
			r := &Restart{Draws: m.draws, Result: m.current.Result(), Gone: gone}
			m.restart()
			return r
		}
	}
	return nil
}

func (m *Monitor) observe(g, b int, unexpected bool) {
	if m.number[b] < 0 {
		m.number[b] = m.seen
		m.seen++
	}
	if unexpected {
		m.current.ObserveUnexpected(g, m.number[b])
	} else {
		m.current.Observe(g, m.number[b])
	}
	m.draws++
	m.lastSeen[b] = m.draws
	m.counts[b]++
}

// silentTooLong says whether a backend drawn c times in the start's draws
// has been silent for gap draws beyond what ChangeRunLength allows. Its
// share is estimated from its draws, at least 10 of them (fewer: never).
func (m *Monitor) silentTooLong(c, gap int) bool {
	if c < 10 {
		return false
	}
	p := float64(c) / float64(m.draws)
	if p >= 1 {
		return false
	}
	return float64(gap)*-math.Log1p(-p) > math.Log(ChangeRunLength*p)
}

// Current is what the tests show since the last start.
func (m *Monitor) Current() AnytimeResult { return m.current.Result() }

// Draws is the number of draws since the last start.
func (m *Monitor) Draws() int { return m.draws }

// listSome lists names, at most five of them.
func listSome(names []string) string {
	if len(names) > 5 {
		return strings.Join(names[:5], ", ") + fmt.Sprintf(" and %d more", len(names)-5)
	}
	return strings.Join(names, ", ")
}
