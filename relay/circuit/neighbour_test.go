package circuit_test

import (
	"bytes"
	"sync"
	"testing"

	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/circuit"
	"github.com/unfed/unfed/relay/circuit/circuittest"
)

// gossipSink records GOSSIP payloads and the neighbour each came from.
type gossipSink struct {
	mu   sync.Mutex
	got  [][]byte
	from []circuit.Neighbour
}

func (g *gossipSink) LinkMessage(from circuit.Neighbour, p []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.got = append(g.got, p)
	g.from = append(g.from, from)
}

func (g *gossipSink) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.got)
}

// TestGossipCells: a GOSSIP cell on circuit id 0 of a relay link reaches the
// LinkHandler, and the neighbour it names answers on the same link; one on
// a client's link or on a circuit id is dropped and counted; Send refuses a
// payload larger than a cell and stops at the per-link queue bound.
func TestGossipCells(t *testing.T) {
	sink := &gossipSink{}
	nw := circuittest.NewNetwork(t, 1, func(i int, c *circuit.Config) { c.LinkHandler = sink })
	r := nw.Relays[0]

	peer, relaySide := circuittest.Pipe()
	defer peer.Close()
	if err := r.Switch.Accept(relaySide, false); err != nil { // a relay's link
		t.Fatal(err)
	}
	client, clientSide := circuittest.Pipe()
	defer client.Close()
	if err := r.Switch.Accept(clientSide, true); err != nil {
		t.Fatal(err)
	}
	if n := len(r.Switch.Neighbours()); n != 1 {
		t.Fatalf("%d neighbours, want the one relay link", n)
	}
	if err := peer.WriteFrame(frame(t, 0, cell.CmdGossip, []byte("inv"))); err != nil {
		t.Fatal(err)
	}
	if err := client.WriteFrame(frame(t, 0, cell.CmdGossip, []byte("from a client"))); err != nil {
		t.Fatal(err)
	}
	if err := peer.WriteFrame(frame(t, 0x80000001, cell.CmdGossip, []byte("on a circuit id"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return counter(r, "cells_dropped_total", "bad_gossip") == 2 && sink.count() == 1 })
	sink.mu.Lock()
	from, got := sink.from[0], sink.got[0]
	sink.mu.Unlock()
	if !bytes.Equal(got, []byte("inv")) {
		t.Fatalf("handler got %q", got)
	}
	if err := from.Send([]byte("getdata")); err != nil {
		t.Fatal(err)
	}
	f, err := peer.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	c, err := cell.Decode(f)
	if err != nil || c.Cmd != cell.CmdGossip || c.CircID != 0 || string(c.Payload) != "getdata" {
		t.Fatalf("reply %+v, %v", c, err)
	}
	if err := from.Send(make([]byte, cell.MaxPayload+1)); err == nil {
		t.Fatal("a payload larger than a cell was sent")
	}
	// Nobody reads peer: the writer blocks once the pipe's 256 frames are
	// buffered, and the queue fills to its bound.
	var full bool
	for i := 0; i < 256+2*circuit.MaxGossipQueued/cell.ClassLarge+4; i++ {
		if err := from.Send(make([]byte, cell.MaxPayload)); err == circuit.ErrGossipQueueFull {
			full = true
			break
		}
	}
	if !full {
		t.Fatal("gossip queue never refused")
	}
}
