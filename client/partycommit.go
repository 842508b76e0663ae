package client

// Commitments of a confidential session (spec/11 §7): after the SETUP_OKs
// the client sends every dealer and party COMMIT_ON with a fresh nonce; per
// step each sends a PARTY_COMMIT, which the client rebuilds into the full
// commitment and checks: its signature and chain, then, once every
// commitment of the step and both outputs are in, crosswise
// (verify.CheckParties): the first stage's inputs against the MPC_INPUT
// bodies sent, each stage's input pieces against the previous stage's
// output pieces, each party's PREP against its dealer's, the openings each
// party received against those the other party of its stage sent (commitment
// version 2), and the last stage's outputs against the MPC_OUTPUT bodies
// received. A failed check is a fault of both signers of the disagreeing
// pair, as for anonymous hops (commit.go).

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/verify"
)

// partyCheck is a confidential session's commitment state; feed's
// goroutine only.
type partyCheck struct {
	chains []*verify.PartyChain              // per hop, circuit position − firstCompute
	steps  map[int][]*verify.PartyCommitment // commitments received, by step (at most two steps)
}

// startPartyCommitments sends COMMIT_ON to every dealer and party of a
// confidential session (after setup, before the first DEAL or input).
func (s *session) startPartyCommitments(ctx context.Context) error {
	var nonce [32]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return fmt.Errorf("client: nonce: %w", err)
	}
	pc := &partyCheck{steps: map[int][]*verify.PartyCommitment{}}
	for i, su := range s.setups {
		role := verify.Dealer
		switch su.Role {
		case hop.RolePartyA:
			role = verify.PartyA
		case hop.RolePartyB:
			role = verify.PartyB
		}
		b := verify.PartyBinding{ModelID: s.modelID, First: su.First, Last: su.Last, Role: role, Nonce: nonce}
		id := s.path.Hops[firstCompute+i].Identity
		if len(id) != len(b.Identity) {
			return s.fail(firstCompute+i, fmt.Errorf("client: hop %d has no identity key", firstCompute+i))
		}
		copy(b.Identity[:], id)
		pc.chains = append(pc.chains, verify.NewPartyChain(b))
		if err := s.send(ctx, firstCompute+i, &hop.CommitOn{Nonce: nonce}); err != nil {
			return err
		}
	}
	s.conf.commits = pc
	return nil
}

// onPartyCommit checks one PARTY_COMMIT from circuit position from and
// keeps it for its step's crosswise check.
func (s *session) onPartyCommit(from int, m *hop.PartyCommit) error {
	pc, i := s.conf.commits, from-firstCompute
	// A dealer commits to a step when it deals it, at most one step ahead
	// of the inputs sent (s.conf.step is the next step to send).
	if pc == nil || i < 0 || i >= len(pc.chains) || m.Step > s.conf.step {
		return s.fail(from, fmt.Errorf("client: hop %d sent an unexpected PARTY_COMMIT", from))
	}
	c, ok := pc.chains[i].Commitment(&m.PartyStep)
	if !ok || !c.Verify() {
		return s.fail(from, fmt.Errorf("client: hop %d: commitment of step %d does not verify", from, m.Step))
	}
	if pc.steps[c.Step] == nil {
		pc.steps[c.Step] = make([]*verify.PartyCommitment, len(pc.chains))
	}
	pc.steps[c.Step][i] = c
	return nil
}

// checkParties waits for the commitments of step that have not arrived and
// checks them crosswise; in are the MPC_INPUT bodies sent to A_1 and B_1,
// out the MPC_OUTPUT bodies received from A_k and B_k.
func (s *session) checkParties(ctx context.Context, step int, inA, inB, outA, outB []byte) error {
	pc := s.conf.commits
	if pc == nil {
		return nil
	}
	for !pc.complete(step) {
		from, m, err := s.recv(ctx)
		if err != nil {
			return err
		}
		c, ok := m.(*hop.PartyCommit)
		if !ok {
			return s.fail(from, fmt.Errorf("client: hop %d sent an unexpected %v", from, m.Type()))
		}
		if err := s.onPartyCommit(from, c); err != nil {
			return err
		}
	}
	cs := pc.steps[step]
	delete(pc.steps, step)
	st := make([]verify.StageStep, len(s.conf.stages))
	for j := range st {
		st[j] = verify.StageStep{D: cs[3*j], A: cs[3*j+1], B: cs[3*j+2]}
	}
	err := verify.CheckParties(st, verify.BodyHash(inA), verify.BodyHash(inB), verify.BodyHash(outA), verify.BodyHash(outB))
	if err == nil {
		s.conf.audit.step(cs, inA, inB)
	}
	if pm, ok := err.(*verify.PartyMismatch); ok {
		// Either signer of the pair lied: both are avoided (as both ends
		// of a failed EXTEND are), so that a sender cannot frame its
		// receivers alone.
		pos := s.conf.stages[pm.Stage].pos(pm.Role)
		f := s.fail(pos, fmt.Errorf("client: hop %d, confidential step %d: %w", pos, step, err)).(*hopFailure)
		if pm.Sender != 0 {
			f.Also = s.path.Hops[s.conf.stages[pm.SenderStage].pos(pm.Sender)].Fingerprint
		}
		return f
	}
	return err
}

func (pc *partyCheck) complete(step int) bool {
	cs := pc.steps[step]
	if cs == nil {
		return false
	}
	for _, c := range cs {
		if c == nil {
			return false
		}
	}
	return true
}

// pos is the circuit position of a stage's signer.
func (cs confStage) pos(r verify.PartyRole) int {
	switch r {
	case verify.PartyA:
		return cs.a
	case verify.PartyB:
		return cs.b
	}
	return cs.dealer
}
