//go:build !linux

package server

import "net"

// rawListen keeps the listener as it is where rawconn_linux.go's raw
// accept path does not exist.
func rawListen(ln net.Listener) net.Listener { return ln }
