package origin_test

import (
	"bytes"
	"crypto/rand"
	"sync"
	"testing"

	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/circuit"
	"github.com/unfed/unfed/relay/circuit/circuittest"
	"github.com/unfed/unfed/relay/origin"
)

// allocLink reads as relay/link's Conn does when the switch gives it
// buffers (circuit.AllocLink), so the switch's large frames are recycled
// on the read side too.
type allocLink struct{ circuit.Link }

func (a allocLink) ReadFrameAlloc(alloc func(n int) []byte) ([]byte, error) {
	f, err := a.Link.ReadFrame()
	if err != nil {
		return nil, err
	}
	if p := alloc(len(f)); len(p) == len(f) {
		copy(p, f)
		return p, nil
	}
	return f, nil
}

// TestEdgeRecycledFrames: frames of every class come from a free list that
// the switch refills with the frames it read, wrote and joined, so
// a frame is reused while other messages are in flight. Edge messages of
// many large cells, sent back to back two hops forward and one backward,
// arrive whole and in order, and no cell on any link carries a byte of an
// earlier frame in its padding (the free list is dirtied first). The
// receivers hand every message back (cell.FreeMessage) once checked.
func TestEdgeRecycledFrames(t *testing.T) {
	ctx := ctxT(t)
	tn := newNet(t, 4, nil)
	var tapsMu sync.Mutex
	var taps []*circuittest.Tap
	tn.WrapRelayLink = func(_, _ int, l circuit.Link) circuit.Link {
		tap := circuittest.NewTap(l)
		tapsMu.Lock()
		taps = append(taps, tap)
		tapsMu.Unlock()
		return allocLink{tap}
	}
	for range 64 {
		for _, class := range cell.Classes {
			cell.FreeFrame(bytes.Repeat([]byte{0xee}, class))
		}
	}
	var msgs [][]byte
	// (large cells part filled: a message's tail of over ~45 KB goes in
	// one, a shorter one in medium cells)
	room := cell.ClassLarge - cell.HeaderLen - cell.EdgeHeaderLen
	for _, n := range []int{200<<10 + 17, 2*room + 55_000, 60_000, 1 << 20, 40_000, 3*room + 50_001, room, 32_783, 5_000} {
		m := make([]byte, n)
		rand.Read(m)
		msgs = append(msgs, m)
	}
	for _, n := range []int{8 << 10, 16 << 10, 32 << 10, 64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20} {
		cell.FreeMessage(bytes.Repeat([]byte{0xee}, n))
	}
	got := map[int]chan []byte{1: make(chan []byte, len(msgs)), 3: make(chan []byte, len(msgs))}
	// A receiver keeps a copy and hands the message back, as a party does
	// with a PREP it has taken: a later message may be joined into it.
	keep := func(hop int, b []byte) {
		got[hop] <- bytes.Clone(b)
		cell.FreeMessage(b)
	}
	sent := make(chan error, 2*len(msgs))
	tn.h[1].onMsg = func(h *circuit.Hop, m circuit.Message) {
		if m.Edge {
			keep(1, m.Data)
			return
		}
		for _, b := range msgs {
			sent <- h.SendEdge(ctx, cell.Forward, 2, b)
		}
	}
	tn.h[2].onMsg = func(h *circuit.Hop, m circuit.Message) {
		for _, b := range msgs {
			sent <- h.SendEdge(ctx, cell.Backward, 1, b)
		}
	}
	tn.h[3].onMsg = func(h *circuit.Hop, m circuit.Message) { keep(3, m.Data) }
	c, err := origin.Build(ctx, tn.ClientLink(0, nil), tn.hops(0, 1, 2, 3), origin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Destroy()
	c.Send(ctx, 1, []byte("go"))
	c.Send(ctx, 2, []byte("go"))
	for range 2 * len(msgs) {
		if err := <-sent; err != nil {
			t.Fatal(err)
		}
	}
	for _, hop := range []int{1, 3} {
		for i, want := range msgs {
			select {
			case b := <-got[hop]:
				if !bytes.Equal(b, want) {
					t.Fatalf("hop %d: edge message %d (%d bytes) arrived altered (%d bytes)", hop, i, len(want), len(b))
				}
			case <-ctx.Done():
				t.Fatalf("hop %d: edge message %d missing", hop, i)
			}
		}
	}
	tapsMu.Lock()
	defer tapsMu.Unlock()
	large := 0
	for _, tap := range taps {
		for _, f := range tap.Frames() {
			c, err := cell.Decode(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(f) == cell.ClassLarge && c.Cmd == cell.CmdEdge {
				large++
			}
			if pad := f[cell.HeaderLen+len(c.Payload):]; bytes.Count(pad, []byte{0}) != len(pad) {
				t.Fatalf("a %v cell of %d bytes has old bytes in its padding", c.Cmd, len(f))
			}
		}
	}
	if large < 60 {
		t.Fatalf("only %d large edge cells seen", large)
	}
}
