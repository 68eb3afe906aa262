// Package server is one fortune replica: what runs in each pod. It serves a
// single fortune as HTML, JSON or text, health and readiness probes and
// Prometheus metrics, and shuts down in the order Kubernetes needs.
//
// Every draw response is rendered once, in New; a draw costs a path switch,
// an Accept scan, a few header writes, one write and an atomic add. Two
// engines write the same answers: net/http (Handler, HTTPServer) and
// fasthttp (FastServer, used by Run), which costs less CPU per connection.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/omikuji/omikuji/internal/fortune"
)

// The probe and metrics routes. Everything else but "/" is a 404.
const (
	HealthPath  = "/healthz"
	ReadyPath   = "/readyz"
	MetricsPath = "/metrics"
)

// Limits of the http.Server built by HTTPServer. They are generous for a
// response of a few kilobytes and short enough that a slow or idle client
// cannot hold a connection for long.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 10 * time.Second
	WriteTimeout      = 10 * time.Second
	// IdleTimeout only matters with KeepAlive. It is longer than the usual
	// cloud load balancer idle timeout (60 s) so that the balancer, not the
	// server, closes idle pooled connections.
	IdleTimeout    = 90 * time.Second
	MaxHeaderBytes = 16 << 10

	// DefaultShutdownTimeout bounds how long Run waits for in-flight
	// requests once the drain period is over.
	DefaultShutdownTimeout = 10 * time.Second
)

// Config describes one replica.
type Config struct {
	Fortune fortune.Fortune
	// Pod is the name shown on the page and in JSON; serve uses os.Hostname().
	Pod string
	// KeepAlive false (the default) makes every draw response carry
	// Connection: close, so that each draw arrives on a new connection and
	// the balancer picks a new pod for it.
	KeepAlive bool
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// ShutdownTimeout bounds Shutdown after the drain; 0 means DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
}

// Server serves one fortune. It is safe for concurrent use.
type Server struct {
	cfg      Config
	log      *slog.Logger
	draws    prometheus.Counter // the child for cfg.Fortune, resolved once
	metrics  http.Handler
	pages    [numFormats]page
	draining atomic.Bool
}

// A page is a pre-rendered draw response in one format.
type page struct {
	body             []byte
	contentType      []string
	contentTypeBytes []byte // the same, for the fast engine
	contentLength    []string
	security         []string // Content-Security-Policy, HTML only
}

// Header values shared by every response. net/http only reads them, so one
// slice can serve every request without an allocation.
var (
	valNoStore    = []string{"no-store"}
	valClose      = []string{"close"}
	valNosniff    = []string{"nosniff"}
	valVaryAccept = []string{"Accept"}
	valNoReferrer = []string{"no-referrer"}
	valAllow      = []string{"GET, HEAD"}
	valPlain      = []string{"text/plain; charset=utf-8"}
	// The page needs nothing but its own inline style: no scripts, no
	// external assets, no framing.
	valPageCSP = []string{"default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"}
)

// New renders the fortune's responses and registers its metrics in a
// registry of its own, so that several servers can live in one process.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	s := &Server{cfg: cfg, log: cfg.Logger}

	reg := prometheus.NewRegistry()
	draws := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "omikuji_draws_total",
		Help: "Fortunes drawn (GET responses carrying a fortune), by fortune.",
	}, []string{"fortune"})
	reg.MustRegister(
		draws,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	s.draws = draws.WithLabelValues(cfg.Fortune.ID)
	s.metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	})

	s.pages[formatHTML] = newPage("text/html; charset=utf-8", renderHTML(cfg))
	s.pages[formatHTML].security = valPageCSP
	s.pages[formatJSON] = newPage("application/json", renderJSON(cfg))
	s.pages[formatText] = newPage("text/plain; charset=utf-8", renderText(cfg))
	return s
}

func newPage(contentType string, body []byte) page {
	return page{
		body:             body,
		contentType:      []string{contentType},
		contentTypeBytes: []byte(contentType),
		contentLength:    []string{strconv.Itoa(len(body))},
	}
}

// Handler serves every route (the draw at "/", the probes and the metrics)
// with net/http. Run serves the same answers with the fast engine
// (fast.go); both write what decide chose.
func (s *Server) Handler() http.Handler { return s }

// An answer is what the server sends for a request, whichever engine
// writes it: a pre-rendered page, a short fixed text, or the metrics.
type answer struct {
	status  int
	page    *page  // a draw (status 200); nil otherwise
	format  format // the page's format
	text    string // the plain-text body when page is nil; never unescaped input
	allow   bool   // a 405: tell the client which methods exist
	metrics bool   // hand the request to the Prometheus handler
}

// Plain-text answers that never change.
const (
	msgNotFound  = "404 page not found\n"
	msgMethod    = "method not allowed; use GET or HEAD\n"
	msgOK        = "ok\n"
	msgDraining  = "shutting down\n"
	msgMalformed = "malformed request\n"
)

// decide routes on the exact (decoded) path; there are only four. method is
// as sent, rawQuery without "?", accept every Accept header line.
func (s *Server) decide(method, path, rawQuery string, accept []string) answer {
	switch path {
	case "/", HealthPath, ReadyPath, MetricsPath:
	default:
		return answer{status: http.StatusNotFound, text: msgNotFound}
	}
	if method != http.MethodGet && method != http.MethodHead {
		return answer{status: http.StatusMethodNotAllowed, text: msgMethod, allow: true}
	}
	switch path {
	case HealthPath:
		return answer{status: http.StatusOK, text: msgOK}
	case ReadyPath:
		if s.draining.Load() {
			return answer{status: http.StatusServiceUnavailable, text: msgDraining}
		}
		return answer{status: http.StatusOK, text: msgOK}
	case MetricsPath:
		return answer{metrics: true}
	}
	f, status, msg := chooseFormat(rawQuery, accept)
	if status != http.StatusOK {
		return answer{status: status, text: msg}
	}
	return answer{status: http.StatusOK, page: &s.pages[f], format: f}
}

// ServeHTTP writes decide's answer with net/http.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a := s.decide(r.Method, r.URL.Path, r.URL.RawQuery, r.Header["Accept"])
	if a.metrics {
		s.metrics.ServeHTTP(w, r)
		return
	}
	h := w.Header()
	if a.page == nil {
		if a.allow {
			h["Allow"] = valAllow
		}
		plainError(w, a.status, a.text)
		return
	}
	p := a.page
	h["Content-Type"] = p.contentType
	h["Content-Length"] = p.contentLength
	h["Cache-Control"] = valNoStore
	h["Vary"] = valVaryAccept
	h["X-Content-Type-Options"] = valNosniff
	h["Referrer-Policy"] = valNoReferrer
	if p.security != nil {
		h["Content-Security-Policy"] = p.security
	}
	if !s.cfg.KeepAlive {
		// net/http sees this header and closes the connection after the
		// response: the next draw is a new connection, hence a new pick.
		h["Connection"] = valClose
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(p.body)
		s.draws.Inc()
	}
	s.logDraw(r.Context(), a.format, r.Method, r.RemoteAddr)
}

// logDraw logs a draw at debug level; at the default level it costs one
// Enabled call.
func (s *Server) logDraw(ctx context.Context, f format, method, remote string) {
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.Debug("draw", "fortune", s.cfg.Fortune.ID, "format", formatNames[f], "method", method, "remote", remote)
	}
}

// plainError writes a short fixed text. Callers never pass request input
// unescaped.
func plainError(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h["Content-Type"] = valPlain
	h["Content-Length"] = []string{strconv.Itoa(len(msg))}
	h["Cache-Control"] = valNoStore
	h["X-Content-Type-Options"] = valNosniff
	w.WriteHeader(status)
	w.Write([]byte(msg))
}

// BeginShutdown makes readiness fail, so that Kubernetes takes the pod out
// of the Service's endpoints while it still serves. Run calls it.
func (s *Server) BeginShutdown() { s.draining.Store(true) }

// HTTPServer returns an http.Server for s with every timeout and limit set.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// Run serves on ln with the fast engine (FastServer) until ctx is done,
// then shuts down the way a pod should: readiness fails at once, the server
// keeps serving for drain (so that endpoints are removed before the
// listener closes), then waits up to the shutdown timeout for in-flight
// requests. A clean stop returns nil.
func (s *Server) Run(ctx context.Context, ln net.Listener, drain time.Duration) error {
	return s.run(ctx, &fastEngine{Server: s.FastServer()}, ln, drain)
}

// An engine is an HTTP server implementation: *http.Server or *fastEngine.
type engine interface {
	Serve(net.Listener) error
	// Shutdown closes the listener and waits for open connections to
	// finish their requests, or for ctx.
	Shutdown(context.Context) error
}

func (s *Server) run(ctx context.Context, srv engine, ln net.Listener, drain time.Duration) error {
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	s.log.Info("serving", "fortune", s.cfg.Fortune.ID, "pod", s.cfg.Pod, "addr", ln.Addr().String(), "keep_alive", s.cfg.KeepAlive)

	select {
	case err := <-served:
		if err == nil {
			err = errors.New("server stopped serving by itself")
		}
		return err // Serve failed on its own; nothing to drain
	case <-ctx.Done():
	}

	// Persistent connections would keep landing on this pod; from now on
	// each one closes after its next response (the fast engine checks
	// draining itself).
	s.BeginShutdown()
	if hs, ok := srv.(*http.Server); ok {
		hs.SetKeepAlivesEnabled(false)
	}
	s.log.Info("shutdown begun; readiness fails while draining", "drain", drain.String())
	if drain > 0 {
		time.Sleep(drain)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	// net/http's Serve returns ErrServerClosed once Shutdown began, fasthttp's nil.
	if serveErr := <-served; serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
		err = serveErr
	}
	if err != nil {
		s.log.Error("shutdown", "err", err)
		return err
	}
	s.log.Info("stopped")
	return nil
}

// Rendering, once per server.

// slipFields fills slipHTML's placeholders. They are html/template actions,
// and TestSlipMatchesHTMLTemplate holds this rendering to html/template's
// output byte for byte; the binary does not use html/template because its
// reflective method calls stop the linker from dropping unused methods,
// which costs megabytes (see docs/benchmarks.md).
func slipFields(cfg Config) *strings.Replacer {
	f := cfg.Fortune
	ill := "" // 凶: the slip is inked differently
	if f.ID == "misfortune" {
		ill = " ill"
	}
	return strings.NewReplacer(
		"{{.Label}}", escapeText(f.Label),
		"{{.Gloss}}", escapeText(f.Gloss),
		"{{.Reading}}", escapeText(f.Reading),
		"{{.ID}}", escapeText(f.ID),
		"{{.Pod}}", escapeText(cfg.Pod),
		"{{if .Ill}} ill{{end}}", ill,
	)
}

// escapeText escapes a value for HTML text exactly as html/template does
// there.
var escapeText = strings.NewReplacer(
	"\x00", "\uFFFD",
	`"`, "&#34;",
	"&", "&amp;",
	"'", "&#39;",
	"+", "&#43;",
	"<", "&lt;",
	">", "&gt;",
).Replace

func renderHTML(cfg Config) []byte {
	return []byte(slipFields(cfg).Replace(slipHTML))
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
	b, err := json.Marshal(drawJSON{
		Fortune: cfg.Fortune.ID,
		Label:   cfg.Fortune.Label,
		Reading: cfg.Fortune.Reading,
		Gloss:   cfg.Fortune.Gloss,
		Pod:     cfg.Pod,
	})
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
