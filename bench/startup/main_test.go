package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/omikuji/omikuji/internal/testkit"
)

// When the test binary runs with this variable set, it is the server under
// measurement: a real process listening on the given address.
const serveEnv = "STARTUP_TEST_SERVE"

func TestMain(m *testing.M) {
	if addr := os.Getenv(serveEnv); addr != "" {
		ballast := make([]byte, 8<<20) // resident, so the RSS reading has something to see
		for i := range ballast {
			ballast[i] = 1
		}
		time.Sleep(50 * time.Millisecond) // a start-up cost the measurement must include
		http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write(ballast[:1])
		}))
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func TestMeasuresARealProcess(t *testing.T) {
	addr := testkit.FreeAddr(t)
	t.Setenv(serveEnv, addr)
	var out bytes.Buffer
	err := run(context.Background(), []string{"-runs", "3", "-idle", "100ms", "-url", "http://" + addr + "/", "--", os.Args[0]}, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	var startMS float64
	var rssKiB int64
	last := out.String()[strings.LastIndex(strings.TrimSpace(out.String()), "\n")+1:]
	if _, err := fmt.Sscanf(last, "RESULT start_ms=%f rss_kib=%d", &startMS, &rssKiB); err != nil {
		t.Fatalf("no RESULT line in %q: %v", out.String(), err)
	}
	if startMS < 50 || startMS > 5000 {
		t.Errorf("start %.1f ms; the server sleeps 50 ms before listening, so want 50 ms to 5 s", startMS)
	}
	if rssKiB < 8<<10 {
		t.Errorf("RSS %d KiB; the server holds 8 MiB, so want at least that", rssKiB)
	}
	// Every process was stopped: the port is free again.
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("something still listens on %s after the runs", addr)
	}
}

func TestRefusesABusyPort(t *testing.T) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	err = run(context.Background(), []string{"-runs", "1", "-url", "http://" + ln.Addr().String() + "/", "--", "/bin/true"}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "already answers") {
		t.Errorf("err = %v, want a refusal: a server already answers", err)
	}
}

func TestParseVmRSS(t *testing.T) {
	n, err := parseVmRSS(strings.NewReader("Name:\tomikuji\nVmPeak:\t  1 kB\nVmRSS:\t   11976 kB\n"))
	if err != nil || n != 11976 {
		t.Errorf("got %d, %v; want 11976", n, err)
	}
	for _, bad := range []string{"Name:\tx\n", "VmRSS:\t12 MB\n", "VmRSS:\tlots kB\n"} {
		if _, err := parseVmRSS(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"-url", "http://127.0.0.1:1/"}, {"-runs", "0", "-url", "http://x/", "--", "true"}} {
		err := run(context.Background(), args, &bytes.Buffer{})
		if _, ok := err.(usageError); !ok {
			t.Errorf("%q: err = %v, want a usage error", args, err)
		}
	}
}
