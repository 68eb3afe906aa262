package server

import (
	"fmt"
	"net"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/omikuji/omikuji/internal/testkit"
)

// TestBurstGivesMemoryBack: the end of a burst leads to a release of memory
// releaseDelay later, never sooner, once the engine's workers for the
// burst have ended, and a second burst right after a release gets one of
// its own. It waits out two delays, and counts the
// process's descriptors and collections, so it must not run in parallel.
func TestBurstGivesMemoryBack(t *testing.T) {
	r := start(t, newServer("great-fortune", false))
	// Both ports serving: their engines' own goroutines have started.
	get(t, "GET", r.url, nil)
	get(t, "GET", r.metricsURL+MetricsPath, nil)
	for round := 1; round <= 2; round++ {
		before := forcedCollections()
		fds, goroutines := testkit.OpenDescriptors(t), runtime.NumGoroutine()
		held := make([]net.Conn, 0, burstConns)
		for range burstConns {
			held = append(held, halfRequest(t, r.addr))
		}
		waitDescriptors(t, fds+2*burstConns) // ours and the server's
		for _, c := range held {
			c.Close()
		}
		waitOpenDescriptors(t, fmt.Sprintf("at most %d", fds), func(open int) bool { return open <= fds })
		ended := time.Now()

		deadline := ended.Add(releaseDelay + 15*time.Second)
		for forcedCollections() < before+2 {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: no release %v after the burst ended", round, time.Since(ended).Round(time.Second))
			}
			time.Sleep(100 * time.Millisecond)
		}
		if waited := time.Since(ended); waited < releaseDelay-time.Second {
			t.Errorf("round %d: released %v after the burst ended, before its delay of %v", round, waited, releaseDelay)
		}
		if n := runtime.NumGoroutine(); n > goroutines+4 {
			t.Errorf("round %d: %d goroutines at the release, %d before the burst: what they hold is not freed", round, n, goroutines)
		}
	}
}

// forcedCollections counts the collections the process asked for.
func forcedCollections() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/forced:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
