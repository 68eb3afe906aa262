package testkit

import (
	"fmt"
	"net"
	"sync"
	"testing"
)

func TestBufferTakesConcurrentWrites(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { fmt.Fprintf(&b, "%d\n", i) })
	}
	wg.Wait()
	if got := len(b.String()); got != 16 {
		t.Errorf("%d bytes written, want 16: %q", got, b.String())
	}
}

func TestOpenDescriptorsCountsAListener(t *testing.T) {
	before := OpenDescriptors(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if got := OpenDescriptors(t); got != before+1 {
		t.Errorf("%d descriptors with one more listener, %d before", got, before)
	}
}

func TestFreePortsAreDistinctAndBindable(t *testing.T) {
	ports, err := FreePorts(16)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] || p == 0 {
			t.Fatalf("port %d given twice or zero: %v", p, ports)
		}
		seen[p] = true
	}
	ln, err := net.Listen("tcp", FreeAddr(t))
	if err != nil {
		t.Fatalf("a free address cannot be bound: %v", err)
	}
	ln.Close()
}
