//go:build !linux

package server

import "syscall"

// Neither TCP_DEFER_ACCEPT nor TCP_CORK exists here.
func deferAccept(_, _ string, _ syscall.RawConn) error { return nil }
func setCork(any, bool)                                {}

// descriptorLimit is unknown here; MaxConns stays as configured.
func descriptorLimit() int { return 1 << 30 }
