package audit

import (
	"context"
	"fmt"
)

// The early-stopping stage: drawing until the anytime-valid tests have
// decided (--until decided) or the shares are known to a precision
// (--precision), judged as the draws come in start order.

// UntilDecided is Audit.Until for "draw until a deciding test rejects".
const UntilDecided = "decided"

// ParseUntil parses --until: "" or decided.
func ParseUntil(spec string) (string, error) {
	if spec != "" && spec != UntilDecided {
		return "", fmt.Errorf("--until %q: the only stop is %q", spec, UntilDecided)
	}
	return spec, nil
}

// DrawUntil draws as Draw does, and stops early once the anytime-valid
// tests say so: with a.Until, when a deciding test rejects; with
// a.Precision, when every group's confidence sequence lies within
// ±Precision of its expected share (or a deciding test rejects). The
// sample says why it stopped. Without either it is Draw.
func DrawUntil(ctx context.Context, a Audit) (Sample, error) {
	if a.Until == "" && a.Precision <= 0 {
		return Draw(ctx, a.Options)
	}
	if err := a.Options.Validate(); err != nil {
		return Sample{}, err
	}
	o := a.Options
	m := NewModel(a.Backend, a.Group, a.Expect)
	tests := a.Tests
	if tests == nil {
		tests = AllTests
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		rec     = newRecorder(o.Draws)
		number  = newNumbering(m)
		av      = NewAnytime(anytimeOptions(a, m))
		decided string
	)
	order := newInStartOrder(func(out Outcome) {
		if decided != "" || out.Failure != "" {
			return
		}
		if g, b := number.of(out); m.weighs(out.Backend) {
			av.Observe(g, b)
		} else {
			av.ObserveUnexpected(g, b)
		}
		n := av.Draws()
		if fit, uniform, independence := av.PValues(); min(fit, uniform, independence) <= a.Alpha {
			if r := av.Result(); r.Decided(tests) {
				decided = fmt.Sprintf("decided after %d successful draws: %s", n, rejectedNames(r, tests))
			}
		}
		if decided == "" && a.Precision > 0 && n%precisionEvery == 0 {
			if av.Result().Within(a.Precision) {
				decided = fmt.Sprintf("after %d successful draws every share is within ±%s of expected", n, points(a.Precision))
			}
		}
		if decided != "" {
			cancel()
		}
	})
	stopped := sample(ctx, o, func(i int, out Outcome) {
		out = rec.record(i, out)
		if o.OnDraw != nil {
			o.OnDraw(out)
		}
		order.put(i, out)
	})
	s := rec.sample()
	s.Stopped = stopped
	if decided != "" {
		s.Stopped = decided
	}
	return s, nil
}

// precisionEvery is how often, in successful draws, the confidence
// sequences are computed to see whether --precision is reached.
const precisionEvery = 50

func rejectedNames(r AnytimeResult, tests []string) string {
	names := ""
	for _, t := range []struct {
		name string
		test AnytimeTest
	}{{TestFit, r.Fit}, {TestUniform, r.Uniformity}, {TestIndependence, r.Independence}} {
		if t.test.Rejected && decides(t.name, tests) {
			if names != "" {
				names += ", "
			}
			names += fmt.Sprintf("%s rejects (%s)", t.name, formatP(t.test.PValue, "≤"))
		}
	}
	return names
}

// A numbering gives each successful outcome, in start order, the numbers
// the anytime-valid tests take: its backend's, as the backend first
// answers (0, 1, 2, …), and its group's, as the Model places it (the
// model's groups in order, then others as they come).
type numbering struct {
	m       Model
	group   map[string]int
	backend map[identity]int
}

func newNumbering(m Model) *numbering {
	n := &numbering{m: m, group: map[string]int{}, backend: map[identity]int{}}
	for i, g := range m.groups() {
		n.group[g.Group] = i
	}
	return n
}

// of is the outcome's group and backend numbers.
func (n *numbering) of(out Outcome) (g, b int) {
	id := identity{out.Backend, out.Group}
	b, ok := n.backend[id]
	if !ok {
		b = len(n.backend)
		n.backend[id] = b
	}
	name := n.m.groupOf(out.Backend, out.Group)
	g, ok = n.group[name]
	if !ok {
		g = len(n.group)
		n.group[name] = g
	}
	return g, b
}
