// Package audit draws many fortunes from a running omikuji and checks that
// the odds are what the replica counts promise: a chi-square goodness-of-fit
// test against the expected weights and a chi-square test of independence
// on consecutive draws, which catches a balancer that cycles instead of
// choosing at random.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/omikuji/omikuji/internal/fortune"
)

// Options says how to draw.
type Options struct {
	URL         string        // an http or https URL of a draw endpoint
	Draws       int           // how many draws, > 0
	Concurrency int           // parallel workers, > 0
	Timeout     time.Duration // per draw, connect to last byte
	// KeepAlive reuses one connection per worker: the balancer then picks a
	// pod once per connection, so every draw of a worker lands on one pod.
	KeepAlive bool
	// OnDraw, if set, is called after each finished draw, from any worker.
	OnDraw func()
}

// An Outcome is one draw: a fortune from a pod, or a failure of some kind.
type Outcome struct {
	Fortune string // catalogue ID; empty when the draw failed
	Pod     string
	Failure string // kind, such as "timeout"; empty when the draw succeeded
	Err     string // the failure in detail
}

// A Sample is every finished draw, in the order the draws started.
type Sample struct {
	Outcomes []Outcome
	// Stopped says why drawing ended before Draws outcomes: "" when it did
	// not, otherwise a sentence.
	Stopped string
}

// Failure kinds. HTTP status failures are "http_status_<code>".
const (
	FailRefused = "connect_refused"
	FailTimeout = "timeout"
	FailReset   = "connection_reset"
	FailDNS     = "dns"
	FailBadBody = "bad_body"
	FailUnknown = "unknown_fortune"
	FailOther   = "other"
)

// giveUpAfter is how many draws must all fail before Draw stops early: an
// unreachable URL should not cost n timeouts.
const giveUpAfter = 20

// MaxDraws bounds one audit: every outcome is kept in memory, and far fewer
// draws already give the tests all the power they need.
const MaxDraws = 1_000_000

// maxBody bounds how much of an answer is read.
const maxBody = 64 << 10

// maxPodName is the longest name Kubernetes gives an object.
const maxPodName = 253

// Validate reports the first problem with o, before anything is drawn.
func (o Options) Validate() error {
	if _, err := ParseURL(o.URL); err != nil {
		return err
	}
	if o.Draws <= 0 || o.Draws > MaxDraws {
		return fmt.Errorf("draws must be between 1 and %d, got %d", MaxDraws, o.Draws)
	}
	if o.Concurrency <= 0 {
		return fmt.Errorf("concurrency must be positive, got %d", o.Concurrency)
	}
	if o.Timeout <= 0 {
		return fmt.Errorf("timeout must be positive, got %v", o.Timeout)
	}
	return nil
}

// ParseURL accepts absolute http and https URLs with a host.
func ParseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("bad URL %q: %v; want an http:// or https:// URL", raw, errors.Unwrap(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("bad URL %q: want an http:// or https:// URL", raw)
	}
	if u.Hostname() == "" {
		return "", fmt.Errorf("bad URL %q: no host", raw)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("bad URL %q: port must be 1-65535", raw)
		}
	}
	u.Fragment = "" // never sent anyway
	return u.String(), nil
}

// Draw draws o.Draws fortunes with o.Concurrency workers. It stops early when
// ctx is done or when the first draws all fail; the sample then holds what
// was drawn and says why it stopped.
//
// Outcomes are kept in the order the draws started, not the order their
// answers came back: which pod a connection reaches is decided when it opens,
// so the start order is the balancer's order. Answer order would depend on
// the outcome itself — draws from a busy pod come back late and bunched —
// and would read as dependence between draws that the balancer made
// independently.
func Draw(ctx context.Context, o Options) (Sample, error) {
	if err := o.Validate(); err != nil {
		return Sample{}, err
	}
	target, _ := ParseURL(o.URL)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		mu        sync.Mutex
		outcomes  = make([]Outcome, o.Draws) // by start order
		finished  = make([]bool, o.Draws)
		completed int
		succeeded bool
		stopped   string
		started   atomic.Int64
		wg        sync.WaitGroup
	)
	for range min(o.Concurrency, o.Draws) {
		wg.Go(func() {
			client, closeIdle := newClient(o.Timeout, o.KeepAlive)
			defer closeIdle()
			for {
				i := started.Add(1) - 1
				if i >= int64(o.Draws) {
					return
				}
				out := drawOnce(ctx, client, target)
				if ctx.Err() != nil {
					return // cut short by us or the caller: not a real outcome
				}
				mu.Lock()
				outcomes[i], finished[i] = out, true
				completed++
				succeeded = succeeded || out.Failure == ""
				if completed == giveUpAfter && !succeeded {
					stopped = fmt.Sprintf("the first %d draws all failed", giveUpAfter)
					cancel()
				}
				mu.Unlock()
				if o.OnDraw != nil {
					o.OnDraw()
				}
			}
		})
	}
	wg.Wait()
	sample := Sample{Outcomes: outcomes[:0], Stopped: stopped}
	for i, out := range outcomes {
		if finished[i] {
			sample.Outcomes = append(sample.Outcomes, out)
		}
	}
	if sample.Stopped == "" && len(sample.Outcomes) < o.Draws {
		sample.Stopped = fmt.Sprintf("interrupted after %d of %d draws", len(sample.Outcomes), o.Draws)
	}
	return sample, nil
}

// newClient returns a client for one worker. Without keep-alive every request
// dials a new TCP connection, so the balancer draws a pod each time; with it
// the worker keeps its single connection, hence its single pod.
func newClient(timeout time.Duration, keepAlive bool) (*http.Client, func()) {
	transport := &http.Transport{
		Proxy:                 nil, // draw straight from the balancer, never through a proxy
		DialContext:           (&net.Dialer{Timeout: timeout}).DialContext,
		DisableKeepAlives:     !keepAlive,
		MaxIdleConns:          1,
		MaxIdleConnsPerHost:   1,
		MaxConnsPerHost:       1,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
	}
	client := &http.Client{
		Transport: transport,
		Timeout:   timeout,
		// A redirect would draw from somewhere else: count it as a failure.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return client, transport.CloseIdleConnections
}

// answer is the part of the server's JSON answer the audit reads.
type answer struct {
	Fortune string `json:"fortune"`
	Pod     string `json:"pod"`
}

func drawOnce(ctx context.Context, client *http.Client, target string) Outcome {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return Outcome{Failure: FailOther, Err: err.Error()}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return Outcome{Failure: classify(err), Err: err.Error()}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	// Drain what is left so a kept-alive connection can carry the next draw.
	_, _ = io.Copy(io.Discard, resp.Body)
	if err != nil {
		return Outcome{Failure: classify(err), Err: err.Error()}
	}
	if resp.StatusCode != http.StatusOK {
		return Outcome{Failure: "http_status_" + strconv.Itoa(resp.StatusCode), Err: resp.Status}
	}
	if len(body) > maxBody {
		return Outcome{Failure: FailBadBody, Err: fmt.Sprintf("answer longer than %d bytes", maxBody)}
	}
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		return Outcome{Failure: FailBadBody, Err: "answer is not the JSON of a draw: " + err.Error()}
	}
	f, err := fortune.Lookup(a.Fortune)
	if err != nil {
		return Outcome{Failure: FailUnknown, Err: err.Error()}
	}
	// Kubernetes names are at most 253 bytes; a longer one is no pod's, and
	// a million of them would not fit in memory.
	if len(a.Pod) > maxPodName {
		return Outcome{Failure: FailBadBody, Err: fmt.Sprintf("pod name longer than %d bytes", maxPodName)}
	}
	return Outcome{Fortune: f.ID, Pod: a.Pod} // the catalogue's string: a million draws share it
}

// classify names the kind of a transport error.
func classify(err error) string {
	var netErr net.Error
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return FailRefused
	case errors.As(err, &dnsErr):
		return FailDNS
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return FailTimeout
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.EPIPE):
		return FailReset
	}
	return FailOther
}
