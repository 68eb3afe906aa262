package server

import (
	"encoding/json"
	"html"
	"strings"
	"unicode"
)

// renderPages renders the three draw responses, once per server.
func renderPages(cfg Config) [numFormats]page {
	var pages [numFormats]page
	pages[formatHTML] = page{body: renderHTML(cfg), contentType: contentTypeHTML, csp: valPageCSP}
	pages[formatJSON] = page{body: renderJSON(cfg), contentType: contentTypeJSON}
	pages[formatText] = page{body: renderText(cfg), contentType: contentTypePlain}
	return pages
}

// renderHTML fills slipHTML's placeholders with escaped values. It is not
// html/template: that package's reflective method calls stop the linker
// from dropping unused methods, which made the binary 6.7 MB larger (17.1
// against 10.4 MB), past the image's 15 MB budget.
func renderHTML(cfg Config) []byte {
	f := cfg.Fortune
	ill := "" // 凶: the slip is inked differently
	if f.ID == "misfortune" {
		ill = " ill"
	}
	return []byte(strings.NewReplacer(
		"{{.Label}}", html.EscapeString(f.Label),
		"{{.Gloss}}", html.EscapeString(f.Gloss),
		"{{.Reading}}", html.EscapeString(f.Reading),
		"{{.ID}}", html.EscapeString(f.ID),
		"{{.Pod}}", html.EscapeString(cfg.Pod),
		"{{.Ill}}", ill,
	).Replace(slipHTML))
}

// drawJSON is the JSON body of a draw; the audit client parses it.
type drawJSON struct {
	Fortune string `json:"fortune"`
	Label   string `json:"label"`
	Reading string `json:"reading"`
	Gloss   string `json:"gloss"`
	Pod     string `json:"pod"`
}

func renderJSON(cfg Config) []byte {
	f := cfg.Fortune
	b, err := json.Marshal(drawJSON{Fortune: f.ID, Label: f.Label, Reading: f.Reading, Gloss: f.Gloss, Pod: cfg.Pod})
	if err != nil {
		panic(err) // strings always marshal
	}
	return append(b, '\n')
}

func renderText(cfg Config) []byte {
	f := cfg.Fortune
	line := "あなたの運勢は" + f.Label + "です — " + f.Gloss + " (" + f.ID + ", pod " + cfg.Pod + ")"
	return []byte(printable(line) + "\n")
}

// printable keeps one line one line whatever the host name holds.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return '?'
	}, s)
}

// slipHTML is the page: an omikuji slip, red on white, the oracle written
// vertically. Everything is inline so that the server never has to serve a
// second resource; the data: icon stops browsers asking for /favicon.ico.
// The fortune element is written exactly as the original article's check
// expects: grep -G '<p\sclass="fortune">'.
const slipHTML = `<!DOCTYPE html>
<html lang="ja">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>おみくじ — {{.Label}}</title>
<link rel="icon" href="data:,">
<style>
html{background:#efe4cf;color:#2b1d14}
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;font-family:"IPAMincho","IPAexMincho","Noto Serif CJK JP","Hiragino Mincho ProN","Yu Mincho",serif}
.slip{box-sizing:border-box;width:min(19rem,92vw);margin:1.5rem 0;background:#fffdf7;border:3px solid #b3262d;outline:1px solid #b3262d;outline-offset:-9px;box-shadow:0 .6rem 1.4rem rgba(60,30,10,.25);text-align:center}
.band{margin:0;padding:.7rem 0 .5rem;background:#b3262d;color:#fffdf7;font-size:1.6rem;letter-spacing:.6em;text-indent:.6em}
.band small{display:block;font-size:.7rem;letter-spacing:.3em;font-family:Georgia,serif}
.oracle{writing-mode:vertical-rl;display:flex;flex-direction:column;justify-content:center;gap:.5rem;height:21rem;margin:1.4rem auto .4rem}
.oracle p{margin:0}
.lead,.tail{font-size:1.5rem;letter-spacing:.2em}
.lead{align-self:flex-start}
.tail{align-self:flex-end}
.fortune{align-self:center}
.fortune{font-size:6rem;font-weight:bold;line-height:1.1;letter-spacing:.1em;color:#b3262d;border-block:3px double #b3262d;padding:0 .6rem}
.ill .fortune{color:#2b1d14;border-color:#2b1d14}
.gloss{margin:.6rem 1rem 0;font:italic 1.15rem Georgia,serif}
.reading{margin:.2rem 0 0;font:.9rem Georgia,serif;color:#6b5444}
.pod{margin:1rem 1rem 0;font:.8rem ui-monospace,monospace;color:#6b5444;overflow-wrap:anywhere}
.again{display:inline-block;margin:1.1rem 0 1.4rem;padding:.55rem 1.4rem;background:#b3262d;color:#fffdf7;text-decoration:none;border-radius:.2rem;font-size:1.1rem;letter-spacing:.1em}
.again small{display:block;font:.7rem Georgia,serif;letter-spacing:.05em}
.again:hover,.again:focus{background:#8e1c22}
</style>
</head>
<body>
<main class="slip{{.Ill}}">
<h1 class="band">御神籤<small lang="en">omikuji</small></h1>
<div class="oracle">
<p class="lead">あなたの運勢は</p>
<p class="fortune">{{.Label}}</p>
<p class="tail">です</p>
</div>
<p class="gloss" lang="en">{{.Gloss}}</p>
<p class="reading" lang="en">{{.Reading}} · {{.ID}}</p>
<p class="pod" lang="en">drawn from pod <code>{{.Pod}}</code></p>
<a class="again" href="./">もう一度引く<small lang="en">draw again</small></a>
</main>
</body>
</html>
`
