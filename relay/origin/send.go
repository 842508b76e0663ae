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
	f := make([]byte, class)
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
	if err := c.m.write(f); err != nil {
		return fmt.Errorf("origin: write: %w", err)
	}
	return nil
}

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
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, nil, false, ctx.Err()
		case <-c.done:
		}
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
