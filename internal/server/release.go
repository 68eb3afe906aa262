package server

import (
	"math"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// burstConns open connections make a burst; releaseDelay after they are all
// gone, the memory they took is handed back to the system, at most once per
// releaseEvery. Left to itself an idle Go process keeps it: measured after
// the soak's battery, neither serve nor local came back within 4 MiB of
// their baseline in 10 minutes of the runtime's periodic collections and
// scavenger. The delay lets fasthttp end its idle workers (they live 10 s).
const (
	burstConns   = 64
	releaseDelay = 15 * time.Second
	releaseEvery = 30 * time.Second
)

// A BurstRelease follows a listener's count of open connections, which its
// owner keeps, and once the last connection of a burst has closed,
// schedules freeMemory.
type BurstRelease struct {
	afterBurst atomic.Bool // set at burstConns open, cleared once scheduled
	timer      *time.Timer
}

// lastRelease is the UnixNano of the process's last scheduled release:
// replicas in one process (local mode) share the memory they give back.
var lastRelease atomic.Int64

// NewBurstRelease returns a BurstRelease with nothing scheduled; Stop ends it.
func NewBurstRelease() *BurstRelease {
	return &BurstRelease{timer: time.AfterFunc(time.Duration(math.MaxInt64), freeMemory)}
}

// Opened notes a new connection; open is the count with it.
func (b *BurstRelease) Opened(open int64) {
	if open >= burstConns {
		b.afterBurst.Store(true)
	}
}

// Closed notes a closed connection; open is the count without it. If it was
// the last one after a burst, it schedules the release.
func (b *BurstRelease) Closed(open int64) {
	if open > 0 || !b.afterBurst.Load() {
		return
	}
	last := lastRelease.Load()
	now := time.Now().UnixNano()
	if time.Duration(now-last) < releaseEvery || !lastRelease.CompareAndSwap(last, now) {
		return
	}
	b.afterBurst.Store(false)
	b.timer.Reset(releaseDelay)
}

// Stop cancels a scheduled release.
func (b *BurstRelease) Stop() { b.timer.Stop() }

// freeMemory collects and returns free memory to the system, twice: the
// first collection only moves what sync.Pool holds to its victim cache; the
// second frees it.
func freeMemory() {
	debug.FreeOSMemory()
	debug.FreeOSMemory()
}
