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

// discardArrived reads and drops what has already arrived on c, up to max
// bytes, without waiting for more.
func discardArrived(c net.Conn, max int) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	var buf [4 << 10]byte
	rc.Read(func(fd uintptr) bool {
		for read := 0; read < max; {
			n, err := syscall.Read(int(fd), buf[:])
			if n <= 0 || err != nil {
				break
			}
			read += n
		}
		return true // done, whatever was read: never wait
	})
}
