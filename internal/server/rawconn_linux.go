package server

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A new-connection draw is accept, one read, one write and close. Go's net
// package adds fixed work to every accepted socket that such a connection
// never needs: getsockname, setsockopt(TCP_NODELAY), epoll_ctl ADD and DEL,
// deadline timers, a finalizer. rawListener skips it: its connections start
// as bare non-blocking descriptors read and written with plain system
// calls, and join Go's poller (with TCP_NODELAY) only the first time a read
// or write would block. Slow clients, keep-alive, large responses and
// timeouts thus all run on the ordinary poller path; only a draw whose
// request is already there and whose response fits the send buffer stays
// raw. TCP_DEFER_ACCEPT makes that the usual case: the kernel hands over a
// connection once its first data has arrived, not at the handshake (without
// it, under load nearly every draw was accepted before its request and
// promoted, which cost more than net's path). See docs/benchmarks.md,
// issue 7.

// deferAcceptSeconds is how long the kernel holds a connection that sends
// nothing before handing it over anyway (then the read timeout applies).
const deferAcceptSeconds = 1

// rawListen wraps a TCP listener and sets TCP_DEFER_ACCEPT on its socket;
// anything else, or a listener whose socket cannot be duplicated (closed
// already), is returned as it is.
func rawListen(ln net.Listener) net.Listener {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return ln
	}
	// A duplicate of the socket as a pollable *os.File: the listener's own
	// SyscallConn cannot wait for readiness (its Read is EINVAL).
	f, err := tl.File()
	if err != nil {
		return ln
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return ln
	}
	rc.Control(func(fd uintptr) {
		// An error leaves accepts at the handshake: more promotions, no harm.
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_DEFER_ACCEPT, deferAcceptSeconds)
	})
	return &rawListener{tl: tl, file: f, rc: rc}
}

// rawListener accepts with accept4 on a duplicate of tl's socket, waiting
// for connections with Go's poller. Close it, not tl: closing only tl
// leaves the duplicate listening.
type rawListener struct {
	tl     *net.TCPListener
	file   *os.File
	rc     syscall.RawConn
	closed atomic.Bool
}

func (l *rawListener) Addr() net.Addr { return l.tl.Addr() }

func (l *rawListener) Close() error {
	l.closed.Store(true)
	l.file.Close() // wakes a waiting Accept
	return l.tl.Close()
}

// acceptBackoff marks running out of descriptors or memory as a timeout,
// which fasthttp's accept loop logs and retries a second later; any other
// error stops Serve. (net/http likewise retries such "temporary" errors.)
type acceptBackoff struct{ error }

func (acceptBackoff) Timeout() bool   { return true }
func (acceptBackoff) Temporary() bool { return true }
func (e acceptBackoff) Unwrap() error { return e.error }

func (l *rawListener) Accept() (net.Conn, error) {
	for {
		var (
			fd   int
			sa   syscall.Sockaddr
			aerr error
		)
		err := l.rc.Read(func(lfd uintptr) bool {
			for {
				fd, sa, aerr = syscall.Accept4(int(lfd), syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
				if aerr != syscall.EINTR {
					return aerr != syscall.EAGAIN // EAGAIN: wait on the poller
				}
			}
		})
		if l.closed.Load() || errors.Is(err, os.ErrClosed) {
			if aerr == nil && err == nil {
				syscall.Close(fd) // accepted as Close ran: nobody will serve it
			}
			// fasthttp ends Serve quietly on this error's text.
			return nil, l.opError(net.ErrClosed)
		}
		if err != nil {
			return nil, l.opError(err)
		}
		switch aerr {
		case nil:
			return &rawConn{fd: fd, sa: sa, ln: l.tl.Addr()}, nil
		case syscall.ECONNABORTED:
			continue // the client gave up while queued; Go's net retries too
		case syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM:
			return nil, l.opError(acceptBackoff{os.NewSyscallError("accept4", aerr)})
		default:
			return nil, l.opError(os.NewSyscallError("accept4", aerr))
		}
	}
}

func (l *rawListener) opError(err error) error {
	return &net.OpError{Op: "accept", Net: "tcp", Addr: l.tl.Addr(), Err: err}
}

// rawConn is an accepted connection: a bare descriptor until a read or
// write would block, then a pollable *os.File on the same descriptor.
// The mutex makes Close safe from another goroutine (fasthttp's Shutdown
// closes idle connections): the descriptor is closed exactly once, never
// while a raw system call uses it, and a Read blocked on the poller is
// woken by the file's Close.
type rawConn struct {
	mu       sync.Mutex
	fd       int
	file     *os.File // set on promotion; owns fd from then on
	closed   bool
	rdl, wdl time.Time                   // deadlines, applied on promotion: raw calls never wait
	sa       syscall.Sockaddr            // from accept4; never changes
	ln       net.Addr                    // the listener's address, for errors
	raddr    atomic.Pointer[net.TCPAddr] // from sa, on first use
	laddr    net.Addr                    // getsockname, on first use
}

func (c *rawConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	if c.file == nil && !c.closed && len(b) > 0 {
		n, err := syscall.Read(c.fd, b)
		for err == syscall.EINTR {
			n, err = syscall.Read(c.fd, b)
		}
		if err != syscall.EAGAIN {
			c.mu.Unlock()
			switch {
			case err != nil:
				return 0, c.opError("read", os.NewSyscallError("read", err))
			case n == 0:
				return 0, io.EOF
			}
			return n, nil
		}
		if err := c.promoteLocked(); err != nil {
			c.mu.Unlock()
			return 0, err
		}
	}
	f, closed := c.file, c.closed
	c.mu.Unlock()
	if f == nil {
		if closed {
			return 0, c.opError("read", net.ErrClosed)
		}
		return 0, nil // len(b) == 0
	}
	n, err := f.Read(b)
	return n, c.fileError("read", err)
}

func (c *rawConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	n := 0
	if c.file == nil && !c.closed {
		for n < len(b) {
			m, err := syscall.Write(c.fd, b[n:])
			if err == syscall.EINTR {
				continue
			}
			if err == syscall.EAGAIN || (err == nil && m <= 0) {
				break // the send buffer is full: wait on the poller
			}
			if err != nil {
				c.mu.Unlock()
				return n, c.opError("write", os.NewSyscallError("write", err))
			}
			n += m
		}
		if n == len(b) {
			c.mu.Unlock()
			return n, nil
		}
		if err := c.promoteLocked(); err != nil {
			c.mu.Unlock()
			return n, err
		}
	}
	f := c.file
	c.mu.Unlock()
	if f == nil {
		return 0, c.opError("write", net.ErrClosed)
	}
	m, err := f.Write(b[n:])
	return n + m, c.fileError("write", err)
}

func (c *rawConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return c.opError("close", net.ErrClosed)
	}
	c.closed = true
	if c.file != nil {
		return c.fileError("close", c.file.Close())
	}
	// No retry on EINTR: Linux has released the descriptor anyway.
	if err := syscall.Close(c.fd); err != nil {
		return c.opError("close", os.NewSyscallError("close", err))
	}
	return nil
}

// promoteLocked hands the descriptor to Go's poller: os.NewFile registers
// a non-blocking descriptor with it, and the file's Read, Write and
// deadlines then behave as a net.Conn's do. TCP_NODELAY as net sets it, so
// that a pooled connection's responses never wait for an ACK.
func (c *rawConn) promoteLocked() error {
	// An error leaves Nagle's algorithm on: slower, still correct.
	syscall.SetsockoptInt(c.fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	f := os.NewFile(uintptr(c.fd), "tcp")
	// A file the poller refused has no deadlines (os.ErrNoDeadline) and
	// cannot wait; closing the connection is the only safe answer.
	if err := f.SetReadDeadline(c.rdl); err != nil {
		f.Close()
		c.closed = true
		return c.opError("read", err)
	}
	if err := f.SetWriteDeadline(c.wdl); err != nil {
		f.Close()
		c.closed = true
		return c.opError("write", err)
	}
	c.file = f
	return nil
}

func (c *rawConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// On the raw path a deadline is only recorded: a raw call never waits, so
// it cannot expire during one. (An already expired deadline therefore does
// not fail a read whose data is there; fasthttp never sets one.)
func (c *rawConn) SetReadDeadline(t time.Time) error {
	return c.setDeadline(t, &c.rdl, (*os.File).SetReadDeadline)
}

func (c *rawConn) SetWriteDeadline(t time.Time) error {
	return c.setDeadline(t, &c.wdl, (*os.File).SetWriteDeadline)
}

// setDeadline records t in *recorded on the raw path, or sets it on the
// promoted file.
func (c *rawConn) setDeadline(t time.Time, recorded *time.Time, set func(*os.File, time.Time) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return c.opError("set", net.ErrClosed)
	case c.file != nil:
		return c.fileError("set", set(c.file, t))
	}
	*recorded = t
	return nil
}

// RemoteAddr takes no lock: opError calls it with the lock held.
func (c *rawConn) RemoteAddr() net.Addr {
	a := c.raddr.Load()
	if a == nil {
		a = tcpAddr(c.sa)
		c.raddr.Store(a)
	}
	return a
}

// LocalAddr asks the kernel on first use (the listener may be bound to
// every address); a closed connection answers with the listener's address.
func (c *rawConn) LocalAddr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.laddr == nil {
		if c.closed {
			return c.ln
		}
		sa, err := syscall.Getsockname(c.fd)
		if err != nil {
			return c.ln
		}
		c.laddr = tcpAddr(sa)
	}
	return c.laddr
}

func tcpAddr(sa syscall.Sockaddr) *net.TCPAddr {
	switch sa := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]).To16(), Port: sa.Port}
	case *syscall.SockaddrInet6:
		a := &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}
		if sa.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(sa.ZoneId)); err == nil {
				a.Zone = ifi.Name
			}
		}
		return a
	}
	return &net.TCPAddr{}
}

// opError is the error net's own connections return; Source is the
// listener's address (getsockname only when LocalAddr is asked).
func (c *rawConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.ln, Addr: c.RemoteAddr(), Err: err}
}

// fileError turns an *os.File error into what a net.Conn returns, so that
// callers (fasthttp among them) recognise a closed connection, a timeout
// or a reset alike on both paths.
func (c *rawConn) fileError(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	var errno syscall.Errno
	switch {
	case errors.Is(err, os.ErrClosed):
		err = net.ErrClosed
	case errors.As(err, &errno):
		err = os.NewSyscallError(op, errno)
	}
	return c.opError(op, err)
}

// SyscallConn lets corkUntilClose set a socket option on either path.
func (c *rawConn) SyscallConn() (syscall.RawConn, error) { return rawSyscallConn{c}, nil }

// rawSyscallConn runs Control on the live descriptor under the
// connection's lock; Read and Write, which may wait, promote it first.
type rawSyscallConn struct{ c *rawConn }

func (r rawSyscallConn) Control(f func(fd uintptr)) error {
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	if r.c.closed {
		return net.ErrClosed
	}
	f(uintptr(r.c.fd))
	return nil
}

func (r rawSyscallConn) Read(f func(fd uintptr) bool) error {
	rc, err := r.c.polled()
	if err != nil {
		return err
	}
	return rc.Read(f)
}

func (r rawSyscallConn) Write(f func(fd uintptr) bool) error {
	rc, err := r.c.polled()
	if err != nil {
		return err
	}
	return rc.Write(f)
}

// polled promotes the connection and returns its file's RawConn.
func (c *rawConn) polled() (syscall.RawConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, net.ErrClosed
	}
	if c.file == nil {
		if err := c.promoteLocked(); err != nil {
			return nil, err
		}
	}
	return c.file.SyscallConn()
}
