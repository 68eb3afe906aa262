// Command sequential measures the power of the audit's tests on seeded
// simulated balancers: for each fault, the median number of draws to the
// first alarm of the anytime-valid e-processes (looked at after every
// draw), of the fixed-n chi-square tests of `omikuji draw -n 1000` (run on
// every block of 1000 draws until one fails) and of today's windowed
// `--watch` (the same tests on every window of 150 draws, and each window
// against the one before). It prints a Markdown table.
//
//	go run ./bench/sequential [-runs 200] [-max 20000] [-alpha 0.001] [-seed 1]
//	                          [-n 1000] [-window 150]
//	                          [-fit-concentration C] [-uniform-concentration C]
//
// The concentrations default to the audit's (FitConcentration,
// UniformConcentration); set them to compare priors.
//
// A fair balancer gives the false-alarm rows, one per kind of expectation:
// the share of runs that alarm within -max draws (an alarm there is false).
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"

	"github.com/omikuji/omikuji/internal/audit"
	"github.com/omikuji/omikuji/internal/audit/simulate"
)

func main() {
	runs := flag.Int("runs", 200, "simulated runs per scenario and test")
	maxDraws := flag.Int("max", 20000, "draws per run at most")
	alpha := flag.Float64("alpha", 0.001, "level of every test")
	seed := flag.Uint64("seed", 1, "seed of the first run")
	fixedN := flag.Int("n", 1000, "draws per fixed-n test")
	window := flag.Int("window", 150, "draws per window of the windowed test")
	fitC := flag.Float64("fit-concentration", audit.FitConcentration, "the fit's Dirichlet prior concentration")
	uniformC := flag.Float64("uniform-concentration", audit.UniformConcentration, "uniformity's Dirichlet prior weight per backend")
	flag.Parse()
	if *runs < 1 || *maxDraws < 1 || *alpha <= 0 || *alpha >= 1 || *fixedN < 2 || *window < 2 || *fitC <= 0 || *uniformC <= 0 {
		fmt.Fprintln(os.Stderr, "sequential: -runs, -max, -n, -window and the concentrations must be positive, -alpha in (0, 1)")
		os.Exit(2)
	}
	type judge struct {
		name string
		new  func(simulate.Scenario) simulate.Judge
	}
	judges := []judge{
		{"anytime-valid", func(s simulate.Scenario) simulate.Judge { return simulate.NewAnytimeWith(s, *alpha, *fitC, *uniformC) }},
		{fmt.Sprintf("fixed n = %d", *fixedN), func(s simulate.Scenario) simulate.Judge { return simulate.NewFixed(s, *fixedN, *alpha) }},
		{fmt.Sprintf("windowed, %d", *window), func(s simulate.Scenario) simulate.Judge { return simulate.NewWindowed(s, *window, *alpha) }},
	}
	fmt.Printf("Median draws to the first alarm over %d seeded runs (at most %d draws each), alpha %g, prior concentrations %g (fit) and %g (uniformity); in brackets the runs that alarmed within %d draws, and within %d.\n\n",
		*runs, *maxDraws, *alpha, *fitC, *uniformC, *maxDraws, *fixedN)
	fmt.Print("| scenario |")
	for _, j := range judges {
		fmt.Printf(" %s |", j.name)
	}
	fmt.Print("\n|---|")
	for range judges {
		fmt.Print("---:|")
	}
	fmt.Println()
	for _, s := range append(simulate.Faults(), simulate.Fairs()...) {
		fmt.Printf("| %s |", s.Name)
		for _, j := range judges {
			var at []int
			for r := range *runs {
				rng := rand.New(rand.NewPCG(*seed+uint64(r), 0x5e9))
				n := simulate.Run(s, j.new(s), *maxDraws, rng)
				if n == 0 {
					n = *maxDraws + 1 // no alarm: beyond every alarm
				}
				at = append(at, n)
			}
			slices.Sort(at)
			alarmed, early := 0, 0
			for _, n := range at {
				if n <= *maxDraws {
					alarmed++
				}
				if n <= *fixedN {
					early++
				}
			}
			median := at[(len(at)-1)/2]
			cell := fmt.Sprint(median)
			if median > *maxDraws {
				cell = fmt.Sprintf("> %d", *maxDraws)
			}
			fmt.Printf(" %s (%d %%, %d %%) |", cell, 100*alarmed / *runs, 100*early / *runs)
		}
		fmt.Println()
	}
}
