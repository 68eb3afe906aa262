package main

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// A phase is one kind of hostile client, n connections strong. run returns
// how many connections opened and how many of them the server ended (cut,
// or closed after its answer) before the phase closed them.
type phase struct {
	name  string
	conns int
	run   func(ctx context.Context, addr string, n int) (opened, cutEarly int)
}

const drawRequest = "GET / HTTP/1.1\r\nHost: soak\r\nAccept: text/html\r\n\r\n"

// A crowd is one phase's connections.
type crowd struct {
	conns   []net.Conn
	closing atomic.Bool
	cut     atomic.Int64
	wg      sync.WaitGroup
}

// open dials n connections at once; those that fail are left out.
func open(ctx context.Context, addr string, n int) *crowd {
	c := &crowd{}
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() {
			d := net.Dialer{Timeout: 5 * time.Second}
			if conn, err := d.DialContext(ctx, "tcp", addr); err == nil {
				conns[i] = conn
			}
		})
	}
	wg.Wait()
	for _, conn := range conns {
		if conn != nil {
			c.conns = append(c.conns, conn)
		}
	}
	return c
}

// each runs f on every connection in its own goroutine; f returns when the
// connection ends, and an end (error) before the phase closes it counts as
// ended by the server.
func (c *crowd) each(f func(i int, conn net.Conn) error) {
	for i, conn := range c.conns {
		c.wg.Go(func() {
			if f(i, conn) != nil && !c.closing.Load() {
				c.cut.Add(1)
			}
		})
	}
}

// hold waits d (or ctx), then closes every connection and waits for f's.
func (c *crowd) hold(ctx context.Context, d time.Duration) (opened, cutEarly int) {
	sleep(ctx, d)
	c.closing.Store(true)
	for _, conn := range c.conns {
		conn.Close()
	}
	c.wg.Wait()
	return len(c.conns), int(c.cut.Load())
}

// readUntilClosed reads and drops everything until the connection ends.
func readUntilClosed(conn net.Conn) error {
	_, err := io.Copy(io.Discard, conn)
	if err == nil {
		err = io.EOF
	}
	return err
}

// burst: n connections at once, half sending a draw request, held 2 s.
func burst(ctx context.Context, addr string, n int) (int, int) {
	c := open(ctx, addr, n)
	c.each(func(i int, conn net.Conn) error {
		if i%2 == 1 {
			conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
			io.WriteString(conn, drawRequest)
		}
		return readUntilClosed(conn)
	})
	return c.hold(ctx, 2*time.Second)
}

// slowloris: a request line, then one header byte a second for 10 s.
func slowloris(ctx context.Context, addr string, n int) (int, int) {
	c := open(ctx, addr, n)
	c.each(func(i int, conn net.Conn) error {
		header := "GET / HTTP/1.1\r\nHost: soak\r\nX-Slow: " + strings.Repeat("a", 60)
		if _, err := io.WriteString(conn, header[:28]); err != nil {
			return err
		}
		for _, b := range []byte(header[28:]) {
			if !sleep(ctx, time.Second) || c.closing.Load() {
				return nil
			}
			conn.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := conn.Write([]byte{b}); err != nil {
				return err
			}
		}
		return nil
	})
	return c.hold(ctx, 10*time.Second)
}

// silent: connections that say nothing, held 8 s.
func silent(ctx context.Context, addr string, n int) (int, int) {
	c := open(ctx, addr, n)
	c.each(func(_ int, conn net.Conn) error { return readUntilClosed(conn) })
	return c.hold(ctx, 8*time.Second)
}

// slowReaders: 20 pipelined draws, then a byte read every half second for
// 10 s. The server may close after the first answer (no keep-alive); what
// it has sent still drains slowly.
func slowReaders(ctx context.Context, addr string, n int) (int, int) {
	c := open(ctx, addr, n)
	c.each(func(i int, conn net.Conn) error {
		conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
		io.WriteString(conn, strings.Repeat(drawRequest, 20))
		var b [1]byte
		for {
			if !sleep(ctx, 500*time.Millisecond) || c.closing.Load() {
				return nil
			}
			conn.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := conn.Read(b[:]); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					continue
				}
				return err
			}
		}
	})
	return c.hold(ctx, 10*time.Second)
}
