package circuit

// EXTEND handling (spec §5): the last hop opens or reuses a link to the relay
// the client names, sends CREATE with the client's handshake data, and answers
// EXTENDED with the new hop's CREATED data, or EXTEND_FAILED with a reason.

import (
	"context"
	"time"

	"github.com/unfed/unfed/relay/cell"
)

// startExtend runs on prev's reader with a complete EXTEND message.
func (c *circ) startExtend(body []byte) {
	e, err := cell.ParseExtend(body)
	if err != nil {
		c.violation(dropMalformed)
		return
	}
	c.mu.Lock()
	busy := c.next != nil || c.extending
	c.extending = !busy
	c.mu.Unlock()
	if busy {
		c.violation(dropUnexpected)
		return
	}
	if c.s.cfg.Dialer == nil {
		c.extendFailed(cell.ReasonConnectFailed)
		return
	}
	e.Handshake.Data = append([]byte(nil), e.Handshake.Data...)
	go c.extend(e)
}

func (c *circ) extend(e cell.Extend) {
	ctx, cancel := context.WithTimeout(c.s.ctx, c.s.cfg.ExtendTimeout)
	defer cancel()
	l, err := c.s.cfg.Dialer.Dial(ctx, e.Fingerprint, e.Specs)
	if err != nil {
		c.s.log.Debug("circuit: extend: dial failed", "circuit", c.no, "err", err)
		c.extendFailed(cell.ReasonConnectFailed)
		return
	}
	lk, err := c.s.attach(l, true, false)
	if err != nil || lk == c.prev || lk.fromClient {
		c.extendFailed(cell.ReasonConnectFailed)
		return
	}
	id, err := lk.allocate(c)
	if err != nil {
		c.extendFailed(cell.ReasonResourceLimit)
		return
	}
	c.mu.Lock()
	if c.closed || !c.extending {
		c.mu.Unlock()
		lk.remove(id, c)
		return
	}
	c.next, c.nextID = lk, id
	c.mu.Unlock()
	body, err := cell.AppendHandshake(nil, e.Handshake)
	if err != nil {
		c.extendFailed(cell.ReasonProtocol)
		return
	}
	f, err := cell.Encode(cell.Cell{CircID: id, Cmd: cell.CmdCreate, Payload: body})
	if err != nil {
		c.extendFailed(cell.ReasonProtocol)
		return
	}
	lk.enqueue(f, nil, 0)
	time.AfterFunc(c.s.cfg.ExtendTimeout, func() {
		c.mu.Lock()
		stale := c.extending && c.next == lk && c.nextID == id
		c.mu.Unlock()
		if stale {
			c.extendFailed(cell.ReasonTimeout)
		}
	})
}

// created runs on next's reader with the new hop's CREATED payload.
func (c *circ) created(p []byte) {
	c.mu.Lock()
	ok := c.extending
	c.extending = false
	c.mu.Unlock()
	if !ok {
		c.violation(dropUnexpected)
		return
	}
	hs, _, err := cell.ParseHandshake(p)
	if err != nil {
		c.extendFailed(cell.ReasonHandshake)
		return
	}
	body, _ := cell.AppendHandshake(nil, hs)
	c.sendCtl(cell.KindExtended, body)
}

// extendFailedBy handles a DESTROY from the link being extended to: the
// circuit stays, the client learns the extension failed. It reports whether
// the DESTROY was that.
func (c *circ) extendFailedBy(l *link, id uint32) bool {
	c.mu.Lock()
	match := c.extending && c.next == l && c.nextID == id
	c.mu.Unlock()
	if match {
		c.extendFailed(cell.ReasonConnectFailed)
	}
	return match
}

// extendFailed abandons a pending extension and tells the client why.
func (c *circ) extendFailed(r cell.Reason) {
	c.mu.Lock()
	next, id := c.next, c.nextID
	c.next, c.nextID, c.extending = nil, 0, false
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return
	}
	if next != nil {
		next.remove(id, c)
		next.enqueue(cell.Destroy(id, cell.ReasonDestroyed), nil, 0)
	}
	c.sendCtl(cell.KindExtendFailed, []byte{byte(r)})
}
