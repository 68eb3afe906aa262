package audit

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// The sampler stage: workers draw through their clients at the rate and
// within the deadline Options set, and hand on each outcome with its place
// in start order; Draw keeps them as a Sample, a Watch as windows.

// giveUpAfter is how many draws must all fail before Draw stops early: an
// unreachable URL should not cost n timeouts.
const giveUpAfter = 20

// sample draws as o says and calls emit with each outcome as its draw
// finishes, one call at a time, with i the draw's place in the order the
// draws started (0, 1, 2, …). It draws o.Draws times, or with o.Draws == 0
// until ctx is done or o.MaxTime passes; a bounded run also stops when its
// first giveUpAfter draws all failed. A draw cut short by the stop is not an
// outcome: its i is never emitted. sample returns why it stopped before
// o.Draws outcomes, or "". o must be valid.
//
// Consumers keep draws in the order they started (the recorder by i, a
// stream through inStartOrder), not the order their answers came back:
// which backend a connection reaches is decided when it opens, so the start
// order is the balancer's order. Answer order would depend on the outcome
// itself — draws from a busy backend come back late and bunched — and would
// read as dependence between draws that the balancer made independently.
func sample(ctx context.Context, o Options, emit func(i int, out Outcome)) string {
	target, _ := ParseURL(o.URL)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var deadline atomic.Bool
	if o.MaxTime > 0 {
		t := time.AfterFunc(o.MaxTime, func() { deadline.Store(true); cancel() })
		defer t.Stop()
	}
	var pace <-chan time.Time
	if o.Rate > 0 {
		ticker := time.NewTicker(interval(o.Rate))
		defer ticker.Stop()
		pace = ticker.C
	}
	bounded := o.Draws > 0
	workers := o.Concurrency
	if bounded {
		workers = min(workers, o.Draws)
	}
	var (
		mu        sync.Mutex
		completed int
		succeeded bool
		stopped   string
		started   atomic.Int64
		wg        sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			client, err := newClient(target, o)
			if err != nil {
				return // ParseURL accepted it: cannot happen
			}
			defer client.close()
			defer context.AfterFunc(ctx, client.interrupt)()
			for {
				if pace != nil {
					select {
					case <-pace:
					case <-ctx.Done():
						return
					}
				}
				i := started.Add(1) - 1
				if bounded && i >= int64(o.Draws) {
					return
				}
				out := client.draw(ctx)
				if ctx.Err() != nil {
					return // cut short by us or the caller: not a real outcome
				}
				mu.Lock()
				if ctx.Err() != nil {
					// Another worker gave up, or the caller cancelled, while
					// this draw was finishing: what comes after the stop
					// is not recorded.
					mu.Unlock()
					return
				}
				completed++
				succeeded = succeeded || out.Failure == ""
				if bounded && completed == giveUpAfter && !succeeded {
					stopped = fmt.Sprintf("the first %d draws all failed", giveUpAfter)
					cancel()
				}
				emit(int(i), out)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	switch {
	case stopped != "" || !bounded:
	case completed < o.Draws && deadline.Load():
		stopped = fmt.Sprintf("--max-time %v reached after %d of %d draws", o.MaxTime, completed, o.Draws)
	case completed < o.Draws:
		stopped = fmt.Sprintf("interrupted after %d of %d draws", completed, o.Draws)
	}
	return stopped
}

// A Backend is one distinct backend that answered, as one identity: a name
// and the group its answers named. A name that answered as two groups (two
// replicas sharing a host name) is two Backends.
type Backend struct {
	Name  string
	Group string // the group its answers named (omikuji: the fortune), or empty
	Count int
}

// A Sample is what an audit keeps of its draws: counts, and for the
// sequence test one small number per draw rather than every answer.
type Sample struct {
	Backends []Backend // in the order they first answered
	// Seq holds every finished draw in the order the draws started: an
	// index into Backends, or Failed.
	Seq      []int32
	Failures map[string]int    // kind → count
	Examples map[string]string // kind → the first message of that kind, truncated
	// Capped says that more than MaxBackends distinct backends answered;
	// the draws of backends past the cap are failures of kind FailTooMany.
	Capped bool
	// Stopped says why drawing ended before Draws outcomes: "" when it did
	// not, otherwise a sentence.
	Stopped string
}

// Failed marks a failed draw in Sample.Seq.
const Failed = -1

// Draw draws o.Draws times with o.Concurrency workers. It stops early when
// ctx is done, at o.MaxTime, or when the first draws all fail; the sample
// then holds what was drawn and says why it stopped.
func Draw(ctx context.Context, o Options) (Sample, error) {
	if err := o.Validate(); err != nil {
		return Sample{}, err
	}
	rec := newRecorder(o.Draws)
	stopped := sample(ctx, o, func(i int, out Outcome) {
		out = rec.record(i, out)
		if o.OnDraw != nil {
			o.OnDraw(out)
		}
	})
	s := rec.sample()
	s.Stopped = stopped
	return s, nil
}

// unfinished marks a slot in the recorder that no draw has filled.
const unfinished = math.MinInt32

// An identity is what tells backends apart: the name and the group the
// answer named.
type identity struct{ name, group string }

// A recorder turns outcomes into a Sample as they arrive: distinct backends
// are interned (at most MaxBackends of them), failures counted with one
// truncated example per kind, and each draw becomes one int32 at its start
// position. It is not safe for concurrent use.
type recorder struct {
	index map[identity]int32
	s     Sample
}

func newRecorder(draws int) *recorder {
	r := &recorder{index: map[identity]int32{}, s: Sample{Seq: make([]int32, draws), Failures: map[string]int{}, Examples: map[string]string{}}}
	for i := range r.s.Seq {
		r.s.Seq[i] = unfinished
	}
	return r
}

// record stores draw i and returns the outcome as counted (a backend past
// the cap becomes a failure).
func (r *recorder) record(i int, out Outcome) Outcome {
	if out.Failure == "" {
		id := identity{out.Backend, out.Group}
		b, ok := r.index[id]
		if !ok && len(r.s.Backends) == MaxBackends {
			r.s.Capped = true
			out = Outcome{Failure: FailTooMany, Err: fmt.Sprintf("more than %d distinct backends answered; %q and later newcomers are not counted", MaxBackends, truncate(out.Backend))}
		} else {
			if !ok {
				b = int32(len(r.s.Backends))
				r.index[id] = b
				r.s.Backends = append(r.s.Backends, Backend{Name: out.Backend, Group: out.Group})
			}
			r.s.Backends[b].Count++
			r.s.Seq[i] = b
			return out
		}
	}
	r.s.Seq[i] = Failed
	r.s.Failures[out.Failure]++
	if _, ok := r.s.Examples[out.Failure]; !ok {
		r.s.Examples[out.Failure] = truncate(out.Err)
	}
	return out
}

// sample returns the finished draws in start order.
func (r *recorder) sample() Sample {
	s := r.s
	seq := s.Seq[:0]
	for _, c := range s.Seq {
		if c != unfinished {
			seq = append(seq, c)
		}
	}
	s.Seq = seq
	return s
}

// inStartOrder hands outcomes to emit in the order their draws started: one
// that finishes before an earlier draw waits for it. At most the draws in
// flight wait, each for at most its timeout; what waits behind a draw cut
// short by the stop is never handed on.
type inStartOrder struct {
	pending map[int]Outcome
	next    int
	emit    func(Outcome)
}

func newInStartOrder(emit func(Outcome)) *inStartOrder {
	return &inStartOrder{pending: map[int]Outcome{}, emit: emit}
}

// put takes draw i's outcome, as sample emits it.
func (s *inStartOrder) put(i int, out Outcome) {
	s.pending[i] = out
	for {
		out, ok := s.pending[s.next]
		if !ok {
			return
		}
		delete(s.pending, s.next)
		s.next++
		s.emit(out)
	}
}
