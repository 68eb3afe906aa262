package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/omikuji/omikuji/internal/fortune"
)

// The backend stage: what an answer says. A BackendSpec reads the name of
// the backend that served a draw (and, for omikuji, the group it answered
// as) out of an answer; every later stage works with the Outcome it makes.

// Backend kinds. The zero BackendSpec is omikuji's.
const (
	KindOmikuji = "omikuji" // omikuji's JSON: backend "pod", group "fortune"
	KindHeader  = "header"  // the value of a response header
	KindJSON    = "json"    // a string at a dotted path in a JSON body
	KindRegex   = "regex"   // the first capture group of a regexp on the body
)

// A BackendSpec says how an answer names the backend that served it. Its
// zero value reads omikuji's JSON.
type BackendSpec struct {
	Kind   string         // one of the kinds above; empty is KindOmikuji
	Header string         // KindHeader: canonical header name
	Path   []string       // KindJSON: object keys, outermost first
	Re     *regexp.Regexp // KindRegex
}

// kind is the spec's kind with the zero value resolved: the one place that
// gives an empty Kind its meaning.
func (b BackendSpec) kind() string {
	if b.Kind != "" {
		return b.Kind
	}
	return KindOmikuji
}

// String is the spec as --backend takes it.
func (b BackendSpec) String() string {
	switch b.kind() {
	case KindHeader:
		return "header:" + b.Header
	case KindJSON:
		return "json:" + strings.Join(b.Path, ".")
	case KindRegex:
		return "regex:" + b.Re.String()
	}
	return KindOmikuji
}

// NeedsBody says whether the backend is read from the body (so HEAD cannot work).
func (b BackendSpec) NeedsBody() bool { return b.kind() != KindHeader }

// wantsJSON says whether the request should ask for JSON.
func (b BackendSpec) wantsJSON() bool { return b.kind() == KindOmikuji || b.kind() == KindJSON }

// answersGroup says whether an answer names its own group (omikuji's fortune).
func (b BackendSpec) answersGroup() bool { return b.kind() == KindOmikuji }

const backendExamples = "omikuji, header:X-Served-By, json:hostname or regex:Name: (\\S+)"

// ParseBackend parses --backend: omikuji | header:NAME | json:PATH | regex:RE.
// Like every Parse function of this package it parses one flag's syntax,
// and its errors quote that flag.
func ParseBackend(spec string) (BackendSpec, error) {
	kind, arg, hasArg := strings.Cut(spec, ":")
	bad := func(format string, a ...any) (BackendSpec, error) {
		return BackendSpec{}, fmt.Errorf("--backend %q: %s; for example %s", spec, fmt.Sprintf(format, a...), backendExamples)
	}
	switch kind {
	case KindOmikuji:
		if hasArg {
			return bad("omikuji takes no argument")
		}
		return BackendSpec{Kind: KindOmikuji}, nil
	case KindHeader:
		if !validToken(arg) {
			return bad("want a header name (letters, digits and !#$%%&'*+-.^_`|~), got %q", arg)
		}
		return BackendSpec{Kind: KindHeader, Header: http.CanonicalHeaderKey(arg)}, nil
	case KindJSON:
		path := strings.Split(arg, ".")
		if slices.Contains(path, "") {
			return bad("want a dotted path of object keys such as hostname or data.pod, got %q", arg)
		}
		if strings.ContainsAny(arg, "[]") {
			return bad("a JSON path goes through objects only, by key; %q indexes into an array, a non-object", arg)
		}
		return BackendSpec{Kind: KindJSON, Path: path}, nil
	case KindRegex:
		re, err := compileWithGroup(arg)
		if err != nil {
			return bad("%v", err)
		}
		return BackendSpec{Kind: KindRegex, Re: re}, nil
	}
	return bad("unknown kind %q", kind)
}

// compileWithGroup compiles a regexp that must have a capture group.
func compileWithGroup(expr string) (*regexp.Regexp, error) {
	if expr == "" {
		return nil, errors.New("empty regular expression")
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("invalid regular expression: %v", errors.Unwrap(err))
	}
	if re.NumSubexp() < 1 {
		return nil, fmt.Errorf("the regular expression %q has no capture group (…); its first group names the backend", expr)
	}
	return re, nil
}

// validToken reports whether s is an HTTP token (RFC 9110), as header names are.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}

// An Outcome is one draw: a backend (and the group its answer named, for
// omikuji the fortune), or a failure of some kind.
type Outcome struct {
	Backend string // empty when the draw failed
	Group   string // the group the answer named, or empty
	Failure string // kind, such as "timeout"; empty when the draw succeeded
	Err     string // the failure in detail, at most maxExample bytes
}

// Failure kinds. HTTP status failures are "http_status_<code>".
const (
	FailRefused   = "connect_refused"
	FailTimeout   = "timeout"
	FailReset     = "connection_reset"
	FailDNS       = "dns"
	FailTLS       = "tls"
	FailBadBody   = "bad_body"
	FailUnknown   = "unknown_fortune"
	FailNoBackend = "no_backend"
	FailTooMany   = "too_many_backends"
	FailOther     = "other"
)

const (
	maxPodName = 253 // the longest name Kubernetes gives an object; also for any backend
	maxExample = 200 // bytes of a failure message kept as an example
)

// identify names the backend (and for omikuji the group) of an answer.
func identify(spec BackendSpec, header http.Header, body []byte) Outcome {
	var name string
	switch spec.kind() {
	case KindOmikuji:
		var a struct {
			Fortune string `json:"fortune"`
			Pod     string `json:"pod"`
		}
		if err := json.Unmarshal(body, &a); err != nil {
			return Outcome{Failure: FailBadBody, Err: truncate("answer is not the JSON of a draw: " + err.Error())}
		}
		f, err := fortune.Lookup(a.Fortune)
		if err != nil {
			return Outcome{Failure: FailUnknown, Err: truncate(err.Error())}
		}
		// A longer name is no pod's, and a million of them would not fit in memory.
		if len(a.Pod) > maxPodName {
			return Outcome{Failure: FailBadBody, Err: fmt.Sprintf("pod name longer than %d bytes", maxPodName)}
		}
		if !printable(a.Pod) {
			return Outcome{Failure: FailBadBody, Err: "pod name " + truncate(a.Pod) + " has unprintable characters"}
		}
		if a.Pod == "" {
			return Outcome{Failure: FailNoBackend, Err: "the answer names no pod"}
		}
		return Outcome{Backend: a.Pod, Group: f.ID} // the catalogue's string: a million draws share it
	case KindHeader:
		name = strings.TrimSpace(header.Get(spec.Header))
		if name == "" {
			return Outcome{Failure: FailNoBackend, Err: "no " + spec.Header + " header"}
		}
	case KindJSON:
		var err error
		if name, err = jsonPath(body, spec.Path); err != nil {
			return Outcome{Failure: FailNoBackend, Err: truncate(err.Error())}
		}
	case KindRegex:
		m := spec.Re.FindSubmatch(body)
		if m == nil || len(m[1]) == 0 {
			return Outcome{Failure: FailNoBackend, Err: "the body does not match " + truncate(spec.Re.String())}
		}
		name = string(m[1])
	}
	if len(name) > maxPodName {
		return Outcome{Failure: FailNoBackend, Err: fmt.Sprintf("backend name longer than %d bytes", maxPodName)}
	}
	if !printable(name) {
		return Outcome{Failure: FailNoBackend, Err: "backend name " + truncate(name) + " has unprintable characters"}
	}
	return Outcome{Backend: name}
}

// jsonPath returns the string (or number) at path in a JSON object.
func jsonPath(body []byte, path []string) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", fmt.Errorf("the answer is not JSON: %v", err)
	}
	for i, key := range path {
		obj, ok := v.(map[string]any)
		if !ok {
			return "", fmt.Errorf("%s is not an object", describePath(path[:i]))
		}
		if v, ok = obj[key]; !ok {
			return "", fmt.Errorf("%s has no key %q", describePath(path[:i]), key)
		}
	}
	switch v := v.(type) {
	case string:
		if v == "" {
			return "", fmt.Errorf("%s is an empty string", describePath(path))
		}
		return v, nil
	case json.Number:
		return v.String(), nil
	}
	return "", fmt.Errorf("%s is not a string", describePath(path))
}

func describePath(path []string) string {
	if len(path) == 0 {
		return "the answer"
	}
	return strings.Join(path, ".")
}

// printable reports whether s is valid UTF-8 without control characters, so
// that a backend's name is safe to print on a terminal.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// truncate keeps at most maxExample bytes of s, as printable text.
func truncate(s string) string {
	if len(s) > maxExample {
		s = s[:maxExample] + "…"
	}
	return strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}
