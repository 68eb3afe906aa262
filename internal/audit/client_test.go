package audit

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// Interim answers (100 Continue, 103 Early Hints) come before the final one;
// a client skips them (RFC 9110, 15.2). Endless interim answers are bounded
// like any headers.
func TestClientSkipsInterimAnswers(t *testing.T) {
	interim := hostileServer(t, func(conn net.Conn, n int) {
		if n%2 == 0 {
			fmt.Fprint(conn, "HTTP/1.1 100 Continue\r\n\r\n")
		}
		fmt.Fprint(conn, "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
		fmt.Fprint(conn, "HTTP/1.1 200 OK\r\nX-Pod: a\r\nContent-Length: 0\r\n\r\n")
	})
	r := audit(t, Options{URL: interim, Draws: 20, Backend: mustBackend(t, "header:X-Pod")}, "", "")
	if r.Succeeded != 20 || r.Failed != 0 || r.BackendsSeen != 1 {
		t.Errorf("interim answers: %d succeeded, failures %v %v", r.Succeeded, r.Failures, r.FailureExamples)
	}

	endless := hostileServer(t, func(conn net.Conn, _ int) {
		for range 10_000 {
			if _, err := fmt.Fprint(conn, "HTTP/1.1 103 Early Hints\r\n\r\n"); err != nil {
				return
			}
		}
	})
	start := time.Now()
	r = audit(t, Options{URL: endless, Draws: 3, Backend: mustBackend(t, "header:X-Pod")}, "", "")
	if r.Failures[FailOther] != 3 || !strings.Contains(r.FailureExamples[FailOther], "64 KiB") || time.Since(start) > 3*time.Second {
		t.Errorf("endless interim answers: %v %v after %v", r.Failures, r.FailureExamples, time.Since(start))
	}
}

// A status line trickled past the draw's timeout is a timeout, not a
// malformed answer.
func TestClientDeadlineInTheStatusLineIsATimeout(t *testing.T) {
	trickle := hostileServer(t, func(conn net.Conn, _ int) {
		fmt.Fprint(conn, "HTT")
		time.Sleep(time.Second)
	})
	r := audit(t, Options{URL: trickle, Draws: 4, Concurrency: 4, Timeout: 200 * time.Millisecond, Backend: mustBackend(t, "header:X-Pod")}, "", "")
	if r.Failures[FailTimeout] != 4 {
		t.Errorf("a trickled status line: failures %v %v, want 4 %s", r.Failures, r.FailureExamples, FailTimeout)
	}
}

// A rate must give an interval between draws that Go can represent: 1e-10
// draws per second once panicked in time.NewTicker.
func TestRateIsChecked(t *testing.T) {
	good := Options{URL: "http://127.0.0.1:30081/", Draws: 1, Concurrency: 1, Timeout: time.Second}
	for _, rate := range []float64{-1, 1e-10, 1e-300, 2e9} {
		o := good
		o.Rate = rate
		var fe *FieldError
		if err := o.Validate(); !errors.As(err, &fe) || fe.Field != "Rate" || !strings.Contains(err.Error(), "rate") {
			t.Errorf("rate %g: %v, want a *FieldError for Rate", rate, err)
		}
	}
	for _, rate := range []float64{MinRate, 0.5, 5, MaxRate} {
		if err := CheckRate(rate); err != nil || interval(rate) <= 0 {
			t.Errorf("rate %g: %v, interval %v", rate, err, interval(rate))
		}
	}
}
