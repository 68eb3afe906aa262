package server

import (
	"net"
	"syscall"
)

// deferAccept sets TCP_DEFER_ACCEPT on a listening socket: accept returns a
// connection once its first bytes have arrived (or after 1 s), not at the
// handshake, so a draw is read at once instead of waking the server twice.
// An error leaves accepts at the handshake: one more wake-up, no harm.
func deferAccept(_, _ string, c syscall.RawConn) error {
	return c.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_DEFER_ACCEPT, 1)
	})
}

// setCork sets or clears TCP_CORK on a TCP socket, listening or connected.
// A corked socket holds its output until it closes (200 ms at the latest),
// so an answer and its FIN leave in one segment, as with nginx's
// tcp_nopush; accepted sockets inherit it from their listener, so a draw
// makes no system call for it. A close with the request unread resets the
// connection and drops what is held: such an answer goes uncorked. An
// error leaves the socket as it was: one segment more, no harm.
func setCork(sock any, on bool) {
	switch sock.(type) {
	case *net.TCPListener, *net.TCPConn:
	default:
		return
	}
	rc, err := sock.(syscall.Conn).SyscallConn()
	if err != nil {
		return
	}
	v := 0
	if on {
		v = 1
	}
	rc.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, v)
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
