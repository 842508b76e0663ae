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

// maxConfBatch bounds the positions the client sends a confidential circuit
// before it waits for their output: every party then holds at most this many
// PREPs of a batch plus those dealt ahead for the next one (mpc.MaxQueuedPreps).
const maxConfBatch = 16

// maxConfPending bounds the PREP bytes a batch may make a party queue.
const maxConfPending = 64 << 20

// confStage is one stage of a built confidential circuit: circuit positions
// of its dealer and parties (spec/10 §2), and its hash.
type confStage struct {
	dealer, a, b int
	hash         [8]byte
}

// confState is a session's confidential-mode state.
type confState struct {
	ends   *model.Ends
	stages []confStage
	dealt  int // steps dealt so far (DEAL sent for steps < dealt)
	batch  int // positions per batch
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
			hash: mpc.StageHash(cfg, mpc.Params{}, r.First, r.Last)})
		out = append(out, d, a, b)
	}
	if len(stages) == 0 || p.Stages[0].Range.First != 0 || p.Stages[len(p.Stages)-1].Range.Last != nLayers {
		return nil, nil, fmt.Errorf("%w: confidential stages do not cover [0, %d)", ErrNoPath, nLayers)
	}
	return out, stages, nil
}

// confBatch is the number of positions per batch for a path: maxConfBatch,
// fewer when the PREPs of a batch would exceed maxConfPending at a party.
func confBatch(p *Path, cfg mpc.Config) int {
	n := maxConfBatch
	for _, st := range p.Stages {
		_, b, err := mpc.StagePrepBytes(cfg, mpc.Params{}, st.Range.First, st.Range.Last, 0)
		if err != nil || b <= 0 {
			continue
		}
		n = min(n, max(1, maxConfPending/b))
	}
	return n
}

// maxDealCount is the most steps one DEAL may ask for (spec/10 §3.4).
const maxDealCount = 1024

// deal asks every dealer for the steps [s.conf.dealt, upTo), at most
// maxDealCount at a time.
func (s *session) deal(ctx context.Context, upTo int) error {
	cs := s.conf
	for cs.dealt < upTo {
		n := min(upTo-cs.dealt, maxDealCount)
		for _, st := range cs.stages {
			if err := s.send(ctx, st.dealer, &hop.Deal{Step: cs.dealt, Count: n}); err != nil {
				return err
			}
		}
		cs.dealt += n
	}
	return nil
}

// feedConfidential runs ids (positions s.pos on) through a confidential
// circuit and returns the logits after the last one, computed here from the
// reconstructed hidden state. With more set, the next step is dealt ahead
// while this batch computes.
func (s *session) feedConfidential(ctx context.Context, ids []int, more bool) (*hop.Logits, error) {
	cs := s.conf
	first, last := cs.stages[0], cs.stages[len(cs.stages)-1]
	var lg *hop.Logits
	for len(ids) > 0 {
		n := min(len(ids), cs.batch)
		if err := s.deal(ctx, s.pos+n); err != nil {
			return nil, err
		}
		for i, id := range ids[:n] {
			x, err := cs.ends.Embed(id)
			if err != nil {
				return nil, fmt.Errorf("client: %w", err)
			}
			step := uint32(s.pos + i)
			a, b, err := mpc.ShareInputs(x, first.hash, step)
			if err != nil {
				return nil, fmt.Errorf("client: %w", err)
			}
			final := i == n-1
			// B's input first: it crosses A (spec/10 §2), and A waits for B
			// in every round anyway.
			if err := s.send(ctx, first.b, &hop.MPCInput{Final: final, Body: b}); err != nil {
				return nil, err
			}
			if err := s.send(ctx, first.a, &hop.MPCInput{Final: final, Body: a}); err != nil {
				return nil, err
			}
		}
		// The next batch's (or token's) correlated randomness is dealt while
		// this one runs, within the context the hops allow.
		ahead := min(len(ids)-n, cs.batch)
		if ahead == 0 && more {
			ahead = 1
		}
		if ahead > 0 {
			upTo := s.pos + n + ahead
			if s.maxCtx > 0 {
				upTo = min(upTo, s.maxCtx)
			}
			if err := s.deal(ctx, upTo); err != nil {
				return nil, err
			}
		}
		step := uint32(s.pos + n - 1)
		var outA, outB []byte
		for outA == nil || outB == nil {
			from, m, err := s.recv(ctx)
			if err != nil {
				return nil, err
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
		h, err := mpc.ReconstructOutputs(outA, outB, last.hash, step)
		if err != nil {
			// Which party lied cannot be told from here: both are suspects.
			return nil, &hopFailure{Err: fmt.Errorf("client: confidential output: %w", err)}
		}
		logits, err := cs.ends.Logits(h)
		if err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
		lg = &hop.Logits{Pos: int(step), Dense: logits}
		s.pos += n
		ids = ids[n:]
	}
	return lg, nil
}
