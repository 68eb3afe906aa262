package audit

import (
	"fmt"
	"html"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// WriteHTML writes the report as one self-contained HTML page: inline CSS
// and SVG, no script, font or image from anywhere. Every string goes
// through esc, so what came from an answer or the command line (backend and
// group names, the URL, failure examples) is shown as text. The page is
// written with fmt, not html/template: linking that package keeps every
// exported method in the binary (docs/decisions/0012-report-without-templates.md).
func (r Report) WriteHTML(w io.Writer) error {
	_, err := io.WriteString(w, newHTMLView(r).render())
	return err
}

// esc escapes a string for HTML text and for a quoted attribute value alike.
func esc(s string) string { return html.EscapeString(s) }

// num formats a coordinate or a length for an SVG attribute.
func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// htmlView is what the page draws, in pixels.
type htmlView struct {
	R                  Report
	Verdict, Colour    string
	Groups             []htmlGroup
	ShareW, ShareH     int
	Ticks              []htmlTick
	Backends           []htmlBackend
	MaxCount           int
	Strip              []htmlCell
	StripW, StripH     int
	StripShown, Drawn  int
	Tests              []htmlTest
	Failures           []htmlFailure
	FailedDraws        int
	Capped             bool
	GroupWord, PodWord string
}

type htmlGroup struct {
	ID, Label, Colour string
	Y                 int
	Expected          float64 // x of the expected share
	Observed          float64 // width of the observed bar
	Low, High         float64 // x of the interval
	Text              string
}

type htmlTick struct {
	X     float64
	Label string
}

type htmlBackend struct {
	Name, Group, Colour string
	Count               int
	Share               string
	Width               float64
}

type htmlCell struct {
	X, Y   int
	Colour string
	Title  string
}

type htmlTest struct {
	Flag, Name, Result, Says string
	Passed, Deciding         bool
}

type htmlFailure struct {
	Kind, Example string
	Count         int
}

// palette holds one hue per group, in order; backends of a group get
// lighter and darker shades of it.
var palette = []float64{210, 30, 130, 280, 0, 180, 55, 320, 95, 245}

func groupColour(g, shade, shades int) string {
	h := palette[g%len(palette)]
	l := 45.0
	if shades > 1 {
		l = 30 + 40*float64(shade)/float64(shades-1)
	}
	return fmt.Sprintf("hsl(%.0f, 65%%, %.0f%%)", h, l)
}

const (
	shareX0     = 170.0 // left edge of the share axis
	shareWidth  = 480.0
	shareRow    = 34
	stripCell   = 10
	stripPerRow = 60
)

func newHTMLView(r Report) htmlView {
	v := htmlView{R: r, Verdict: strings.ToUpper(r.Verdict), Capped: r.BackendsCapped,
		GroupWord: "group", PodWord: "backend"}
	if r.FortuneGroups {
		v.GroupWord, v.PodWord = "fortune", "pod"
	}
	v.Colour = map[string]string{Consistent: "#1b7f3b", Inconclusive: "#8a6d00", Inconsistent: "#b3261e", Unreachable: "#b3261e"}[r.Verdict]
	// Share axis: up to the largest share or interval shown, rounded up.
	top := 0.0
	for _, row := range r.Groups {
		top = max(top, row.ExpectedShare, row.High, row.ObservedShare)
	}
	step := 0.1
	if top > 0.6 {
		step = 0.2
	}
	top = math.Min(1, math.Ceil(top/step-1e-9)*step)
	if top <= 0 {
		top = 1
	}
	x := func(share float64) float64 { return shareX0 + shareWidth*share/top }
	for s := 0.0; s <= top+1e-9; s += step {
		v.Ticks = append(v.Ticks, htmlTick{X: x(s), Label: fmt.Sprintf("%.0f %%", 100*s)})
	}
	groupIndex := map[string]int{}
	for i, row := range r.Groups {
		groupIndex[row.ID] = i
		g := htmlGroup{ID: row.ID, Label: row.Label, Colour: groupColour(i, 0, 1), Y: 30 + i*shareRow,
			Expected: x(row.ExpectedShare), Observed: x(row.ObservedShare) - shareX0, Low: x(row.Low), High: x(row.High),
			Text: fmt.Sprintf("%.1f %% (expected %.1f %%)", 100*row.ObservedShare, 100*row.ExpectedShare)}
		v.Groups = append(v.Groups, g)
	}
	v.ShareW, v.ShareH = int(shareX0+shareWidth)+190, 40+len(r.Groups)*shareRow

	// Backends, shaded within their group.
	shade := map[string]int{}
	perGroup := map[string]int{}
	for _, b := range r.Backends {
		perGroup[b.Group]++
		v.MaxCount = max(v.MaxCount, b.Count)
	}
	colourOf := make([]string, len(r.Backends))
	for i, b := range r.Backends {
		colourOf[i] = groupColour(groupIndex[b.Group], shade[b.Group], perGroup[b.Group])
		shade[b.Group]++
		share := 0.0
		if r.Succeeded > 0 {
			share = float64(b.Count) / float64(r.Succeeded)
		}
		width := 0.0
		if v.MaxCount > 0 {
			width = 300 * float64(b.Count) / float64(v.MaxCount)
		}
		v.Backends = append(v.Backends, htmlBackend{Name: b.Name, Group: b.Group, Colour: colourOf[i], Count: b.Count,
			Share: fmt.Sprintf("%.1f %%", 100*share), Width: width})
	}

	// The strip: draws in start order, one cell each.
	for i, c := range r.Strip {
		cell := htmlCell{X: (i % stripPerRow) * stripCell, Y: (i / stripPerRow) * stripCell, Colour: "#bbb", Title: fmt.Sprintf("draw %d: failed", i+1)}
		if c != Failed && int(c) < len(r.Backends) {
			cell.Colour = colourOf[c]
			cell.Title = fmt.Sprintf("draw %d: %s", i+1, r.Backends[c].Name)
		}
		v.Strip = append(v.Strip, cell)
	}
	v.StripShown, v.Drawn = len(r.Strip), r.Drawn
	v.StripW, v.StripH = stripPerRow*stripCell, max(1, (len(r.Strip)+stripPerRow-1)/stripPerRow)*stripCell

	for _, t := range r.tests() {
		ht := htmlTest{Flag: t.name, Name: t.test.Name, Passed: t.test.Passed, Deciding: slices.Contains(r.Tests, t.name)}
		switch {
		case !t.test.Applicable:
			ht.Result = "not applicable"
			ht.Says = t.test.Note
		case t.test.Passed:
			ht.Result = "passes, " + formatP(t.test.PValue, "=")
			ht.Says = fmt.Sprintf("statistic %.2f on %d degrees of freedom; nothing shown wrong at alpha %g. %s", t.test.Statistic, t.test.DF, r.Alpha, t.test.Note)
		default:
			ht.Result = "FAILS, " + formatP(t.test.PValue, "=")
			ht.Says = fmt.Sprintf("%s: statistic %.2f on %d degrees of freedom. %s", capitalize(t.says), t.test.Statistic, t.test.DF, t.test.Note)
		}
		v.Tests = append(v.Tests, ht)
	}
	for _, kind := range slices.Sorted(maps.Keys(r.Failures)) {
		v.Failures = append(v.Failures, htmlFailure{Kind: kind, Count: r.Failures[kind], Example: r.FailureExamples[kind]})
		v.FailedDraws += r.Failures[kind]
	}
	return v
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// render writes the page top to bottom, in the order a reader sees it.
func (v htmlView) render() string {
	var b strings.Builder
	r := v.R
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	b.WriteString(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
`)
	p("<title>omikuji draw: %s — %s</title>\n", esc(v.Verdict), esc(r.URL))
	b.WriteString(htmlStyle)
	p(`<h1>omikuji draw <span class="verdict" id="verdict" style="background: %s">%s</span></h1>`+"\n", esc(v.Colour), esc(v.Verdict))
	connections := "a new connection each"
	if r.KeepAlive {
		connections = "kept-alive connections"
	}
	p(`<p class="meta">%d draws from <code>%s</code>, %d at a time, %s.`+"\n", r.Drawn, esc(r.URL), r.Concurrency, connections)
	p("Backend <code>%s</code>, groups <code>%s</code>, expected <code>%s</code>, alpha %s.\n",
		esc(r.BackendSpec), esc(r.GroupSpec), esc(r.Expect), strconv.FormatFloat(r.Alpha, 'g', -1, 64))
	if r.Stopped != "" {
		p("Stopped early: %s.", esc(r.Stopped))
	}
	p("</p>\n<p id=\"summary\">%s</p>\n", esc(r.Summary))
	if len(r.LikelyCauses) > 0 {
		b.WriteString(`<h2>Likely causes</h2><ul id="causes">`)
		for _, c := range r.LikelyCauses {
			p("<li>%s</li>", esc(c))
		}
		b.WriteString("</ul>")
	}

	b.WriteString("\n\n<h2>The tests</h2>\n<table id=\"tests\">\n")
	for _, t := range v.Tests {
		aside, class := "", "fail"
		if !t.Deciding {
			aside = `<br><span class="aside">not deciding</span>`
		}
		if t.Passed {
			class = "pass"
		}
		p(`<tr><td><code>%s</code>%s</td>`+"\n"+`<td class="%s">%s</td><td>%s<br><span class="aside">%s</span></td></tr>`+"\n",
			esc(t.Flag), aside, class, esc(t.Result), esc(t.Name), esc(t.Says))
	}
	b.WriteString("</table>\n")
	if r.Independence.Applicable {
		p(`<p class="aside">Same %s twice in a row: %d times, %.1f expected by chance.</p>`, esc(v.PodWord), r.Repeats, r.RepeatsExpected)
	}

	p("\n\n<h2>Share per %s: observed (bar, with its 95 %% interval) against expected (line)</h2>\n", esc(v.GroupWord))
	p(`<svg id="shares" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" role="img" aria-label="observed and expected shares">`+"\n", v.ShareW, v.ShareH)
	for _, t := range v.Ticks {
		p(`<line x1="%s" y1="18" x2="%s" y2="%d" stroke="#e4e4e4"/><text x="%s" y="12" text-anchor="middle">%s</text>`+"\n",
			num(t.X), num(t.X), v.ShareH, num(t.X), esc(t.Label))
	}
	for _, g := range v.Groups {
		id, text, x0 := esc(g.ID), esc(g.Text), num(shareX0)
		p(`<g class="group"><text x="%s" dx="-8" y="%d" dy="16" text-anchor="end">%s %s</text>`+"\n", x0, g.Y, id, esc(g.Label))
		p(`<rect x="%s" y="%d" width="%s" height="22" fill="%s" opacity="0.85"><title>%s: %s</title></rect>`+"\n", x0, g.Y, num(g.Observed), esc(g.Colour), id, text)
		p(`<line x1="%s" y1="%d" x2="%s" y2="%d" stroke="#1d1d1f" stroke-width="1.5" transform="translate(0 11)"/>`+"\n", num(g.Low), g.Y, num(g.High), g.Y)
		p(`<rect x="%s" y="%d" width="3" height="28" fill="#000" transform="translate(-1.5 -3)"><title>%s expected</title></rect>`+"\n", num(g.Expected), g.Y, id)
		p(`<text x="%s" dx="%s" y="%d" dy="16" class="share">&#8195;%s</text></g>`+"\n", x0, num(shareWidth), g.Y, text)
	}
	b.WriteString("</svg>\n\n")

	p("<h2>Draws per %s</h2>\n<table id=\"backends\">\n", esc(v.PodWord))
	p("<tr><th>%s</th><th>%s</th><th>draws</th><th>share</th><th></th></tr>\n", esc(v.PodWord), esc(v.GroupWord))
	for _, be := range v.Backends {
		p(`<tr><td><code>%s</code></td><td>%s</td><td class="num">%d</td><td class="num">%s</td>`+"\n", esc(be.Name), esc(be.Group), be.Count, esc(be.Share))
		p(`<td><svg xmlns="http://www.w3.org/2000/svg" width="304" height="14"><rect width="%s" height="12" y="1" fill="%s"/></svg></td></tr>`+"\n", num(be.Width), esc(be.Colour))
	}
	b.WriteString("</table>\n")
	if v.Capped {
		b.WriteString(`<p class="fail">More than 1000 distinct backends answered: only the first 1000 are counted.</p>`)
	}

	p("\n\n<h2>The draws in order</h2>\n"+`<p class="aside">The first %d of %d draws, left to right and top to bottom, one cell per draw coloured by %s (shades of its %s's colour; grey: failed). Round-robin shows as a repeating pattern, pinning as long runs of one colour.</p>`+"\n",
		v.StripShown, v.Drawn, esc(v.PodWord), esc(v.GroupWord))
	p(`<svg id="strip" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" role="img" aria-label="draws in order">`+"\n", v.StripW, v.StripH)
	for _, c := range v.Strip {
		p(`<rect x="%d" y="%d" width="9" height="9" fill="%s"><title>%s</title></rect>`, c.X, c.Y, esc(c.Colour), esc(c.Title))
	}
	b.WriteString("\n</svg>\n\n<h2>Failed draws</h2>\n")
	if len(v.Failures) > 0 {
		b.WriteString(`<table id="failures"><tr><th>kind</th><th>draws</th><th>first example</th></tr>` + "\n")
		for _, f := range v.Failures {
			p(`<tr><td><code>%s</code></td><td class="num">%d</td><td><code>%s</code></td></tr>`, esc(f.Kind), f.Count, esc(f.Example))
		}
		b.WriteString("</table>\n")
	} else {
		b.WriteString(`<p id="failures">None.</p>`)
	}
	b.WriteString("\n</body>\n</html>\n")
	return b.String()
}

const htmlStyle = `<style>
body { font: 15px/1.45 system-ui, sans-serif; color: #1d1d1f; margin: 24px auto; max-width: 900px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; }
.verdict { display: inline-block; color: #fff; padding: 2px 10px; border-radius: 4px; font-weight: 600; }
.meta { color: #555; }
table { border-collapse: collapse; }
td, th { padding: 3px 10px 3px 0; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.pass { color: #1b7f3b; font-weight: 600; }
.fail { color: #b3261e; font-weight: 600; }
.aside { color: #777; font-size: 13px; }
svg text { font: 12px system-ui, sans-serif; fill: #1d1d1f; }
code { background: #f2f2f2; padding: 0 3px; }
</style>
</head>
<body>
`
