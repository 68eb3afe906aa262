package server

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// A format is one rendering of a draw.
type format uint8

const (
	formatHTML format = iota
	formatJSON
	formatText
	numFormats
)

var formatNames = [numFormats]string{"html", "json", "text"}

// offers are the media types of the formats, in the server's order of
// preference when the client likes several equally.
var offers = [numFormats]struct{ typ, sub string }{
	formatHTML: {"text", "html"},
	formatJSON: {"application", "json"},
	formatText: {"text", "plain"},
}

// maxReflected bounds how much of an unknown format value an error repeats.
const maxReflected = 32

// chooseFormat picks the response format from a raw query and the Accept
// header lines: ?format= wins over Accept. It returns 200 or an error status
// and a message safe to send as text.
func chooseFormat(rawQuery string, accept []string) (format, int, string) {
	if rawQuery != "" {
		value, present, ok := formatParam(rawQuery)
		if !ok {
			return 0, http.StatusBadRequest, "malformed format parameter; want ?format=html, json or text\n"
		}
		if present {
			for f, name := range formatNames {
				if value == name {
					return format(f), http.StatusOK, ""
				}
			}
			// Repeated the way it would appear in a URL: no markup survives.
			shown := url.QueryEscape(value)
			if len(shown) > maxReflected {
				shown = shown[:maxReflected] + "..."
			}
			return 0, http.StatusBadRequest, "unknown format " + strconv.Quote(shown) + "; want ?format=html, json or text\n"
		}
	}
	f, ok := negotiate(accept)
	if !ok {
		return 0, http.StatusNotAcceptable, "none of text/html, application/json or text/plain is acceptable; try ?format=html, json or text\n"
	}
	return f, http.StatusOK, ""
}

// formatParam finds the first "format" parameter in a raw query without
// allocating unless it is percent-encoded. ok is false when its key or value
// is not valid percent-encoding.
func formatParam(rawQuery string) (value string, present, ok bool) {
	for rawQuery != "" {
		var pair string
		pair, rawQuery, _ = strings.Cut(rawQuery, "&")
		key, value, _ := strings.Cut(pair, "=")
		if strings.ContainsAny(key, "%+") {
			k, err := url.QueryUnescape(key)
			if err != nil {
				continue // some other broken parameter is not our business
			}
			key = k
		}
		if key != "format" {
			continue
		}
		if strings.ContainsAny(value, "%+") {
			v, err := url.QueryUnescape(value)
			if err != nil {
				return "", true, false
			}
			value = v
		}
		return value, true, true
	}
	return "", false, true
}

// negotiate reads Accept header lines (RFC 9110 §12.5.1): for each format
// the most specific matching media range gives its q-value; the highest q
// wins, then the more specific match, then the server's order. No Accept at
// all means HTML. ok is false when every format has q=0. It does not
// allocate.
func negotiate(values []string) (format, bool) {

	type score struct{ q, specificity int } // q in thousandths; specificity -1: no range matched
	var best [numFormats]score
	for i := range best {
		best[i].specificity = -1
	}
	blank := true
	for _, v := range values {
		for v != "" {
			var mediaRange string
			mediaRange, v, _ = strings.Cut(v, ",")
			mediaType, params, _ := strings.Cut(mediaRange, ";")
			typ, sub, ok := strings.Cut(strings.TrimSpace(mediaType), "/")
			if !ok || typ == "" || sub == "" {
				continue
			}
			blank = false
			q, ok := qParam(params)
			if !ok {
				continue
			}
			for i, o := range offers {
				spec := specificity(typ, sub, o.typ, o.sub)
				if spec > best[i].specificity || (spec == best[i].specificity && spec >= 0 && q > best[i].q) {
					best[i] = score{q, spec}
				}
			}
		}
	}
	if blank {
		return formatHTML, true // an empty or unparsable Accept says nothing
	}
	chosen, found := format(0), false
	for i, sc := range best {
		if sc.specificity < 0 || sc.q == 0 {
			continue
		}
		if !found || sc.q > best[chosen].q || (sc.q == best[chosen].q && sc.specificity > best[chosen].specificity) {
			chosen, found = format(i), true
		}
	}
	return chosen, found
}

// specificity of a media range for an offer: 2 exact, 1 type/*, 0 */*, -1 none.
func specificity(typ, sub, offerTyp, offerSub string) int {
	switch {
	case typ == "*" && sub == "*":
		return 0
	case !strings.EqualFold(typ, offerTyp):
		return -1
	case sub == "*":
		return 1
	case strings.EqualFold(sub, offerSub):
		return 2
	}
	return -1
}

// qParam finds q among a media range's parameters. A missing q is 1000; a
// malformed one makes the range unusable (ok false).
func qParam(params string) (q int, ok bool) {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		key, value, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(key), "q") {
			return parseQ(strings.TrimSpace(value))
		}
	}
	return 1000, true
}

// parseQ reads a qvalue: "0" to "1" with at most three decimals, in thousandths.
func parseQ(s string) (int, bool) {
	if s == "" || len(s) > 5 || (s[0] != '0' && s[0] != '1') {
		return 0, false
	}
	q := int(s[0]-'0') * 1000
	if len(s) == 1 {
		return q, true
	}
	if s[1] != '.' {
		return 0, false
	}
	scale := 100
	for _, c := range []byte(s[2:]) {
		if c < '0' || c > '9' {
			return 0, false
		}
		q += int(c-'0') * scale
		scale /= 10
	}
	if q > 1000 {
		return 0, false
	}
	return q, true
}
