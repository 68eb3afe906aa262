package server

import (
	"net"
	"syscall"
)

// corkUntilClose holds a connection's output until it is closed, so that
// the response and the FIN leave in one segment instead of two: what
// nginx's tcp_nopush does for a response it closes after. Only for
// connections that close after this response; Linux flushes corked data
// after 200 ms at the latest anyway.
func corkUntilClose(c net.Conn) {
	sc, ok := c.(syscall.Conn) // *net.TCPConn or *rawConn
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		// An error leaves the connection uncorked: one more segment, no harm.
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, 1)
	})
}
