package circuit

// The local end of a circuit: the handler's inbox and drainer, the backward
// messages a hop originates (spec §4.3), credit windows (§6) and edge messages
// a hop sends (§7).

import (
	"context"
	"errors"
	"fmt"

	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/onion"
)

// Hop is this relay's place on one circuit, as its Handler sees it.
type Hop struct{ c *circ }

// ID is a number naming the circuit inside this relay, unique for the switch's
// lifetime; handlers key their sessions by it.
func (h *Hop) ID() uint64 { return h.c.no }

// Depth is this hop's position in the circuit: 1 for the hop next to the
// client. It is 0 until the first relay cell arrived.
func (h *Hop) Depth() int { return int(h.c.depth.Load()) }

// Done is closed when the circuit is destroyed.
func (h *Hop) Done() <-chan struct{} { return h.c.done }

// Destroy tears the circuit down.
func (h *Hop) Destroy() { h.c.destroy(cell.ReasonNone, nil) }

// Send sends msg backward to the client as one relay message, in as many cells
// as it needs, waiting for credit from the client.
func (h *Hop) Send(ctx context.Context, msg []byte) error {
	if len(msg) > cell.MaxMessage {
		return fmt.Errorf("circuit: message of %d bytes over %d", len(msg), cell.MaxMessage)
	}
	h.c.sendMu.Lock()
	defer h.c.sendMu.Unlock()
	return h.c.sendBackward(ctx, cell.KindData, msg)
}

// SendEdge sends msg, already encrypted under an edge key, to another hop
// without the client's layers: forward to the hop `hops` positions further
// from the client, or backward to the previous hop (hops must be 1). Edge
// messages never travel on a client's link.
func (h *Hop) SendEdge(ctx context.Context, dir cell.Direction, hops int, msg []byte) error {
	c := h.c
	if len(msg) > cell.MaxMessage {
		return fmt.Errorf("circuit: edge message of %d bytes over %d", len(msg), cell.MaxMessage)
	}
	var l *link
	var id uint32
	var q side
	switch {
	case dir == cell.Forward && hops >= 1 && hops <= cell.MaxEdgeHops:
		c.mu.Lock()
		l, id = c.next, c.nextID
		if c.extending {
			l = nil
		}
		c.mu.Unlock()
		q = sideNext
	case dir == cell.Backward && hops == 1 && !c.prev.fromClient:
		l, id, q = c.prev, c.prevID, sidePrev
	default:
		return fmt.Errorf("circuit: no edge %s %d hops from here", dir, hops)
	}
	if l == nil {
		return errors.New("circuit: no next hop for an edge message")
	}
	c.edgeMu[dir].Lock()
	defer c.edgeMu[dir].Unlock()
	// The cells join the link's queue in groups of up to edgeBatch bytes,
	// each at once: the writer sends a group in one write.
	var group [][]byte
	bytes, most := 0, min(edgeBatch, c.s.cfg.MaxQueueBytes/2)
	for first := true; first || len(msg) > 0; first = false {
		class, n := cell.Fragment(len(msg), edgeRoom)
		// (from the free list: the link writer hands it back once
		// written; its padding is cleared below)
		f := cell.NewFrame(class)
		cell.PutHeader(f, id, cell.CmdEdge, cell.EdgeHeaderLen+n)
		cell.PutEdge(f[cell.HeaderLen:], cell.Edge{Dir: dir, Remaining: uint8(hops - 1), Traveled: 1, More: n < len(msg)})
		end := cell.HeaderLen + cell.EdgeHeaderLen + copy(f[cell.HeaderLen+cell.EdgeHeaderLen:], msg[:n])
		clear(f[end:])
		msg = msg[n:]
		if len(group) > 0 && bytes+class > most {
			if err := l.enqueueWaitAll(ctx, group, bytes, c, q); err != nil {
				return err
			}
			group, bytes = nil, 0
		}
		group = append(group, f)
		bytes += class
	}
	return l.enqueueWaitAll(ctx, group, bytes, c, q)
}

// edgeBatch bounds the bytes of an edge message's cells queued together.
const edgeBatch = 64 << 10

// edgeRoom is how many message bytes an edge cell of the class carries.
func edgeRoom(class int) int { return cell.Capacity(class) - cell.EdgeHeaderLen }

// sendBackward sends a DATA message to the client, fragment by fragment,
// waiting for credit and queue room.
func (c *circ) sendBackward(ctx context.Context, kind cell.Kind, data []byte) error {
	depth := int(c.depth.Load())
	if depth == 0 {
		return errors.New("circuit: no relay cell seen yet, depth unknown")
	}
	for first := true; first || len(data) > 0; first = false {
		class, n := onion.Fragment(len(data), depth)
		if err := c.takeCredit(ctx, class); err != nil {
			return err
		}
		if err := c.waitRoom(ctx, class); err != nil {
			return err
		}
		if err := c.originate(class, kind, n < len(data), data[:n]); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// sendCtl sends a one-fragment control message backward, without credit and
// without waiting.
func (c *circ) sendCtl(kind cell.Kind, data []byte) {
	depth := int(c.depth.Load())
	if depth == 0 {
		return
	}
	class, n := onion.Fragment(len(data), depth)
	if n < len(data) {
		return
	}
	c.originate(class, kind, false, data)
}

// originate seals one fragment with this hop's backward layer and queues it.
func (c *circ) originate(class int, kind cell.Kind, more bool, data []byte) error {
	depth := int(c.depth.Load())
	pLen := cell.Capacity(class) - onion.Overhead*depth
	// (from the free list, as SendEdge's; every byte written or cleared)
	f := cell.NewFrame(class)
	clear(f)
	body := f[cell.HeaderLen : cell.HeaderLen+1+pLen]
	cell.PutRelayMsg(body[1:], kind, more, data)
	c.bwdMu.Lock()
	defer c.bwdMu.Unlock()
	select {
	case <-c.done:
		return ErrClosed
	default:
	}
	out, err := c.bwd.Seal(body, onion.Origin)
	if err != nil {
		return err
	}
	cell.PutHeader(f, c.prevID, cell.CmdRelayBackward, len(out))
	if !c.prev.enqueue(f, c, sidePrev) {
		go c.destroy(cell.ReasonResourceLimit, nil)
		return errLimit
	}
	return nil
}

func (c *circ) takeCredit(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return ErrClosed
		}
		if c.credit >= n {
			c.credit -= n
			c.mu.Unlock()
			return nil
		}
		c.mu.Unlock()
		ch := c.creditSig.Wait()
		c.mu.Lock()
		ready := c.credit >= n || c.closed
		c.mu.Unlock()
		if ready {
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
			return ErrClosed
		}
	}
}

func (c *circ) waitRoom(ctx context.Context, n int) error {
	limit := int64(c.s.cfg.MaxQueueBytes / 2)
	for c.queued[sidePrev].Load()+int64(n) > limit {
		ch := c.drained.Wait()
		if c.queued[sidePrev].Load()+int64(n) <= limit {
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
			return ErrClosed
		}
	}
	return nil
}

// push queues a message for the handler and starts the drainer if idle.
func (c *circ) push(it inItem) {
	if c.s.cfg.Handler == nil {
		c.s.m.drop(dropNoHandler)
		c.consume(it.cost)
		return
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.inboxBytes += len(it.m.Data)
	if c.inboxBytes > c.s.cfg.MaxQueueBytes {
		c.mu.Unlock()
		c.s.m.drop(dropLimit)
		c.destroy(cell.ReasonResourceLimit, nil)
		return
	}
	c.inbox = append(c.inbox, it)
	c.exposed = true
	start := !c.draining
	c.draining = true
	c.mu.Unlock()
	if start {
		go c.drain()
	}
}

// drain hands queued messages to the handler one at a time, then returns; on a
// destroyed circuit it drops them and calls Closed once.
func (c *circ) drain() {
	h := c.s.cfg.Handler
	for {
		c.mu.Lock()
		if c.closed {
			c.inbox, c.draining = nil, false
			exposed := c.exposed
			c.exposed = false
			c.mu.Unlock()
			if exposed {
				h.Closed(&c.hop)
			}
			return
		}
		if len(c.inbox) == 0 {
			c.draining = false
			c.mu.Unlock()
			return
		}
		it := c.inbox[0]
		c.inbox[0] = inItem{}
		c.inbox = c.inbox[1:]
		c.inboxBytes -= len(it.m.Data)
		c.mu.Unlock()
		h.Handle(&c.hop, it.m)
		c.consume(it.cost)
	}
}

// wakeClosed makes sure Closed is called for an exposed circuit.
func (c *circ) wakeClosed() {
	c.mu.Lock()
	start := c.exposed && !c.draining
	if start {
		c.draining = true
	}
	c.mu.Unlock()
	if start {
		go c.drain()
	}
}

// consume returns forward credit to the client once enough is consumed.
func (c *circ) consume(cost int) {
	if cost == 0 {
		return
	}
	c.mu.Lock()
	c.consumed += cost
	n := 0
	if c.consumed >= cell.SendmeIncrement {
		n, c.consumed = c.consumed, 0
		c.unacked -= n
	}
	c.mu.Unlock()
	if n > 0 {
		c.sendCtl(cell.KindSendme, cell.Sendme(uint32(n)))
	}
}
