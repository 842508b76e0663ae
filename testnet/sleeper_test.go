package testnet

import (
	"testing"
	"time"
)

// TestSleeperNeverEarly: a forwarder's wait never returns before the chunk
// is due (the delay is real), for due times past, near and far.
func TestSleeperNeverEarly(t *testing.T) {
	s := newSleeper()
	defer s.close()
	for _, d := range []time.Duration{-time.Millisecond, 0, 50 * time.Microsecond, 700 * time.Microsecond, 3 * time.Millisecond, 12 * time.Millisecond} {
		for range 5 {
			due := time.Now().Add(d)
			s.until(due)
			if now := time.Now(); now.Before(due) {
				t.Fatalf("wait of %v returned %v early", d, due.Sub(now))
			}
		}
	}
}
