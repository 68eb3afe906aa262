//go:build !linux

package server

import "net"

// corkUntilClose does nothing where TCP_CORK does not exist.
func corkUntilClose(net.Conn) {}
