package audit

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

var catalogueWeights = []float64{1, 2, 6, 1}

func TestMonitorStaysQuietOnAFairBalancer(t *testing.T) {
	for seed := range 3 {
		m := NewMonitor(AnytimeOptions{Weights: catalogueWeights, Alpha: 0.001}, 150)
		rng := rand.New(rand.NewPCG(uint64(seed), 3))
		for n := range 100_000 {
			p := rng.IntN(10)
			if r := m.Observe(pods1261[p], p, nil); r != nil {
				t.Fatalf("seed %d: a restart at draw %d: %+v", seed, n+1, r)
			}
		}
		if m.Draws() != 100_000 || m.Current().Draws != 100_000 {
			t.Errorf("draws %d", m.Draws())
		}
	}
}

func TestMonitorAlarmsOnRoundRobinWithinAWindow(t *testing.T) {
	m := NewMonitor(AnytimeOptions{Weights: catalogueWeights, Alpha: 0.001}, 150)
	alarms := 0
	for n := range 150 {
		if r := m.Observe(pods1261[n%10], n%10, nil); r != nil {
			if !r.Alarm || !r.Result.Independence.Rejected || r.Reason(nil) != "after an alarm" {
				t.Fatalf("draw %d: %+v", n+1, r)
			}
			alarms++
		}
	}
	if alarms == 0 {
		t.Fatal("round-robin did not alarm within 150 draws")
	}
	// Not deciding: independence is left out, so nothing restarts.
	m = NewMonitor(AnytimeOptions{Weights: catalogueWeights, Alpha: 0.001}, 150)
	for n := range 1000 {
		if r := m.Observe(pods1261[n%10], n%10, []string{"fit", "uniform"}); r != nil {
			t.Fatalf("a test that does not decide restarted the watch: %+v", r)
		}
	}
	if !m.Current().Independence.Rejected {
		t.Error("the independence test must still show its finding")
	}
}

func TestMonitorNoticesEndpointChanges(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	m := NewMonitor(AnytimeOptions{Alpha: 0.001}, 200)
	name := func(b int) string { return fmt.Sprintf("web-%d", b) }
	var restarts []*Restart
	at := []int{}
	for n := 1; n <= 3000; n++ {
		pods := 2
		switch {
		case n > 2000:
			pods = 3 // web-3 gone
		case n > 400:
			pods = 4
		}
		b := rng.IntN(pods)
		if r := m.Observe(b, b, nil); r != nil {
			restarts = append(restarts, r)
			at = append(at, n)
		}
	}
	if len(restarts) != 2 {
		t.Fatalf("restarts at %v: %+v", at, restarts)
	}
	if r := restarts[0]; r.Alarm || at[0] <= 400 || at[0] > 410 || !strings.HasPrefix(r.Reason(name), "the endpoints changed: 1 new backend(s): web-") {
		t.Errorf("scale-up: at draw %d, %q", at[0], r.Reason(name))
	}
	// A share of 1/4 silent for 70 draws is 10⁻⁹ rare; the check runs every
	// 200 draws.
	if r := restarts[1]; r.Alarm || at[1] < 2070 || at[1] > 2300 || r.Reason(name) != "the endpoints changed: 1 backend(s) gone: web-3" {
		t.Errorf("scale-down: at draw %d, %q", at[1], r.Reason(name))
	}
}

// A draw of a backend uniform:NAME,... does not list alarms at once, in
// uniform mode and with weights, and the watch starts again after it.
func TestMonitorAlarmsOnAnUnexpectedBackend(t *testing.T) {
	for _, o := range []AnytimeOptions{{Alpha: 0.001, Backends: 4}, {Weights: catalogueWeights, Alpha: 0.001}} {
		m := NewMonitor(o, 150)
		for n := range 40 {
			if r := m.Observe(0, n%4, nil); r != nil && !r.Alarm {
				t.Fatalf("%+v: a restart at draw %d: %+v", o, n+1, r)
			}
		}
		r := m.ObserveUnexpected(0, 4, nil)
		if r == nil || !r.Alarm || !r.Result.Fit.Rejected || r.Result.Fit.PValue != 0 || m.Draws() != 0 {
			t.Errorf("%+v: an unexpected backend: %+v, %d draws since", o, r, m.Draws())
		}
	}
}
