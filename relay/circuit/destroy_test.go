package circuit_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/circuit"
	"github.com/unfed/unfed/relay/circuit/circuittest"
	"github.com/unfed/unfed/relay/origin"
)

// destroyFromAfar builds client → 0 → 1 → 2, lets relay 2 destroy the
// circuit for its idle timeout, and returns the client's error and the
// DESTROY reasons the guard (relay 0) read from relay 1.
func destroyFromAfar(t *testing.T) (*origin.DestroyedError, []cell.Reason) {
	t.Helper()
	var mu sync.Mutex
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	nw := circuittest.NewNetwork(t, 3, func(i int, c *circuit.Config) {
		if i == 2 {
			c.Now, c.IdleTimeout = clock, time.Minute
		}
	})
	var tap *circuittest.Tap
	nw.WrapRelayLink = func(reader, peer int, l circuit.Link) circuit.Link {
		if reader == 0 && peer == 1 {
			tap = circuittest.NewTap(l)
			return tap
		}
		return l
	}
	c, err := origin.Build(ctxT(t), nw.ClientLink(0, nil), hops(nw, 0, 1, 2), origin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// A hop learns its depth, which sizes its backward cells, from the
	// first relay cell that reaches it.
	if err := c.Send(ctxT(t), 2, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return counter(nw.Relays[2], "cells_dropped_total", "no_handler") == 1 })
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	if n := nw.Relays[2].Switch.SweepIdle(); n != 1 {
		t.Fatalf("relay 2 swept %d circuits", n)
	}
	<-c.Done()
	waitFor(t, func() bool { return nw.Relays[0].Switch.Circuits() == 0 })
	var reasons []cell.Reason
	for _, f := range tap.Frames() {
		if cl, err := cell.Decode(f); err == nil && cl.Cmd == cell.CmdDestroy && len(cl.Payload) == 1 {
			reasons = append(reasons, cell.Reason(cl.Payload[0]))
		}
	}
	var de *origin.DestroyedError
	if !errors.As(c.Err(), &de) {
		t.Fatalf("circuit ended with %v", c.Err())
	}
	return de, reasons
}

// TestDestroyReasonInsideOnion: a hop that tears a circuit down tells the
// client why inside the onion (TRUNCATED, 02-circuit §2.4); the hops before
// it see in the clear only that the circuit was destroyed further along. The
// mutation (reasons in the clear, as before issue 23) shows the guard then
// reads the third hop's reason.
func TestDestroyReasonInsideOnion(t *testing.T) {
	de, reasons := destroyFromAfar(t)
	if !de.Remote || de.Hop != 2 || de.Reason != cell.ReasonTimeout {
		t.Fatalf("client learned %+v, want hop 2's timeout", de)
	}
	if len(reasons) != 1 || reasons[0] != cell.ReasonDestroyed {
		t.Fatalf("the guard read DESTROY reasons %v from the second hop, want only destroyed", reasons)
	}

	// The third hop vanishes: the second reports its link closing, from
	// inside the onion.
	nw := circuittest.NewNetwork(t, 3, nil)
	c, err := origin.Build(ctxT(t), nw.ClientLink(0, nil), hops(nw, 0, 1, 2), origin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	nw.Relays[2].Switch.Close()
	<-c.Done()
	if !errors.As(c.Err(), &de) || de.Hop != 1 || de.Reason != cell.ReasonLinkClosed {
		t.Fatalf("next link closed: client learned %v, want hop 1's link-closed", c.Err())
	}

	t.Run("mutation", func(t *testing.T) {
		defer circuit.SetDestroyReasonInClear()()
		_, reasons := destroyFromAfar(t)
		if len(reasons) != 1 || reasons[0] != cell.ReasonTimeout {
			t.Fatalf("with reasons in the clear the guard should read the timeout: %v", reasons)
		}
	})
}
