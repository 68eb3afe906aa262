package kubeaudit

import (
	"fmt"
	"html/template"
	"io"
	"strings"

	"github.com/omikuji/omikuji/internal/audit"
)

// WriteHTML writes the report as one self-contained page: a panel per node,
// inline CSS, no script and nothing fetched. html/template escapes every
// name that came from the cluster or an answer. (The plugin is not the
// omikuji binary, whose size keeps templates out of it.)
func (r Report) WriteHTML(w io.Writer) error {
	return page.Execute(w, r)
}

var page = template.Must(template.New("audit").Funcs(template.FuncMap{
	"pct": func(f float64) string { return fmt.Sprintf("%.1f %%", 100*f) },
	"width": func(f float64) string {
		return fmt.Sprintf("%.1f", 100*min(max(f, 0), 1))
	},
	"anytime": func(a *audit.AnytimeResult) string { return anytimeText(a) },
	"p": func(applicable bool, p float64) string {
		if !applicable {
			return "n/a"
		}
		return formatP(p)
	},
	"upper": strings.ToUpper,
	"zone": func(z string) string {
		if z == "" {
			return "no zone"
		}
		return z
	},
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kubectl omikuji audit: {{.Verdict}} — {{.Namespace}}/{{.Service}}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; color: #1d1d1f; margin: 24px; max-width: 1500px; }
h1 { font-size: 22px; margin: 0 0 6px; }
.verdict { color: #fff; padding: 2px 10px; border-radius: 4px; font-size: 15px; vertical-align: 2px; }
.consistent { background: #1b7f3b; } .inconsistent { background: #b3261e; } .inconclusive { background: #8a6d00; }
.meta, .rule, .aside { color: #555; }
.nodes { display: grid; grid-template-columns: repeat(auto-fit, minmax(720px, 1fr)); gap: 16px; margin-top: 16px; }
.node { border: 1px solid #d0d0d0; border-radius: 8px; padding: 12px 16px; }
.node h2 { font-size: 17px; margin: 0 0 4px; }
.node h3 { font-size: 14px; margin: 14px 0 2px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0; }
th, td { text-align: left; padding: 2px 6px; border-bottom: 1px solid #eee; font-size: 13px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.unexpected td { background: #fdecea; }
.track { position: relative; display: inline-block; width: 100px; height: 12px; background: #f2f2f2; vertical-align: middle; }
.bar { position: absolute; left: 0; top: 1px; height: 10px; background: #5b6bd6; }
.mark { position: absolute; top: -2px; width: 2px; height: 16px; background: #000; }
ul.disc { color: #b3261e; margin: 6px 0; padding-left: 18px; }
code { font-size: 12px; } td code { white-space: nowrap; }
</style>
</head>
<body>
<h1>kubectl omikuji audit <span class="verdict {{.Verdict}}" id="verdict">{{upper .Verdict}}</span></h1>
<p class="meta">Service <code>{{.Namespace}}/{{.Service}}</code> port {{.Port}}, {{.Draws}} draws per path from a pod on each node, image <code>{{.Image}}</code>, alpha {{.Alpha}}, {{printf "%.1f" .Seconds}} s.</p>
<p id="summary">{{.Summary}}</p>
<div class="nodes">
{{range .Nodes}}<section class="node" data-node="{{.Node}}">
<h2>{{.Node}} <span class="aside">({{zone .Zone}})</span> <span class="verdict {{.Verdict}}">{{upper .Verdict}}</span></h2>
{{if .Moved}}<p class="rule">Inconclusive: {{.Moved}}</p>{{end}}
{{range .Paths}}<h3>{{.Path}} <code>{{.URL}}</code> <span class="verdict {{.Verdict}}">{{.Verdict}}</span></h3>
<p class="rule">Expects {{.Rule}}.</p>
<table>
<tr><th>pod</th><th>workload</th><th>expected</th><th>observed</th><th>draws</th><th></th></tr>
{{range .Expected}}<tr><td><code>{{.Name}}</code></td><td>{{.Group}}</td><td class="num">{{pct .ExpectedShare}}</td><td class="num">{{pct .ObservedShare}}</td><td class="num">{{.Count}}</td><td><span class="track"><span class="bar" style="width: {{width .ObservedShare}}px"></span><span class="mark" style="left: {{width .ExpectedShare}}px"></span></span></td></tr>
{{end}}{{range .Unexpected}}<tr class="unexpected"><td><code>{{.Name}}</code></td><td>{{.Group}}</td><td class="num">never</td><td class="num">{{pct .ObservedShare}}</td><td class="num">{{.Count}}</td><td>{{.Status}}</td></tr>
{{end}}</table>
<p class="aside">{{.Draws}} draws, {{.Failed}} failed. Goodness of fit p {{p .Fit.Applicable .Fit.PValue}}, uniformity p {{p .Uniformity.Applicable .Uniformity.PValue}}, {{if .Sticky}}stickiness: {{.Independence.Note}}{{else}}independence p {{p .Independence.Applicable .Independence.PValue}}{{end}}.{{if .AnytimeDecides}} Deciding, the anytime-valid tests: {{anytime .Anytime}}.{{end}}{{if .Stopped}} Stopped early: {{.Stopped}}.{{end}}</p>
{{if .Discrepancies}}<ul class="disc">{{range .Discrepancies}}<li>{{.}}</li>{{end}}</ul>{{end}}
{{end}}</section>
{{end}}</div>
{{if .Skipped}}<h2>Not audited</h2><ul>{{range .Skipped}}<li>{{.Node}}: {{.Reason}}</li>{{end}}</ul>{{end}}
</body>
</html>
`))
