// Package hoptest is an in-memory circuit for testing the compute hop protocol
// (relay/hop) without links or onion layers: a Chain of hops, each with its own
// inbox goroutine, that delivers the client's messages, the hops' replies and
// their edge messages as the relay circuit switch does (one message at a time
// per hop, in order; edge messages go forward `hops` positions or back one).
// It is for tests only.
package hoptest

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/hop"
)

// Hop is what runs at one position of a Chain; *hop.Service implements it.
type Hop interface {
	Deliver(c hop.Circuit, m hop.Inbound)
	Closed(c hop.Circuit)
}

// Reply is a message a hop sent backward to the client.
type Reply struct {
	Hop  int // position of the sender, from 0
	Data []byte
}

// ErrClosed is returned after Close.
var ErrClosed = errors.New("hoptest: circuit closed")

// Chain is one circuit through hops 0..n-1, the client before hop 0.
type Chain struct {
	id    uint64
	nodes []*node
	wg    sync.WaitGroup

	mu      sync.Mutex // guards the fields below
	closed  bool
	replies []Reply
	wake    chan struct{} // closed and replaced when a reply arrives or the chain closes
}

type node struct {
	ch  *Chain
	pos int
	h   Hop

	mu    sync.Mutex // guards the fields below
	inbox []hop.Inbound
	shut  bool
	wake  chan struct{}
}

// NewChain starts a circuit named id through hops, in order from the client.
func NewChain(id uint64, hops ...Hop) *Chain {
	c := &Chain{id: id, wake: make(chan struct{})}
	for i, h := range hops {
		n := &node{ch: c, pos: i, h: h, wake: make(chan struct{}, 1)}
		c.nodes = append(c.nodes, n)
		c.wg.Add(1)
		go n.run()
	}
	return c
}

// Send delivers msg from the client to hop i as a relay DATA message.
func (c *Chain) Send(i int, msg []byte) error {
	if i < 0 || i >= len(c.nodes) {
		return fmt.Errorf("hoptest: no hop %d", i)
	}
	return c.nodes[i].push(hop.Inbound{Data: append([]byte(nil), msg...)})
}

// Recv returns the next message a hop sent the client.
func (c *Chain) Recv(ctx context.Context) (Reply, error) {
	for {
		c.mu.Lock()
		if len(c.replies) > 0 {
			r := c.replies[0]
			c.replies = c.replies[1:]
			c.mu.Unlock()
			return r, nil
		}
		if c.closed {
			c.mu.Unlock()
			return Reply{}, ErrClosed
		}
		w := c.wake
		c.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return Reply{}, ctx.Err()
		}
	}
}

// Close destroys the circuit: queued messages are dropped, each hop gets
// Closed after its last Deliver, and Close returns when all have.
func (c *Chain) Close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.wake)
	}
	c.mu.Unlock()
	for _, n := range c.nodes {
		n.mu.Lock()
		n.shut = true
		n.mu.Unlock()
		n.signal()
	}
	c.wg.Wait()
}

func (c *Chain) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func (n *node) push(m hop.Inbound) error {
	n.mu.Lock()
	if n.shut {
		n.mu.Unlock()
		return ErrClosed
	}
	n.inbox = append(n.inbox, m)
	n.mu.Unlock()
	n.signal()
	return nil
}

func (n *node) signal() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *node) run() {
	defer n.ch.wg.Done()
	circ := &circuit{n: n}
	for {
		n.mu.Lock()
		if n.shut {
			n.inbox = nil
			n.mu.Unlock()
			n.h.Closed(circ)
			return
		}
		if len(n.inbox) == 0 {
			n.mu.Unlock()
			<-n.wake
			continue
		}
		m := n.inbox[0]
		n.inbox = n.inbox[1:]
		n.mu.Unlock()
		n.h.Deliver(circ, m)
	}
}

// circuit is hop.Circuit for one node.
type circuit struct{ n *node }

func (c *circuit) ID() uint64 { return c.n.ch.id }

func (c *circuit) Send(ctx context.Context, msg []byte) error {
	ch := c.n.ch
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.closed {
		return ErrClosed
	}
	ch.replies = append(ch.replies, Reply{Hop: c.n.pos, Data: append([]byte(nil), msg...)})
	close(ch.wake)
	ch.wake = make(chan struct{})
	return nil
}

func (c *circuit) SendEdge(ctx context.Context, dir cell.Direction, hops int, msg []byte) error {
	ch := c.n.ch
	if ch.isClosed() {
		return ErrClosed
	}
	to := c.n.pos + hops
	if dir == cell.Backward {
		if hops != 1 {
			return fmt.Errorf("hoptest: backward edge of %d hops", hops)
		}
		to = c.n.pos - 1
	}
	if hops < 1 || hops > cell.MaxEdgeHops || to < 0 || to >= len(ch.nodes) {
		return fmt.Errorf("hoptest: no hop %d %v from hop %d", hops, dir, c.n.pos)
	}
	return ch.nodes[to].push(hop.Inbound{Edge: true, Dir: dir, Distance: hops, Data: append([]byte(nil), msg...)})
}
