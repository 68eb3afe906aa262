package main

import (
	"testing"
	"time"
)

func TestWindowAccounting(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	r := &report{
		windows: []window{{phase: "burst", start: at(10), end: at(12)}},
		probes: []probe{
			{at(9), at(9.1), true},
			{at(9.9), at(10.5), false},  // under way when the burst began: its own
			{at(11), at(13), false},     // started inside: the burst's own
			{at(12.1), at(12.2), false}, // after the window: counts outside
			{at(12.5), at(12.7), true},  // the first success after it
		},
		settled: true,
	}
	if draws, failed := r.outside(); draws != 3 || failed != 1 {
		t.Errorf("outside: %d draws, %d failed; want 3, 1", draws, failed)
	}
	if draws, failed := r.windows[0].during(r.probes); draws != 2 || failed != 2 {
		t.Errorf("during: %d draws, %d failed; want 2, 2", draws, failed)
	}
	if d, ok := r.windows[0].recovery(r.probes); !ok || d != 700*time.Millisecond {
		t.Errorf("recovery %v, %v; want 700ms", d, ok)
	}
	if r.met() {
		t.Error("met with a draw failed outside the window")
	}
	r.probes[3].ok = true
	if !r.met() {
		t.Error("not met with every draw outside the window answered")
	}
	r.memLimitKiB, r.peakRSS = 1000, 1001
	if r.met() {
		t.Error("met with the RSS over the memory limit")
	}
	r.peakRSS = 1000
	r.probes = r.probes[:3] // nothing succeeds after the window
	if _, ok := r.worstRecovery(); ok || r.met() {
		t.Error("a window never recovered from counts as recovered")
	}
}
