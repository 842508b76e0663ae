package circuit

// Cell dispatch (spec §4–§7). Stages for a forward relay cell: readLoop of the
// previous link → dispatch → open the forward layer (prev reader only) →
// Deliver: parse the fragment, reassemble, queue for the handler; Pass: copy
// the inner layer into a cell of the same class and queue it on the next link.
// Backward: readLoop of the next link → wrap under bwdMu → queue on the
// previous link.

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/internal/broadcast"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/onion"
)

var errLimit = errors.New("circuit: limit reached")

type circ struct {
	s      *Switch
	no     uint64
	prev   *link
	prevID uint32
	fwd    *onion.Layer // used only by prev's reader
	done   chan struct{}

	depth      atomic.Int32 // set by prev's reader from the first relay cell
	lastActive atomic.Int64
	queued     [2]atomic.Int64 // bytes queued on prev (sidePrev) and next (sideNext)
	drained    broadcast.Signal

	// Owned by prev's reader.
	reasm     cell.Reassembler
	reasmCost int
	edgeFwd   map[uint8]*cell.Reassembler // by distance
	// Owned by next's reader.
	edgeBwd cell.Reassembler

	bwdMu sync.Mutex // held from backward seal to enqueue
	bwd   *onion.Layer

	edgeMu [2]sync.Mutex // serialises local edge messages per direction
	sendMu sync.Mutex    // serialises local backward messages
	// echoing is set while a PADDING echo is being sent (one at a time).
	echoing atomic.Bool

	mu         sync.Mutex
	closed     bool
	next       *link
	nextID     uint32
	extending  bool
	credit     int // backward send window, in cell bytes
	creditSig  broadcast.Signal
	consumed   int // forward bytes consumed since the last SENDME
	unacked    int // forward DATA bytes received and not yet acknowledged
	inbox      []inItem
	inboxBytes int
	draining   bool
	exposed    bool
	hop        Hop
}

type inItem struct {
	m    Message
	cost int
}

func (c *circ) touch() { c.lastActive.Store(c.s.cfg.Now().UnixNano()) }

// dispatch handles one decoded cell from l. frame is the cell's frame, which
// the link reader made for it alone: a cell passed on is rewritten in it and
// queued, not copied into a new one.
func (s *Switch) dispatch(l *link, c cell.Cell, frame []byte) {
	switch {
	case c.Cmd == cell.CmdPadding:
		return
	case !c.Cmd.Known():
		s.m.drop(dropUnknownCmd)
		return
	case c.Cmd == cell.CmdCreate:
		s.handleCreate(l, c)
		return
	case c.Cmd == cell.CmdGossip:
		s.handleGossip(l, c)
		return
	}
	e, ok := l.lookup(c.CircID)
	if !ok {
		s.m.drop(dropUnknownCirc)
		return
	}
	cc := e.c
	cc.touch()
	switch {
	case c.Cmd == cell.CmdDestroy:
		if e.side == sideNext && cc.extendFailedBy(l, c.CircID) {
			return
		}
		// The reason of a hop further along reached the client inside the
		// onion (TRUNCATED, spec §2.4); in the clear we pass on only that
		// the circuit is gone.
		r := cell.ReasonDestroyed
		if destroyReasonInClear && e.side == sideNext && len(c.Payload) == 1 {
			r = cell.Reason(c.Payload[0])
		}
		cc.destroy(r, l)
	case c.Cmd == cell.CmdRelayForward && e.side == sidePrev:
		cc.forward(frame, c.Payload)
	case c.Cmd == cell.CmdRelayBackward && e.side == sideNext:
		cc.backward(frame, c.Payload)
	case c.Cmd == cell.CmdEdge && e.side == sidePrev:
		cc.edgeFromPrev(frame, c.Payload)
	case c.Cmd == cell.CmdEdge && e.side == sideNext:
		cc.edgeFromNext(frame, c.Payload)
	case c.Cmd == cell.CmdCreated && e.side == sideNext:
		cc.created(c.Payload)
	default:
		s.m.drop(dropUnexpected)
		cc.destroy(cell.ReasonProtocol, nil)
	}
}

func (s *Switch) handleCreate(l *link, c cell.Cell) {
	if !l.idFromPeer(c.CircID) {
		s.m.drop(dropBadID)
		return
	}
	cc := &circ{s: s, prev: l, prevID: c.CircID, done: make(chan struct{}), credit: cell.Window}
	cc.hop.c = cc
	cc.touch()
	refuse := func(r cell.Reason, why string) {
		s.m.drop(why)
		s.m.destroyed.WithLabelValues(r.String()).Inc()
		l.enqueue(cell.Destroy(c.CircID, r), nil, 0)
	}
	ok, full := l.register(c.CircID, cc)
	if !ok {
		if full {
			refuse(cell.ReasonResourceLimit, dropLimit)
		} else {
			s.m.drop(dropBadID) // duplicate id, or the link is closing
		}
		return
	}
	if !s.admit(cc) {
		l.remove(c.CircID, cc)
		refuse(cell.ReasonResourceLimit, dropLimit)
		return
	}
	hs, _, err := cell.ParseHandshake(c.Payload)
	var k *onion.Keys
	var reply []byte
	if err == nil {
		cur, prev := s.cfg.OnionKeys()
		reply, k, err = onion.Server(onion.Type(hs.Type), hs.Data, onion.ServerKeys{Identity: s.cfg.Identity, Onion: []*keys.OnionKey{cur, prev}}, s.cfg.Rand)
	}
	if err == nil {
		var p onion.Pair
		if p, err = onion.NewPair(k); err == nil {
			cc.fwd, cc.bwd = p.Forward, p.Backward
		}
	}
	if err != nil {
		l.remove(c.CircID, cc)
		s.forget(cc)
		refuse(cell.ReasonHandshake, dropHandshake)
		return
	}
	body, _ := cell.AppendHandshake(nil, cell.Handshake{Type: hs.Type, Data: reply})
	f, _ := cell.Encode(cell.Cell{CircID: c.CircID, Cmd: cell.CmdCreated, Payload: body})
	s.m.created.Inc()
	l.enqueue(f, nil, 0)
}

// violation destroys c for a protocol violation and counts the cell.
func (c *circ) violation(why string) {
	c.s.m.drop(why)
	c.s.log.Debug("circuit: protocol violation", "circuit", c.no, "why", why)
	c.destroy(cell.ReasonProtocol, nil)
}

// forward handles a RELAY_FORWARD cell (payload p of frame); only prev's
// reader calls it.
func (c *circ) forward(frame, p []byte) {
	class := len(frame)
	capa := cell.Capacity(class)
	gap := capa - len(p)
	if gap < 0 || gap%onion.Overhead != 0 || gap/onion.Overhead+1 > MaxHops {
		c.violation(dropMalformed)
		return
	}
	depth := gap/onion.Overhead + 1
	if d := int(c.depth.Load()); d == 0 {
		c.depth.Store(int32(depth))
	} else if d != depth {
		c.violation(dropMalformed)
		return
	}
	flag, body, err := c.fwd.Open(p)
	if err != nil {
		c.s.m.drop(dropAuth)
		c.destroy(cell.ReasonProtocol, nil)
		return
	}
	switch flag {
	case onion.Deliver:
		if c.deliver(body, class) {
			cell.FreeFrame(frame)
		}
	case onion.Pass:
		c.mu.Lock()
		next, id, ok := c.next, c.nextID, c.next != nil && !c.extending
		c.mu.Unlock()
		if !ok {
			c.violation(dropUnexpected)
			return
		}
		// The body moves to the payload's start (its flag byte and tag
		// drop off) in the same frame, and the bytes it leaves become
		// padding again.
		n := copy(frame[cell.HeaderLen:], body)
		clear(frame[cell.HeaderLen+n : cell.HeaderLen+len(p)])
		cell.PutHeader(frame, id, cell.CmdRelayForward, n)
		if !next.enqueue(frame, c, sideNext) {
			c.s.m.drop(dropLimit)
			c.destroy(cell.ReasonResourceLimit, nil)
		}
	default:
		c.violation(dropMalformed)
	}
}

// backward wraps a RELAY_BACKWARD cell (payload p of frame) from the next
// hop and queues it on prev, in the same frame.
func (c *circ) backward(frame, p []byte) {
	class := len(frame)
	if len(p)+onion.Overhead > cell.Capacity(class) {
		c.violation(dropMalformed)
		return
	}
	f := frame
	copy(f[cell.HeaderLen+1:], p) // (overlapping: copy moves)
	c.bwdMu.Lock()
	out, err := c.bwd.Seal(f[cell.HeaderLen:cell.HeaderLen+1+len(p)], onion.Wrapped)
	if err == nil {
		cell.PutHeader(f, c.prevID, cell.CmdRelayBackward, len(out))
		if !c.prev.enqueue(f, c, sidePrev) {
			err = errLimit
		}
	}
	c.bwdMu.Unlock()
	if err != nil {
		c.s.m.drop(dropLimit)
		c.destroy(cell.ReasonResourceLimit, nil)
	}
}

// deliver handles a relay message fragment addressed to this hop. It
// reports whether nothing keeps body (a DATA fragment is copied into its
// message): the caller may free the frame it lies in.
func (c *circ) deliver(body []byte, class int) (free bool) {
	m, err := cell.ParseRelayMsg(body)
	if err != nil {
		c.violation(dropMalformed)
		return
	}
	switch m.Kind {
	case cell.KindExtend:
		if m.More {
			c.violation(dropMalformed)
			return
		}
		c.startExtend(m.Data)
	case cell.KindData, cell.KindPadding:
		c.mu.Lock()
		c.unacked += class
		over := c.unacked > cell.Window
		c.mu.Unlock()
		if over {
			c.violation(dropLimit)
			return
		}
		msg, done, err := c.reasm.Add(m.Kind, m.More, m.Data)
		free = true // Add copied m.Data
		if err != nil {
			c.violation(dropMalformed)
			return
		}
		c.reasmCost += class
		if !done {
			return
		}
		cost := c.reasmCost
		c.reasmCost = 0
		if m.Kind == cell.KindPadding {
			c.padding(msg, cost)
			return
		}
		c.push(inItem{m: Message{Data: msg}, cost: cost})
	case cell.KindSendme:
		n, err := cell.ParseSendme(m.Data)
		free = true
		if err != nil {
			c.violation(dropMalformed)
			return
		}
		c.mu.Lock()
		c.credit += int(n)
		over := c.credit > cell.Window
		c.mu.Unlock()
		if over {
			c.violation(dropLimit)
			return
		}
		c.creditSig.Notify()
	default:
		c.s.m.drop(dropUnknownKind)
	}
	return free
}

// edgeFromPrev handles an EDGE cell from the previous hop: deliver it here or
// pass it on.
func (c *circ) edgeFromPrev(frame, p []byte) {
	if c.prev.fromClient {
		c.s.m.drop(dropClientLinkEdg)
		return
	}
	e, err := cell.ParseEdge(p)
	if err != nil || e.Dir != cell.Forward {
		c.s.m.drop(dropEdge)
		return
	}
	if e.Remaining > 0 {
		c.mu.Lock()
		next, id, ok := c.next, c.nextID, c.next != nil && !c.extending
		c.mu.Unlock()
		if !ok {
			c.s.m.drop(dropEdge)
			return
		}
		// Same payload, new circuit id and edge counters: rewritten in
		// place.
		cell.PutHeader(frame, id, cell.CmdEdge, len(p))
		e.Remaining--
		e.Traveled++
		cell.PutEdge(frame[cell.HeaderLen:], e)
		if !next.enqueue(frame, c, sideNext) {
			c.s.m.drop(dropLimit)
			c.destroy(cell.ReasonResourceLimit, nil)
		}
		return
	}
	if c.edgeFwd == nil {
		c.edgeFwd = map[uint8]*cell.Reassembler{}
	}
	r := c.edgeFwd[e.Traveled]
	if r == nil {
		r = &cell.Reassembler{}
		c.edgeFwd[e.Traveled] = r
	}
	// e.Data lies in the frame the link reader made for this cell, which
	// nothing else keeps: hand it over.
	msg, done, err := r.AddEdgeFrame(e.More, e.Data, frame)
	if err != nil {
		c.violation(dropEdge)
		return
	}
	if done {
		c.push(inItem{m: Message{Edge: true, Dir: cell.Forward, Distance: int(e.Traveled), Data: msg}})
	}
}

// edgeFromNext handles an EDGE cell from the next hop; only next's reader calls it.
func (c *circ) edgeFromNext(frame, p []byte) {
	e, err := cell.ParseEdge(p)
	if err != nil || e.Dir != cell.Backward {
		c.s.m.drop(dropEdge)
		return
	}
	msg, done, err := c.edgeBwd.AddEdgeFrame(e.More, e.Data, frame)
	if err != nil {
		c.violation(dropEdge)
		return
	}
	if done {
		c.push(inItem{m: Message{Edge: true, Dir: cell.Backward, Distance: 1, Data: msg}})
	}
}

// destroyReasonInClear, set only by tests, restores the DESTROY of before
// issue 23: the reason in the clear to every earlier hop and no TRUNCATED
// (TestDestroyReasonInsideOnion's mutation).
var destroyReasonInClear bool

// destroy tears c down once: it leaves both tables and sends DESTROY to each
// side except from (the link the teardown came from, or a closed one).
func (c *circ) destroy(r cell.Reason, from *link) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	next, nextID := c.next, c.nextID
	c.mu.Unlock()
	// A teardown of our own is reported to the client inside the onion,
	// under our backward layer, before the DESTROY (spec §2.4): the hops
	// before us learn only that the circuit ended, not why. A DESTROY that
	// came from the next hop was reported by that hop already; the next
	// link closing is ours to report (link-closed).
	passOn := from != nil && from == next && r == cell.ReasonDestroyed
	if c.prev != from && !passOn && !destroyReasonInClear {
		c.sendCtl(cell.KindTruncated, []byte{byte(r)})
	}
	close(c.done)
	c.creditSig.Notify()
	c.drained.Notify()
	c.s.m.destroyed.WithLabelValues(r.String()).Inc()
	c.prev.remove(c.prevID, c)
	if next != nil {
		next.remove(nextID, c)
	}
	c.s.forget(c)
	// In the clear, toward the client as away from it, only that it is gone.
	if c.prev != from {
		clear := cell.ReasonDestroyed
		if destroyReasonInClear || c.prev.fromClient {
			// The client's own link: only the client reads it.
			clear = r
		}
		c.prev.enqueue(cell.Destroy(c.prevID, clear), nil, 0)
	}
	if next != nil && next != from {
		next.enqueue(cell.Destroy(nextID, cell.ReasonDestroyed), nil, 0)
	}
	c.wakeClosed()
}

// padding handles a PADDING message for this hop (spec §4.5): it is dropped,
// and its echoes, if any, answered with PADDING messages of those sizes, in
// order, under the same flow control as DATA. One echo request is served at
// a time; a client that asks for another meanwhile has it dropped
// (counted).
func (c *circ) padding(msg []byte, cost int) {
	c.consume(cost)
	echoes, ok := parseEcho(msg)
	if !ok {
		c.violation(dropMalformed)
		return
	}
	if len(echoes) == 0 {
		return
	}
	if !c.echoing.CompareAndSwap(false, true) {
		c.s.m.drop(dropEcho)
		return
	}
	go func() {
		defer c.echoing.Store(false)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-c.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		c.sendMu.Lock()
		defer c.sendMu.Unlock()
		for _, e := range echoes {
			if c.sendBackward(ctx, cell.KindPadding, make([]byte, e)) != nil {
				return
			}
		}
	}()
}

// maxEchoes bounds the answers one PADDING may ask for.
const maxEchoes = 8

// parseEcho reads a PADDING message's echo request (spec §4.5): u32 0 for
// none, 1..MaxMessage for one answer of that size, or 0x80000000 | n
// (1 ≤ n ≤ 8) followed by n sizes of 1..MaxMessage each. Anything else is
// malformed.
func parseEcho(msg []byte) ([]int, bool) {
	if len(msg) < 4 {
		return nil, false
	}
	v := binary.BigEndian.Uint32(msg)
	switch {
	case v == 0:
		return nil, true
	case v <= cell.MaxMessage:
		return []int{int(v)}, true
	case v&(1<<31) == 0:
		return nil, false
	}
	n := int(v &^ (1 << 31))
	if n < 1 || n > maxEchoes || len(msg) < 4+4*n {
		return nil, false
	}
	out := make([]int, n)
	for i := range out {
		e := binary.BigEndian.Uint32(msg[4+4*i:])
		if e == 0 || e > cell.MaxMessage {
			return nil, false
		}
		out[i] = int(e)
	}
	return out, true
}
