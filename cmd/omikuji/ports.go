package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
)

// metricsPortOffset: unless --metrics-addr is given, /metrics listens on the
// --addr port + 1000, so that instances started side by side with only
// --addr apart never share a metrics port (decision 0027).
const metricsPortOffset = 1000

// defaultMetricsAddr is the --metrics-addr that goes with addr: host, on
// addr's port + 1000; port 0 (any free port) stays 0.
func defaultMetricsAddr(host, addr string) (string, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--addr: address %q: want host:port or :port", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return "", fmt.Errorf("--addr: address %q: port %q is not a number from 0 to 65535", addr, port)
	}
	if n == 0 {
		return net.JoinHostPort(host, "0"), nil
	}
	if n+metricsPortOffset > 65535 {
		return "", fmt.Errorf("--addr %q: /metrics would go to its port + %d, %d, past 65535; set --metrics-addr (\"\" for none)", addr, metricsPortOffset, n+metricsPortOffset)
	}
	return net.JoinHostPort(host, strconv.Itoa(n+metricsPortOffset)), nil
}

// given reports whether the flag was set on the command line or by its
// environment variable.
func given(fs *flag.FlagSet, name, env string) bool {
	if _, ok := os.LookupEnv(env); ok {
		return true
	}
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// Hints that name the flag which moves a listener off a port in use.
const (
	addrInUse    = "another process (another omikuji?) listens there: choose a free port with --addr"
	metricsInUse = "another process (another omikuji?) listens there: choose a free port with --metrics-addr (\"\" for none), or another --addr, whose port + 1000 /metrics takes unless --metrics-addr is set"
)

// inUse adds hint to an error from a listener whose address is taken.
func inUse(err error, hint string) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%w; %s", err, hint)
	}
	return err
}

// samePort reports whether err is about listening on addr's port.
func samePort(err error, addr string) bool {
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Addr == nil {
		return false
	}
	_, p1, err1 := net.SplitHostPort(oe.Addr.String())
	_, p2, err2 := net.SplitHostPort(addr)
	return err1 == nil && err2 == nil && p1 == p2 && p1 != "0"
}
