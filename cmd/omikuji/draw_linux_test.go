package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair: what a user's terminal looks like to
// omikuji. Reading the controller side shows what the user would see.
func openPTY(t *testing.T) (controller, terminal *os.File) {
	t.Helper()
	controller, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI must be able to test the progress bar on a pseudo-terminal: %v", err)
		}
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { controller.Close() })
	fd := int(controller.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	terminal, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { terminal.Close() })
	return controller, terminal
}

func TestDrawShowsAProgressBarOnlyOnATerminal(t *testing.T) {
	srv, _ := fortuneServer(t, 1)
	controller, terminal := openPTY(t)
	seen := make(chan string)
	go func() {
		b, _ := io.ReadAll(controller) // until the terminal side closes
		seen <- string(b)
	}()
	var stdout bytes.Buffer
	code := run(context.Background(), []string{"draw", srv.URL, "-n", "300", "-c", "1"}, &stdout, terminal)
	terminal.Close()
	onTerminal := <-seen
	if code != 0 || !strings.Contains(stdout.String(), "CONSISTENT") {
		t.Fatalf("exit %d:\n%s", code, stdout.String())
	}
	if !strings.Contains(onTerminal, "drawing") || !strings.Contains(onTerminal, "/300, ") {
		t.Errorf("no progress bar on the terminal; it got %q", onTerminal)
	}

	// The same draw with stderr a pipe: nothing at all on stderr.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	code = run(context.Background(), []string{"draw", srv.URL, "-n", "300", "-c", "1"}, io.Discard, w)
	w.Close()
	piped, _ := io.ReadAll(r)
	if code != 0 || len(piped) != 0 {
		t.Errorf("exit %d; stderr to a pipe got %q, want nothing", code, piped)
	}
}

func TestWatchRedrawsInPlaceOnATerminal(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := scalingServer(t, 1<<40, 1500, cancel) // two pods throughout; stop after ~1.5 s
	controller, terminal := openPTY(t)
	seen := make(chan string)
	go func() {
		b, _ := io.ReadAll(controller)
		seen <- string(b)
	}()
	code := run(ctx, []string{"draw", srv.URL, "--watch", "--rate", "1000", "--window", "300", "-c", "1", "--backend", "header:X-Pod"}, terminal, io.Discard)
	terminal.Close()
	screen := <-seen
	redraws := strings.Count(screen, "\x1b[H\x1b[2J")
	if code != 0 || redraws < 3 || !strings.Contains(screen, "omikuji draw --watch") || !strings.Contains(screen, "\x1b[1;32mCONSISTENT\x1b[0m") ||
		!strings.Contains(screen, "2 backends answering") || strings.Contains(screen, `{"window"`) || !strings.Contains(screen, "300 draws from") {
		t.Errorf("exit %d, %d redraws; the terminal got:\n%q", code, redraws, screen)
	}
}
