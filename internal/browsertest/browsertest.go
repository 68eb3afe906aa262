// Package browsertest starts Debian's headless Chromium for the tests that
// check what a person sees. Only _test.go files import it, so it is never
// part of the omikuji binary.
package browsertest

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Tab starts a fresh headless Chromium with a profile of its own and returns
// a tab of width × height pixels, valid for two minutes or until the test
// ends, when the browser is stopped. Without Chromium the test skips, and
// under CI=true it fails: CI must not skip the browser tests.
func Tab(t testing.TB, width, height int) context.Context {
	t.Helper()
	execPath := chromium(t)
	profile := t.TempDir()
	// "Preload pages" off: no speculative connections besides the page's own.
	if err := os.MkdirAll(filepath.Join(profile, "Default"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(profile, "Default", "Preferences"), []byte(`{"net":{"network_prediction_options":2}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(execPath),
		chromedp.UserDataDir(profile),
		chromedp.Headless,
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.WindowSize(width, height),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancelTab()
		cancelAlloc() // waits for the browser process to exit
	})
	if err := chromedp.Do(ctx); err != nil { // start the browser now
		t.Fatalf("starting %s: %v", execPath, err)
	}
	return ctx
}

func chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not installed (Debian package chromium); CI must not skip the browser tests")
	}
	t.Skip("chromium not installed (Debian package chromium); skipping the browser tests")
	return ""
}

// Page writes a page with write to a file of the test's and opens it in a
// fresh tab of width × height pixels, as a person opens a saved report.
func Page(t testing.TB, width, height int, write func(io.Writer) error) context.Context {
	t.Helper()
	ctx := Tab(t, width, height)
	var b bytes.Buffer
	if err := write(&b); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "page.html")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate("file://"+path)); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// Eval is the value of a JavaScript expression in the tab; the test fails
// when it cannot be evaluated.
func Eval[T any](t testing.TB, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}
