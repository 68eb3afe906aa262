package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// A page is a pre-rendered draw response in one format.
type page struct {
	body        []byte
	contentType []byte
	csp         []byte // Content-Security-Policy, HTML only
}

// Header names and values, as bytes so that setting them neither allocates
// nor re-normalises.
var (
	hdrCacheControl = []byte("Cache-Control")
	hdrVary         = []byte("Vary")
	hdrNosniff      = []byte("X-Content-Type-Options")
	hdrReferrer     = []byte("Referrer-Policy")
	hdrCSP          = []byte("Content-Security-Policy")
	hdrAllow        = []byte("Allow")
	hdrAccept       = "Accept"

	valNoStore       = []byte("no-store")
	valVaryAccept    = []byte("Accept")
	valVaryMetrics   = []byte("Accept, Accept-Encoding")
	valNosniff       = []byte("nosniff")
	valNoReferrer    = []byte("no-referrer")
	valAllow         = []byte("GET, HEAD")
	valPlain         = []byte("text/plain; charset=utf-8")
	protoHTTP10      = []byte("HTTP/1.0")
	protoHTTP11      = []byte("HTTP/1.1")
	contentTypeHTML  = []byte("text/html; charset=utf-8")
	contentTypeJSON  = []byte("application/json")
	contentTypePlain = valPlain
	// The page needs nothing but its own inline style: no scripts, no
	// external assets, no framing.
	valPageCSP = []byte("default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
)

// Plain-text answers that never change.
const (
	msgNotFound  = "404 page not found\n"
	msgMethod    = "method not allowed; use GET or HEAD\n"
	msgOK        = "ok\n"
	msgDraining  = "shutting down\n"
	msgMalformed = "malformed request\n"
	msgVersion   = "HTTP version not supported; use HTTP/1.1 or HTTP/1.0\n"
)

// serve answers the public port: the draw at "/" and the probes.
func (s *Server) serve(ctx *fasthttp.RequestCtx) {
	if !s.begin(ctx) {
		return
	}
	path, ok := decodedPath(ctx.URI().PathOriginal())
	switch {
	case !ok:
		s.malformed(ctx, "bad path encoding")
		return
	case path != "/" && path != HealthPath && path != ReadyPath:
		plain(ctx, http.StatusNotFound, msgNotFound)
		return
	case !ctx.IsGet() && !ctx.IsHead():
		ctx.Response.Header.SetCanonical(hdrAllow, valAllow)
		plain(ctx, http.StatusMethodNotAllowed, msgMethod)
		return
	case path == HealthPath:
		plain(ctx, http.StatusOK, msgOK)
		return
	case path == ReadyPath && s.draining.Load():
		plain(ctx, http.StatusServiceUnavailable, msgDraining)
		return
	case path == ReadyPath:
		plain(ctx, http.StatusOK, msgOK)
		return
	}
	// Up to four Accept lines without allocating the slice.
	var lines [4]string
	accept := lines[:0]
	for _, v := range ctx.Request.Header.PeekAll(hdrAccept) {
		accept = append(accept, string(v))
	}
	f, status, msg := chooseFormat(string(ctx.URI().QueryString()), accept)
	if status != http.StatusOK {
		plain(ctx, status, msg)
		return
	}
	p := &s.pages[f]
	h := &ctx.Response.Header
	h.SetContentTypeBytes(p.contentType)
	h.SetCanonical(hdrCacheControl, valNoStore)
	h.SetCanonical(hdrVary, valVaryAccept)
	h.SetCanonical(hdrNosniff, valNosniff)
	h.SetCanonical(hdrReferrer, valNoReferrer)
	if p.csp != nil {
		h.SetCanonical(hdrCSP, p.csp)
	}
	if s.cfg.KeepAlive && !s.draining.Load() {
		// Only a draw keeps a persistent connection open.
		h.ResetConnectionClose()
	}
	// The body is set for HEAD too, so that Content-Length is the page's;
	// fasthttp sends no body in answer to HEAD.
	ctx.Response.SetBodyRaw(p.body)
	if ctx.IsGet() {
		s.draws.Inc()
	}
	if s.log.Enabled(ctx, slog.LevelDebug) { // RemoteAddr().String() allocates
		s.log.Debug("draw", "fortune", s.cfg.Fortune.ID, "format", formatNames[f], "method", string(ctx.Method()), "remote", ctx.RemoteAddr().String())
	}
}

// serveMetrics answers the metrics port: MetricsPath only.
func (s *Server) serveMetrics(ctx *fasthttp.RequestCtx) {
	if !s.begin(ctx) {
		return
	}
	switch path, ok := decodedPath(ctx.URI().PathOriginal()); {
	case !ok:
		s.malformed(ctx, "bad path encoding")
	case path != MetricsPath:
		plain(ctx, http.StatusNotFound, msgNotFound)
	case !ctx.IsGet() && !ctx.IsHead():
		ctx.Response.Header.SetCanonical(hdrAllow, valAllow)
		plain(ctx, http.StatusMethodNotAllowed, msgMethod)
	default:
		s.metrics(ctx)
		h := &ctx.Response.Header
		h.Del("Vary") // promhttp's own, replaced by one that names both
		h.SetCanonical(hdrVary, valVaryMetrics)
		h.SetCanonical(hdrCacheControl, valNoStore)
		h.SetCanonical(hdrNosniff, valNosniff)
	}
}

// begin does what every answer needs first and refuses what the engine
// parses too leniently; false means the answer is written. Every
// connection closes after its answer unless a draw says otherwise.
func (s *Server) begin(ctx *fasthttp.RequestCtx) bool {
	ctx.SetConnectionClose()
	proto := ctx.Request.Header.Protocol()
	switch {
	case bytes.Equal(proto, protoHTTP11):
	case bytes.Equal(proto, protoHTTP10):
		// Answer in the request's version; fasthttp always says 1.1.
		ctx.Response.Header.SetProtocol(protoHTTP10)
	default:
		s.warnf(ctx.RemoteAddr(), "unsupported HTTP version")
		plain(ctx, http.StatusHTTPVersionNotSupported, msgVersion)
		return false
	}
	if kind := badHeaderLines(ctx.Request.Header.RawHeaders()); kind != "" {
		s.malformed(ctx, kind)
		return false
	}
	return true
}

// badHeaderLines checks the header block as it arrived, which fasthttp
// accepts more leniently than RFC 9112: every field name must be a token
// (no spaces) and no line may be folded onto the previous one. It returns
// the kind of fault, or "".
func badHeaderLines(raw []byte) string {
	for len(raw) > 0 {
		var line []byte
		line, raw, _ = bytes.Cut(raw, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return "obsolete line folding"
		}
		name, _, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(name) == 0 {
			return "header line without a name"
		}
		for _, c := range name {
			if !isTokenChar(c) {
				return "invalid header name"
			}
		}
	}
	return ""
}

// isTokenChar reports whether c may appear in an RFC 9110 token.
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// decodedPath percent-decodes the path as sent; fasthttp's own Path() also
// cleans it ("//" becomes "/"), which would make "//" a draw.
func decodedPath(raw []byte) (string, bool) {
	if bytes.IndexByte(raw, '%') < 0 {
		return string(raw), true
	}
	p, err := url.PathUnescape(string(raw))
	return p, err == nil
}

// plain writes a short fixed text and closes the connection after it.
// Callers never pass request input unescaped.
func plain(ctx *fasthttp.RequestCtx, status int, msg string) {
	ctx.SetConnectionClose()
	ctx.SetStatusCode(status)
	h := &ctx.Response.Header
	h.SetContentTypeBytes(valPlain)
	h.SetCanonical(hdrCacheControl, valNoStore)
	h.SetCanonical(hdrNosniff, valNosniff)
	ctx.Response.SetBodyString(msg)
}

// malformed answers 400 to a request the server will not read further.
func (s *Server) malformed(ctx *fasthttp.RequestCtx, kind string) {
	s.warnf(ctx.RemoteAddr(), kind)
	plain(ctx, http.StatusBadRequest, msgMalformed)
}

// requestError answers a request fasthttp could not read; fasthttp then
// closes the connection.
func (s *Server) requestError(ctx *fasthttp.RequestCtx, err error) {
	setCork(ctx.Conn(), false) // the request stays unread
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.As(err, &small):
		s.warnf(ctx.RemoteAddr(), "header too large")
		plain(ctx, http.StatusRequestHeaderFieldsTooLarge, "request header too large; the limit is "+strconv.Itoa(MaxHeaderBytes)+" bytes\n")
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		s.warnf(ctx.RemoteAddr(), "body too large")
		plain(ctx, http.StatusRequestEntityTooLarge, "request body too large\n")
	case errors.As(err, &netErr) && netErr.Timeout():
		s.warnf(ctx.RemoteAddr(), "timeout")
		plain(ctx, http.StatusRequestTimeout, "request timeout\n")
	default:
		s.malformed(ctx, "unparsable request")
	}
}

// warnInterval is the least time between two malformed-request warnings; the
// ones in between are counted and the count goes with the next.
const warnInterval = time.Second

// warnLimiter lets one warning through per warnInterval.
type warnLimiter struct {
	mu         sync.Mutex
	next       time.Time
	suppressed int
}

func (l *warnLimiter) allow(now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.next) {
		l.suppressed++
		return false, 0
	}
	l.next = now.Add(warnInterval)
	suppressed, l.suppressed = l.suppressed, 0
	return true, suppressed
}

// warnf logs a refused request: the client's address and the kind of
// fault, never the request's bytes, at most once per warnInterval.
func (s *Server) warnf(remote net.Addr, kind string) {
	if !s.log.Enabled(context.Background(), slog.LevelWarn) {
		return
	}
	if ok, suppressed := s.warn.allow(time.Now()); ok {
		s.log.Warn("request refused", "kind", kind, "remote", remote.String(), "suppressed", suppressed)
	}
}

// engineLogger receives fasthttp's own log lines. Its per-connection error
// lines quote the request and are dropped (requestError has logged the
// kind); the rest (accept errors, the connection bound) carry no request
// bytes and are logged.
type engineLogger struct{ s *Server }

func (l engineLogger) Printf(format string, args ...any) {
	if strings.HasPrefix(format, "error when serving connection") {
		return
	}
	l.s.log.Warn(fmt.Sprintf(format, args...))
}
