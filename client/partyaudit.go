package client

// Audits of a confidential session (spec/11-verification.md §7.4, §7.5):
// for each party of a session the client draws, with a CSPRNG, whether to
// audit it (probability verify-fraction per mille, as for anonymous hops).
// At the session's end it draws the audited step t and the window [t0, t]
// that a party ticket of step t re-executes: from the earliest t0 whose
// ticket fits partyTicketBudget (at least step t itself), t drawn so that
// every step is about equally likely to be in the window (windows). The ticket needs the party's view of the
// window and its state rows before it, which the client gathers from the
// relays around the party, never from the party itself (PARTY_REVEAL): its
// PREPs and mask rows from its dealer, the openings it received and its
// opened cache rows from the other party of its stage, its input pieces
// from the previous stage's parties (at stage 1 the client's own
// MPC_INPUTs), and the pieces it sent from the next stage's parties. Every
// dealer and party gets the reveals of its place whether or not a
// neighbour was drawn, of the steps an audit needs and of no step
// otherwise (a cover), so a relay sees the same messages either way. Every revealed body is checked against the audited party's records
// (which the crosswise checks tied to the revealer's own commitment)
// before the ticket is queued for submission (submit.go).

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/unfed/unfed/compute/mpc"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/verify"
)

// partyTicketBudget is the size a party ticket's window is chosen to fit
// (verifiers take 16 MiB by default, spec/11 §3.5).
const partyTicketBudget = 8 << 20

// partyAudit is a confidential session's audit draws and the records its
// tickets need; feed's goroutine only.
type partyAudit struct {
	picked  [][2]bool                   // per stage: A and B audited
	win     [][2][2]int                 // per stage and side: the window [t0, t] of an audited party (windows)
	records [][]*verify.PartyCommitment // per checked step, per hop (circuit position − firstCompute)
	inputs  [][2][]byte                 // per checked step: the MPC_INPUT bodies sent to A_1 and B_1
}

// windows draws, for every audited party, the step t its ticket commits to
// and the window [t0, t] it re-executes: t0 the earliest step whose ticket
// fits partyTicketBudget (t0 = t when even one step does not). t is drawn
// uniformly from steps + W − 1 choices, W the window at the last step,
// the W − 1 beyond the last step standing for the last: so every step,
// the last ones included, is in the window with about the same
// probability W / (steps + W − 1), and no party can tell from where it
// cheated whether a window will hold it (spec/11 §7.4).
func (s *session) windows() error {
	pa := s.conf.audit
	steps := len(pa.records)
	last := steps - 1
	pa.win = make([][2][2]int, len(s.conf.stages))
	for j, st := range s.conf.stages {
		for side := range 2 {
			if !pa.picked[j][side] {
				continue
			}
			idx := []int{st.a, st.b}[side] - firstCompute
			prior, view := make([]int, steps), make([]int, steps)
			for k := range steps {
				rec := pa.records[k][idx]
				prior[k], view[k] = ticketStepBytes(s.conf.cfg, st, side, rec.Start, rec.Count, j+1 < len(s.conf.stages))
			}
			w := last - windowStart(prior, view, partyTicketBudget) + 1
			var b [8]byte
			if _, err := rand.Read(b[:]); err != nil {
				return err
			}
			t := min(int(binary.BigEndian.Uint64(b[:])%uint64(steps+w-1)), last)
			pa.win[j][side] = [2]int{windowStart(prior[:t+1], view[:t+1], partyTicketBudget), t}
		}
	}
	return nil
}

// ticketStepBytes estimates what a step of count positions from start
// adds to a party ticket of the party on side of stage st: as a step
// before the window (its record and two STATEs) and as a window step (its
// record, PREP, input and output pieces, and the openings it received,
// which run to about an eighth of its PREP: docs/PERFORMANCE.md).
func ticketStepBytes(cfg mpc.Config, st confStage, side, start, count int, reshare bool) (prior, view int) {
	const record = verify.PartyStepSize - 64
	kvd := cfg.NKVHeads * cfg.HeadDim
	prior = record + 8 + 2*(64+16*(st.last-st.first)*count*kvd)
	a, b, err := mpc.StagePrepBytes(cfg, mpc.Params{}, st.first, st.last, start, count)
	if err != nil {
		return prior, partyTicketBudget + 1
	}
	prep := []int{a, b}[side]
	piece := 4 + 64 + 8*count*cfg.Dim
	view = record + 16 + prep + prep/8 + 2*piece
	if reshare {
		view += 2 * piece
	}
	return prior, view
}

// windowStart returns the earliest t0 ≤ t = len(view)−1 such that the
// steps before t0 as state rows and t0..t as views fit budget; t when none
// does.
func windowStart(prior, view []int, budget int) int {
	t := len(view) - 1
	total := 0
	for _, p := range prior[:t] {
		total += p
	}
	total += view[t]
	t0 := t
	// Move the window's start back while the ticket still fits.
	for t0 > 0 && total-prior[t0-1]+view[t0-1] <= budget {
		t0--
		total += view[t0] - prior[t0]
	}
	return t0
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

// revealAsk is one PARTY_REVEAL to send: of the steps [from, from+steps).
type revealAsk struct {
	what  hop.RevealWhat
	from  int
	steps int
}

// partyReveals returns the PARTY_REVEALs of every dealer and party, by
// circuit position: of an audited party's window (its view) and of the
// steps before it (its state rows) where its ticket needs them, else of no
// step (a cover: the relay sends an empty answer, and a dealer deals
// nothing again).
func (s *session) partyReveals() map[int][]revealAsk {
	pa, stages := s.conf.audit, s.conf.stages
	view := func(what hop.RevealWhat, j, side int) revealAsk {
		if j >= 0 && j < len(stages) && pa.picked[j][side] {
			w := pa.win[j][side]
			return revealAsk{what, w[0], w[1] - w[0] + 1}
		}
		return revealAsk{what, 0, 0}
	}
	prior := func(what hop.RevealWhat, j, side int) revealAsk {
		if pa.picked[j][side] && pa.win[j][side][0] > 0 {
			return revealAsk{what, 0, pa.win[j][side][0]}
		}
		return revealAsk{what, 0, 0}
	}
	asks := map[int][]revealAsk{}
	for j, st := range stages {
		asks[st.dealer] = []revealAsk{view(hop.RevealPrepA, j, 0), view(hop.RevealPrepB, j, 1),
			prior(hop.RevealMasksA, j, 0), prior(hop.RevealMasksB, j, 1)}
		for side, pos := range []int{st.a, st.b} {
			a := []revealAsk{view(hop.RevealPeerSent, j, 1-side)}
			if j+1 < len(stages) {
				// Channel 0 goes to the same side of the next stage, 1 to the other.
				a = append(a, view(hop.RevealSent0, j+1, side), view(hop.RevealSent1, j+1, 1-side))
			}
			if j > 0 {
				a = append(a, view(hop.RevealRecv0, j-1, side), view(hop.RevealRecv1, j-1, 1-side))
			}
			asks[pos] = append(a, prior(hop.RevealOpened, j, 1-side))
		}
	}
	return asks
}

// revealed is what the relays revealed: by circuit position and what, per
// step asked (from the ask's first), the bodies.
type revealed map[int]map[hop.RevealWhat][][][]byte

// gatherPartyTickets sends the session-end PARTY_REVEALs and builds the
// ticket of every audited party. It returns the tickets that check and an
// error naming each relay whose reveal does not match.
func (s *session) gatherPartyTickets(ctx context.Context) ([]*verify.PartyTicket, error) {
	pa := s.conf.audit
	if pa == nil || len(pa.records) == 0 {
		return nil, nil
	}
	if err := s.windows(); err != nil {
		return nil, err
	}
	asks := s.partyReveals()
	positions := make([]int, 0, len(asks))
	for pos := range asks {
		positions = append(positions, pos)
	}
	slices.Sort(positions)
	for _, pos := range positions {
		for _, a := range asks[pos] {
			if err := s.send(ctx, pos, &hop.PartyReveal{What: a.what, From: a.from, Steps: a.steps}); err != nil {
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
// (0 A, 1 B) from got, for its window [t0, t]. A revealed body that is not
// what the party's record says is the revealer's fault: the crosswise
// checks tied that record to the revealer's own commitment.
func (s *session) partyTicket(got revealed, j, side int) (*verify.PartyTicket, error) {
	pa, stages := s.conf.audit, s.conf.stages
	st := stages[j]
	partyPos := []int{st.a, st.b}
	pos := partyPos[side]
	peer := partyPos[1-side]
	idx := pos - firstCompute
	t0, tt := pa.win[j][side][0], pa.win[j][side][1]
	// one returns the body revealed by from for step k, asked from step
	// base, checked against want.
	one := func(from int, what hop.RevealWhat, k, base int, want [32]byte, name string) ([]byte, error) {
		bs := got[from][what]
		if k-base >= len(bs) || len(bs[k-base]) != 1 || verify.BodyHash(bs[k-base][0]) != want {
			return nil, s.fail(from, fmt.Errorf("client: hop %d revealed a %s of step %d that hop %d did not commit to", from, name, k, pos))
		}
		return bs[k-base][0], nil
	}
	t := &verify.PartyTicket{Commitment: pa.records[tt][idx]}
	for k, cs := range pa.records[:tt+1] {
		rec := cs[idx].PartyStep
		rec.Sig = [64]byte{}
		if k < t0 {
			// Its state rows: the opened ones are the other party's too,
			// the mask rows its dealer dealt it.
			opened, err := one(peer, hop.RevealOpened, k, 0, rec.State[0], "opened cache rows")
			if err != nil {
				return nil, err
			}
			masks, err := one(st.dealer, []hop.RevealWhat{hop.RevealMasksA, hop.RevealMasksB}[side], k, 0, rec.State[1], "mask rows")
			if err != nil {
				return nil, err
			}
			t.Prior = append(t.Prior, verify.PartyState{Record: rec, Opened: opened, Masks: masks})
			continue
		}
		v := verify.PartyView{Record: rec}
		var err error
		if v.Prep, err = one(st.dealer, []hop.RevealWhat{hop.RevealPrepA, hop.RevealPrepB}[side], k, t0, rec.Prep, "PREP"); err != nil {
			return nil, err
		}
		if ps := got[peer][hop.RevealPeerSent]; k-t0 >= len(ps) || verify.PeerHash(ps[k-t0]) != rec.Peer[1] {
			return nil, s.fail(peer, fmt.Errorf("client: hop %d revealed openings of step %d that hop %d did not commit to", peer, k, pos))
		} else {
			v.Peer = ps[k-t0]
		}
		if j == 0 {
			v.In = [][]byte{pa.inputs[k][side]}
		} else {
			prev := []int{stages[j-1].a, stages[j-1].b}
			in0, err := one(prev[side], hop.RevealSent0, k, t0, rec.In[0], "piece")
			if err != nil {
				return nil, err
			}
			in1, err := one(prev[1-side], hop.RevealSent1, k, t0, rec.In[1], "piece")
			if err != nil {
				return nil, err
			}
			v.In = [][]byte{in0, in1}
		}
		if j+1 < len(stages) {
			next := []int{stages[j+1].a, stages[j+1].b}
			out0, err := one(next[side], hop.RevealRecv0, k, t0, rec.Out[0], "piece")
			if err != nil {
				return nil, err
			}
			out1, err := one(next[1-side], hop.RevealRecv1, k, t0, rec.Out[1], "piece")
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
