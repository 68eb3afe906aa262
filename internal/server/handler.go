package server

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"
)

// A header is a name and a value as bytes, so that setting it neither
// allocates nor re-normalises.
type header struct{ name, value []byte }

func hdr(name, value string) header { return header{[]byte(name), []byte(value)} }

var (
	noStore     = hdr("Cache-Control", "no-store")
	nosniff     = hdr("X-Content-Type-Options", "nosniff")
	noReferrer  = hdr("Referrer-Policy", "no-referrer")
	varyAccept  = hdr("Vary", "Accept")
	varyMetrics = hdr("Vary", "Accept, Accept-Encoding")
	allow       = hdr("Allow", "GET, HEAD")
	plainText   = hdr("Content-Type", "text/plain; charset=utf-8")
	// The page needs nothing but its own inline style: no scripts, no
	// external assets, no framing.
	pageCSP = hdr("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
)

func set(h *fasthttp.ResponseHeader, headers ...header) {
	for _, kv := range headers {
		h.SetCanonical(kv.name, kv.value)
	}
}

// serve answers the public port: the draw at "/" and the probes.
func (s *Server) serve(ctx *fasthttp.RequestCtx) {
	if path, ok := s.begin(ctx, "/", HealthPath, ReadyPath); ok && !s.probe(ctx, path) {
		s.draw(ctx)
	}
}

// probe answers path if it is a probe's and reports whether it did.
// Readiness fails only while draining, never because the public port is
// saturated: a flood reaches every pod alike, and taking them all out of
// the endpoints would turn it into an outage.
func (s *Server) probe(ctx *fasthttp.RequestCtx, path string) bool {
	switch {
	case path == ReadyPath && s.draining.Load():
		plain(ctx, http.StatusServiceUnavailable, "shutting down\n")
	case path == HealthPath, path == ReadyPath:
		plain(ctx, http.StatusOK, "ok\n")
	default:
		return false
	}
	return true
}

// draw answers with the pre-rendered page in the format asked for.
func (s *Server) draw(ctx *fasthttp.RequestCtx) {
	f, ok := chooseFormat(ctx)
	if !ok {
		return
	}
	p := &s.pages[f]
	set(&ctx.Response.Header, p.headers...)
	if s.cfg.KeepAlive && !s.draining.Load() {
		// Only a draw keeps a persistent connection open.
		ctx.Response.Header.ResetConnectionClose()
	}
	// The body is set for HEAD too, so that Content-Length is the page's;
	// fasthttp sends no body in answer to HEAD.
	ctx.Response.SetBodyRaw(p.body)
	if ctx.IsGet() {
		s.draws.Inc()
	}
	if s.log.Enabled(ctx, slog.LevelDebug) { // RemoteAddr().String() allocates
		s.log.Debug("draw", "fortune", s.cfg.Fortune.ID, "format", formats[f].name, "method", string(ctx.Method()), "remote", ctx.RemoteAddr().String())
	}
}

// serveMetrics answers the metrics port: MetricsPath and the probes.
func (s *Server) serveMetrics(ctx *fasthttp.RequestCtx) {
	if path, ok := s.begin(ctx, MetricsPath, HealthPath, ReadyPath); ok && !s.probe(ctx, path) {
		s.metrics(ctx)
		ctx.Response.Header.Del("Vary") // promhttp's own, replaced by one that names both
		set(&ctx.Response.Header, varyMetrics, noStore, nosniff)
	}
}

// begin does what every answer needs first: it refuses what the engine
// parses too leniently, a path not in paths (404) and a method other than
// GET or HEAD (405), and returns the path; false means the answer is
// written. Every connection closes after its answer unless a draw says
// otherwise.
func (s *Server) begin(ctx *fasthttp.RequestCtx, paths ...string) (string, bool) {
	ctx.SetConnectionClose()
	proto := ctx.Request.Header.Protocol()
	if string(proto) == "HTTP/1.0" {
		ctx.Response.Header.SetProtocol(proto) // fasthttp would say 1.1
	}
	fault := badHeaderLines(ctx.Request.Header.RawHeaders())
	path, ok := decodedPath(ctx.URI().PathOriginal())
	switch {
	case string(proto) != "HTTP/1.1" && string(proto) != "HTTP/1.0":
		s.refuse(ctx, http.StatusHTTPVersionNotSupported, "unsupported HTTP version", "HTTP version not supported; use HTTP/1.1 or HTTP/1.0\n")
	case fault != "":
		s.refuse(ctx, http.StatusBadRequest, fault, msgMalformed)
	case !ok:
		s.refuse(ctx, http.StatusBadRequest, "bad path encoding", msgMalformed)
	case !slices.Contains(paths, path):
		plain(ctx, http.StatusNotFound, "404 page not found\n")
	case !ctx.IsGet() && !ctx.IsHead():
		set(&ctx.Response.Header, allow)
		plain(ctx, http.StatusMethodNotAllowed, "method not allowed; use GET or HEAD\n")
	default:
		return path, true
	}
	return "", false
}

// badHeaderLines checks the header block as it arrived, which fasthttp
// accepts more leniently than RFC 9112: every field name must be a token
// (no spaces) and no line may be folded onto the previous one. It returns
// the kind of fault, or "".
func badHeaderLines(raw []byte) string {
	for len(raw) > 0 {
		var line []byte
		line, raw, _ = bytes.Cut(raw, []byte("\n"))
		if line = bytes.TrimSuffix(line, []byte("\r")); len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return "obsolete line folding"
		}
		if name, _, ok := bytes.Cut(line, []byte(":")); !ok || len(name) == 0 || bytes.ContainsFunc(name, notToken) {
			return "invalid header name"
		}
	}
	return ""
}

// notToken reports whether r may not appear in an RFC 9110 token.
func notToken(r rune) bool {
	return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r))
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
	set(&ctx.Response.Header, plainText, noStore, nosniff)
	ctx.Response.SetBodyString(msg)
}

// msgMalformed answers a request the server will not read further.
const msgMalformed = "malformed request\n"

// requestError answers a request fasthttp could not read; fasthttp then
// closes the connection.
func (s *Server) requestError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.Is(err, errBareLF):
		s.refuse(ctx, http.StatusBadRequest, "bare LF line ending", msgMalformed)
	case errors.As(err, &small):
		s.refuse(ctx, http.StatusRequestHeaderFieldsTooLarge, "header too large", "request header too large; the limit is "+strconv.Itoa(MaxHeaderBytes)+" bytes\n")
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		s.refuse(ctx, http.StatusRequestEntityTooLarge, "body too large", "request body too large\n")
	case errors.As(err, &netErr) && netErr.Timeout():
		s.refuse(ctx, http.StatusRequestTimeout, "timeout", "request timeout\n")
	default:
		s.refuse(ctx, http.StatusBadRequest, "unparsable request", msgMalformed)
	}
}

// refuse answers a request the server will not serve and warns of it.
func (s *Server) refuse(ctx *fasthttp.RequestCtx, status int, kind, msg string) {
	s.warn(kind, ctx.RemoteAddr())
	plain(ctx, status, msg)
}

// warn logs a refusal: the kind of fault and the client's address (nil:
// none), never the request's bytes, at most one line a second.
func (s *Server) warn(kind string, remote net.Addr) {
	n, ok := s.warnings.Allow()
	if !ok {
		return
	}
	addr := ""
	if remote != nil {
		addr = remote.String()
	}
	s.log.Warn("request refused", "kind", kind, "remote", addr, "suppressed", n)
}

// engineLogger receives fasthttp's own log lines. Its per-connection error
// lines quote the request and are dropped (requestError has logged the
// kind); the rest (accept errors) carry no request bytes and are logged.
type engineLogger struct{ s *Server }

func (l engineLogger) Printf(format string, args ...any) {
	if strings.HasPrefix(format, "error when serving connection") {
		return
	}
	l.s.log.Warn(fmt.Sprintf(format, args...))
}
