package server

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// The fast engine: fasthttp writes the answers decide chooses. net/http
// spends most of a new-connection draw's user-space CPU on per-connection
// set-up (a goroutine, bufio readers and writers, a context, a header map);
// fasthttp reuses workers and buffers across connections. See
// docs/benchmarks.md for the measurements behind this choice.

// maxRequestBody bounds a request body fasthttp reads before the handler
// sees the request. Nothing here takes a body; a small one still gets its
// 405 or 404 rather than a 413.
const maxRequestBody = 64 << 10

// Canonical header names and fixed values, as bytes so that setting them
// neither allocates nor re-normalises.
var (
	hdrCacheControl = []byte("Cache-Control")
	hdrVary         = []byte("Vary")
	hdrNosniff      = []byte("X-Content-Type-Options")
	hdrReferrer     = []byte("Referrer-Policy")
	hdrCSP          = []byte("Content-Security-Policy")
	hdrAllow        = []byte("Allow")
	hdrAccept       = "Accept"

	bNoStore    = []byte(valNoStore[0])
	bVaryAccept = []byte(valVaryAccept[0])
	bNosniff    = []byte(valNosniff[0])
	bNoReferrer = []byte(valNoReferrer[0])
	bAllow      = []byte(valAllow[0])
	bPlain      = []byte(valPlain[0])
	bPageCSP    = []byte(valPageCSP[0])
	bHTTP10     = []byte("HTTP/1.0")
)

// fastEngine gives *fasthttp.Server the engine interface Run needs.
// fasthttp's Shutdown does nothing while Serve has not yet registered its
// listener, so a stop right after the start would be lost and Serve would
// run on; the engine also closes the listener itself.
type fastEngine struct {
	*fasthttp.Server
	mu      sync.Mutex
	ln      net.Listener
	stopped bool
}

func (e *fastEngine) Serve(ln net.Listener) error {
	ln = rawListen(ln) // accept without net's per-socket work (rawconn_linux.go)
	e.mu.Lock()
	e.ln = ln
	stopped := e.stopped
	e.mu.Unlock()
	if stopped {
		return ln.Close()
	}
	err := e.Server.Serve(ln)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped && errors.Is(err, net.ErrClosed) {
		return nil // the listener closed by Shutdown below
	}
	return err
}

func (e *fastEngine) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	e.stopped = true
	ln := e.ln
	e.mu.Unlock()
	err := e.ShutdownWithContext(ctx)
	if ln != nil {
		ln.Close() // already closed unless Serve had not registered it
	}
	return err
}

// FastServer returns the fasthttp server Run uses, with the same limits as
// HTTPServer. fasthttp has one read timeout for a whole request, so it gets
// ReadHeaderTimeout: requests here are bodiless, so a client that has not
// sent one within it is stalling (slowloris) and is cut. ReadBufferSize is
// also fasthttp's limit on the request header.
func (s *Server) FastServer() *fasthttp.Server {
	metrics := fasthttpadaptor.NewFastHTTPHandler(s.metrics)
	return &fasthttp.Server{
		Handler:                      func(ctx *fasthttp.RequestCtx) { s.serveFast(ctx, metrics) },
		ErrorHandler:                 fastRequestError,
		ReadTimeout:                  ReadHeaderTimeout,
		WriteTimeout:                 WriteTimeout,
		IdleTimeout:                  IdleTimeout,
		ReadBufferSize:               MaxHeaderBytes,
		MaxRequestBodySize:           maxRequestBody,
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		DisablePreParseMultipartForm: true,
		CloseOnShutdown:              true,
		Logger:                       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// serveFast writes decide's answer with fasthttp, header for header what
// ServeHTTP writes with net/http.
func (s *Server) serveFast(ctx *fasthttp.RequestCtx, metrics fasthttp.RequestHandler) {
	if s.draining.Load() {
		// What SetKeepAlivesEnabled(false) does for net/http.
		ctx.SetConnectionClose()
	}
	if !ctx.Request.Header.IsHTTP11() {
		// net/http answers in the request's version; fasthttp always says 1.1.
		ctx.Response.Header.SetProtocol(bHTTP10)
	}
	path, ok := decodedPath(ctx.URI().PathOriginal())
	if !ok {
		// net/http rejects such a request line before any handler runs,
		// and closes the connection.
		ctx.SetConnectionClose()
		fastPlain(ctx, http.StatusBadRequest, msgMalformed)
		return
	}
	// Up to four Accept lines without allocating the slice.
	var lines [4]string
	accept := lines[:0]
	for _, v := range ctx.Request.Header.PeekAll(hdrAccept) {
		accept = append(accept, string(v))
	}
	method := methodName(ctx)
	a := s.decide(method, path, string(ctx.URI().QueryString()), accept)
	if a.metrics {
		metrics(ctx)
		return
	}
	h := &ctx.Response.Header
	if a.page == nil {
		if a.allow {
			h.SetCanonical(hdrAllow, bAllow)
		}
		fastPlain(ctx, a.status, a.text)
		return
	}
	p := a.page
	h.SetContentTypeBytes(p.contentTypeBytes)
	h.SetCanonical(hdrCacheControl, bNoStore)
	h.SetCanonical(hdrVary, bVaryAccept)
	h.SetCanonical(hdrNosniff, bNosniff)
	h.SetCanonical(hdrReferrer, bNoReferrer)
	if p.security != nil {
		h.SetCanonical(hdrCSP, bPageCSP)
	}
	if !s.cfg.KeepAlive {
		// The next draw is a new connection, hence a new pick.
		ctx.SetConnectionClose()
		corkUntilClose(ctx.Conn())
	}
	// The body is set for HEAD too, so that Content-Length is the page's;
	// fasthttp sends no body in answer to HEAD.
	ctx.Response.SetBodyRaw(p.body)
	if method == http.MethodGet {
		s.draws.Inc()
	}
	if s.log.Enabled(ctx, slog.LevelDebug) { // RemoteAddr().String() allocates
		s.logDraw(ctx, a.format, method, ctx.RemoteAddr().String())
	}
}

// methodName returns GET and HEAD as constants (no allocation on the hot
// path); any other method is copied.
func methodName(ctx *fasthttp.RequestCtx) string {
	switch {
	case ctx.IsGet():
		return http.MethodGet
	case ctx.IsHead():
		return http.MethodHead
	}
	return string(ctx.Method())
}

// decodedPath percent-decodes the path as sent, as net/http's URL.Path is:
// fasthttp's own Path() also cleans it ("//" becomes "/"), which net/http
// does not.
func decodedPath(raw []byte) (string, bool) {
	if bytes.IndexByte(raw, '%') < 0 {
		return string(raw), true
	}
	p, err := url.PathUnescape(string(raw))
	return p, err == nil
}

// fastPlain is plainError for fasthttp.
func fastPlain(ctx *fasthttp.RequestCtx, status int, msg string) {
	ctx.SetStatusCode(status)
	h := &ctx.Response.Header
	h.SetContentTypeBytes(bPlain)
	h.SetCanonical(hdrCacheControl, bNoStore)
	h.SetCanonical(hdrNosniff, bNosniff)
	ctx.Response.SetBodyString(msg)
}

// fastRequestError answers a request fasthttp could not read; it then
// closes the connection, as net/http does.
func fastRequestError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.As(err, &small):
		fastPlain(ctx, http.StatusRequestHeaderFieldsTooLarge, "request header too large; the limit is "+strconv.Itoa(MaxHeaderBytes)+" bytes\n")
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		fastPlain(ctx, http.StatusRequestEntityTooLarge, "request body too large\n")
	case errors.As(err, &netErr) && netErr.Timeout():
		fastPlain(ctx, http.StatusRequestTimeout, "request timeout\n")
	default:
		fastPlain(ctx, http.StatusBadRequest, msgMalformed)
	}
}
