package audit

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"testing"
)

// pods1261 are omikuji's ten pods: pod → fortune group.
var pods1261 = []int{0, 1, 1, 2, 2, 2, 2, 2, 2, 3}

func TestAnytimePrecisionGivesItsGuarantee(t *testing.T) {
	// A fair balancer, ±2 points asked: every share's confidence sequence
	// comes inside expected ± 2 points, then the shares are also narrow.
	a := NewAnytime(AnytimeOptions{Weights: []float64{1, 2, 6, 1}, Alpha: 0.001, Precision: 0.02})
	rng := rand.New(rand.NewPCG(11, 11))
	number := []int{-1, -1, -1, -1, -1, -1, -1, -1, -1, -1}
	seen, within := 0, 0
	for n := 1; n <= 100_000 && within == 0; n++ {
		p := rng.IntN(10)
		if number[p] < 0 {
			number[p], seen = seen, seen+1
		}
		a.Observe(pods1261[p], number[p])
		if n%500 == 0 && a.Result().Within(0.02) {
			within = n
		}
	}
	r := a.Result()
	if within == 0 || !r.Narrow(0.02) || r.Decided(nil) {
		t.Fatalf("no guarantee within 100000 draws: %+v", r)
	}
	t.Logf("every share within ±2 points of expected, at 99.9 %%, after %d draws", within)
	if within > 30_000 {
		t.Errorf("±2 points took %d draws, want fewer than 30000", within)
	}
	if len(r.Shares) != 4 || r.Shares[2].Expected != 0.6 || r.Confidence != 0.999 || r.Draws != within {
		t.Errorf("result %+v", r)
	}
}

func TestAnytimeDecidesOnlyByTheDecidingTests(t *testing.T) {
	// Round-robin over the ten pods: the shares are exact, the order is
	// not.
	a := NewAnytime(AnytimeOptions{Weights: []float64{1, 2, 6, 1}, Alpha: 0.001})
	for i := range 200 {
		a.Observe(pods1261[i%10], i%10)
	}
	r := a.Result()
	if !r.Independence.Rejected || r.Fit.Rejected || r.Uniformity.Rejected {
		t.Fatalf("round-robin: %+v", r)
	}
	if !r.Decided(nil) || !r.Decided([]string{"independence"}) || r.Decided([]string{"fit", "uniform"}) {
		t.Errorf("deciding tests misread: %+v", r)
	}
	if r.Within(0.001) || r.Narrow(0.001) {
		t.Errorf("200 draws cannot give ±0.1 point: %+v", r.Shares)
	}
}

func TestAnytimeUniformModeAndImpossibleGroups(t *testing.T) {
	// Uniform: three backends, one of them at half share.
	a := NewAnytime(AnytimeOptions{Alpha: 0.001})
	rng := rand.New(rand.NewPCG(2, 2))
	for range 3000 {
		x := rng.Float64()
		b := 0
		if x >= 0.2 {
			b = 1 + int((x-0.2)/0.4)
		}
		a.Observe(b, b) // each backend its own group
	}
	r := a.Result()
	if !r.Fit.Rejected || r.Uniformity.Rejected || r.Shares != nil {
		t.Errorf("a backend at half share, each its own group: %+v", r)
	}
	// A group expected never to come: p = 0, and the JSON still encodes.
	a = NewAnytime(AnytimeOptions{Weights: []float64{1, 0}, Alpha: 0.001})
	a.Observe(0, 0)
	a.Observe(1, 1)
	a.Observe(2, 2)
	r = a.Result()
	if r.Fit.PValue != 0 || !r.Fit.Rejected || r.Fit.Log10E != 300 || len(r.Shares) != 3 {
		t.Errorf("impossible groups: %+v", r)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Errorf("JSON: %v", err)
	}
}

func TestReplayNumbersBackendsInStartOrder(t *testing.T) {
	// Backends indexed in answer order (2 answered first), failed draws
	// marked -1: the replay numbers them as the draws started.
	seq := []int32{0, -1, 1, 2, 0, 1, 2, -1}
	groupOf := []int{0, 0, 1}
	got := Replay(AnytimeOptions{Weights: []float64{2, 1}, Alpha: 0.01}, seq, groupOf, nil)
	a := NewAnytime(AnytimeOptions{Weights: []float64{2, 1}, Alpha: 0.01})
	for _, d := range [][2]int{{0, 0}, {0, 1}, {1, 2}, {0, 0}, {0, 1}, {1, 2}} {
		a.Observe(d[0], d[1])
	}
	if want := a.Result(); got.Draws != 6 || got.Fit != want.Fit || got.Independence != want.Independence || got.Shares[1] != want.Shares[1] {
		t.Errorf("replay %+v, want %+v", got, want)
	}
}

func TestAnytimeCountsBackendsOnlyWhenTheExpectationStatesThem(t *testing.T) {
	omikuji, header := BackendSpec{Kind: KindOmikuji}, BackendSpec{Kind: KindHeader, Header: "X-Pod"}
	for _, tc := range []struct {
		backend  BackendSpec
		expect   string
		backends int
		groups   []int
	}{
		{omikuji, "", 0, []int{1, 2, 6, 1}}, // the catalogue's pods
		{omikuji, "great-fortune=1,middle-fortune=2,small-fortune=6,misfortune=1", 0, nil},
		{omikuji, "uniform:10", 10, nil},
		{header, "uniform:10", 10, nil},
		{header, "uniform", 0, nil},
		{header, "a=1,b=3", 0, nil},
	} {
		e, err := ParseExpect(tc.expect, tc.backend, GroupSpec{})
		if err != nil {
			t.Fatal(err)
		}
		o := anytimeOptions(Audit{Alpha: 0.001}, NewModel(tc.backend, GroupSpec{}, e))
		if o.Backends != tc.backends || !slices.Equal(o.GroupBackends, tc.groups) {
			t.Errorf("%s --expect %q: backends %d, per group %v; want %d, %v", tc.backend.Kind, tc.expect, o.Backends, o.GroupBackends, tc.backends, tc.groups)
		}
	}

	// uniform:10 with one backend silent: the fit counts it and rejects
	// within a few hundred draws; told only "uniform", it never does.
	rng := rand.New(rand.NewPCG(24, 10))
	known := NewAnytime(AnytimeOptions{Alpha: 0.001, Backends: 10})
	unknown := NewAnytime(AnytimeOptions{Alpha: 0.001})
	number := map[int]int{} // backends in order of appearance, each its own group
	for range 1000 {
		pod := rng.IntN(9)
		if _, ok := number[pod]; !ok {
			number[pod] = len(number)
		}
		known.Observe(number[pod], number[pod])
		unknown.Observe(number[pod], number[pod])
	}
	if r := known.Result(); !r.Fit.Rejected {
		t.Errorf("uniform:10, one silent: fit p %v after 1000 draws, want rejected", r.Fit.PValue)
	}
	if r := unknown.Result(); r.Fit.Rejected || r.Uniformity.Rejected {
		t.Errorf("uniform, one silent: rejected, fit p %v, uniformity p %v", r.Fit.PValue, r.Uniformity.PValue)
	}
}
