package conncap

import (
	"net"
	"testing"
	"time"
)

// accept returns the next connection of l, failing after 10 s.
func accept(t *testing.T, l *Listener) net.Conn {
	t.Helper()
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(ch)
			return
		}
		ch <- c
	}()
	select {
	case c, ok := <-ch:
		if !ok {
			t.Fatal("Accept failed")
		}
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("Accept did not return")
	}
	return nil
}

// TestEvictsOldestIdleNotBusy: at the cap a new connection evicts the
// oldest connection not marked busy; with every slot busy Accept waits
// until one closes.
func TestEvictsOldestIdleNotBusy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(ln, 2)
	defer l.Close()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial()
	busy := accept(t, l)
	l.SetBusy(busy, true)
	dial()
	idle := accept(t, l)
	dial()
	third := accept(t, l) // evicts idle, not busy
	if l.Evicted() != 1 {
		t.Fatalf("evicted %d, want 1", l.Evicted())
	}
	if _, err := idle.Write([]byte("x")); err == nil {
		t.Fatal("the idle connection was not closed")
	}
	if _, err := busy.Write([]byte("x")); err != nil {
		t.Fatalf("the busy connection was closed: %v", err)
	}
	l.SetBusy(third, true)
	dial()
	got := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		got <- c
	}()
	select {
	case <-got:
		t.Fatal("accepted beyond the cap with every slot busy")
	case <-time.After(200 * time.Millisecond):
	}
	busy.Close()
	select {
	case c := <-got:
		if c == nil {
			t.Fatal("Accept failed")
		}
		c.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("a freed slot did not let Accept return")
	}
}
