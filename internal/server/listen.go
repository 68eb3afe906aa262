package server

import (
	"context"
	"fmt"
	"net"
	"strconv"
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
