package audit

import (
	"fmt"
	"html/template"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
)

// WriteHTML writes the report as one self-contained HTML page: inline CSS
// and SVG, no script, font or image from anywhere. Everything that came from
// an answer (backend and group names, failure examples) is escaped by
// html/template.
func (r Report) WriteHTML(w io.Writer) error {
	return htmlReport.Execute(w, newHTMLView(r))
}

// htmlView is what the template draws, in pixels.
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
	AxisX0, AxisWidth  float64
	LegendGroups       []htmlGroup
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
	v := htmlView{R: r, Verdict: strings.ToUpper(r.Verdict), AxisX0: shareX0, AxisWidth: shareWidth, Capped: r.BackendsCapped,
		GroupWord: "group", PodWord: "backend"}
	if r.BackendSpec == KindOmikuji && r.GroupSpec == "default" {
		v.GroupWord, v.PodWord = "fortune", "pod"
	}
	v.Colour = map[string]string{Consistent: "#1b7f3b", Inconclusive: "#8a6d00", Inconsistent: "#b3261e", Unreachable: "#b3261e"}[r.Verdict]
	// Share axis: up to the largest share or interval shown, rounded up.
	top := 0.0
	for _, row := range r.Fortunes {
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
	for i, row := range r.Fortunes {
		groupIndex[row.ID] = i
		g := htmlGroup{ID: row.ID, Label: row.Label, Colour: groupColour(i, 0, 1), Y: 30 + i*shareRow,
			Expected: x(row.ExpectedShare), Observed: x(row.ObservedShare) - shareX0, Low: x(row.Low), High: x(row.High),
			Text: fmt.Sprintf("%.1f %% (expected %.1f %%)", 100*row.ObservedShare, 100*row.ExpectedShare)}
		v.Groups = append(v.Groups, g)
	}
	v.ShareW, v.ShareH = int(shareX0+shareWidth)+190, 40+len(r.Fortunes)*shareRow

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
			ht.Result = "passes, " + formatP(t.test.PValue)
			ht.Says = fmt.Sprintf("statistic %.2f on %d degrees of freedom; nothing shown wrong at alpha %g. %s", t.test.Statistic, t.test.DF, r.Alpha, t.test.Note)
		default:
			ht.Result = "FAILS, " + formatP(t.test.PValue)
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

var htmlReport = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>omikuji draw: {{.Verdict}} — {{.R.URL}}</title>
<style>
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
<h1>omikuji draw <span class="verdict" id="verdict" style="background: {{.Colour}}">{{.Verdict}}</span></h1>
<p class="meta">{{.R.Drawn}} draws from <code>{{.R.URL}}</code>, {{.R.Concurrency}} at a time{{if .R.KeepAlive}}, kept-alive connections{{else}}, a new connection each{{end}}.
Backend <code>{{.R.BackendSpec}}</code>, groups <code>{{.R.GroupSpec}}</code>, expected <code>{{.R.Expect}}</code>, alpha {{.R.Alpha}}.
{{with .R.Stopped}}Stopped early: {{.}}.{{end}}</p>
<p id="summary">{{.R.Summary}}</p>
{{with .R.LikelyCauses}}<h2>Likely causes</h2><ul id="causes">{{range .}}<li>{{.}}</li>{{end}}</ul>{{end}}

<h2>The tests</h2>
<table id="tests">
{{range .Tests}}<tr><td><code>{{.Flag}}</code>{{if not .Deciding}}<br><span class="aside">not deciding</span>{{end}}</td>
<td class="{{if .Passed}}pass{{else}}fail{{end}}">{{.Result}}</td><td>{{.Name}}<br><span class="aside">{{.Says}}</span></td></tr>
{{end}}</table>
{{if .R.Independence.Applicable}}<p class="aside">Same {{.PodWord}} twice in a row: {{.R.Repeats}} times, {{printf "%.1f" .R.RepeatsExpected}} expected by chance.</p>{{end}}

<h2>Share per {{.GroupWord}}: observed (bar, with its 95 % interval) against expected (line)</h2>
<svg id="shares" xmlns="http://www.w3.org/2000/svg" width="{{.ShareW}}" height="{{.ShareH}}" role="img" aria-label="observed and expected shares">
{{range .Ticks}}<line x1="{{.X}}" y1="18" x2="{{.X}}" y2="{{$.ShareH}}" stroke="#e4e4e4"/><text x="{{.X}}" y="12" text-anchor="middle">{{.Label}}</text>
{{end}}{{range .Groups}}<g class="group"><text x="{{$.AxisX0}}" dx="-8" y="{{.Y}}" dy="16" text-anchor="end">{{.ID}} {{.Label}}</text>
<rect x="{{$.AxisX0}}" y="{{.Y}}" width="{{.Observed}}" height="22" fill="{{.Colour}}" opacity="0.85"><title>{{.ID}}: {{.Text}}</title></rect>
<line x1="{{.Low}}" y1="{{.Y}}" x2="{{.High}}" y2="{{.Y}}" stroke="#1d1d1f" stroke-width="1.5" transform="translate(0 11)"/>
<rect x="{{.Expected}}" y="{{.Y}}" width="3" height="28" fill="#000" transform="translate(-1.5 -3)"><title>{{.ID}} expected</title></rect>
<text x="{{$.AxisX0}}" dx="{{$.AxisWidth}}" y="{{.Y}}" dy="16" class="share">&#8195;{{.Text}}</text></g>
{{end}}</svg>

<h2>Draws per {{.PodWord}}</h2>
<table id="backends">
<tr><th>{{.PodWord}}</th><th>{{.GroupWord}}</th><th>draws</th><th>share</th><th></th></tr>
{{range .Backends}}<tr><td><code>{{.Name}}</code></td><td>{{.Group}}</td><td class="num">{{.Count}}</td><td class="num">{{.Share}}</td>
<td><svg xmlns="http://www.w3.org/2000/svg" width="304" height="14"><rect width="{{.Width}}" height="12" y="1" fill="{{.Colour}}"/></svg></td></tr>
{{end}}</table>
{{if .Capped}}<p class="fail">More than 1000 distinct backends answered: only the first 1000 are counted.</p>{{end}}

<h2>The draws in order</h2>
<p class="aside">The first {{.StripShown}} of {{.Drawn}} draws, left to right and top to bottom, one cell per draw coloured by {{.PodWord}} (shades of its {{.GroupWord}}'s colour; grey: failed). Round-robin shows as a repeating pattern, pinning as long runs of one colour.</p>
<svg id="strip" xmlns="http://www.w3.org/2000/svg" width="{{.StripW}}" height="{{.StripH}}" role="img" aria-label="draws in order">
{{range .Strip}}<rect x="{{.X}}" y="{{.Y}}" width="9" height="9" fill="{{.Colour}}"><title>{{.Title}}</title></rect>{{end}}
</svg>

<h2>Failed draws</h2>
{{if .Failures}}<table id="failures"><tr><th>kind</th><th>draws</th><th>first example</th></tr>
{{range .Failures}}<tr><td><code>{{.Kind}}</code></td><td class="num">{{.Count}}</td><td><code>{{.Example}}</code></td></tr>{{end}}</table>
{{else}}<p id="failures">None.</p>{{end}}
</body>
</html>
`))
