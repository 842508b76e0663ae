package circuit

// Per-link state: the circuit table, circuit id allocation, the reader that
// dispatches cells, and the writer that drains the queue. link.mu guards circs
// and closed; qmu guards the queue.

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/unfed/unfed/relay/cell"
)

// side says which end of a circuit a link is.
type side uint8

const (
	sidePrev side = iota // the link toward the client: forward cells arrive here
	sideNext             // the link away from the client: backward cells arrive here
)

type entry struct {
	c    *circ
	side side
}

type outFrame struct {
	f      []byte
	c      *circ // nil for frames not charged to a circuit
	dir    side  // which of c's queues it is charged to
	gossip bool  // charged to the link's gossipQueued
}

type link struct {
	s          *Switch
	l          Link
	initiator  bool // we opened it: our circuit ids have the high bit set
	fromClient bool

	mu     sync.Mutex
	circs  map[uint32]entry
	closed bool

	qmu     sync.Mutex
	qcond   *sync.Cond
	queue   []outFrame
	qclosed bool

	gossipQueued atomic.Int64 // bytes of GOSSIP cells in queue
}

func newLink(s *Switch, l Link, initiator, fromClient bool) *link {
	lk := &link{s: s, l: l, initiator: initiator, fromClient: fromClient, circs: map[uint32]entry{}}
	lk.qcond = sync.NewCond(&lk.qmu)
	return lk
}

// idFromPeer reports whether id has the form the peer allocates (spec §2.3).
func (l *link) idFromPeer(id uint32) bool {
	high := id&0x80000000 != 0
	return id != 0 && high != l.initiator
}

// register adds a circuit the peer created.
func (l *link) register(id uint32, c *circ) (ok, full bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false, false
	}
	if _, dup := l.circs[id]; dup {
		return false, false
	}
	if len(l.circs) >= l.s.cfg.MaxCircuitsPerLink {
		return false, true
	}
	l.circs[id] = entry{c: c, side: sidePrev}
	return true, false
}

// allocate picks a fresh id of our form for c as its next link.
func (l *link) allocate(c *circ) (uint32, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, ErrClosed
	}
	if len(l.circs) >= l.s.cfg.MaxCircuitsPerLink {
		return 0, errLimit
	}
	for range 64 {
		id := rand.Uint32() &^ 0x80000000
		if l.initiator {
			id |= 0x80000000
		}
		if _, used := l.circs[id]; id != 0 && !used {
			l.circs[id] = entry{c: c, side: sideNext}
			return id, nil
		}
	}
	return 0, errLimit
}

func (l *link) remove(id uint32, c *circ) {
	l.mu.Lock()
	if e, ok := l.circs[id]; ok && e.c == c {
		delete(l.circs, id)
	}
	l.mu.Unlock()
}

func (l *link) lookup(id uint32) (entry, bool) {
	l.mu.Lock()
	e, ok := l.circs[id]
	l.mu.Unlock()
	return e, ok
}

// enqueue queues f. A frame charged to a circuit that would take the circuit's
// queue over the limit is refused: the caller destroys the circuit.
func (l *link) enqueue(f []byte, c *circ, dir side) bool {
	if c != nil {
		if n := c.queued[dir].Add(int64(len(f))); n > int64(l.s.cfg.MaxQueueBytes) {
			c.queued[dir].Add(-int64(len(f)))
			return false
		}
	}
	l.qmu.Lock()
	if l.qclosed {
		l.qmu.Unlock()
		if c != nil {
			c.queued[dir].Add(-int64(len(f)))
		}
		return true // the link is going away; its close destroys c
	}
	l.queue = append(l.queue, outFrame{f: f, c: c, dir: dir})
	l.qcond.Signal()
	l.qmu.Unlock()
	return true
}

// enqueueAll queues fs, n bytes charged to c (below its limit: the caller
// checked), under one lock and with one signal to the writer.
func (l *link) enqueueAll(fs [][]byte, n int, c *circ, dir side) {
	c.queued[dir].Add(int64(n))
	l.qmu.Lock()
	if l.qclosed {
		l.qmu.Unlock()
		c.queued[dir].Add(-int64(n))
		return // the link is going away; its close destroys c
	}
	for _, f := range fs {
		l.queue = append(l.queue, outFrame{f: f, c: c, dir: dir})
	}
	l.qcond.Signal()
	l.qmu.Unlock()
}

// enqueueWaitAll queues frames produced locally (not forwarded), fs of n
// bytes together, waiting while the circuit would have more than half the
// limit queued on this link with them. They join the queue at once, so the
// writer takes them in one batch (one write, one wake-up of the peer)
// rather than racing the producer cell by cell.
func (l *link) enqueueWaitAll(ctx context.Context, fs [][]byte, n int, c *circ, dir side) error {
	limit := int64(l.s.cfg.MaxQueueBytes / 2)
	for {
		if c.queued[dir].Load()+int64(n) <= limit {
			l.enqueueAll(fs, n, c, dir)
			return nil
		}
		ch := c.drained.Wait()
		if c.queued[dir].Load()+int64(n) <= limit {
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

func (l *link) writeLoop() {
	defer l.s.wg.Done()
	var frames [][]byte // a batch's frames, for a BatchLink
	for {
		l.qmu.Lock()
		for len(l.queue) == 0 && !l.qclosed {
			l.qcond.Wait()
		}
		if l.qclosed {
			l.qmu.Unlock()
			return
		}
		batch := l.queue
		l.queue = nil
		l.qmu.Unlock()
		if bl, ok := l.l.(BatchLink); ok && len(batch) > 1 {
			frames = frames[:0]
			for _, o := range batch {
				frames = append(frames, o.f)
			}
			err := bl.WriteFrames(frames)
			clear(frames)
			for _, o := range batch {
				l.unqueue(o)
			}
			if err != nil {
				l.close()
				return
			}
			continue
		}
		for i, o := range batch {
			err := l.l.WriteFrame(o.f)
			l.unqueue(o)
			if err != nil {
				for _, r := range batch[i+1:] {
					l.unqueue(r)
				}
				l.close()
				return
			}
		}
	}
}

// unqueue takes a frame written (or dropped with its link) off its
// circuit's and the gossip's queued bytes, and wakes a circuit waiting for
// room. A frame charged to a circuit is the switch's alone (the reader
// made it for one cell, or SendEdge or originate for one fragment; a Link
// keeps no frame it wrote): it goes back to the free list.
func (l *link) unqueue(o outFrame) {
	if o.c != nil {
		o.c.queued[o.dir].Add(-int64(len(o.f)))
		o.c.drained.Notify()
		cell.FreeFrame(o.f)
	}
	if o.gossip {
		l.gossipQueued.Add(-int64(len(o.f)))
	}
}

// allocFrame gives an AllocLink the buffer of a frame of n bytes: a
// cell's of any class from the free list (a prompt of a small model
// crosses in medium cells, each a new page at every hop before); nil (a
// new one) for any other size, which cell.Decode refuses.
func allocFrame(n int) []byte {
	for _, c := range cell.Classes {
		if n == c {
			return cell.NewFrame(n)
		}
	}
	return nil
}

func (l *link) readLoop() {
	defer l.s.wg.Done()
	read := l.l.ReadFrame
	if al, ok := l.l.(AllocLink); ok {
		read = func() ([]byte, error) { return al.ReadFrameAlloc(allocFrame) }
	}
	for {
		f, err := read()
		if err != nil {
			l.close()
			return
		}
		c, err := cell.Decode(f)
		if err != nil {
			l.s.m.drop(dropMalformed)
			continue
		}
		l.s.dispatch(l, c, f)
	}
}

// close closes the link and destroys every circuit on it.
func (l *link) close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	circs := l.circs
	l.circs = map[uint32]entry{}
	l.mu.Unlock()
	l.qmu.Lock()
	// What is still queued is dropped: the peer is gone.
	pending := l.queue
	l.queue = nil
	l.qclosed = true
	l.qcond.Broadcast()
	l.qmu.Unlock()
	for _, o := range pending {
		if o.c != nil {
			o.c.queued[o.dir].Add(-int64(len(o.f)))
		}
		if o.gossip {
			l.gossipQueued.Add(-int64(len(o.f)))
		}
	}
	l.l.Close()
	l.s.forgetLink(l)
	for _, e := range circs {
		e.c.destroy(cell.ReasonLinkClosed, l)
	}
}
