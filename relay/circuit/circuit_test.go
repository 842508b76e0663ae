package circuit_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/circuit"
	"github.com/unfed/unfed/relay/circuit/circuittest"
	"github.com/unfed/unfed/relay/origin"
)

func hops(nw *circuittest.Network, idx ...int) []origin.HopInfo {
	var hs []origin.HopInfo
	for _, i := range idx {
		r := nw.Relays[i]
		hs = append(hs, origin.HopInfo{IdentityKey: r.Identity.Public, OnionKey: r.Onion.Public, XWingKey: r.Onion.XWingPublic,
			LinkSpecs: []cell.LinkSpec{{Transport: "pipe", Addr: fmt.Sprintf("relay-%d", i)}}})
	}
	return hs
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition never held")
		}
		time.Sleep(time.Millisecond)
	}
}

func counter(r *circuittest.Relay, name, label string) float64 {
	return circuittest.Counter(r.Registry, "unfed_circuit_"+name, label)
}

func frame(t testing.TB, id uint32, cmd cell.Command, payload []byte) []byte {
	f, err := cell.Encode(cell.Cell{CircID: id, Cmd: cmd, Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestCircuitLimits(t *testing.T) {
	nw := circuittest.NewNetwork(t, 2, func(i int, c *circuit.Config) {
		c.MaxCircuitsPerLink = 2
		c.MaxCircuits = 3
	})
	ctx := ctxT(t)
	r0 := nw.Relays[0]

	// Too many circuits on one link: the third CREATE is refused.
	m := origin.NewMux(nw.ClientLink(0, nil), nil)
	defer m.Close()
	for i := range 2 {
		if _, err := m.Build(ctx, hops(nw, 0), origin.Options{}); err != nil {
			t.Fatalf("circuit %d: %v", i, err)
		}
	}
	_, err := m.Build(ctx, hops(nw, 0), origin.Options{})
	var de *origin.DestroyedError
	if !errors.As(err, &de) || de.Reason != cell.ReasonResourceLimit {
		t.Fatalf("third circuit on a link: %v", err)
	}
	// Too many circuits on the relay: one more on a second link is fine, the
	// next is refused.
	m2 := origin.NewMux(nw.ClientLink(0, nil), nil)
	defer m2.Close()
	if _, err := m2.Build(ctx, hops(nw, 0), origin.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := m2.Build(ctx, hops(nw, 0), origin.Options{}); !errors.As(err, &de) || de.Reason != cell.ReasonResourceLimit {
		t.Fatalf("circuit over the relay limit: %v", err)
	}
	if got := counter(r0, "cells_dropped_total", "limit"); got != 2 {
		t.Fatalf("limit drops counted %v, want 2", got)
	}
	if r0.Switch.Circuits() != 3 {
		t.Fatalf("relay has %d circuits, want 3", r0.Switch.Circuits())
	}

	// Raw garbage on a fresh client link: counted, never a panic, and the
	// link keeps working.
	raw, rawRelay := circuittest.Pipe()
	defer raw.Close()
	r1 := nw.Relays[1]
	r1.Switch.Accept(rawRelay, true)
	long := make([]byte, cell.ClassSmall)
	cell.PutHeader(long, 0x80000001, cell.CmdRelayForward, cell.ClassSmall) // length beyond the class
	bad := map[string][]byte{
		"malformed":       long,
		"oversized":       make([]byte, cell.ClassLarge+1),
		"unknown_command": frame(t, 0x80000002, cell.Command(99), nil),
		"unknown_circuit": frame(t, 0x80000003, cell.CmdRelayForward, make([]byte, 400)),
		"bad_circuit_id":  frame(t, 0x00000004, cell.CmdCreate, []byte{0, 1, 0, 0}), // responder-form id from the initiator
	}
	want := map[string]float64{"malformed": 2, "unknown_command": 1, "unknown_circuit": 1, "bad_circuit_id": 1}
	for _, f := range bad {
		if err := raw.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool {
		for reason, n := range want {
			if counter(r1, "cells_dropped_total", reason) != n {
				return false
			}
		}
		return true
	})
	// A bad handshake is answered with DESTROY.
	raw.WriteFrame(frame(t, 0x80000005, cell.CmdCreate, []byte{0, 1, 0, 3, 1, 2, 3}))
	reply, err := raw.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if c, err := cell.Decode(reply); err != nil || c.Cmd != cell.CmdDestroy || c.CircID != 0x80000005 || cell.Reason(c.Payload[0]) != cell.ReasonHandshake {
		t.Fatalf("reply to a bad CREATE: %+v %v", c, err)
	}
	if counter(r1, "cells_dropped_total", "handshake") != 1 {
		t.Fatal("bad handshake not counted")
	}
	// The relay still builds circuits.
	c, err := origin.Build(ctx, nw.ClientLink(1, nil), hops(nw, 1), origin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c.Destroy()
}

// TestOversizedForwardDestroys sends a relay cell on a built circuit whose
// body is not the size its depth implies: the circuit is destroyed.
func TestOversizedForwardDestroys(t *testing.T) {
	nw := circuittest.NewNetwork(t, 1, nil)
	ctx := ctxT(t)
	link := nw.ClientLink(0, nil)
	tap := &sniff{Link: link}
	c, err := origin.Build(ctx, tap, hops(nw, 0), origin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tap.write(t, frame(t, tap.circID(), cell.CmdRelayForward, make([]byte, 300)))
	<-c.Done()
	var de *origin.DestroyedError
	if !errors.As(c.Err(), &de) || de.Reason != cell.ReasonProtocol {
		t.Fatalf("%v", c.Err())
	}
	if counter(nw.Relays[0], "destroyed_total", "protocol") != 1 {
		t.Fatal("not counted")
	}
}

// sniff remembers the circuit id of the CREATE written through it and lets a
// test write raw frames on the same link.
type sniff struct {
	circuit.Link
	mu sync.Mutex
	id uint32
}

func (s *sniff) WriteFrame(p []byte) error {
	if c, err := cell.Decode(p); err == nil && c.Cmd == cell.CmdCreate {
		s.mu.Lock()
		s.id = c.CircID
		s.mu.Unlock()
	}
	return s.Link.WriteFrame(p)
}

func (s *sniff) circID() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id
}

func (s *sniff) write(t testing.TB, f []byte) {
	if err := s.Link.WriteFrame(f); err != nil {
		t.Fatal(err)
	}
}

func TestIdleTimeout(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	nw := circuittest.NewNetwork(t, 2, func(i int, c *circuit.Config) {
		c.Now = clock
		c.IdleTimeout = time.Minute
	})
	ctx := ctxT(t)
	c, err := origin.Build(ctx, nw.ClientLink(0, nil), hops(nw, 0, 1), origin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := nw.Relays[0].Switch.SweepIdle(); n != 0 {
		t.Fatalf("swept %d fresh circuits", n)
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	if n := nw.Relays[0].Switch.SweepIdle(); n != 1 {
		t.Fatalf("swept %d idle circuits, want 1", n)
	}
	<-c.Done()
	var de *origin.DestroyedError
	if !errors.As(c.Err(), &de) || de.Reason != cell.ReasonTimeout {
		t.Fatalf("%v", c.Err())
	}
	waitFor(t, func() bool { return nw.Relays[1].Switch.Circuits() == 0 })
}

func TestLinkCloseDestroysCircuits(t *testing.T) {
	nw := circuittest.NewNetwork(t, 2, nil)
	ctx := ctxT(t)
	l := nw.ClientLink(0, nil)
	if _, err := origin.Build(ctx, l, hops(nw, 0, 1), origin.Options{}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	waitFor(t, func() bool { return nw.Relays[0].Switch.Circuits() == 0 && nw.Relays[1].Switch.Circuits() == 0 })
	if counter(nw.Relays[0], "destroyed_total", "link-closed") != 1 {
		t.Fatal("link close not counted")
	}
}

// FuzzSwitch feeds arbitrary frames to a switch on a client link after a real
// circuit was built on it; the switch must never panic.
func FuzzSwitch(f *testing.F) {
	f.Add([]byte{0x80, 0, 0, 1, 3, 0, 4, 1, 2, 3, 4}, uint8(0))
	f.Add(make([]byte, cell.ClassSmall), uint8(1))
	f.Add(make([]byte, cell.ClassMedium), uint8(3))
	f.Fuzz(func(t *testing.T, b []byte, cmd uint8) {
		nw := circuittest.NewNetwork(t, 2, nil)
		ctx := ctxT(t)
		tap := &sniff{Link: nw.ClientLink(0, nil)}
		c, err := origin.Build(ctx, tap, hops(nw, 0, 1), origin.Options{})
		if err != nil {
			t.Fatal(err)
		}
		// As raw frame, and as the payload of a cell on the live circuit.
		tap.Link.WriteFrame(b)
		if len(b) <= cell.MaxPayload {
			tap.Link.WriteFrame(frame(t, tap.circID(), cell.Command(cmd%8), b))
		}
		c.Send(ctx, 1, []byte("still alive?"))
		select {
		case <-c.Done():
		case <-time.After(10 * time.Millisecond):
		}
		c.Destroy()
	})
}
