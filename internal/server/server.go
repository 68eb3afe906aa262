// Package server is one fortune replica: what runs in each pod. It serves a
// single fortune as HTML, JSON or text and the health and readiness probes
// on one port, Prometheus metrics on another, and shuts down in the order
// Kubernetes needs. Every draw response is rendered once, in New. The HTTP
// engine is fasthttp, which costs less CPU per new connection than net/http
// (docs/decisions/0001-one-http-engine.md).
package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/omikuji/omikuji/internal/fortune"
	"github.com/omikuji/omikuji/internal/throttle"
)

// The probe and metrics routes. The public port answers "/" and the probes;
// the metrics port answers MetricsPath and the probes, so that a probe there
// does not wait behind a flood of the public port
// (docs/decisions/0024-probes-on-the-metrics-port.md). Everything else is a
// 404.
const (
	HealthPath  = "/healthz"
	ReadyPath   = "/readyz"
	MetricsPath = "/metrics"
)

// Where serve listens unless told otherwise. Metrics have a port of their
// own, which the Service does not expose: omikuji serve derives it from
// this one (cmd/omikuji).
const DefaultAddr = ":8081"

// Limits on what a client controls (docs/service.md#limits).
const (
	// ReadTimeout bounds a whole request: they have no body, so a client
	// that has not sent one by then is stalling (slowloris) and is cut.
	ReadTimeout = 5 * time.Second
	// WriteTimeout bounds each write where answers can queue up behind a
	// client that does not read: kept-alive draws and metrics.
	WriteTimeout = 10 * time.Second
	// IdleTimeout is for KeepAlive draws; above the usual cloud load
	// balancer's 60 s, so that the balancer closes pooled connections.
	IdleTimeout    = 90 * time.Second
	MaxHeaderBytes = 16 << 10
	// DefaultMaxConns bounds the public port's connections (past it: 503);
	// at about 30 KiB each it also bounds memory.
	DefaultMaxConns = 1024
	metricsMaxConns = 16
	maxRequestBody  = 64 << 10 // nothing takes one; a small one still gets its 405
	// idleWorkerTime ends an engine goroutine idle this long, so that a
	// burst's goroutines and their stacks are freed soon after it.
	idleWorkerTime = 5 * time.Second
)

// ReservedDescriptors is what a replica's process needs open besides its
// public port's connections: the runtime, the standard streams and the two
// listeners (a dozen, measured), the metrics port's connections and a
// /proc file each scrape reads, the refused connections being read to
// their end, and spare.
const ReservedDescriptors = 32 + 2*metricsMaxConns + refusalReads

// MaxConnsFor is the most public-port connections a process allowed nofile
// open descriptors holds with every accept still finding a descriptor;
// below 1, nofile is too low to serve at all.
func MaxConnsFor(nofile uint64) int {
	if nofile <= ReservedDescriptors {
		return 0
	}
	return int(min(nofile-ReservedDescriptors, 1<<30))
}

// The shutdown sequence: readiness fails at once, the server keeps serving
// for the drain (so that the endpoint is removed before the listener
// closes), then in-flight requests get up to the shutdown timeout.
const (
	DefaultDrain           = 5 * time.Second
	DefaultShutdownTimeout = 10 * time.Second
	// MaxStop bounds drain + shutdown timeout: it must stay under the pod's
	// terminationGracePeriodSeconds (20 s in deploy/kustomize/base), or the
	// kubelet kills the pod mid-drain.
	MaxStop = 18 * time.Second
)

// Config describes one replica.
type Config struct {
	Fortune fortune.Fortune
	Pod     string // shown on the page and in JSON
	// KeepAlive false (the default) closes the connection after every
	// answer, so that each draw is a new connection and the balancer picks
	// a new pod for it; true lets draws (only draws) reuse it.
	KeepAlive bool
	Logger    *slog.Logger  // nil discards
	Drain     time.Duration // readiness fails this long before the listeners close; 0: none
	// ShutdownTimeout bounds the wait for in-flight requests after the
	// drain; 0 means DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// MaxConns bounds the public port's connections, as given: the
	// process's owner sizes it to its descriptor limit (MaxConnsFor). 0
	// means DefaultMaxConns.
	MaxConns int
	// Registry receives the draw counter labelled with the pod, so that
	// replicas can share one scrape (local mode); nil: a registry of the
	// server's own, with Go and process metrics.
	Registry *prometheus.Registry
}

// Server serves one fortune. It is safe for concurrent use.
type Server struct {
	cfg      Config
	log      *slog.Logger
	draws    prometheus.Counter
	metrics  fasthttp.RequestHandler
	pages    [numFormats]page
	draining atomic.Bool
	warnings throttle.Warnings // refusals, at most one line a second
	// refusalReads holds one token per refused connection being read
	// before its close, on either port.
	refusalReads chan struct{}
}

// NewRegistry returns a Prometheus registry with the Go runtime and process
// collectors, for Config.Registry.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// New renders the fortune's responses and registers its metrics.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	reg := cfg.Registry
	var registerer prometheus.Registerer = prometheus.WrapRegistererWith(prometheus.Labels{"pod": cfg.Pod}, reg)
	if reg == nil {
		reg = NewRegistry()
		registerer = reg
	}
	draws := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "omikuji_draws_total",
		Help: "Fortunes drawn (GET responses carrying a fortune), by fortune.",
	}, []string{"fortune"})
	registerer.MustRegister(draws)
	return &Server{
		cfg:   cfg,
		log:   cfg.Logger,
		draws: draws.WithLabelValues(cfg.Fortune.ID),
		metrics: fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{
			ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
		})),
		pages:        renderPages(cfg),
		refusalReads: make(chan struct{}, refusalReads),
	}
}

// BeginShutdown makes readiness fail, so that Kubernetes takes the pod out
// of the Service's endpoints while it still serves. Run calls it.
func (s *Server) BeginShutdown() { s.draining.Store(true) }

// Run serves the public routes on ln and, unless metrics is nil, the
// metrics on metrics, until ctx is done; then it shuts down as a pod
// should: readiness fails at once, serving goes on for the drain, then
// in-flight requests get up to the shutdown timeout. A clean stop returns
// nil. Run closes both listeners.
func (s *Server) Run(ctx context.Context, ln, metrics net.Listener) error {
	// Every answer closes its connection, except a draw under KeepAlive.
	public := s.port(s.serve, ln, s.cfg.MaxConns)
	if !s.cfg.KeepAlive {
		// One answer per connection, at most half a new socket's send
		// buffer: its write never waits on the client, so a write deadline
		// would only cost every draw a timer
		// (docs/decisions/0019-no-write-deadline-where-answers-close.md).
		public.srv.WriteTimeout = 0
	}
	ports := []port{public}
	metricsAddr := ""
	if metrics != nil {
		ports = append(ports, s.port(s.serveMetrics, metrics, metricsMaxConns))
		metricsAddr = metrics.Addr().String()
	}
	served := make(chan error, len(ports))
	for _, p := range ports {
		go func() { served <- p.srv.Serve(p.ln) }()
	}
	s.log.Info("serving", "fortune", s.cfg.Fortune.ID, "pod", s.cfg.Pod, "addr", ln.Addr().String(),
		"metrics_addr", metricsAddr, "keep_alive", s.cfg.KeepAlive, "max_conns", s.cfg.MaxConns)

	var err error
	running := len(ports)
	select {
	case err = <-served:
		// A listener failed on its own: stop the other one, nothing to drain.
		running--
		if err == nil {
			err = errors.New("server stopped serving by itself")
		}
	case <-ctx.Done():
		s.BeginShutdown() // from now on every answer closes its connection
		s.log.Info("shutdown begun; readiness fails while draining", "drain", s.cfg.Drain.String())
		time.Sleep(s.cfg.Drain)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	for _, p := range ports {
		if e := p.srv.ShutdownWithContext(shutdownCtx); e != nil && err == nil {
			err = e
		}
		// fasthttp's Shutdown closes only a listener Serve has already
		// taken up; one it has not must not stay open.
		p.ln.Close()
	}
	for ; running > 0; running-- {
		// A listener closed above, before Serve took it up, is a clean stop.
		if e := <-served; e != nil && !errors.Is(e, net.ErrClosed) && err == nil {
			err = e
		}
	}
	if err != nil {
		s.log.Error("shutdown", "err", err)
		return err
	}
	s.log.Info("stopped")
	return nil
}

// A port is one listener and the engine that serves it.
type port struct {
	srv *fasthttp.Server
	ln  *boundedListener
}

// port returns an engine with every limit set for ln, held to maxConns
// connections. ReadBufferSize is also fasthttp's limit on the request line
// and headers.
func (s *Server) port(handler fasthttp.RequestHandler, ln net.Listener, maxConns int) port {
	bounded := &boundedListener{Listener: ln, s: s, max: int64(maxConns)}
	return port{ln: bounded, srv: &fasthttp.Server{
		Handler:                      handler,
		ErrorHandler:                 s.requestError,
		ConnState:                    bounded.connState,
		ReadTimeout:                  ReadTimeout,
		WriteTimeout:                 WriteTimeout,
		LazyRequestTime:              true, // nothing reads a request's time: one clock read fewer per draw
		IdleTimeout:                  IdleTimeout,
		MaxIdleWorkerDuration:        idleWorkerTime,
		ReadBufferSize:               MaxHeaderBytes,
		MaxRequestBodySize:           maxRequestBody,
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		DisablePreParseMultipartForm: true,
		CloseOnShutdown:              true,
		SecureErrorLogMessage:        true,
		Logger:                       engineLogger{s},
	}}
}
