package circuit

// Circuit-less messages between neighbouring relays (spec/02-circuit.md
// §2.5): a GOSSIP cell on circuit id 0 of a relay link carries one message
// of a service that is not a circuit's (the share-chain's block gossip).
// The switch only frames and bounds them; the LinkHandler owns their
// meaning. Each link charges the GOSSIP bytes it has queued to gossipQueued,
// so a handler cannot make a link queue without bound.

import (
	"errors"

	"github.com/unfed/unfed/relay/cell"
)

// LinkHandler takes the payloads of GOSSIP cells. LinkMessage is called on
// the link's reader goroutine: it must not block (queue the work).
type LinkHandler interface {
	LinkMessage(from Neighbour, payload []byte)
}

// Neighbour is a link to another relay, as a handle a LinkHandler sends
// on. Values compare equal when they name the same link.
type Neighbour struct {
	l *link
}

// MaxGossipQueued bounds the GOSSIP bytes queued on one link; Send refuses
// beyond it.
const MaxGossipQueued = 2 << 20

// ErrGossipQueueFull is returned by Send when the link has MaxGossipQueued
// bytes of GOSSIP waiting.
var ErrGossipQueueFull = errors.New("circuit: gossip queue full")

// Send queues payload as one GOSSIP cell (at most cell.MaxPayload bytes).
func (n Neighbour) Send(payload []byte) error {
	f, err := cell.Encode(cell.Cell{CircID: 0, Cmd: cell.CmdGossip, Payload: payload})
	if err != nil {
		return err
	}
	l := n.l
	if l.gossipQueued.Add(int64(len(f))) > MaxGossipQueued {
		l.gossipQueued.Add(-int64(len(f)))
		return ErrGossipQueueFull
	}
	l.qmu.Lock()
	defer l.qmu.Unlock()
	if l.qclosed {
		l.gossipQueued.Add(-int64(len(f)))
		return ErrClosed
	}
	l.queue = append(l.queue, outFrame{f: f, gossip: true})
	l.qcond.Signal()
	return nil
}

// Neighbours returns the open links to other relays (not those from
// clients).
func (s *Switch) Neighbours() []Neighbour {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Neighbour, 0, len(s.links))
	for _, l := range s.links {
		if !l.fromClient {
			out = append(out, Neighbour{l})
		}
	}
	return out
}

// handleGossip passes a GOSSIP cell of a relay link to the LinkHandler. One
// on a circuit id, or on a client's link, is dropped: clients take no part.
func (s *Switch) handleGossip(l *link, c cell.Cell) {
	if c.CircID != 0 || l.fromClient {
		s.m.drop(dropGossip)
		return
	}
	if s.cfg.LinkHandler == nil {
		s.m.drop(dropNoHandler)
		return
	}
	s.cfg.LinkHandler.LinkMessage(Neighbour{l}, append([]byte(nil), c.Payload...))
}
