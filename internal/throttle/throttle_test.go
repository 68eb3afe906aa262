package throttle

import (
	"sync"
	"testing"
	"time"
)

// TestOneWarningPerInterval: from many goroutines at once, one warning
// gets through per interval, and the next one carries the count of those
// held back.
func TestOneWarningPerInterval(t *testing.T) {
	var w Warnings
	var mu sync.Mutex
	allowed := 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if _, ok := w.Allow(); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if allowed != 1 {
		t.Fatalf("%d of 8000 warnings at once let through, want 1", allowed)
	}
	time.Sleep(Interval + 50*time.Millisecond)
	if n, ok := w.Allow(); !ok || n != 7999 {
		t.Errorf("after the interval: allowed %v with %d held back, want true with 7999", ok, n)
	}
}
