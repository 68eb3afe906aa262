package main

import (
	"strings"
	"testing"
)

// --rate, when given, is a positive rate whose interval Go can represent,
// with or without --watch; anything else exits 2 naming the flag, before a
// single request (1e-10 once panicked in time.NewTicker; 0 without --watch
// once drew without a limit).
func TestDrawRateFlag(t *testing.T) {
	srv, requests := fortuneServer(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{srv.URL, "--rate", "0"}, "--rate must be a positive number of draws per second, got 0; for example --rate 5"},
		{[]string{srv.URL, "--rate", "1e-10"}, "--rate must be between 1e-09 and 1e+09 draws per second, got 1e-10"},
		{[]string{srv.URL, "--rate", "1e-300"}, "--rate must be between"},
		{[]string{srv.URL, "--rate", "1e10", "--watch"}, "--rate must be between"},
		{[]string{srv.URL, "--rate", "NaN"}, "--rate must be a positive number"},
		{[]string{srv.URL, "--rate", "+Inf"}, "--rate must be a positive number"},
	} {
		code, stdout, stderr := drawCmd(tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) || stdout != "" || strings.Contains(stderr, "goroutine") {
			t.Errorf("draw %q: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
	if requests.Load() != 0 {
		t.Errorf("bad rates made %d requests", requests.Load())
	}
	if code, _, stderr := drawCmd(srv.URL, "-n", "20", "-c", "1", "--rate", "2000", "--expect", "uniform"); code != 0 {
		t.Errorf("--rate 2000: exit %d, %s", code, stderr)
	}
}
