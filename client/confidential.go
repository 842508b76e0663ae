package client

// The client's side of a confidential circuit (spec/10-confidential.md §2,
// §6): per position it embeds the token itself, sends each party of the
// first stage a share of the row (MPC_INPUT), asks every stage's dealer to
// deal the step (DEAL), and for the last position of a batch reads the last
// stage's two output shares (MPC_OUTPUT), adds them into the final hidden
// state and applies the final norm and the output head itself. No relay
// receives a token id, an embedding row, an activation or a logit.
//
//	DEAL(step, n) → D_1 … D_k            (ahead, while the previous batch runs)
//	MPC_INPUT     → A_1, B_1             (one per position; FINAL on the last)
//	MPC_OUTPUT    ← A_k, B_k             (FINAL positions only)

import (
	"context"
	"fmt"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/mpc"
	"github.com/unfed/unfed/relay/hop"
)

// maxConfBatch bounds the positions of one step: a prompt's positions
// cross every stage together, so its rounds are per layer per batch.
const maxConfBatch = 128

// maxConfPending bounds the PREP bytes one step may make a party queue; the
// client has at most two steps dealt at a time (the one running and the
// next), within the parties' default pending limit of 256 MiB.
const maxConfPending = 96 << 20

// confStage is one stage of a built confidential circuit: circuit positions
// of its dealer and parties (spec/10 §2), and its hash.
type confStage struct {
	dealer, a, b int
	hash         [8]byte
	first, last  int // the stage's layers
}

// confState is a session's confidential-mode state.
type confState struct {
	ends   *model.Ends
	cfg    mpc.Config // the model's shape, to size party tickets
	stages []confStage
	step   int // the next step to send inputs for
	ahead  int // rows of step `step` if its DEAL went ahead, else 0
	batch  int // most positions per step
	// commits checks the dealers' and parties' commitments (partycommit.go);
	// nil without commitments.
	commits *partyCheck
	// audit is the session's party audits (partyaudit.go); nil without.
	audit *partyAudit
}

// confidentialSetups returns the SETUP of every hop of a confidential path
// after the guard (D_1, A_1, B_1, D_2, …), with fresh edge secrets (spec/10
// §3.2), and the stages' circuit positions.
func confidentialSetups(p *Path, modelID string, cfg mpc.Config, nLayers int) ([]*hop.Setup, []confStage, error) {
	var out []*hop.Setup
	var stages []confStage
	// Edges into the next stage: A's same-side and cross pieces, B's.
	var inA, inAB, inB, inBA *hop.EdgeSecret
	for i, st := range p.Stages {
		r := st.Range
		deal, err := newSecret()
		if err != nil {
			return nil, nil, err
		}
		dealB, err := newSecret()
		if err != nil {
			return nil, nil, err
		}
		pair, err := newSecret()
		if err != nil {
			return nil, nil, err
		}
		d := &hop.Setup{Role: hop.RoleDealer, Input: hop.InputNone, First: r.First, Last: r.Last, ModelID: modelID,
			Deal: deal, DealB: dealB}
		a := &hop.Setup{Role: hop.RolePartyA, Input: hop.InputShares, First: r.First, Last: r.Last, ModelID: modelID,
			Pair: pair, Deal: deal}
		b := &hop.Setup{Role: hop.RolePartyB, Input: hop.InputShares, First: r.First, Last: r.Last, ModelID: modelID,
			Pair: pair, DealB: dealB}
		if i > 0 {
			// A_i receives A_{i-1}'s same-side piece and B_{i-1}'s cross
			// piece; B_i the reverse.
			a.In, a.InB = inA, inBA
			b.In, b.InB = inB, inAB
		}
		if i < len(p.Stages)-1 {
			for _, s := range []**hop.EdgeSecret{&inA, &inAB, &inB, &inBA} {
				if *s, err = newSecret(); err != nil {
					return nil, nil, err
				}
			}
			next := p.Stages[i+1].Range.Last
			a.Out, a.OutB, a.OutHops, a.NextLast = inA, inAB, 3, next
			b.Out, b.OutB, b.OutHops, b.NextLast = inB, inBA, 3, next
		}
		base := 1 + 3*i
		stages = append(stages, confStage{dealer: base, a: base + 1, b: base + 2,
			hash: mpc.StageHash(cfg, mpc.Params{}, r.First, r.Last), first: r.First, last: r.Last})
		out = append(out, d, a, b)
	}
	if len(stages) == 0 || p.Stages[0].Range.First != 0 || p.Stages[len(p.Stages)-1].Range.Last != nLayers {
		return nil, nil, fmt.Errorf("%w: confidential stages do not cover [0, %d)", ErrNoPath, nLayers)
	}
	return out, stages, nil
}

// confBatch is the most positions per step for a path: maxConfBatch, fewer
// when a step's PREPs would exceed maxConfPending at a party (sized at the
// start of the context; later steps' attention parts grow with it).
func confBatch(p *Path, cfg mpc.Config) int {
	n := maxConfBatch
	for _, st := range p.Stages {
		for n > 1 {
			_, b, err := mpc.StagePrepBytes(cfg, mpc.Params{}, st.Range.First, st.Range.Last, 0, n)
			if err != nil || b <= maxConfPending {
				break
			}
			n /= 2
		}
	}
	return n
}

// deal asks every dealer for step step, covering rows positions.
func (s *session) deal(ctx context.Context, step, rows int) error {
	for _, st := range s.conf.stages {
		// The dealer deals rows positions and each party runs them
		// (spec/03 §3.15): all three are paid before the DEAL.
		for _, pos := range []int{st.a, st.b, st.dealer} {
			if err := s.payHop(ctx, pos, rows); err != nil {
				return err
			}
		}
		if err := s.send(ctx, st.dealer, &hop.Deal{Step: step, Rows: rows}); err != nil {
			return err
		}
	}
	return nil
}

// feedConfidential runs ids (positions s.pos on) through a confidential
// circuit, at most s.conf.batch positions per step, and returns the logits
// after the last one, computed here from the reconstructed hidden state.
// Each step's DEAL goes out while the step before it runs; with more set,
// the next token's step is dealt ahead as well.
func (s *session) feedConfidential(ctx context.Context, ids []int, more bool) (*hop.Logits, error) {
	cs := s.conf
	first, last := cs.stages[0], cs.stages[len(cs.stages)-1]
	var lg *hop.Logits
	for len(ids) > 0 {
		n := min(len(ids), cs.batch)
		if cs.ahead > 0 {
			n = min(n, cs.ahead)
		} else if err := s.deal(ctx, cs.step, n); err != nil {
			return nil, err
		}
		x := make([]float32, 0, n*cs.ends.Config().Dim)
		for _, id := range ids[:n] {
			row, err := cs.ends.Embed(id)
			if err != nil {
				return nil, fmt.Errorf("client: %w", err)
			}
			x = append(x, row...)
		}
		step := uint32(cs.step)
		a, b, err := mpc.ShareInputs(x, n, first.hash, step, s.pos)
		if err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
		// B's input first: it crosses A (spec/10 §2), and A waits for B in
		// every round anyway. Every step is FINAL: its last position's
		// hidden state comes back.
		if err := s.send(ctx, first.b, &hop.MPCInput{Final: true, Body: b}); err != nil {
			return nil, err
		}
		if err := s.send(ctx, first.a, &hop.MPCInput{Final: true, Body: a}); err != nil {
			return nil, err
		}
		cs.step++
		cs.ahead = 0
		// The next step's correlated randomness is dealt while this one
		// runs, within the context the hops allow.
		ahead := min(len(ids)-n, cs.batch)
		if ahead == 0 && more {
			ahead = 1
		}
		if ahead > 0 && (s.maxCtx == 0 || s.pos+n+ahead <= s.maxCtx) {
			if err := s.deal(ctx, cs.step, ahead); err != nil {
				return nil, err
			}
			cs.ahead = ahead
		}
		s.onSent()
		var outA, outB []byte
		for outA == nil || outB == nil {
			from, m, err := s.recv(ctx)
			if err != nil {
				return nil, err
			}
			if pc, ok := m.(*hop.PartyCommit); ok {
				if err := s.onPartyCommit(from, pc); err != nil {
					return nil, err
				}
				continue
			}
			o, ok := m.(*hop.MPCOutput)
			if !ok || !o.Final || (from != last.a && from != last.b) {
				return nil, s.fail(from, fmt.Errorf("client: hop %d sent an unexpected %v", from, m.Type()))
			}
			if from == last.a && outA == nil {
				outA = o.Body
			} else if from == last.b && outB == nil {
				outB = o.Body
			} else {
				return nil, s.fail(from, fmt.Errorf("client: hop %d sent a second output", from))
			}
		}
		// The commitments are checked first: a party that altered what it
		// sent is named before its output is used.
		if err := s.checkParties(ctx, int(step), a, b, outA, outB); err != nil {
			return nil, err
		}
		h, err := mpc.ReconstructOutputs(outA, outB, last.hash, step)
		if err != nil {
			// Which party lied cannot be told from here: both are suspects.
			return nil, &hopFailure{Err: fmt.Errorf("client: confidential output: %w", err)}
		}
		logits, err := cs.ends.Logits(h)
		if err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
		s.pos += n
		lg = &hop.Logits{Pos: s.pos - 1, Dense: logits}
		ids = ids[n:]
	}
	return lg, nil
}
