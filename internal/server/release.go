package server

import (
	"math"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// burstConns open connections make a burst; releaseDelay after the last
// burst of the process has ended, the memory bursts took is handed back to
// the system. Left to itself an idle Go process keeps it: measured after the
// soak's battery, neither serve nor local came back within 4 MiB of their
// baseline in 10 minutes of the runtime's periodic collections and
// scavenger. The delay lets fasthttp end its idle workers first: it looks
// for workers idle idleWorkerTime once every idleWorkerTime, so the last
// one ends at most twice that after its connection.
const (
	burstConns     = 64
	idleWorkerTime = 5 * time.Second
	releaseDelay   = 2*idleWorkerTime + 2*time.Second
)

// pendingRelease is the process's one release. Every burst end re-arms it,
// so it comes releaseDelay after the latest one, whichever listener had it
// (replicas in one process, as in local mode, share the memory they give
// back), and at most once per releaseDelay however often bursts come.
var pendingRelease = time.AfterFunc(time.Duration(math.MaxInt64), freeMemory)

// A BurstRelease follows a listener's count of open connections, which its
// owner keeps, and once the last connection of a burst has closed, re-arms
// the process's release.
type BurstRelease struct {
	afterBurst atomic.Bool // set at burstConns open, cleared when the burst ends
}

// Opened notes a new connection; open is the count with it.
func (b *BurstRelease) Opened(open int64) {
	if open >= burstConns {
		b.afterBurst.Store(true)
	}
}

// Closed notes a closed connection; open is the count without it.
func (b *BurstRelease) Closed(open int64) {
	if open == 0 && b.afterBurst.CompareAndSwap(true, false) {
		pendingRelease.Reset(releaseDelay)
	}
}

// freeMemory collects and returns free memory to the system, twice: the
// first collection only moves what sync.Pool holds to its victim cache; the
// second frees it.
func freeMemory() {
	debug.FreeOSMemory()
	debug.FreeOSMemory()
}
