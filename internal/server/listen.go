package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// Listen opens the TCP listener a replica serves on. Accepted connections
// get no TCP keep-alive probes: enabling them costs four setsockopt calls
// per connection, a fifth of a draw's system calls, and a draw's connection
// lives for one response (an idle one is closed by the server's timeouts).
// The socket gets TCP_DEFER_ACCEPT where the system has it.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	if err := CheckAddr(addr); err != nil {
		return nil, err
	}
	lc := net.ListenConfig{KeepAlive: -1, Control: deferAccept}
	return lc.Listen(ctx, "tcp", addr)
}

// CheckAddr accepts a listen address "host:port" or ":port" whose port is a
// number from 0 to 65535 and whose host is empty, an IP address or
// "localhost", so that a typo is a usage error, not a failure to listen.
func CheckAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: want host:port or :port", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("address %q: port %q is not a number from 0 to 65535", addr, port)
	}
	if host != "" && host != "localhost" && net.ParseIP(host) == nil {
		return fmt.Errorf("address %q: host %q is not an IP address or localhost", addr, host)
	}
	return nil
}

// A refused connection's request is read before its close, for at most
// refusalLinger and refusalReadMax bytes: a close with bytes unread resets
// the connection, and a client that reads to the end (Python's asyncio,
// for one) then loses the answer to the reset. refusalReads refusals are
// read at a time, on both ports together; past them, only what has already
// arrived is.
const (
	refusalReads   = 16
	refusalLinger  = 500 * time.Millisecond
	refusalReadMax = MaxHeaderBytes + maxRequestBody
	// acceptPause is the wait before accepting again when the process is
	// out of descriptors.
	acceptPause = 50 * time.Millisecond
)

// boundedListener holds a port to max open connections and answers the
// next ones itself with a 503, reading what the client sent before the
// close; fasthttp's own limit (Server.Concurrency) would close with the
// request unread. An accept that fails for want of a descriptor is retried
// after a pause: fasthttp ends Serve on any accept error but a timeout.
type boundedListener struct {
	net.Listener
	s    *Server
	max  int64
	open atomic.Int64
}

func (l *boundedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
			l.s.warn("out of descriptors", nil)
			time.Sleep(acceptPause)
			continue
		}
		if err != nil {
			return c, err
		}
		if l.open.Add(1) <= l.max {
			return &conn{Conn: c}, nil
		}
		l.open.Add(-1)
		l.s.warn("too many connections", c.RemoteAddr())
		c.SetWriteDeadline(time.Now().Add(refusalLinger))
		io.WriteString(c, refusal)
		closeWrite(c)
		discardArrived(c, refusalReadMax)
		select {
		case l.s.refusalReads <- struct{}{}:
			go func() {
				defer func() { <-l.s.refusalReads }()
				c.SetReadDeadline(time.Now().Add(refusalLinger))
				io.CopyN(io.Discard, c, refusalReadMax)
				c.Close()
			}()
		default:
			c.Close()
		}
	}
}

// connState is the engine's ConnState hook: a closed connection frees its place.
func (l *boundedListener) connState(_ net.Conn, state fasthttp.ConnState) {
	if state == fasthttp.StateClosed {
		l.open.Add(-1)
	}
}

const msgTooMany = "too many connections; try again\n"

var refusal = fmt.Sprintf("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n"+
	"Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nContent-Length: %d\r\n\r\n%s", len(msgTooMany), msgTooMany)

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

// A conn is an accepted connection whose first read is checked for header
// lines ending in a bare LF: fasthttp waits for a CRLF CRLF that such a
// request never sends, and would answer 408 after ReadTimeout; the error
// makes it answer 400 at once (RFC 9112 lets a server reject bare LF).
// Later reads pass through: a request arrives in one segment, and a
// keep-alive connection's next one is bounded by the idle timeout anyway.
type conn struct {
	net.Conn
	checked bool
}

var errBareLF = errors.New("header line ending in a bare LF")

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if !c.checked && n > 0 {
		c.checked = true
		if bareLF(p[:n]) {
			return n, errBareLF
		}
	}
	return n, err
}

// bareLF reports whether a line of the header block at the start of b, up
// to its end (CRLF CRLF) or b's, ends in LF without CR.
func bareLF(b []byte) bool {
	for {
		i := bytes.IndexByte(b, '\n')
		switch {
		case i < 0:
			return false
		case i == 0 || b[i-1] != '\r':
			return true
		case i == 1:
			return false // the blank line: what follows is a body
		}
		b = b[i+1:]
	}
}
