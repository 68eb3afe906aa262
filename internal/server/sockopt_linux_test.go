package server

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
)

// TestListenersCorkedWhereEveryAnswerCloses: Run corks the listening
// socket of a port whose every answer closes its connection (the public
// port unless KeepAlive, the metrics port always), and a corked draw still
// arrives whole, its connection closed at once.
func TestListenersCorkedWhereEveryAnswerCloses(t *testing.T) {
	for _, keepAlive := range []bool{false, true} {
		r := start(t, newServer("great-fortune", keepAlive))
		// An answer means Run has set its listeners up.
		out := raw(t, r.addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(out)), nil)
		if err != nil {
			t.Fatalf("keep-alive %v: %v in %q", keepAlive, err, out)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 || int64(len(body)) != resp.ContentLength || !strings.Contains(string(body), `class="fortune"`) {
			t.Errorf("keep-alive %v: draw %d, %d bytes of %d (%v)", keepAlive, resp.StatusCode, len(body), resp.ContentLength, err)
		}
		if got := tcpCork(t, r.ln); got != !keepAlive {
			t.Errorf("keep-alive %v: public listener TCP_CORK %v, want %v", keepAlive, got, !keepAlive)
		}
		if !tcpCork(t, r.mln) {
			t.Errorf("keep-alive %v: metrics listener not corked", keepAlive)
		}
	}
}

func tcpCork(t *testing.T, ln net.Listener) bool {
	t.Helper()
	rc, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var sockErr error
	if err := rc.Control(func(fd uintptr) {
		v, sockErr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK)
	}); err != nil {
		t.Fatal(err)
	}
	if sockErr != nil {
		t.Fatal(sockErr)
	}
	return v != 0
}
