package server

import (
	"net"
	"syscall"
)

// deferAcceptSeconds is how long the kernel holds a connection that has
// sent nothing before handing it to accept anyway (then the read timeout
// applies).
const deferAcceptSeconds = 1

// deferAccept sets TCP_DEFER_ACCEPT on a listening socket: accept returns a
// connection once its first bytes have arrived, not at the handshake, so a
// draw is read at once instead of waking the server twice. An error leaves
// accepts at the handshake: one more wake-up, no harm.
func deferAccept(_, _ string, c syscall.RawConn) error {
	return c.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_DEFER_ACCEPT, deferAcceptSeconds)
	})
}

// corkUntilClose holds a connection's output until it is closed, so that
// the response and the FIN leave in one segment instead of two: what
// nginx's tcp_nopush does for a response it closes after. Only for
// connections that close after this response; Linux flushes corked data
// after 200 ms at the latest anyway.
func corkUntilClose(c net.Conn) {
	sc, ok := c.(syscall.Conn)
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

// descriptorLimit is the process's soft limit on open files.
func descriptorLimit() int {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil || l.Cur > 1<<30 {
		return 1 << 30
	}
	return int(l.Cur)
}
