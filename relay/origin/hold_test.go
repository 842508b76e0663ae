package origin_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/circuit"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/origin"
)

// countingLink counts the client's writes to its guard link and the
// frames in them.
type countingLink struct {
	circuit.Link
	mu             sync.Mutex
	writes, frames int
}

func (l *countingLink) WriteFrame(p []byte) error {
	l.count(1)
	return l.Link.WriteFrame(p)
}

func (l *countingLink) WriteFrames(ps [][]byte) error {
	l.count(len(ps))
	return l.Link.(circuit.BatchLink).WriteFrames(ps)
}

func (l *countingLink) count(frames int) {
	l.mu.Lock()
	l.writes++
	l.frames += frames
	l.mu.Unlock()
}

func (l *countingLink) counts() (writes, frames int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.writes, l.frames
}

// TestHoldWritesOneFlight: between Hold and Flush a circuit writes
// nothing, then the flight in one write, and every hop gets its messages
// in order; a message of several cells goes in one write without a Hold;
// and a Recv while cells are held writes them first, so an answer can
// come.
func TestHoldWritesOneFlight(t *testing.T) {
	tn := newNet(t, 3, nil)
	ctx := ctxT(t)
	cl := &countingLink{Link: tn.ClientLink(0, nil)}
	c, err := origin.Build(ctx, cl, tn.hops(0, 1, 2), origin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Destroy()
	w0, f0 := cl.counts()

	// One message of several cells: one write.
	big := bytes.Repeat([]byte{7}, 20<<10)
	if err := c.Send(ctx, 2, big); err != nil {
		t.Fatal(err)
	}
	w1, f1 := cl.counts()
	if w1-w0 != 1 || f1-f0 < 3 {
		t.Fatalf("a %d-byte message took %d writes of %d cells, want 1 write of several", len(big), w1-w0, f1-f0)
	}
	if _, got, err := c.Recv(ctx); err != nil || !bytes.Equal(got, append([]byte("r2:"), big...)) {
		t.Fatalf("echo of the large message: %v", err)
	}

	// A held flight to every hop, in an order the hops' nonces must follow.
	w1, f1 = cl.counts()
	c.Hold()
	order := []int{1, 2, 0, 2, 1, 2}
	for i, k := range order {
		msg := []byte(fmt.Sprintf("m%d hop %d", i, k))
		if k == 2 && i == 3 {
			msg = append(msg, big...) // several cells inside the hold
		}
		if err := c.Send(ctx, k, msg); err != nil {
			t.Fatal(err)
		}
	}
	if w, _ := cl.counts(); w != w1 {
		t.Fatalf("%d writes while held", w-w1)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	w2, f2 := cl.counts()
	if w2-w1 != 1 || f2-f1 < len(order)+2 {
		t.Fatalf("the held flight took %d writes of %d cells, want 1", w2-w1, f2-f1)
	}
	for range order {
		if _, _, err := c.Recv(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for k, h := range tn.h {
		var got []string
		for _, m := range h.messages() {
			got = append(got, string(m.Data[:min(len(m.Data), 10)]))
		}
		var want []string
		for i, kk := range order {
			if kk == k {
				m := fmt.Sprintf("m%d hop %d", i, k)
				if k == 2 && i == 3 {
					m += string(big[:2])
				}
				want = append(want, m[:min(len(m), 10)])
			}
		}
		if k == 2 {
			want = append([]string{string(big[:10])}, want...)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("hop %d got %q, want %q", k, got, want)
		}
	}

	// Held cells go out before a Recv waits: the echo comes.
	c.Hold()
	if err := c.Send(ctx, 0, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if k, got, err := c.Recv(ctx); err != nil || k != 0 || string(got) != "r0:ping" {
		t.Fatalf("answer to a held message: hop %d %q %v", k, got, err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}

	// A held flight over the window's credit: the sends write what is held
	// before they wait, so it completes.
	c.Hold()
	done := make(chan error, 1)
	go func() {
		for range 3 {
			if err := c.Send(ctx, 2, make([]byte, cell.MaxMessage-3)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range 3 {
		if _, got, err := c.Recv(ctx); err != nil || len(got) != cell.MaxMessage {
			t.Fatalf("echo of a held maximal message: %d bytes, %v", len(got), err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
}

// countingDialer wraps the links a relay dials in countingLinks (the same
// wrapper for a link the inner dialer returns again).
type countingDialer struct {
	inner circuit.Dialer
	mu    sync.Mutex
	links map[circuit.Link]*countingLink
}

func (d *countingDialer) Dial(ctx context.Context, fp keys.Fingerprint, specs []cell.LinkSpec) (circuit.Link, error) {
	l, err := d.inner.Dial(ctx, fp, specs)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.links == nil {
		d.links = map[circuit.Link]*countingLink{}
	}
	if cl := d.links[l]; cl != nil {
		return cl, nil
	}
	cl := &countingLink{Link: l}
	d.links[l] = cl
	return cl, nil
}

func (d *countingDialer) counts() (writes, frames int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, l := range d.links {
		w, f := l.counts()
		writes += w
		frames += f
	}
	return writes, frames
}

// TestEdgeMessageOneWrite: the cells of an edge message a hop sends join
// its link's queue together and leave in one write.
func TestEdgeMessageOneWrite(t *testing.T) {
	ctx := ctxT(t)
	var d *countingDialer
	tn := newNet(t, 3, func(i int, c *circuit.Config) {
		if i == 1 {
			d = &countingDialer{inner: c.Dialer}
			c.Dialer = d
		}
	})
	msg := bytes.Repeat([]byte{9}, 30<<10)
	sent := make(chan error, 1)
	got := make(chan []byte, 1)
	tn.h[1].onMsg = func(h *circuit.Hop, m circuit.Message) { sent <- h.SendEdge(ctx, cell.Forward, 1, msg) }
	tn.h[2].onMsg = func(h *circuit.Hop, m circuit.Message) { got <- m.Data }
	c, err := origin.Build(ctx, tn.ClientLink(0, nil), tn.hops(0, 1, 2), origin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Destroy()
	w0, f0 := d.counts()
	if err := c.Send(ctx, 1, []byte("go")); err != nil {
		t.Fatal(err)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if m := <-got; !bytes.Equal(m, msg) {
		t.Fatalf("hop 2 got %d bytes, want the %d sent", len(m), len(msg))
	}
	if w, f := d.counts(); w-w0 != 1 || f-f0 < 2 {
		t.Fatalf("a %d-byte edge message took %d writes of %d cells, want 1 write of several", len(msg), w-w0, f-f0)
	}
}
