package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The client stage: one worker's draws, each ending as an Outcome, the
// backend its answer names or the kind of failure.

// A client makes one worker's draws: HTTP/1.1 written straight onto a
// connection and read back with net/http's parser. net/http's Transport
// costs each new connection two goroutines and a round of channel hand-offs;
// a draw is one request on one fresh connection, and the auditor must not be
// slower than the balancer it measures (docs/decisions/0010-audit-draw-client.md).
// With keep-alive the connection is kept while the server allows it.
type client struct {
	o       Options
	addr    string // host:port to dial
	literal bool   // the host is an IP address: dialling resolves nothing
	tls     *tls.Config
	request []byte // the whole request, written as is each draw
	head    bool
	conn    net.Conn
	limit   limitedConn
	br      *bufio.Reader
	body    bytes.Buffer // reused from draw to draw
	bodyLim io.LimitedReader

	// interrupt ends the draw under way on live and every later one.
	mu      sync.Mutex
	live    net.Conn
	stopped bool
}

// maxKeptBody is the largest body buffer a worker keeps between draws.
const maxKeptBody = 16 << 10

func newClient(target string, o Options) (*client, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	c := &client{o: o, head: o.Method == http.MethodHead}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	c.addr = net.JoinHostPort(u.Hostname(), port)
	_, err = netip.ParseAddr(u.Hostname())
	c.literal = err == nil
	host := u.Host
	var b strings.Builder
	method := o.Method
	if method == "" {
		method = http.MethodGet
	}
	var extra strings.Builder
	for _, h := range o.Headers {
		if h.Name == "Host" {
			host = h.Value
			continue
		}
		fmt.Fprintf(&extra, "%s: %s\r\n", h.Name, h.Value)
	}
	if u.Scheme == "https" {
		serverName := u.Hostname()
		c.tls = &tls.Config{ServerName: serverName, InsecureSkipVerify: o.Insecure, NextProtos: []string{"http/1.1"}} //nolint:gosec // --insecure, for self-signed test gateways
	}
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: omikuji-draw\r\n", method, u.RequestURI(), host)
	if o.Backend.wantsJSON() {
		b.WriteString("Accept: application/json\r\n")
	}
	if u.User != nil {
		req := &http.Request{Header: http.Header{}}
		pass, _ := u.User.Password()
		req.SetBasicAuth(u.User.Username(), pass)
		fmt.Fprintf(&b, "Authorization: %s\r\n", req.Header.Get("Authorization"))
	}
	if !o.KeepAlive {
		b.WriteString("Connection: close\r\n")
	}
	b.WriteString(extra.String())
	b.WriteString("\r\n")
	c.request = []byte(b.String())
	c.br = bufio.NewReaderSize(&c.limit, 4096)
	return c, nil
}

// limitedConn reads from a connection at most n more bytes, then fails:
// a bound on headers, then on the body.
type limitedConn struct {
	conn net.Conn
	n    int64
	err  error // the connection's last read error
}

var errTooLong = errors.New("status line and headers longer than 64 KiB")

func (l *limitedConn) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errTooLong
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.conn.Read(p)
	l.n -= int64(n)
	if err != nil {
		l.err = err
	}
	return n, err
}

// interrupt stops the client for good: the draw under way fails at once
// (its outcome is not recorded) and no later draw starts. The sampler calls
// it when the run's context is done: one callback per worker rather than
// one per draw.
func (c *client) interrupt() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	if c.live != nil {
		c.live.SetDeadline(time.Unix(1, 0))
	}
}

// publish makes conn the one interrupt cuts short, after its draw's
// deadline is set (interrupt's past deadline must come last); false if the
// client was interrupted already.
func (c *client) publish(conn net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live = conn
	return !c.stopped
}

// readFinal reads the final answer, skipping interim 1xx answers (100
// Continue, 103 Early Hints) as RFC 9110 asks of a client. 101 Switching
// Protocols is final: it is not a draw's answer. Every interim answer counts
// against the one 64 KiB bound on status lines and headers.
func (c *client) readFinal(method string) (*http.Response, error) {
	for {
		resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
		if err != nil || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, err
		}
	}
}

// A deadlineContext is ctx with a deadline but without a timer of its own:
// net's connect enforces the deadline on the socket itself, and ctx still
// cancels it. context.WithDeadline would cost each dial a timer and a
// registration with ctx.
type deadlineContext struct {
	context.Context
	deadline time.Time
}

func (d deadlineContext) Deadline() (time.Time, bool) { return d.deadline, true }

// close drops the worker's connection, if any.
func (c *client) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// draw makes one request and reads its answer, within o.Timeout. A kept-alive
// connection the server closed while idle is redialled once, as net/http
// does: that is not a failed draw.
func (c *client) draw(ctx context.Context) Outcome {
	reused := c.conn != nil
	out := c.try(ctx)
	if reused && out.Failure == FailReset && ctx.Err() == nil {
		out = c.try(ctx)
	}
	return out
}

func (c *client) try(ctx context.Context) Outcome {
	deadline := time.Now().Add(c.o.Timeout)
	if c.conn == nil {
		// To an IP address the only step that can hang is connect, bounded
		// by the socket's deadline; a host name's lookup needs a context
		// that expires.
		var dctx context.Context = deadlineContext{ctx, deadline}
		if !c.literal {
			var cancel context.CancelFunc
			dctx, cancel = context.WithDeadline(ctx, deadline)
			defer cancel()
		}
		conn, err := (&net.Dialer{KeepAlive: -1}).DialContext(dctx, "tcp", c.addr) // no TCP keep-alive probes: four fewer system calls per draw
		if err == nil && c.tls != nil {
			tc := tls.Client(conn, c.tls)
			conn.SetDeadline(deadline) // the handshake's bound; ctx cancels it
			if err = tc.HandshakeContext(dctx); err != nil {
				conn.Close()
			}
			conn = tc
		}
		if err != nil {
			return Outcome{Failure: classify(err), Err: truncate(err.Error())}
		}
		c.conn = conn
		c.limit.conn = conn
		c.br.Reset(&c.limit)
	}
	keep := false
	defer func() {
		if !keep || !c.o.KeepAlive {
			c.close()
		}
	}()
	if err := c.conn.SetDeadline(deadline); err != nil {
		return Outcome{Failure: FailOther, Err: truncate(err.Error())}
	}
	if !c.publish(c.conn) {
		return Outcome{Failure: FailOther, Err: "interrupted"} // never recorded: the run is over
	}
	if _, err := c.conn.Write(c.request); err != nil {
		return Outcome{Failure: classify(err), Err: truncate(err.Error())}
	}
	c.limit.n, c.limit.err = maxHeaderBytes, nil
	method := http.MethodGet
	if c.head {
		method = http.MethodHead
	}
	resp, err := c.readFinal(method)
	if err != nil {
		var netErr net.Error
		switch {
		case errors.Is(err, errTooLong):
			return Outcome{Failure: FailOther, Err: errTooLong.Error()}
		case errors.As(c.limit.err, &netErr) && netErr.Timeout():
			// The deadline hit inside the status line or headers: bufio
			// hands on the partial line without the error, and net/http
			// calls it malformed. It is a timeout.
			return Outcome{Failure: FailTimeout, Err: truncate(c.limit.err.Error())}
		}
		return Outcome{Failure: classify(err), Err: truncate(err.Error())}
	}
	// The body may take maxBody+1 bytes past what bufio already holds,
	// plus chunk framing; more is cut by bodyLim.
	c.limit.n = maxBody + 1 + 16<<10
	if c.body.Cap() > maxKeptBody {
		c.body = bytes.Buffer{}
	}
	c.body.Reset()
	c.bodyLim = io.LimitedReader{R: resp.Body, N: maxBody + 1}
	if _, err := c.body.ReadFrom(&c.bodyLim); err != nil {
		return Outcome{Failure: classify(err), Err: truncate(err.Error())}
	}
	body := c.body.Bytes()
	// Reuse the connection only if the whole answer was read and the
	// server keeps it open.
	keep = len(body) <= maxBody && !resp.Close && c.br.Buffered() == 0
	if resp.StatusCode != http.StatusOK {
		return Outcome{Failure: "http_status_" + fmt.Sprint(resp.StatusCode), Err: truncate(resp.Status)}
	}
	if len(body) > maxBody {
		return Outcome{Failure: FailBadBody, Err: fmt.Sprintf("answer longer than %d bytes", maxBody)}
	}
	return identify(c.o.Backend, resp.Header, body)
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
