package server

import (
	"bytes"
	"net/http"
	"net/url"
	"strconv"

	"github.com/valyala/fasthttp"
)

// A format is one rendering of a draw.
type format uint8

const (
	formatHTML format = iota
	formatJSON
	formatText
	numFormats
)

// formats name the renderings and their media types, in the server's order
// of preference when the client likes several equally.
var formats = [numFormats]struct {
	name     string
	typ, sub []byte
}{
	formatHTML: {"html", []byte("text"), []byte("html")},
	formatJSON: {"json", []byte("application"), []byte("json")},
	formatText: {"text", []byte("text"), []byte("plain")},
}

// chooseFormat picks the draw's format: the first ?format= wins over
// Accept. false means that it has answered with an error.
func chooseFormat(ctx *fasthttp.RequestCtx) (format, bool) {
	if args := ctx.QueryArgs(); args.Has("format") {
		value := args.Peek("format")
		for f := range formats {
			if string(value) == formats[f].name {
				return format(f), true
			}
		}
		// Repeated the way it would appear in a URL, and at most 32 bytes
		// of it: no markup survives.
		shown := url.QueryEscape(string(value))
		if len(shown) > 32 {
			shown = shown[:32] + "..."
		}
		plain(ctx, http.StatusBadRequest, "unknown format "+strconv.Quote(shown)+"; want ?format=html, json or text\n")
		return 0, false
	}
	f, ok := negotiate(ctx.Request.Header.PeekAll("Accept"))
	if !ok {
		plain(ctx, http.StatusNotAcceptable, "none of text/html, application/json or text/plain is acceptable; try ?format=html, json or text\n")
	}
	return f, ok
}

// negotiate reads Accept header lines (RFC 9110 §12.5.1): for each format
// the most specific matching media range gives its q-value; the highest q
// wins, then the more specific match, then the server's order. No Accept
// at all, or none that parses, means HTML. ok is false when every format
// has q=0. It does not allocate.
func negotiate(lines [][]byte) (format, bool) {
	var q, spec [numFormats]int // spec: specificity of the range that set q; 0: none matched
	blank := true
	for _, line := range lines {
		for len(line) > 0 {
			var mediaRange []byte
			mediaRange, line, _ = bytes.Cut(line, []byte(","))
			mediaType, params, _ := bytes.Cut(mediaRange, []byte(";"))
			typ, sub, ok := bytes.Cut(bytes.TrimSpace(mediaType), []byte("/"))
			if !ok || len(typ) == 0 || len(sub) == 0 {
				continue
			}
			blank = false
			rangeQ, ok := qParam(params)
			if !ok {
				continue
			}
			for f, o := range formats {
				s := specificity(typ, sub, o.typ, o.sub)
				if s > spec[f] || (s == spec[f] && s > 0 && rangeQ > q[f]) {
					q[f], spec[f] = rangeQ, s
				}
			}
		}
	}
	if blank {
		return formatHTML, true
	}
	best := -1
	for f := range formats {
		if spec[f] > 0 && q[f] > 0 && (best < 0 || q[f] > q[best] || (q[f] == q[best] && spec[f] > spec[best])) {
			best = f
		}
	}
	return format(max(best, 0)), best >= 0
}

// specificity of a media range for an offer: 3 exact, 2 type/*, 1 */*, 0 none.
func specificity(typ, sub, offerTyp, offerSub []byte) int {
	switch {
	case string(typ) == "*" && string(sub) == "*":
		return 1
	case !bytes.EqualFold(typ, offerTyp):
		return 0
	case string(sub) == "*":
		return 2
	case bytes.EqualFold(sub, offerSub):
		return 3
	}
	return 0
}

// qParam finds q among a media range's parameters, in thousandths: "0" to
// "1" with at most three decimals. A missing q is 1000; a malformed one
// makes the range unusable (ok false).
func qParam(params []byte) (int, bool) {
	for len(params) > 0 {
		var p []byte
		p, params, _ = bytes.Cut(params, []byte(";"))
		key, v, _ := bytes.Cut(p, []byte("="))
		if key = bytes.TrimSpace(key); len(key) != 1 || key[0]|0x20 != 'q' {
			continue
		}
		if v = bytes.TrimSpace(v); len(v) == 0 || len(v) > 5 || (len(v) > 1 && v[1] != '.') {
			return 0, false
		}
		q := 0
		for i := range 5 { // "d.ddd", missing decimals as zeros
			if i == 1 {
				continue
			}
			c := byte('0')
			if i < len(v) {
				c = v[i]
			}
			if c < '0' || c > '9' {
				return 0, false
			}
			q = q*10 + int(c-'0')
		}
		return q, q <= 1000
	}
	return 1000, true
}
