package circuit_test

import (
	"bytes"
	"sync"
	"testing"

	"github.com/unfed/unfed/relay/circuit"
	"github.com/unfed/unfed/relay/circuit/circuittest"
	"github.com/unfed/unfed/relay/origin"
)

// collect is a Handler that keeps the messages it is given.
type collect struct {
	mu   sync.Mutex
	msgs [][]byte
}

func (c *collect) Handle(h *circuit.Hop, m circuit.Message) {
	c.mu.Lock()
	c.msgs = append(c.msgs, append([]byte(nil), m.Data...))
	c.mu.Unlock()
}

func (c *collect) Closed(*circuit.Hop) {}

func (c *collect) got() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.msgs...)
}

// sizes are the classes of the frames a tap read.
func sizes(frames [][]byte) []int {
	var out []int
	for _, f := range frames {
		out = append(out, len(f))
	}
	return out
}

// TestShapedSendAndCover: messages of different lengths sent shaped reach
// the hop whole (the PADDING never reaches its handler) in the same cells on
// the guard's link; a cover message with an echo is answered by the hop, in
// the cells it would cut a message of that size into.
func TestShapedSendAndCover(t *testing.T) {
	var h collect
	nw := circuittest.NewNetwork(t, 3, func(i int, c *circuit.Config) {
		if i == 2 {
			c.Handler = &h
		}
	})
	var tap *circuittest.Tap
	cl := nw.ClientLink(0, func(l circuit.Link) circuit.Link { tap = circuittest.NewTap(l); return tap })
	c, err := origin.Build(ctxT(t), cl, hops(nw, 0, 1, 2), origin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Destroy()
	view := func(msg []byte) []int {
		before := len(tap.Frames())
		if err := c.SendShaped(ctxT(t), 2, msg); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return len(h.got()) > 0 && bytes.Equal(h.got()[len(h.got())-1], msg) })
		return sizes(tap.Frames()[before:])
	}
	a, b := view([]byte("short")), view(bytes.Repeat([]byte("x"), 200))
	if len(a) == 0 || !equalInts(a, b) {
		t.Fatalf("guard saw %v for 5 bytes and %v for 200", a, b)
	}
	if big := view(bytes.Repeat([]byte("y"), 3000)); equalInts(big, a) {
		t.Fatalf("3000 bytes in the cells of 5: %v", big)
	}
	if n := len(h.got()); n != 3 {
		t.Fatalf("handler got %d messages, want 3 (no padding)", n)
	}
	before := len(tap.Frames())
	if err := c.Cover(ctxT(t), 2, 10, 2000); err != nil {
		t.Fatalf("cover with echo: %v", err)
	}
	one := sizes(tap.Frames()[before:])
	// Several answers (what a step with commitments gets back: COMMITs,
	// then FINAL_HIDDEN): Cover returns only once all three arrived, and
	// asking for them costs no more cells toward the hop than one.
	before = len(tap.Frames())
	if err := c.Cover(ctxT(t), 2, 10, 137, 137, 2000); err != nil {
		t.Fatalf("cover with three echoes: %v", err)
	}
	if three := sizes(tap.Frames()[before:]); !equalInts(one, three) {
		t.Fatalf("cells toward the hop: %v for one echo, %v for three", one, three)
	}
	if len(h.got()) != 3 {
		t.Fatal("cover reached the handler")
	}
	if counter(nw.Relays[2], "cells_dropped_total", "malformed") != 0 {
		t.Fatal("padding counted as malformed")
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
