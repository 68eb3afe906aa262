package local

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/omikuji/omikuji/internal/fortune"
	"github.com/omikuji/omikuji/internal/testkit"
)

// refusingAddr is a loopback address nothing listens on any more: a dial
// to it is refused at once.
func refusingAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// hangingAddr is a loopback listener that never accepts, with a listen
// backlog of 0 and its accept queue filled: Linux drops every further SYN,
// so a dial to it hangs until the dialler gives up.
func hangingAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := (&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*syscall.SockaddrInet4).Port}).String()
	// Fill the queue: the first dials complete the handshake and wait in it;
	// the first to time out shows it is full.
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return addr
			}
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if i == 16 {
			t.Fatal("the accept queue does not fill; cannot make a dial hang")
		}
	}
}

// closedUnanswered sends a draw request to the front and returns how long
// the front took to end the connection; it is an error if an answer came
// back or the connection outlived within.
func closedUnanswered(front string, within time.Duration) (time.Duration, error) {
	start := time.Now()
	c, err := net.Dial("tcp", front)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(start.Add(within))
	io.WriteString(c, "GET /?format=text HTTP/1.0\r\n\r\n")
	out, err := io.ReadAll(c)
	took := time.Since(start)
	if len(out) > 0 || (err != nil && !isReset(err)) {
		return took, fmt.Errorf("a client sent to a broken replica got %q, %v after %v; want the connection closed unanswered within %v", out, err, took, within)
	}
	return took, nil
}

// A hang is a client sent to the hanging replica, waited on in the
// background.
type hang struct {
	done chan struct{}
	took time.Duration
	err  error
}

func startHang(t *testing.T, s *System, within time.Duration) *hang {
	t.Helper()
	h := &hang{done: make(chan struct{})}
	go func() {
		defer close(h.done)
		h.took, h.err = closedUnanswered(frontAddr(s), within)
	}()
	// Wait for the front to pick its replica, so that the next client
	// is the working replica's.
	eventually(t, within, "the hanging client accepted", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.next == 0
	})
	return h
}

func (h *hang) pending() bool {
	select {
	case <-h.done:
		return false
	default:
		return true
	}
}

// TestReplicaDialFailsOrHangs: a replica whose listener is gone (its dial
// refused) and one that never accepts (its dial hangs) cost only the
// clients sent to them, who are closed unanswered, at once or after the
// dial timeout; draws through the working replica go on meanwhile, and
// every slot, goroutine and descriptor comes back.
func TestReplicaDialFailsOrHangs(t *testing.T) {
	logs := &testkit.Buffer{}
	s := start(t, Config{
		Replicas: fortune.Counts{"great-fortune": 1, "middle-fortune": 1, "small-fortune": 1},
		Balancer: RoundRobin,
		Logger:   slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	refused, hanging := refusingAddr(t), hangingAddr(t)
	// Route the second and third replicas to the broken addresses:
	// round-robin then sends clients 0, 3, 6... to the working replica,
	// 1, 4, 7... to the refusing one and 2, 5, 8... to the hanging one.
	s.mu.Lock()
	s.replicas[1].Addr, s.replicas[2].Addr = refused, hanging
	working := s.replicas[0].Pod
	s.mu.Unlock()

	client := newConnectionClient()
	const generous = 20 * time.Second // far over the dial timeout; reached only if the front hangs
	drawFromWorking := func() {
		t.Helper()
		if d := drawWith(t, client, s.URL()); d.Pod != working {
			t.Fatalf("drew from %q, want %q", d.Pod, working)
		}
	}
	// The baseline includes what the first answer starts for good: the
	// working replica's server clock and one worker, reused by every draw.
	drawFromWorking()
	eventually(t, generous, "the warm-up's slot free", func() bool { return len(s.slots) == 0 })
	s.mu.Lock()
	s.next = 0 // the working replica's turn again
	s.mu.Unlock()
	goroutines, descriptors := runtime.NumGoroutine(), testkit.OpenDescriptors(t)
	refuse := func() {
		t.Helper()
		took, err := closedUnanswered(frontAddr(s), generous)
		if err != nil {
			t.Fatal(err)
		}
		if took > dialTimeout {
			t.Errorf("a refused dial closed its client after %v; want at once, under the %v dial timeout", took, dialTimeout)
		}
	}
	drewDuringHang := false
	for range 3 {
		drawFromWorking()
		refuse()
		first := startHang(t, s, generous)
		drawFromWorking()
		// Timing only decides whether this round shows a draw during a
		// hanging dial; the test needs one round that does.
		drewDuringHang = drewDuringHang || first.pending()
		refuse()
		second := startHang(t, s, generous)
		for _, h := range []*hang{first, second} {
			<-h.done
			if h.err != nil {
				t.Fatal(h.err)
			}
			if h.took < dialTimeout/2 {
				t.Errorf("the hanging client was closed after %v, before the dial could time out", h.took)
			}
		}
		eventually(t, generous, "every slot free", func() bool { return len(s.slots) == 0 })
	}
	if !drewDuringHang {
		t.Error("no draw completed while a dial hung")
	}

	client.CloseIdleConnections()
	waitGoroutines(t, goroutines)
	eventually(t, generous, "descriptors back", func() bool { return testkit.OpenDescriptors(t) <= descriptors })
	for _, want := range []string{"dial replica", "connection refused", "i/o timeout"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no %q in the warnings:\n%s", want, logs.String())
		}
	}
}
