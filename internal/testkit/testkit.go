// Package testkit holds the few helpers that tests of several packages,
// and the benchmarks under bench/, share: a log buffer safe for a server's
// goroutines, the count of the process's open descriptors, and free
// loopback ports.
package testkit

import (
	"bytes"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
)

// Buffer is a bytes.Buffer safe for concurrent writers, for logs written by
// a server's goroutines while a test reads them.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// OpenDescriptors counts this process's open descriptors; the test is
// skipped where /proc/self/fd does not exist.
func OpenDescriptors(t testing.TB) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd to count descriptors")
	}
	return len(fds)
}

// FreePorts finds n distinct ports on 127.0.0.1 that nobody listens on
// right now: all are held at once, then released for the caller to bind.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// FreeAddr is one free "127.0.0.1:port"; the test fails if there is none.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ports, err := FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
}
