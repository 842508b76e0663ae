package client

import (
	"testing"
	"time"
)

// TestRetryBackoff: the wait between attempts grows from 50 ms and stops
// growing at 800 ms, with at most half again of jitter.
func TestRetryBackoff(t *testing.T) {
	for n, base := range []time.Duration{50, 100, 200, 400, 800, 800, 800} {
		base *= time.Millisecond
		for range 50 {
			if d := retryBackoff(n); d < base || d > base+base/2 {
				t.Fatalf("attempt %d: %v outside [%v, %v]", n, d, base, base+base/2)
			}
		}
	}
}
