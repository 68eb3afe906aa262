package audit

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/omikuji/omikuji/internal/fortune"
)

// This file parses the flags that say what a backend is, how backends form
// groups, what shares are expected and which tests decide. Each parser
// returns an error that names the flag and shows a correct example, so a
// mistake is caught before a single request is sent.

// Backend kinds.
const (
	KindOmikuji = "omikuji" // omikuji's JSON: backend "pod", group "fortune"
	KindHeader  = "header"  // the value of a response header
	KindJSON    = "json"    // a string at a dotted path in a JSON body
	KindRegex   = "regex"   // the first capture group of a regexp on the body
)

// A BackendSpec says how an answer names the backend that served it.
type BackendSpec struct {
	Kind   string
	Header string         // KindHeader: canonical header name
	Path   []string       // KindJSON: object keys, outermost first
	Re     *regexp.Regexp // KindRegex
}

// String is the spec as --backend takes it.
func (b BackendSpec) String() string {
	switch b.Kind {
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
func (b BackendSpec) NeedsBody() bool { return b.Kind != KindHeader }

const backendExamples = "omikuji, header:X-Served-By, json:hostname or regex:Name: (\\S+)"

// ParseBackend parses --backend: omikuji | header:NAME | json:PATH | regex:RE.
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

// A GroupSpec maps backend names to groups. A nil Re is the default of the
// backend kind: the fortune for omikuji, otherwise each backend on its own.
type GroupSpec struct{ Re *regexp.Regexp }

// String is the spec as --group takes it.
func (g GroupSpec) String() string {
	if g.Re == nil {
		return "default"
	}
	return "regex:" + g.Re.String()
}

// ParseGroup parses --group: default | regex:RE.
func ParseGroup(spec string) (GroupSpec, error) {
	if spec == "" || spec == "default" {
		return GroupSpec{}, nil
	}
	expr, ok := strings.CutPrefix(spec, "regex:")
	if !ok {
		return GroupSpec{}, fmt.Errorf("--group %q: want default or regex:RE, for example regex:^(.+)-[a-z0-9]+-[a-z0-9]+$ to group pods by Deployment", spec)
	}
	re, err := compileWithGroup(expr)
	if err != nil {
		return GroupSpec{}, fmt.Errorf("--group %q: %v; for example regex:^(.+)-[a-z0-9]+-[a-z0-9]+$", spec, err)
	}
	return GroupSpec{Re: re}, nil
}

// Of is the group of a backend: the first capture group of the regexp, or
// the backend's own name when it does not match; with the default spec, the
// group the answer gave (the fortune) or else the backend's name.
func (g GroupSpec) Of(backend, answered string) string {
	if g.Re == nil {
		if answered != "" {
			return answered
		}
		return backend
	}
	if m := g.Re.FindStringSubmatch(backend); m != nil && m[1] != "" {
		return m[1]
	}
	return backend
}

// Expectation kinds.
const (
	ExpectCatalogue = "catalogue" // omikuji's default replica counts
	ExpectUniform   = "uniform"   // every backend that answered equally likely
	ExpectWeights   = "weights"   // weights per group
)

// An Expectation is what --expect says the shares should be.
type Expectation struct {
	Kind     string
	Backends int      // uniform:N; 0 when not given
	Groups   []string // ExpectWeights and ExpectCatalogue: groups in order
	Weights  []int    // their weights
}

// String is the expectation as --expect takes it.
func (e Expectation) String() string {
	switch e.Kind {
	case ExpectUniform:
		if e.Backends > 0 {
			return "uniform:" + strconv.Itoa(e.Backends)
		}
		return "uniform"
	}
	parts := make([]string, len(e.Groups))
	for i, g := range e.Groups {
		parts[i] = g + "=" + strconv.Itoa(e.Weights[i])
	}
	return strings.Join(parts, ",")
}

// MaxExpectedBackends bounds uniform:N.
const MaxExpectedBackends = MaxBackends

// ParseExpect parses --expect: "" (the default of the backend kind) |
// uniform | uniform:N | id=w,... For the omikuji backend with its fortune
// groups, ids are catalogue fortunes and the ones left out weigh 0.
func ParseExpect(spec string, backend BackendSpec, group GroupSpec) (Expectation, error) {
	fortuneGroups := backend.Kind == KindOmikuji && group.Re == nil
	if spec == "" {
		if fortuneGroups {
			return catalogueExpectation(fortune.DefaultReplicas()), nil
		}
		return Expectation{Kind: ExpectUniform}, nil
	}
	if spec == "uniform" {
		return Expectation{Kind: ExpectUniform}, nil
	}
	if n, ok := strings.CutPrefix(spec, "uniform:"); ok {
		v, err := strconv.Atoi(n)
		if err != nil || v < 1 || v > MaxExpectedBackends {
			return Expectation{}, fmt.Errorf("--expect %q: N in uniform:N must be a whole number from 1 to %d, for example uniform:3", spec, MaxExpectedBackends)
		}
		return Expectation{Kind: ExpectUniform, Backends: v}, nil
	}
	if fortuneGroups {
		counts, err := fortune.ParseCounts(spec)
		if err != nil {
			return Expectation{}, fmt.Errorf("--expect %q: %v; for example %s, uniform or uniform:10", spec, err, fortune.DefaultReplicas())
		}
		e := catalogueExpectation(counts)
		e.Kind = ExpectWeights
		return e, nil
	}
	e := Expectation{Kind: ExpectWeights}
	total := 0
	for part := range strings.SplitSeq(spec, ",") {
		name, w, ok := strings.Cut(part, "=")
		name = strings.TrimSpace(name)
		v, err := strconv.Atoi(strings.TrimSpace(w))
		switch {
		case !ok || name == "" || err != nil || v < 0 || v > 1_000_000:
			return Expectation{}, fmt.Errorf("--expect %q: want group=weight pairs with whole weights from 0 to 1000000, for example stable=9,canary=1, or uniform, or uniform:3", spec)
		case slices.Contains(e.Groups, name):
			return Expectation{}, fmt.Errorf("--expect %q: group %q is given twice; for example stable=9,canary=1", spec, name)
		case len(e.Groups) == MaxBackends:
			return Expectation{}, fmt.Errorf("--expect: more than %d groups", MaxBackends)
		}
		e.Groups, e.Weights = append(e.Groups, name), append(e.Weights, v)
		total += v
	}
	if total == 0 {
		return Expectation{}, fmt.Errorf("--expect %q: the weights sum to 0; for example stable=9,canary=1", spec)
	}
	return e, nil
}

func catalogueExpectation(c fortune.Counts) Expectation {
	e := Expectation{Kind: ExpectCatalogue}
	for _, f := range fortune.Catalogue {
		e.Groups, e.Weights = append(e.Groups, f.ID), append(e.Weights, c[f.ID])
	}
	return e
}

// The tests --tests chooses from.
const (
	TestFit          = "fit"
	TestUniform      = "uniform"
	TestIndependence = "independence"
)

// AllTests is the default of --tests.
var AllTests = []string{TestFit, TestUniform, TestIndependence}

// ParseTests parses --tests: a comma-separated subset of fit,uniform,independence.
func ParseTests(spec string) ([]string, error) {
	var tests []string
	for t := range strings.SplitSeq(spec, ",") {
		t = strings.TrimSpace(t)
		if !slices.Contains(AllTests, t) {
			return nil, fmt.Errorf("--tests %q: %q is not a test; choose from fit,uniform,independence, for example --tests fit", spec, t)
		}
		if !slices.Contains(tests, t) {
			tests = append(tests, t)
		}
	}
	return tests, nil
}

// A Header is one -H request header.
type Header struct{ Name, Value string }

// ParseHeader parses -H 'Name: value'.
func ParseHeader(raw string) (Header, error) {
	name, value, ok := strings.Cut(raw, ":")
	if !ok || !validToken(name) {
		return Header{}, fmt.Errorf("-H %q: want 'Name: value' with a header name of letters, digits and !#$%%&'*+-.^_`|~, for example -H 'Host: shop.example'", raw)
	}
	value = strings.TrimSpace(value)
	if strings.ContainsAny(value, "\r\n\x00") {
		return Header{}, fmt.Errorf("-H %q: the value may not contain CR, LF or NUL; for example -H 'Host: shop.example'", raw)
	}
	return Header{Name: http.CanonicalHeaderKey(name), Value: value}, nil
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
