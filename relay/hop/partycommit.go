package hop

import (
	"github.com/unfed/unfed/compute/mpc"
	"github.com/unfed/unfed/relay/verify"
)

// Commitments of confidential parties and dealers (spec/11 §7): after a
// COMMIT_ON (before the session's first input or DEAL) every step ends with
// a PARTY_COMMIT to the client, sent before the step's output leaves:
//
//	party:  in0, in1  the step's MPC_INPUT, or its RESHARE pieces by channel
//	        out0, out1 its RESHARE pieces by channel, or its MPC_OUTPUT (out0)
//	        prep      the PREP the step used, hashed fragment by fragment as
//	                  it arrived (addPrep), the t-th PREP for step t
//	        peer      the MPC_PEER bodies sent to and received from the other
//	                  party during the step (verify.PeerHasher)
//	        state     the STATE rows it appended: opened (0) and its masks (1)
//	dealer: out0, out1 the PREPs dealt to A and to B
//	        state     the mask rows dealt to A (0) and to B (1)
//
// A party hashes a PREP's fragments as they arrive (Deliver) and the rest,
// and signs, on its worker goroutine; a dealer hashes and signs inside
// Deliver, before the step's PREPs leave.

// tamperPiece and tamperPrep are fault hooks for tests (spec/11 §6): a party
// alters an output piece (ch 0, 1; the MPC_OUTPUT is ch 0) after committing
// to it, a dealer a PREP (ch 0 to A, 1 to B); first is the stage's first
// layer. tamperPeer makes a party alter an MPC_PEER opening after hashing
// it; miscompute makes a party alter its output share after computing it
// from correct inputs, before it reshares or outputs it and commits (a lie
// only re-execution finds, spec/11 §7.4). They are nil in every production
// build; only this package's tests set them (export_test.go), or the
// unfedcheat build (cheat.go).
var (
	miscompute  func(cfg *Config, role mpc.Role, first, step int, y []uint64)
	tamperPiece func(cfg *Config, role mpc.Role, first, step, ch int, piece []byte)
	tamperPrep  func(cfg *Config, first, step, ch int, prep []byte)
	tamperPeer  func(cfg *Config, role mpc.Role, first, step int, body []byte)
)

// partyCommit is a party session's commitment state, set once by
// commitOn under partyRun.mu and then read by the worker alone.
type partyCommit struct {
	chain *verify.PartyChain
	kept  kept // what it sent and received, for reveals (partyreveal.go)
}

func partyBinding(ss *session, m *CommitOn, role verify.PartyRole) verify.PartyBinding {
	b := verify.PartyBinding{ModelID: ss.setup.ModelID, First: ss.setup.First, Last: ss.setup.Last, Role: role, Nonce: m.Nonce}
	copy(b.Identity[:], ss.svc.cfg.Identity.Public)
	return b
}

// commitOn turns commitments on for a party session; only before its first
// input.
func (pr *partyRun) commitOn(m *CommitOn) error {
	role := verify.PartyA
	if pr.role == mpc.RoleB {
		role = verify.PartyB
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.cm != nil || pr.begun {
		return coded(CodeBadMessage, "COMMIT_ON after the session started")
	}
	pr.cm = &partyCommit{chain: verify.NewPartyChain(partyBinding(pr.ss, m, role))}
	return nil
}

// commitment returns the session's commitment state, nil without.
func (pr *partyRun) commitment() *partyCommit {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.cm
}

// commitStep signs the step and sends PARTY_COMMIT (worker goroutine).
func (pr *partyRun) commitStep(st *verify.PartyStep) error {
	c, ok := pr.cm.chain.Commitment(st)
	if !ok {
		return coded(CodeInternal, "party commitment of step %d out of order", st.Step)
	}
	id := pr.ss.svc.cfg.Identity
	if err := c.Sign(id, id.Public); err != nil {
		return coded(CodeInternal, "commitment")
	}
	st.Sig = c.Sig
	pr.msg = (&PartyCommit{PartyStep: *st}).Append(pr.msg[:0])
	if pr.ss.sendRaw(pr.msg) != nil {
		return errSend
	}
	return nil
}

// commitOn turns commitments on for a dealer session; only before its
// first DEAL.
func (dr *dealerRun) commitOn(m *CommitOn) error {
	if dr.cm != nil || dr.d.Step() != 0 {
		return coded(CodeBadMessage, "COMMIT_ON after the session started")
	}
	// Deal from a seed kept for the session, so that a reveal can deal the
	// same PREPs again instead of keeping them.
	ss := dr.ss
	seed, rng := newDealRand()
	d, err := mpc.NewStageDealer(ss.svc.dealerCfg, ss.setup.First, ss.setup.Last, ss.svc.cfg.Dealer.Params, dr.max, rng)
	if err != nil {
		return coded(CodeInternal, "dealer setup failed")
	}
	dr.use(d)
	dr.seed = seed
	dr.cm = verify.NewPartyChain(partyBinding(dr.ss, m, verify.Dealer))
	return nil
}

// commitDeal signs the PREPs a, b of a step dealt at pos and sends
// PARTY_COMMIT (Deliver goroutine).
func (dr *dealerRun) commitDeal(step, pos, rows int, a, b []byte) error {
	st := &verify.PartyStep{Step: step, Start: pos, Count: rows, Out: [2][32]byte{verify.BodyHash(a), verify.BodyHash(b)}}
	for role := range st.State {
		m, err := dr.d.StepMasks(mpc.Role(role))
		if err != nil {
			return coded(CodeInternal, "cache masks of step %d", step)
		}
		st.State[role] = verify.BodyHash(m)
	}
	c, ok := dr.cm.Commitment(st)
	if !ok {
		return coded(CodeInternal, "dealer commitment of step %d out of order", step)
	}
	id := dr.ss.svc.cfg.Identity
	if err := c.Sign(id, id.Public); err != nil {
		return coded(CodeInternal, "commitment")
	}
	st.Sig = c.Sig
	return dr.ss.send(&PartyCommit{PartyStep: *st})
}
