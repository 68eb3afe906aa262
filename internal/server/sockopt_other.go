//go:build !linux

package server

import (
	"net"
	"syscall"
)

// TCP_DEFER_ACCEPT does not exist here.
func deferAccept(_, _ string, _ syscall.RawConn) error { return nil }

// discardArrived: the refusal's linger reads what the client sent.
func discardArrived(net.Conn, int) {}
