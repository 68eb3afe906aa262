package server

import (
	_ "embed"
	"encoding/json"
	"html"
	"strings"
	"unicode"
)

// A page is a pre-rendered draw response in one format.
type page struct {
	body    []byte
	headers []header
}

// renderPages renders the three draw responses, once per server.
func renderPages(cfg Config) [numFormats]page {
	return [numFormats]page{
		formatHTML: newPage(renderHTML(cfg), "text/html; charset=utf-8", pageCSP),
		formatJSON: newPage(renderJSON(cfg), "application/json"),
		formatText: newPage(renderText(cfg), "text/plain; charset=utf-8"),
	}
}

func newPage(body []byte, contentType string, extra ...header) page {
	return page{body, append([]header{hdr("Content-Type", contentType), noStore, varyAccept, nosniff, noReferrer}, extra...)}
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
	// One line stays one line whatever the host name holds.
	return []byte(strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return '?'
	}, line) + "\n")
}

// slipHTML is the page: an omikuji slip, red on white, the oracle written
// vertically. Everything is inline so that the server never has to serve a
// second resource; the data: icon stops browsers asking for /favicon.ico.
// The fortune element is written exactly as the original article's check
// expects: grep -G '<p\sclass="fortune">'.
//
//go:embed slip.html
var slipHTML string
