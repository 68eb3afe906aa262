package audit

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The options stage: how to draw. Options say where and how hard; Validate
// checks them before a single request is sent.

// Options says how to draw.
type Options struct {
	URL         string        // an http or https URL of a draw endpoint
	Draws       int           // how many draws, 1..MaxDraws
	Concurrency int           // parallel workers, 1..MaxConcurrency
	Timeout     time.Duration // per draw, connect to last byte
	// KeepAlive reuses one connection per worker: the balancer then picks a
	// backend once per connection, so every draw of a worker lands on one.
	KeepAlive bool
	Backend   BackendSpec   // how an answer names its backend; zero is omikuji
	Method    string        // GET (default) or HEAD
	Headers   []Header      // extra request headers; Host sets the request's host
	Insecure  bool          // skip TLS certificate verification
	MaxTime   time.Duration // the whole run's deadline; 0 is none
	// Rate is how many draws start per second at most, MinRate..MaxRate;
	// 0 is as fast as possible for Draw and DefaultRate for a Watch.
	Rate float64
	// OnDraw, if set, is called after each finished draw that Draw
	// records, one call at a time.
	OnDraw func(Outcome)
}

// Limits on what one audit may cost, whatever the backends answer.
const (
	MaxDraws       = 1_000_000 // Seq holds 4 bytes per draw
	MaxConcurrency = 256
	MaxBackends    = 1000 // distinct backends kept; a pair table of 10⁶ cells at most
	maxBody        = 64 << 10
	maxHeaderBytes = 64 << 10 // status line and headers
)

// The rates Options.Rate accepts: one draw every 31 years at the slowest,
// one a nanosecond at the fastest, so that the interval between draws is a
// time.Duration of at least 1 ns.
const (
	MinRate = 1e-9
	MaxRate = 1e9
)

// DefaultRate is a Watch's rate when Options.Rate is 0: gentle enough to
// leave running against a production Service.
const DefaultRate = 5.0

// A FieldError is a bad value of one field of Options or Watch. Its words
// name the field, never a command-line flag: a command maps Field to its
// own flag and writes Problem and Example after it, as omikuji draw does.
type FieldError struct {
	Field   string // the Go field: "Draws", "Concurrency", "Timeout", "MaxTime", "Rate", "Method" or "Window"
	Value   string // the value given, as text
	Problem string // what is wrong, after the field's name: "must be between 1 and 256, got 0"
	Example string // a good value, e.g. "4"
}

// fieldWords names each field in an error's words.
var fieldWords = map[string]string{
	"Draws": "draws", "Concurrency": "concurrency", "Timeout": "timeout", "MaxTime": "max time",
	"Rate": "rate", "Method": "method", "Window": "window",
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%s %s; for example %s", e.Subject(), e.Problem, e.Example)
}

// Subject names the field in words: "draws", "max time".
func (e *FieldError) Subject() string { return fieldWords[e.Field] }

// Validate reports the first problem with o, before anything is drawn: a
// *FieldError, or an error about the URL.
func (o Options) Validate() error {
	if _, err := ParseURL(o.URL); err != nil {
		return err
	}
	if o.Draws <= 0 || o.Draws > MaxDraws {
		return &FieldError{"Draws", strconv.Itoa(o.Draws), fmt.Sprintf("must be between 1 and %d, got %d", MaxDraws, o.Draws), "1000"}
	}
	if o.Concurrency <= 0 || o.Concurrency > MaxConcurrency {
		return &FieldError{"Concurrency", strconv.Itoa(o.Concurrency), fmt.Sprintf("must be between 1 and %d, got %d", MaxConcurrency, o.Concurrency), "4"}
	}
	if o.Timeout <= 0 {
		return &FieldError{"Timeout", o.Timeout.String(), fmt.Sprintf("must be positive, got %v", o.Timeout), "5s"}
	}
	if o.MaxTime < 0 {
		return &FieldError{"MaxTime", o.MaxTime.String(), fmt.Sprintf("must not be negative, got %v", o.MaxTime), "2m"}
	}
	if o.Rate != 0 {
		if err := CheckRate(o.Rate); err != nil {
			return err
		}
	}
	switch o.Method {
	case "", http.MethodGet:
	case http.MethodHead:
		if o.Backend.NeedsBody() {
			return &FieldError{"Method", o.Method, fmt.Sprintf("HEAD: a HEAD answer has no body, so backend %s cannot name the backend; only a header can", o.Backend), "HEAD with backend header:X-Served-By"}
		}
	default:
		return &FieldError{"Method", o.Method, fmt.Sprintf("%q: want GET or HEAD", o.Method), "HEAD"}
	}
	return nil
}

// CheckRate reports whether r draws per second is a rate to draw at: a
// number from MinRate to MaxRate. (Options.Rate also takes 0, its default.)
func CheckRate(r float64) error {
	v := strconv.FormatFloat(r, 'g', -1, 64)
	switch {
	case !(r > 0) || math.IsInf(r, 0):
		return &FieldError{"Rate", v, "must be a positive number of draws per second, got " + v, "5"}
	case r < MinRate || r > MaxRate:
		return &FieldError{"Rate", v, fmt.Sprintf("must be between %g and %g draws per second, got %s", MinRate, MaxRate, v), "5"}
	}
	return nil
}

// interval is the time between draw starts at rate r (a checked, non-zero rate).
func interval(r float64) time.Duration {
	return max(time.Duration(float64(time.Second)/r), 1)
}

// ParseURL accepts absolute http and https URLs with a host. Errors show
// the URL without its credentials.
func ParseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("bad URL %q: %v; want an http:// or https:// URL", Redact(raw), redactErr(raw, errors.Unwrap(err)))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("bad URL %q: want an http:// or https:// URL", Redact(raw))
	}
	if u.Hostname() == "" {
		return "", fmt.Errorf("bad URL %q: no host", Redact(raw))
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("bad URL %q: port must be 1-65535", Redact(raw))
		}
	}
	u.Fragment = "" // never sent anyway
	return u.String(), nil
}

// Redact returns a URL fit to print: credentials (user:pass@) become "***@".
func Redact(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	authority, path, _ := strings.Cut(rest, "/")
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return raw
	}
	out := scheme + "://***@" + authority[at+1:]
	if len(rest) > len(authority) {
		out += "/" + path
	}
	return out
}

// redactErr prints err with any credentials of raw removed.
func redactErr(raw string, err error) string {
	msg := fmt.Sprint(err)
	if u, perr := url.Parse(raw); perr == nil && u.User != nil {
		msg = strings.ReplaceAll(msg, u.User.String(), "***")
	}
	return msg
}

// A Header is one extra request header.
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
