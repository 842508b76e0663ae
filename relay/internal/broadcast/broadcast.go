// Package broadcast is a one-type primitive shared by the circuit switch and
// the client's circuits: a condition that any number of waiters can select
// on, alongside contexts and other channels, and that Notify wakes at once.
package broadcast

import "sync"

// Signal is a broadcast that waiters can select on. The zero value is ready
// to use.
type Signal struct {
	mu sync.Mutex // guards ch
	ch chan struct{}
}

// Wait returns a channel closed by the next Notify.
func (s *Signal) Wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// Notify wakes every current waiter.
func (s *Signal) Notify() {
	s.mu.Lock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
	s.mu.Unlock()
}
