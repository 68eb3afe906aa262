// The race detector makes these ten times slower (about 28 s of CPU
// without it); `make test-unit` runs them in a second pass without it.

//go:build !race

package simulate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/omikuji/omikuji/internal/audit"
)

// Calibration, as a user watching a fair balancer forever would meet it:
// the share of fair runs in which a test ever alarms when looked at after
// every draw (anytime-valid) or after every window (today's --watch).
const (
	calibrationRuns  = 1000
	calibrationDraws = 100_000
)

// parallel runs f(run) for run in [0, runs) on every CPU. Each run seeds
// its own generator from its number, so the results do not depend on the
// schedule.
func parallel(runs int, f func(run int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for r := range next {
				f(r)
			}
		})
	}
	for r := range runs {
		next <- r
	}
	close(next)
	wg.Wait()
}

func rngFor(run int) *rand.Rand { return rand.New(rand.NewPCG(uint64(run), 0xca1)) }

// bound is the most false alarms in runs that a test at level alpha may
// show: alpha plus four standard errors of a binomial share, so a
// calibrated test stays below it except with probability about 3e-5, and
// the seeds are fixed.
func bound(alpha float64, runs int) float64 {
	return alpha + 4*math.Sqrt(alpha*(1-alpha)/float64(runs))
}

// The watch's anytime-valid audit (audit.Monitor) on fair runs: per test,
// the share of runs whose always-valid p-value ever fell to alpha, and the
// endpoint changes it saw where there were none. The monitor expects the
// catalogue, which states each fortune's pods, so its uniformity counts
// the pods not seen yet; beside it, on the same draws, the two other ways
// the e-processes count backends: uniformity over the backends seen only
// (an expectation that states no pods) and the fit of uniform:10 (every
// pod its own group, all ten counted). These two are the e-processes
// audit.NewAnytime builds for such expectations, run bare, which costs a
// fifth more time rather than two more monitors' threefold.
func TestCalibrationAnytimeValid(t *testing.T) {
	s := Fair()
	tests := []string{"fit", "uniformity (pods known)", "independence", "uniformity (pods not known)", "fit of uniform:10"}
	pValues := make([][5]float64, calibrationRuns) // per test, the smallest of the run
	changes := make([]int, calibrationRuns)
	parallel(calibrationRuns, func(r int) {
		m := audit.NewMonitor(s.Options(0), 150) // alpha 0: no alarm ends the run
		seenOnly := audit.NewSequentialUniformity(audit.UniformConcentration)
		uniform10 := audit.NewSequentialUniformity(audit.UniformConcentration)
		uniform10.Expect(0, len(s.PodGroup))
		b, rng := s.Balancer(), rngFor(r)
		for range calibrationDraws {
			pod := b.Next(rng)
			if m.Observe(s.PodGroup[pod], pod, nil) != nil {
				changes[r]++
			}
			seenOnly.Observe(s.PodGroup[pod], pod)
			uniform10.Observe(0, pod)
		}
		if changes[r] == 0 {
			res := m.Current()
			pValues[r] = [5]float64{res.Fit.PValue, res.Uniformity.PValue, res.Independence.PValue, seenOnly.PValue(), uniform10.PValue()}
		}
	})
	falseChanges := 0
	for _, c := range changes {
		falseChanges += c
	}
	t.Logf("endpoint changes seen in %d fair draws: %d", calibrationRuns*calibrationDraws, falseChanges)
	if falseChanges > 1 { // one is expected in 10⁹ draws
		t.Errorf("%d false endpoint changes in %d draws", falseChanges, calibrationRuns*calibrationDraws)
	}
	for _, alpha := range []float64{0.01, 0.001} {
		var alarms [5]int
		for r, m := range pValues {
			for i, p := range m {
				if changes[r] > 0 || p <= alpha { // a run cut by a false change counts against the tests
					alarms[i]++
				}
			}
		}
		for i, name := range tests {
			rate := float64(alarms[i]) / calibrationRuns
			t.Logf("anytime-valid %s at alpha %g: %d of %d fair runs alarmed within %d draws (%.4f)", name, alpha, alarms[i], calibrationRuns, calibrationDraws, rate)
			if rate > bound(alpha, calibrationRuns) {
				t.Errorf("anytime-valid %s at alpha %g: false-alarm rate %.4f above %.4f", name, alpha, rate, bound(alpha, calibrationRuns))
			}
		}
	}
}

func TestCalibrationWindowed(t *testing.T) {
	s := Fair()
	// Each window is a fresh chance of a false alarm: about 666 windows of
	// four tests make one near certain at 1 %, and likely at 0.1 %.
	for _, tc := range []struct{ alpha, least float64 }{{0.01, 0.9}, {0.001, 0.5}} {
		alarmAt := make([]int, calibrationRuns)
		parallel(calibrationRuns, func(r int) {
			alarmAt[r] = Run(s, NewWindowed(s, 150, tc.alpha), calibrationDraws, rngFor(r))
		})
		var alarms []int
		for _, n := range alarmAt {
			if n > 0 {
				alarms = append(alarms, n)
			}
		}
		slices.Sort(alarms)
		rate := float64(len(alarms)) / calibrationRuns
		median := 0
		if len(alarms) > 0 {
			median = alarms[len(alarms)/2]
		}
		t.Logf("windowed (150 draws: three tests and the change test) at alpha %g: %d of %d fair runs alarmed within %d draws (%.4f), the median of them at draw %d",
			tc.alpha, len(alarms), calibrationRuns, calibrationDraws, rate, median)
		if rate < tc.least {
			t.Errorf("windowed false-alarm rate %.4f at alpha %g: expected far above alpha, at least %g", rate, tc.alpha, tc.least)
		}
	}
}

// The false-alarm rate of --expect uniform:NAME,... as `omikuji draw`
// judges it (audit.Analyze: the chi-square tests and the anytime-valid
// ones replayed over the same draws): ten listed pods of two Deployments,
// four and six, grouped by Deployment, drawn fairly. Each test alone must
// stay within alpha.
func TestCalibrationUniformNames(t *testing.T) {
	const runs, draws, alpha = calibrationRuns, 20_000, 0.01
	var pods []string
	for i := range 10 {
		deployment := "web"
		if i >= 4 {
			deployment = "api"
		}
		pods = append(pods, fmt.Sprintf("%s-7d4b9c-%c%c%c%c%c", deployment, 'a'+i, 'b', 'c', 'd', 'e'))
	}
	backend, err := audit.ParseBackend("header:X-Pod")
	if err != nil {
		t.Fatal(err)
	}
	group, err := audit.ParseGroup(`regex:^(.+)-[a-z0-9]+-[a-z0-9]+$`)
	if err != nil {
		t.Fatal(err)
	}
	expect, err := audit.ParseExpect("uniform:"+strings.Join(pods, ","), backend, group)
	if err != nil {
		t.Fatal(err)
	}
	a := audit.Audit{Options: audit.Options{URL: "http://127.0.0.1:8080/", Draws: draws, Backend: backend}, Group: group, Expect: expect, Alpha: alpha}
	names := []string{"fit", "uniform", "independence", "anytime-valid fit", "anytime-valid uniform", "anytime-valid independence"}
	failed := make([][6]bool, runs)
	parallel(runs, func(r int) {
		rng, fair := rngFor(r), NewRandom(ones(len(pods)))
		s := audit.Sample{Seq: make([]int32, draws)}
		index := map[int]int32{}
		for i := range s.Seq {
			p := fair.Next(rng)
			b, ok := index[p]
			if !ok {
				b = int32(len(s.Backends))
				index[p] = b
				s.Backends = append(s.Backends, audit.Backend{Name: pods[p]})
			}
			s.Backends[b].Count++
			s.Seq[i] = b
		}
		rep := audit.Analyze(s, a)
		failed[r] = [6]bool{!rep.GoodnessOfFit.Passed, !rep.Uniformity.Passed, !rep.Independence.Passed,
			rep.Anytime.Fit.Rejected, rep.Anytime.Uniformity.Rejected, rep.Anytime.Independence.Rejected}
		if rep.GoodnessOfFit.DF != 1 || rep.Uniformity.DF != 8 || rep.BackendsSilent != 0 || rep.Groups[0].Weight+rep.Groups[1].Weight != 10 {
			t.Errorf("run %d: not the test meant: fit df %d, uniformity df %d, rows %+v", r, rep.GoodnessOfFit.DF, rep.Uniformity.DF, rep.Groups)
		}
	})
	for i, name := range names {
		alarms := 0
		for _, f := range failed {
			if f[i] {
				alarms++
			}
		}
		rate := float64(alarms) / runs
		t.Logf("uniform:NAME,... (10 pods in 2 groups, %d fair draws) %s at alpha %g: %d of %d runs failed (%.4f)", draws, name, alpha, alarms, runs, rate)
		if rate > bound(alpha, runs) {
			t.Errorf("%s: false-alarm rate %.4f above %.4f", name, rate, bound(alpha, runs))
		}
	}
}
