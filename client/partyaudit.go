package client

// Audits of a confidential session (spec/11-verification.md §7.4, §7.5):
// for each party of a session the client draws, with a CSPRNG, whether to
// audit it (probability verify-fraction per mille, as for anonymous hops);
// an audited party has every step of the session checked by one party
// ticket of its last step. The ticket needs the party's view, which the
// client gathers at the session's end from the relays around the party,
// never from the party itself (PARTY_REVEAL): its PREPs from its dealer, the
// openings it received from the other party of its stage, its input pieces
// from the previous stage's parties (at stage 1 the client's own
// MPC_INPUTs), and the pieces it sent from the next stage's parties. Every
// dealer and party gets the reveals of its place whether or not a
// neighbour was drawn, of the whole session when an audit needs it and of
// one step otherwise (a cover), so a relay sees the same messages either
// way. Every revealed body is checked against the audited party's records
// (which the crosswise checks tied to the revealer's own commitment)
// before the ticket is queued for submission (submit.go).

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/verify"
)

// partyAudit is a confidential session's audit draws and the records its
// tickets need; feed's goroutine only.
type partyAudit struct {
	picked  [][2]bool                   // per stage: A and B audited
	records [][]*verify.PartyCommitment // per checked step, per hop (circuit position − firstCompute)
	inputs  [][2][]byte                 // per checked step: the MPC_INPUT bodies sent to A_1 and B_1
}

// newPartyAudit draws, for the two parties of each of stages stages,
// whether to audit it with probability perMille/1000; nil when perMille ≤
// 0. A session where nothing was drawn still sends its reveals, covers
// only, so that a relay cannot tell audited sessions from others.
func newPartyAudit(perMille, stages int, draw func() int) *partyAudit {
	if perMille <= 0 {
		return nil
	}
	pa := &partyAudit{picked: make([][2]bool, stages)}
	for j := range pa.picked {
		for side := range 2 {
			pa.picked[j][side] = draw() < perMille
		}
	}
	return pa
}

// step records a checked step's commitments and inputs.
func (pa *partyAudit) step(cs []*verify.PartyCommitment, inA, inB []byte) {
	if pa != nil {
		pa.records = append(pa.records, cs)
		pa.inputs = append(pa.inputs, [2][]byte{inA, inB})
	}
}

// revealAsk is one PARTY_REVEAL to send.
type revealAsk struct {
	what  hop.RevealWhat
	steps int
}

// partyReveals returns the PARTY_REVEALs of every dealer and party, by
// circuit position: of the session's steps where an audit needs them,
// else of one step.
func (s *session) partyReveals(steps int) map[int][]revealAsk {
	pa, stages := s.conf.audit, s.conf.stages
	need := func(j, side int) int {
		if j >= 0 && j < len(stages) && pa.picked[j][side] {
			return steps
		}
		return 1
	}
	asks := map[int][]revealAsk{}
	for j, st := range stages {
		asks[st.dealer] = []revealAsk{{hop.RevealPrepA, need(j, 0)}, {hop.RevealPrepB, need(j, 1)}}
		for side, pos := range []int{st.a, st.b} {
			a := []revealAsk{{hop.RevealPeerSent, need(j, 1-side)}}
			if j+1 < len(stages) {
				// Channel 0 goes to the same side of the next stage, 1 to the other.
				a = append(a, revealAsk{hop.RevealSent0, need(j+1, side)}, revealAsk{hop.RevealSent1, need(j+1, 1-side)})
			}
			if j > 0 {
				a = append(a, revealAsk{hop.RevealRecv0, need(j-1, side)}, revealAsk{hop.RevealRecv1, need(j-1, 1-side)})
			}
			asks[pos] = a
		}
	}
	return asks
}

// revealed is what the relays revealed: by circuit position and what, per
// step, the bodies.
type revealed map[int]map[hop.RevealWhat][][][]byte

// gatherPartyTickets sends the session-end PARTY_REVEALs and builds the
// ticket of every audited party. It returns the tickets that check and an
// error naming each relay whose reveal does not match.
func (s *session) gatherPartyTickets(ctx context.Context) ([]*verify.PartyTicket, error) {
	pa := s.conf.audit
	if pa == nil || len(pa.records) == 0 {
		return nil, nil
	}
	steps := len(pa.records)
	asks := s.partyReveals(steps)
	positions := make([]int, 0, len(asks))
	for pos := range asks {
		positions = append(positions, pos)
	}
	slices.Sort(positions)
	for _, pos := range positions {
		for _, a := range asks[pos] {
			if err := s.send(ctx, pos, &hop.PartyReveal{What: a.what, Steps: a.steps}); err != nil {
				return nil, err
			}
		}
	}
	got := revealed{}
	bufs := map[int][]byte{}
	pending := 0
	for _, pos := range positions {
		pending += len(asks[pos])
		got[pos] = map[hop.RevealWhat][][][]byte{}
	}
	for pending > 0 {
		from, m, err := s.recv(ctx)
		if err != nil {
			return nil, err
		}
		if _, ok := m.(*hop.PartyCommit); ok && slices.ContainsFunc(s.conf.stages, func(st confStage) bool { return st.dealer == from }) {
			continue // a dealer's commitment to a step dealt ahead and never run
		}
		r, ok := m.(*hop.PartyRevealed)
		if !ok || len(asks[from]) == 0 {
			return nil, s.fail(from, fmt.Errorf("client: hop %d sent an unexpected %v after PARTY_REVEAL", from, m.Type()))
		}
		bufs[from] = append(bufs[from], r.Data...)
		if len(bufs[from]) > verify.MaxTicketBytes {
			return nil, s.fail(from, fmt.Errorf("client: hop %d revealed more than %d bytes", from, verify.MaxTicketBytes))
		}
		if !r.Final {
			continue
		}
		a := asks[from][0]
		asks[from] = asks[from][1:]
		pending--
		lists, err := parseReveal(bufs[from], a.steps)
		if err != nil {
			return nil, s.fail(from, fmt.Errorf("client: hop %d: %w", from, err))
		}
		got[from][a.what], bufs[from] = lists, nil
	}
	var out []*verify.PartyTicket
	var errs []error
	for j := range s.conf.stages {
		for side := range 2 {
			if !pa.picked[j][side] {
				continue
			}
			t, err := s.partyTicket(got, j, side)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			out = append(out, t)
		}
	}
	return out, errors.Join(errs...)
}

// parseReveal parses a reveal's answer: per step, count u32 ‖ count × (len
// u32 ‖ body). The bodies alias b.
func parseReveal(b []byte, steps int) ([][][]byte, error) {
	out := make([][][]byte, 0, steps)
	u32 := func() (int, bool) {
		if len(b) < 4 {
			return 0, false
		}
		v := int(binary.BigEndian.Uint32(b))
		b = b[4:]
		return v, true
	}
	for range steps {
		n, ok := u32()
		if !ok || n > len(b)/4 {
			return nil, errors.New("reveal truncated")
		}
		bodies := make([][]byte, 0, n)
		for range n {
			l, ok := u32()
			if !ok || l > len(b) {
				return nil, errors.New("reveal truncated")
			}
			bodies, b = append(bodies, b[:l:l]), b[l:]
		}
		out = append(out, bodies)
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%d bytes after the reveal", len(b))
	}
	return out, nil
}

// partyTicket builds and checks the ticket of the party of stage j on side
// (0 A, 1 B) from got. A revealed body that is not what the party's record
// says is the revealer's fault: the crosswise checks tied that record to
// the revealer's own commitment.
func (s *session) partyTicket(got revealed, j, side int) (*verify.PartyTicket, error) {
	pa, stages := s.conf.audit, s.conf.stages
	st := stages[j]
	partyPos := []int{st.a, st.b}
	pos := partyPos[side]
	peer := partyPos[1-side]
	idx := pos - firstCompute
	one := func(from int, what hop.RevealWhat, k int, want [32]byte, name string) ([]byte, error) {
		bs := got[from][what]
		if k >= len(bs) || len(bs[k]) != 1 || verify.BodyHash(bs[k][0]) != want {
			return nil, s.fail(from, fmt.Errorf("client: hop %d revealed a %s of step %d that hop %d did not commit to", from, name, k, pos))
		}
		return bs[k][0], nil
	}
	t := &verify.PartyTicket{Commitment: pa.records[len(pa.records)-1][idx]}
	for k, cs := range pa.records {
		rec := cs[idx].PartyStep
		rec.Sig = [64]byte{}
		v := verify.PartyView{Record: rec}
		var err error
		if v.Prep, err = one(st.dealer, []hop.RevealWhat{hop.RevealPrepA, hop.RevealPrepB}[side], k, rec.Prep, "PREP"); err != nil {
			return nil, err
		}
		if ps := got[peer][hop.RevealPeerSent]; k >= len(ps) || verify.PeerHash(ps[k]) != rec.Peer[1] {
			return nil, s.fail(peer, fmt.Errorf("client: hop %d revealed openings of step %d that hop %d did not commit to", peer, k, pos))
		} else {
			v.Peer = ps[k]
		}
		if j == 0 {
			v.In = [][]byte{pa.inputs[k][side]}
		} else {
			prev := []int{stages[j-1].a, stages[j-1].b}
			in0, err := one(prev[side], hop.RevealSent0, k, rec.In[0], "piece")
			if err != nil {
				return nil, err
			}
			in1, err := one(prev[1-side], hop.RevealSent1, k, rec.In[1], "piece")
			if err != nil {
				return nil, err
			}
			v.In = [][]byte{in0, in1}
		}
		if j+1 < len(stages) {
			next := []int{stages[j+1].a, stages[j+1].b}
			out0, err := one(next[side], hop.RevealRecv0, k, rec.Out[0], "piece")
			if err != nil {
				return nil, err
			}
			out1, err := one(next[1-side], hop.RevealRecv1, k, rec.Out[1], "piece")
			if err != nil {
				return nil, err
			}
			v.Out = [][]byte{out0, out1}
		}
		t.Steps = append(t.Steps, v)
	}
	if err := verify.CheckPartyView(t, st.hash); err != nil {
		return nil, fmt.Errorf("client: party ticket of hop %d: %w", pos, err)
	}
	return t, nil
}
