package simulate

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestBalancers(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	rr := &RoundRobin{Pods: 10}
	first := rr.Next(rng)
	for i := 1; i < 25; i++ {
		if got := rr.Next(rng); got != (first+i)%10 {
			t.Fatalf("round-robin draw %d: pod %d, want %d", i, got, (first+i)%10)
		}
	}
	counts := make([]int, 3)
	r := NewRandom([]float64{1, 0, 3})
	for range 40000 {
		counts[r.Next(rng)]++
	}
	if counts[1] != 0 || counts[0] < 9400 || counts[0] > 10600 {
		t.Errorf("weights 1/0/3 over 40000 draws: %v", counts)
	}
	s := &Sticky{Random: NewRandom(ones(10)), Repeat: 0.5, last: -1}
	repeats, last := 0, -1
	for range 40000 {
		p := s.Next(rng)
		if p == last {
			repeats++
		}
		last = p
	}
	// 0.5 + 0.5·0.1 of the draws repeat.
	if repeats < 21400 || repeats > 22600 {
		t.Errorf("sticky at 0.5 over ten pods: %d repeats in 40000, want about 22000", repeats)
	}
}

func TestJudgesFindEveryFault(t *testing.T) {
	for i, s := range Faults() {
		rng := rand.New(rand.NewPCG(uint64(i), 2))
		if n := Run(s, NewAnytime(s, 0.001), 20000, rng); n == 0 {
			t.Errorf("%s: the anytime-valid tests did not alarm within 20000 draws", s.Name)
		}
	}
	s := Fair()
	rng := rand.New(rand.NewPCG(9, 9))
	if n := Run(s, NewAnytime(s, 0.001), 20000, rng); n != 0 {
		t.Errorf("a fair balancer alarmed at draw %d", n)
	}
	if n := Run(s, NewFixed(s, 1000, 0.001), 3000, rng); n != 0 {
		t.Errorf("a fair balancer alarmed the fixed-n tests at draw %d", n)
	}
	var rr Scenario
	for _, f := range Faults() {
		if strings.HasPrefix(f.Name, "round-robin") {
			rr = f
		}
	}
	if n := Run(rr, NewFixed(rr, 1000, 0.001), 3000, rng); n != 1000 {
		t.Errorf("%s: the fixed-n tests alarmed at %d, want at the end of the first 1000", rr.Name, n)
	}
	if n := Run(rr, NewWindowed(rr, 150, 0.001), 3000, rng); n != 150 {
		t.Errorf("%s: the windowed tests alarmed at %d, want at the end of the first window", rr.Name, n)
	}
}

func TestASilentBackendIsFoundWhenTheExpectationCountsIt(t *testing.T) {
	for _, name := range []string{"one pod of ten never drawn, --expect uniform:10", "one pod of ten never drawn (one of small-fortune's six)"} {
		var s Scenario
		for _, f := range Faults() {
			if f.Name == name {
				s = f
			}
		}
		if !s.KnowsPods {
			t.Fatalf("no scenario %q that knows its pods", name)
		}
		var at []int
		for r := range 51 {
			at = append(at, Run(s, NewAnytime(s, 0.001), 1000, rand.New(rand.NewPCG(uint64(r), 24))))
		}
		slices.Sort(at)
		t.Logf("%s: draws to the alarm in 51 seeded runs: %v", name, at)
		// About 210 draws at the median (log(1000) over log(10/9) per draw,
		// plus the prior's Occam penalty); the seeds are fixed.
		if at[0] == 0 || at[50] > 400 {
			t.Errorf("%s: not found within 400 draws in every run: %v", name, at)
		}
	}
}
