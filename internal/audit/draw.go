// Package audit draws many times from a load balancer and checks that the
// odds are what it promises: a chi-square goodness-of-fit test of the group
// shares against the expected weights, a test of uniformity across the
// backends within each group, and a chi-square test of independence on
// consecutive draws, which catches a balancer that cycles instead of
// choosing at random. A backend is whatever names itself in an answer:
// omikuji's JSON, a header, a JSON field or a regexp on the body.
package audit

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/omikuji/omikuji/internal/fortune"
)

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
	Rate      float64       // draws started per second at most; 0 is as fast as possible
	// OnDraw, if set, is called after each finished draw, from any worker.
	OnDraw func(Outcome)
}

// An Outcome is one draw: a backend (and the group its answer named, for
// omikuji the fortune), or a failure of some kind.
type Outcome struct {
	Backend string // empty when the draw failed
	Group   string // the group the answer named, or empty
	Failure string // kind, such as "timeout"; empty when the draw succeeded
	Err     string // the failure in detail, at most maxExample bytes
}

// A Backend is one distinct backend that answered.
type Backend struct {
	Name  string
	Group string // the group its first answer named (omikuji: the fortune), or empty
	Count int
}

// A Sample is what an audit keeps of its draws: counts, and for the
// sequence test one small number per draw rather than every answer.
type Sample struct {
	Backends []Backend // in the order they first answered
	// Seq holds every finished draw in the order the draws started: an
	// index into Backends, or Failed.
	Seq      []int32
	Failures map[string]int    // kind → count
	Examples map[string]string // kind → the first message of that kind, truncated
	// Capped says that more than MaxBackends distinct backends answered;
	// the draws of backends past the cap are failures of kind FailTooMany.
	Capped bool
	// Stopped says why drawing ended before Draws outcomes: "" when it did
	// not, otherwise a sentence.
	Stopped string
}

// Failed marks a failed draw in Sample.Seq.
const Failed = -1

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

// giveUpAfter is how many draws must all fail before Draw stops early: an
// unreachable URL should not cost n timeouts.
const giveUpAfter = 20

// Limits on what one audit may cost, whatever the backends answer.
const (
	MaxDraws       = 1_000_000 // Seq holds 4 bytes per draw
	MaxConcurrency = 256
	MaxBackends    = 1000 // distinct backend names kept; a pair table of 10⁶ cells at most
	maxBody        = 64 << 10
	maxHeaderBytes = 64 << 10 // status line and headers
	maxPodName     = 253      // the longest name Kubernetes gives an object; also for any backend
	maxExample     = 200      // bytes of a failure message kept as an example
)

// Validate reports the first problem with o, before anything is drawn.
func (o Options) Validate() error {
	if _, err := ParseURL(o.URL); err != nil {
		return err
	}
	if o.Draws <= 0 || o.Draws > MaxDraws {
		return fmt.Errorf("-n: draws must be between 1 and %d, got %d; for example -n 1000", MaxDraws, o.Draws)
	}
	if o.Concurrency <= 0 || o.Concurrency > MaxConcurrency {
		return fmt.Errorf("-c: concurrency must be between 1 and %d, got %d; for example -c 4", MaxConcurrency, o.Concurrency)
	}
	if o.Timeout <= 0 {
		return fmt.Errorf("--timeout must be positive, got %v; for example --timeout 5s", o.Timeout)
	}
	if o.MaxTime < 0 {
		return fmt.Errorf("--max-time must not be negative, got %v; for example --max-time 2m", o.MaxTime)
	}
	if o.Rate < 0 || math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0) {
		return fmt.Errorf("--rate must be a positive number of draws per second, got %v; for example --rate 5", o.Rate)
	}
	switch o.Method {
	case "", http.MethodGet:
	case http.MethodHead:
		if o.Backend.NeedsBody() {
			return fmt.Errorf("--method HEAD: a HEAD answer has no body, so --backend %s cannot name the backend; use --backend header:NAME, for example --method HEAD --backend header:X-Served-By", o.Backend)
		}
	default:
		return fmt.Errorf("--method %q: want GET or HEAD, for example --method HEAD", o.Method)
	}
	return nil
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

// Draw draws o.Draws times with o.Concurrency workers. It stops early when
// ctx is done, at o.MaxTime, or when the first draws all fail; the sample
// then holds what was drawn and says why it stopped.
//
// Draws are kept in the order they started, not the order their answers
// came back: which backend a connection reaches is decided when it opens, so
// the start order is the balancer's order. Answer order would depend on the
// outcome itself — draws from a busy backend come back late and bunched —
// and would read as dependence between draws that the balancer made
// independently.
func Draw(ctx context.Context, o Options) (Sample, error) {
	if err := o.Validate(); err != nil {
		return Sample{}, err
	}
	target, _ := ParseURL(o.URL)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var deadline atomic.Bool
	if o.MaxTime > 0 {
		t := time.AfterFunc(o.MaxTime, func() { deadline.Store(true); cancel() })
		defer t.Stop()
	}
	var pace <-chan time.Time
	if o.Rate > 0 {
		ticker := time.NewTicker(time.Duration(float64(time.Second) / o.Rate))
		defer ticker.Stop()
		pace = ticker.C
	}

	rec := newRecorder(o.Draws)
	var (
		mu        sync.Mutex
		completed int
		succeeded bool
		stopped   string
		started   atomic.Int64
		wg        sync.WaitGroup
	)
	for range min(o.Concurrency, o.Draws) {
		wg.Go(func() {
			client, err := newClient(target, o)
			if err != nil {
				return // ParseURL accepted it: cannot happen
			}
			defer client.close()
			defer context.AfterFunc(ctx, client.interrupt)()
			for {
				if pace != nil {
					select {
					case <-pace:
					case <-ctx.Done():
						return
					}
				}
				i := started.Add(1) - 1
				if i >= int64(o.Draws) {
					return
				}
				out := client.draw(ctx)
				if ctx.Err() != nil {
					return // cut short by us or the caller: not a real outcome
				}
				mu.Lock()
				if ctx.Err() != nil {
					// Another worker gave up, or the caller cancelled, while
					// this draw was finishing: what comes after the stop
					// is not recorded.
					mu.Unlock()
					return
				}
				out = rec.record(int(i), out)
				completed++
				succeeded = succeeded || out.Failure == ""
				if completed == giveUpAfter && !succeeded {
					stopped = fmt.Sprintf("the first %d draws all failed", giveUpAfter)
					cancel()
				}
				mu.Unlock()
				if o.OnDraw != nil {
					o.OnDraw(out)
				}
			}
		})
	}
	wg.Wait()
	sample := rec.sample()
	sample.Stopped = stopped
	switch {
	case sample.Stopped != "":
	case len(sample.Seq) < o.Draws && deadline.Load():
		sample.Stopped = fmt.Sprintf("--max-time %v reached after %d of %d draws", o.MaxTime, len(sample.Seq), o.Draws)
	case len(sample.Seq) < o.Draws:
		sample.Stopped = fmt.Sprintf("interrupted after %d of %d draws", len(sample.Seq), o.Draws)
	}
	return sample, nil
}

// unfinished marks a slot in the recorder that no draw has filled.
const unfinished = math.MinInt32

// A recorder turns outcomes into a Sample as they arrive: distinct backends
// are interned (at most MaxBackends of them), failures counted with one
// truncated example per kind, and each draw becomes one int32 at its start
// position. It is not safe for concurrent use.
type recorder struct {
	index    map[string]int32
	s        Sample
	finished int
}

func newRecorder(draws int) *recorder {
	r := &recorder{index: map[string]int32{}, s: Sample{Seq: make([]int32, draws), Failures: map[string]int{}, Examples: map[string]string{}}}
	for i := range r.s.Seq {
		r.s.Seq[i] = unfinished
	}
	return r
}

// record stores draw i and returns the outcome as counted (a backend past
// the cap becomes a failure).
func (r *recorder) record(i int, out Outcome) Outcome {
	r.finished++
	if out.Failure == "" {
		b, ok := r.index[out.Backend]
		if !ok && len(r.s.Backends) == MaxBackends {
			r.s.Capped = true
			out = Outcome{Failure: FailTooMany, Err: fmt.Sprintf("more than %d distinct backends answered; %q and later newcomers are not counted", MaxBackends, truncate(out.Backend))}
		} else {
			if !ok {
				b = int32(len(r.s.Backends))
				r.index[out.Backend] = b
				r.s.Backends = append(r.s.Backends, Backend{Name: out.Backend, Group: out.Group})
			}
			r.s.Backends[b].Count++
			r.s.Seq[i] = b
			return out
		}
	}
	r.s.Seq[i] = Failed
	r.s.Failures[out.Failure]++
	if _, ok := r.s.Examples[out.Failure]; !ok {
		r.s.Examples[out.Failure] = truncate(out.Err)
	}
	return out
}

// sample returns the finished draws in start order.
func (r *recorder) sample() Sample {
	s := r.s
	seq := s.Seq[:0]
	for _, c := range s.Seq {
		if c != unfinished {
			seq = append(seq, c)
		}
	}
	s.Seq = seq
	return s
}

// identify names the backend (and for omikuji the group) of an answer.
func identify(spec BackendSpec, header http.Header, body []byte) Outcome {
	var name string
	switch spec.Kind {
	case "", KindOmikuji:
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

// classify names the kind of a transport error.
func classify(err error) string {
	var netErr net.Error
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var unknownAuthority x509.UnknownAuthorityError
	var recordErr tls.RecordHeaderError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return FailRefused
	case errors.As(err, &dnsErr):
		return FailDNS
	case errors.As(err, &certErr), errors.As(err, &unknownAuthority), errors.As(err, &recordErr):
		return FailTLS
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return FailTimeout
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.EPIPE):
		return FailReset
	}
	return FailOther
}
