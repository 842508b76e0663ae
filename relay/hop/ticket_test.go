package hop_test

import (
	"bytes"
	"errors"
	"sync"
	"testing"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/hop/hoptest"
)

type sink struct {
	max int
	mu  sync.Mutex
	got [][]byte
	err error
}

func (s *sink) MaxTicket() int { return s.max }

func (s *sink) Accept(_ uint64, b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.got = append(s.got, bytes.Clone(b))
	return nil
}

// TestTicketSubmission: a verifier service reassembles a ticket sent in
// fragments, hands it to its sink whole and answers TICKET_OK; a fragment
// out of order, a ticket over the sink's limit, a refusal by the sink and a
// TICKET to a relay that is no verifier get an ERROR, and the session
// still takes the next ticket.
func TestTicketSubmission(t *testing.T) {
	sk := &sink{max: 3 * hop.MaxTicketFragment}
	svc, err := hop.NewService(hop.Config{ModelID: modelID, Tickets: sk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	plain := newService(t, loadShard(t, 0, 2, model.Limits{}), nil)
	chain := hoptest.NewChain(3, svc, plain)
	t.Cleanup(chain.Close)
	c := chainClient(t, chain)

	big := bytes.Repeat([]byte{7, 1, 2}, (2*hop.MaxTicketFragment+100)/3)
	frags := hop.TicketFragments(big)
	if len(frags) != 3 {
		t.Fatalf("%d fragments", len(frags))
	}
	send := func(i int, fs []*hop.Ticket) {
		for _, f := range fs {
			c.send(i, f)
		}
	}
	send(0, frags)
	if _, m := c.recv(); m.Type() != hop.TypeTicketOK {
		t.Fatalf("got %v", m.Type())
	}
	if len(sk.got) != 1 || !bytes.Equal(sk.got[0], big) {
		t.Fatal("the sink did not get the ticket whole")
	}
	// Out of order: the second fragment first.
	send(0, frags[1:2])
	c.expectError(0, hop.CodeBadMessage)
	// Over the limit.
	send(0, hop.TicketFragments(make([]byte, sk.max+1))[:1])
	c.expectError(0, hop.CodeCapacity)
	// Refused by the sink.
	sk.mu.Lock()
	sk.err = errors.New("busy")
	sk.mu.Unlock()
	send(0, hop.TicketFragments([]byte{1, 2, 3}))
	c.expectError(0, hop.CodeCapacity)
	sk.mu.Lock()
	sk.err = nil
	sk.mu.Unlock()
	// Not a verifier.
	send(1, hop.TicketFragments([]byte{1}))
	c.expectError(1, hop.CodeUnsupported)
	// Still usable.
	send(0, hop.TicketFragments([]byte{4, 5}))
	if _, m := c.recv(); m.Type() != hop.TypeTicketOK {
		t.Fatalf("got %v", m.Type())
	}
	if len(sk.got) != 2 || !bytes.Equal(sk.got[1], []byte{4, 5}) {
		t.Fatal("second ticket lost")
	}
}
