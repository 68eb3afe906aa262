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

// setCork sets or clears TCP_CORK on a TCP socket, listening or connected;
// anything else is left alone. Run corks a listener whose every answer
// closes its connection, and accepted sockets inherit it: output is held
// until the close, so the answer and the FIN leave in one segment (what
// nginx's tcp_nopush does for an answer it closes after) without a system
// call per draw. Linux flushes corked data after 200 ms at the latest. A
// close with the request unread resets the connection and drops what is
// held, so such an answer is sent uncorked. An error leaves the socket as
// it was: one segment more or fewer, no harm.
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
