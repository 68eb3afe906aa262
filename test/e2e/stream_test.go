package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// A stream draws continuously, each draw on a new connection, and keeps
// every outcome with its time, so a lost draw can be placed against what
// the cluster was doing at that moment.
type stream struct {
	start  time.Time
	cancel context.CancelFunc
	done   atomic.Int64
	mu     sync.Mutex
	draws  []streamDraw
	wg     sync.WaitGroup
	events []string // what the test did to the cluster, written by the test's goroutine only
}

type streamDraw struct {
	at   time.Duration // since the stream started, when the draw began
	took time.Duration
	pod  string
	err  error
}

// startStream starts workers drawing through url until stop.
func startStream(ctx context.Context, url string, workers int) *stream {
	ctx, cancel := context.WithCancel(ctx)
	s := &stream{start: time.Now(), cancel: cancel}
	for range workers {
		s.wg.Go(func() {
			for ctx.Err() == nil {
				at := time.Since(s.start)
				pod, err := drawOne(ctx, url)
				if ctx.Err() != nil {
					return // cut short by the end of the stream: not an outcome
				}
				took := time.Since(s.start) - at
				s.mu.Lock()
				s.draws = append(s.draws, streamDraw{at: at, took: took, pod: pod, err: err})
				s.mu.Unlock()
				s.done.Add(1)
			}
		})
	}
	return s
}

// stop ends the stream and returns every outcome in the order the draws
// began. It may be called again (from a defer).
func (s *stream) stop() []streamDraw {
	s.cancel()
	s.wg.Wait()
	sort.Slice(s.draws, func(i, j int) bool { return s.draws[i].at < s.draws[j].at })
	return s.draws
}

// event records what the test does to the cluster, at its time in the
// stream, for the timeline a failed draw is read against.
func (s *stream) event(what string) {
	s.events = append(s.events, fmt.Sprintf("%.2f s %s", time.Since(s.start).Seconds(), what))
}

func (s *stream) timeline() string { return strings.Join(s.events, "; ") }

// failures describes the failed draws: how many, and each of the first few
// with when it began, how long it took and its error, so that a report
// alone tells a lost draw's kind and moment.
func failures(draws []streamDraw) (int, string) {
	const listed = 5
	var n int
	var each []string
	for _, d := range draws {
		if d.err == nil {
			continue
		}
		n++
		if n <= listed {
			each = append(each, fmt.Sprintf("at %.2f s, after %.2f s: %v", d.at.Seconds(), d.took.Seconds(), d.err))
		}
	}
	if n > listed {
		each = append(each, fmt.Sprintf("and %d more", n-listed))
	}
	return n, strings.Join(each, "; ")
}

// slow counts the successful draws that took longer than d (a SYN
// retransmitted after a drop takes at least a second).
func slow(draws []streamDraw, d time.Duration) int {
	n := 0
	for _, x := range draws {
		if x.err == nil && x.took > d {
			n++
		}
	}
	return n
}
