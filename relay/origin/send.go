package origin

// Sending (spec §4.2): a message for hop k is cut into fragments; each
// fragment is wrapped in layers k..0 inside one cell buffer, sealed in place
// from the innermost layer outward, so the outermost layer fills the class.
// Receiving (§4.3): layers are opened in place from hop 0 until one says
// Origin; the fragment joins that hop's reassembly.

import (
	"context"
	"fmt"

	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/onion"
)

// Send sends msg to hop as one relay message, waiting for credit. Messages to
// one hop arrive in the order Send was called.
func (c *Circuit) Send(ctx context.Context, hop int, msg []byte) error {
	if len(msg) > cell.MaxMessage {
		return fmt.Errorf("origin: message of %d bytes over %d", len(msg), cell.MaxMessage)
	}
	h, err := c.hop(hop)
	if err != nil {
		return err
	}
	h.msgMu.Lock()
	defer h.msgMu.Unlock()
	// The message's cells go out in one write (a flush per maxHeld bytes,
	// and before any wait for credit).
	c.Hold()
	err = c.sendFragments(ctx, h, hop, msg)
	if ferr := c.Flush(); err == nil {
		err = ferr
	}
	return err
}

func (c *Circuit) sendFragments(ctx context.Context, h *hop, hop int, msg []byte) error {
	for first := true; first || len(msg) > 0; first = false {
		class, n := onion.Fragment(len(msg), hop+1)
		if err := c.takeCredit(ctx, h, class); err != nil {
			return err
		}
		if err := c.sendFragmentClass(hop, class, cell.KindData, n < len(msg), msg[:n]); err != nil {
			return err
		}
		msg = msg[n:]
	}
	return nil
}

// maxHeld bounds the bytes of cells a circuit holds before it writes them.
const maxHeld = 64 << 10

// Hold makes the circuit keep the cells it seals from now on until the
// matching Flush, and then write them in one write (a circuit.BatchLink
// takes them in one system call; the guard reads them in one wake-up). It
// is for a flight of messages sent back to back, such as the SETUPs and
// the first batch of a pipelined circuit. Holds nest; a send that must
// wait for credit writes what is held first, and so does one that would
// hold more than 64 KiB; while a Recv waits nothing is held (an answer
// may depend on it). Every Hold needs its Flush.
func (c *Circuit) Hold() {
	c.sendMu.Lock()
	c.holds++
	c.sendMu.Unlock()
}

// Flush ends a Hold: when no other Hold remains, the held cells are written.
func (c *Circuit) Flush() error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if c.holds > 0 {
		c.holds--
	}
	if c.holds > 0 {
		return nil
	}
	return c.flushLocked()
}

// flushLocked writes the held cells; sendMu is held.
func (c *Circuit) flushLocked() error {
	if len(c.held) == 0 {
		return nil
	}
	err := c.m.writeFrames(c.held)
	for _, f := range c.held {
		putCell(f)
	}
	clear(c.held)
	c.held, c.heldBytes = c.held[:0], 0
	if err != nil {
		return fmt.Errorf("origin: write: %w", err)
	}
	return nil
}

// flushHeld writes what the circuit holds, before a wait.
func (c *Circuit) flushHeld() error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.flushLocked()
}

func (c *Circuit) hop(i int) (*hop, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, c.err
	}
	if i < 0 || i >= len(c.hops) {
		return nil, fmt.Errorf("origin: no hop %d in a %d-hop circuit", i, len(c.hops))
	}
	return c.hops[i], nil
}

func (c *Circuit) takeCredit(ctx context.Context, h *hop, n int) error {
	for {
		c.mu.Lock()
		if c.err != nil {
			c.mu.Unlock()
			return c.err
		}
		if h.credit >= n {
			h.credit -= n
			c.mu.Unlock()
			return nil
		}
		ch := h.sig.Wait()
		c.mu.Unlock()
		// The held cells go out first: the credit may wait on them.
		if err := c.flushHeld(); err != nil {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
		}
	}
}

// sendFragment sends a one-fragment message to hop in the smallest class.
func (c *Circuit) sendFragment(hop int, kind cell.Kind, more bool, data []byte) error {
	class, n := onion.Fragment(len(data), hop+1)
	if n < len(data) {
		return fmt.Errorf("origin: %d-byte control message does not fit a cell", len(data))
	}
	return c.sendFragmentClass(hop, class, kind, more, data)
}

// sendFragmentClass wraps one fragment for hop in hop+1 layers and writes it.
func (c *Circuit) sendFragmentClass(hop, class int, kind cell.Kind, more bool, data []byte) error {
	depth := hop + 1
	capa := cell.Capacity(class)
	f := getCell(class)
	// The fragment sits after one flag byte per layer; layer j's flag goes at
	// HeaderLen+j and its seal grows the region by 16 bytes at the end.
	inner := cell.HeaderLen + depth
	pLen := capa - onion.Overhead*depth
	cell.PutRelayMsg(f[inner:inner+pLen], kind, more, data)
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return c.err
	}
	hops := c.hops[:depth]
	c.mu.Unlock()
	n := pLen
	for j := depth - 1; j >= 0; j-- {
		flag := onion.Pass
		if j == depth-1 {
			flag = onion.Deliver
		}
		start := cell.HeaderLen + j
		out, err := hops[j].fwd.Seal(f[start:start+1+n], flag)
		if err != nil {
			return err
		}
		n = len(out)
	}
	cell.PutHeader(f, c.id, cell.CmdRelayForward, n)
	if c.holds > 0 && c.receivers.Load() == 0 {
		c.held = append(c.held, f)
		c.heldBytes += len(f)
		if c.heldBytes < maxHeld {
			return nil
		}
		return c.flushLocked()
	}
	if err := c.flushLocked(); err != nil { // a receiver began to wait: what is held goes first
		return err
	}
	err := c.m.write(f)
	putCell(f)
	if err != nil {
		return fmt.Errorf("origin: write: %w", err)
	}
	return nil
}

// getCell returns a zeroed buffer of class bytes: from cell's free list of
// frames, where written cells go back (putCell). A client sends a prompt's
// hundreds of kilobytes per request, and buffers new each time are fresh
// pages, each a page fault the first time it is written
// (docs/PERFORMANCE.md, sixth look).
func getCell(class int) []byte {
	f := cell.NewFrame(class)
	clear(f)
	return f
}

// putCell hands a written cell's buffer back (a link does not keep what it
// is given to write).
func putCell(f []byte) { cell.FreeFrame(f) }

// Recv returns the next message any hop sent, and which hop sent it.
// PADDING messages are consumed and skipped.
func (c *Circuit) Recv(ctx context.Context) (int, []byte, error) {
	for {
		hop, msg, pad, err := c.recv(ctx)
		if err != nil || !pad {
			return hop, msg, err
		}
	}
}

// recv returns the next DATA or PADDING message.
func (c *Circuit) recv(ctx context.Context) (int, []byte, bool, error) {
	for {
		c.mu.Lock()
		if len(c.recvq) > 0 {
			it := c.recvq[0]
			c.recvq[0] = recvItem{}
			c.recvq = c.recvq[1:]
			h := c.hops[it.hop]
			h.consumed += it.cost
			ack := 0
			if h.consumed >= cell.SendmeIncrement {
				ack, h.consumed = h.consumed, 0
				h.unacked -= ack
			}
			c.mu.Unlock()
			if ack > 0 {
				if err := c.sendFragment(it.hop, cell.KindSendme, false, cell.Sendme(uint32(ack))); err != nil {
					return 0, nil, false, err
				}
			}
			return it.hop, it.msg, it.pad, nil
		}
		if c.err != nil {
			err := c.err
			c.mu.Unlock()
			return 0, nil, false, err
		}
		ch := c.recvSig.Wait()
		c.mu.Unlock()
		// No answer can come to cells still held: write them, and let
		// none be held while this waits.
		c.receivers.Add(1)
		if err := c.flushHeld(); err != nil {
			c.receivers.Add(-1)
			return 0, nil, false, err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			c.receivers.Add(-1)
			return 0, nil, false, ctx.Err()
		case <-c.done:
		}
		c.receivers.Add(-1)
	}
}

// backward handles a RELAY_BACKWARD cell; only the reader calls it.
func (c *Circuit) backward(p []byte, class int) {
	c.mu.Lock()
	hops := c.hops
	c.mu.Unlock()
	body := p
	for i, h := range hops {
		flag, inner, err := h.bwd.Open(body)
		if err != nil {
			c.fail(&DestroyedError{Reason: cell.ReasonProtocol}, true)
			return
		}
		switch flag {
		case onion.Origin:
			c.fromHop(i, h, inner, class)
			return
		case onion.Wrapped:
			body = inner
		default:
			c.fail(&DestroyedError{Reason: cell.ReasonProtocol}, true)
			return
		}
	}
	c.fail(&DestroyedError{Reason: cell.ReasonProtocol}, true)
}

func (c *Circuit) fromHop(i int, h *hop, body []byte, class int) {
	m, err := cell.ParseRelayMsg(body)
	if err != nil {
		c.fail(&DestroyedError{Reason: cell.ReasonProtocol}, true)
		return
	}
	switch m.Kind {
	case cell.KindData, cell.KindPadding:
		c.mu.Lock()
		h.unacked += class
		over := h.unacked > cell.Window
		c.mu.Unlock()
		if over {
			c.fail(&DestroyedError{Reason: cell.ReasonResourceLimit}, true)
			return
		}
		h.reasmCost += class
		msg, done, err := h.reasm.Add(m.Kind, m.More, m.Data)
		if err != nil {
			c.fail(&DestroyedError{Reason: cell.ReasonProtocol}, true)
			return
		}
		if !done {
			return
		}
		cost := h.reasmCost
		h.reasmCost = 0
		pad := m.Kind == cell.KindPadding
		if pad {
			msg = nil // only its flow-control cost matters
		}
		c.mu.Lock()
		c.recvq = append(c.recvq, recvItem{hop: i, msg: msg, cost: cost, pad: pad})
		c.mu.Unlock()
		c.recvSig.Notify()
	case cell.KindSendme:
		n, err := cell.ParseSendme(m.Data)
		c.mu.Lock()
		h.credit += int(n)
		over := err != nil || h.credit > cell.Window
		c.mu.Unlock()
		if over {
			c.fail(&DestroyedError{Reason: cell.ReasonProtocol}, true)
			return
		}
		h.sig.Notify()
	case cell.KindExtended, cell.KindExtendFailed:
		c.control(ctlMsg{kind: m.Kind, data: append([]byte(nil), m.Data...)}, i)
	case cell.KindTruncated:
		if len(m.Data) != 1 {
			c.fail(&DestroyedError{Reason: cell.ReasonProtocol}, true)
			return
		}
		c.mu.Lock()
		if c.truncated == nil { // the first, nearest the cause, counts
			c.truncated = &DestroyedError{Reason: cell.Reason(m.Data[0]), Remote: true, Hop: i}
		}
		c.mu.Unlock()
	}
}

// destroyedBy is the error of a circuit a DESTROY with reason r ended: what
// the hop that tore it down said inside the onion, if it did.
func (c *Circuit) destroyedBy(r cell.Reason) *DestroyedError {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.truncated != nil {
		return c.truncated
	}
	return &DestroyedError{Reason: r, Remote: true, Hop: -1}
}
