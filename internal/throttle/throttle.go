// Package throttle rate-limits warnings: under a flood a server logs one
// line a second with the count of those it left out, not one per refusal.
package throttle

import (
	"sync/atomic"
	"time"
)

// Interval is the least time between two warnings a Warnings lets through.
const Interval = time.Second

// Warnings lets a warning through at most once per Interval and counts the
// ones it holds back. The zero value is ready; it is safe for concurrent use
// and takes no lock.
type Warnings struct {
	next       atomic.Int64 // the earliest time of the next warning, Unix ns
	suppressed atomic.Int64
}

// Allow reports whether a warning may be logged now and, if so, how many
// were held back since the last one.
func (w *Warnings) Allow() (suppressed int64, ok bool) {
	now, next := time.Now().UnixNano(), w.next.Load()
	if now < next || !w.next.CompareAndSwap(next, now+int64(Interval)) {
		w.suppressed.Add(1)
		return 0, false
	}
	return w.suppressed.Swap(0), true
}
