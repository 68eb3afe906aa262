package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync/atomic"

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

// boundedListener holds a port to max open connections and answers the
// next ones itself with a 503, uncorked: fasthttp's own refusal would send
// it corked, and the close with the request unread would drop it. Its
// connections also drive the release of a burst's memory.
type boundedListener struct {
	net.Listener
	s       *Server
	max     int64
	open    atomic.Int64
	release *BurstRelease
}

func (l *boundedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return c, err
		}
		if open := l.open.Add(1); open <= l.max {
			l.release.Opened(open)
			return c, nil
		}
		l.open.Add(-1)
		l.s.warnf(c.RemoteAddr(), "too many connections")
		setCork(c, false)
		io.WriteString(c, refusal)
		c.Close()
	}
}

// connState is the engine's ConnState hook: a closed connection frees its place.
func (l *boundedListener) connState(_ net.Conn, state fasthttp.ConnState) {
	if state == fasthttp.StateClosed {
		l.release.Closed(l.open.Add(-1))
	}
}

const msgTooMany = "too many connections; try again\n"

var refusal = fmt.Sprintf("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n"+
	"Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nContent-Length: %d\r\n\r\n%s", len(msgTooMany), msgTooMany)
