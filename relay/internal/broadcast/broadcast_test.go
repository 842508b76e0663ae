package broadcast

import "testing"

func TestNotifyWakesEveryWaiterOnce(t *testing.T) {
	var s Signal
	a, b := s.Wait(), s.Wait()
	if a != b {
		t.Fatal("waiters before one Notify got different channels")
	}
	select {
	case <-a:
		t.Fatal("woken before Notify")
	default:
	}
	s.Notify()
	<-a
	<-b
	select {
	case <-s.Wait():
		t.Fatal("a Wait after Notify is already closed")
	default:
	}
	s.Notify() // with no waiter: no panic, nothing to wake
}
