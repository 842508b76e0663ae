package verify

import (
	"context"
	"errors"
	"fmt"

	"github.com/unfed/unfed/compute/mpc"
)

// CheckParty re-executes the party side a party ticket holds on ps, the
// prepared weights of the committed stage, of a model of layers layers,
// over the ticket's window, and compares what the party sent (its openings
// and its output pieces) and the cache rows it appended with what it
// committed to (spec/11 §7.4). In order, each check costing more than the
// one before: the one signature, the stage, the records' chain against the
// signed one, the state rows' and the view's hashes against the records (a
// failure of any: the ticket proves nothing), then the party built at the
// window's start from its signed state rows, then the re-execution, step
// by step. Everything re-executed is the signer's own statement, so any
// step it cannot have computed, or computed otherwise, is Fraud: state
// rows or a PREP or input an honest party would not have, openings that
// do not replay, sent openings, outputs or appended rows other than the
// committed ones.
func CheckParty(ctx context.Context, t *PartyTicket, ps *mpc.PreparedStage, layers int) (Verdict, error) {
	c := t.Commitment
	if !c.Verify() {
		return 0, ErrSignature
	}
	first, last := ps.Range()
	outs := 2
	if last == layers {
		outs = 0
	}
	switch {
	case first != c.First || last != c.Last:
		return 0, fmt.Errorf("%w: stage [%d,%d), weights [%d,%d)", ErrShard, c.First, c.Last, first, last)
	case len(t.Steps[0].Out) != outs:
		return 0, fmt.Errorf("%w: %d output pieces per step from [%d,%d) of %d layers", ErrShard, len(t.Steps[0].Out), first, last, layers)
	case c.Start+c.Count > mpc.MaxContext:
		return 0, fmt.Errorf("%w: %d positions", ErrShard, c.Start+c.Count)
	}
	if err := CheckPartyView(t, ps.Hash()); err != nil {
		return 0, err
	}
	role := mpc.RoleA
	if c.Role == PartyB {
		role = mpc.RoleB
	}
	opened, masks := make([][]byte, len(t.Prior)), make([][]byte, len(t.Prior))
	for i := range t.Prior {
		opened[i], masks[i] = t.Prior[i].Opened, t.Prior[i].Masks
		r := &t.Prior[i].Record
		for _, b := range [][]byte{opened[i], masks[i]} {
			// The rows it signed must be of the step it signed them for.
			if st, err := mpc.DecodeState(b); err != nil || int(st.Pos) != r.Start || st.Rows != r.Count {
				return Fraud, nil
			}
		}
	}
	p, err := mpc.ResumeStageParty(role, ps, mpc.Options{MaxContext: c.Start + c.Count}, opened, masks)
	switch {
	case err != nil && !errors.Is(err, mpc.ErrMalformed) && !errors.Is(err, mpc.ErrMismatch) && !errors.Is(err, mpc.ErrVersion):
		return 0, fmt.Errorf("verify: stage party: %w", err)
	case err != nil:
		// Rows it signed that are not a party's state of these steps.
		return Fraud, nil
	case t.Window() > 0 && p.Pos() != t.Steps[0].Record.Start:
		return Fraud, nil
	}
	for i := range t.Steps {
		ok, err := replayStep(ctx, p, role, &t.Steps[i], outs > 0)
		if err != nil {
			return 0, err
		}
		if !ok {
			return Fraud, nil
		}
	}
	return Honest, nil
}

// CheckPartyView checks that the records chain to the signed commitment
// and that every view hashes to its record, its PREPs naming the stage
// hash stage: the ticket's pieces, PREPs and received openings are then
// provably the ones the signer computed on (spec/11 §7.4 step 3; a client
// checks this before it submits). It does not check the signature.
func CheckPartyView(t *PartyTicket, stage [8]byte) error {
	c := t.Commitment
	var chain, zero [32]byte
	for i := range t.Prior {
		s := &t.Prior[i]
		chain = PartyChainNext(chain, &s.Record)
		if !skipStateHash && (BodyHash(s.Opened) != s.Record.State[0] || BodyHash(s.Masks) != s.Record.State[1]) {
			return fmt.Errorf("%w: step %d's state rows are not what the party committed to", ErrInputs, i)
		}
		for _, b := range [][]byte{s.Opened, s.Masks} {
			if st, err := mpc.DecodeState(b); err == nil && st.Hash != stage {
				return fmt.Errorf("%w: state rows of step %d for another stage", ErrShard, i)
			}
		}
	}
	for i := range t.Steps {
		v := &t.Steps[i]
		chain = PartyChainNext(chain, &v.Record)
		r := &v.Record
		in := [2][32]byte{BodyHash(v.In[0])}
		if len(v.In) == 2 {
			in[1] = BodyHash(v.In[1])
		}
		out := [2][32]byte{r.Out[0], r.Out[1]}
		if len(v.Out) == 2 {
			out = [2][32]byte{BodyHash(v.Out[0]), BodyHash(v.Out[1])}
		}
		h, err := mpc.PrepStageHash(v.Prep)
		switch {
		case in != r.In || out != r.Out || BodyHash(v.Prep) != r.Prep || PeerHash(v.Peer) != r.Peer[1]:
			return fmt.Errorf("%w: step %d's view is not what the party committed to", ErrInputs, r.Step)
		case r.Prep == zero:
			return fmt.Errorf("%w: step %d without a PREP", ErrInputs, r.Step)
		case err == nil && h != stage:
			// Another stage hash is another parameter set than this
			// verifier's: not checkable here, not fraud.
			return fmt.Errorf("%w: PREP of step %d for another stage", ErrShard, r.Step)
		}
	}
	if chain != c.Chain {
		return fmt.Errorf("%w: the step records do not chain to the commitment", ErrInputs)
	}
	return nil
}

// skipCompare, set only by this package's tests (export_test.go), makes
// replayStep skip the comparison of what the party sent with what it
// committed to: the mutation that shows the tests depend on it.
var skipCompare bool

// skipStateHash, set only by this package's tests (export_test.go), makes
// CheckPartyView take the state rows before the window without checking
// them against the records: the mutation that shows that rows the party
// did not sign could frame it.
var skipStateHash bool

// replayStep re-runs one step of the party; ok is false when the party
// cannot have computed what it committed to. An error is the verifier's
// own (its context ended).
func replayStep(ctx context.Context, p *mpc.StageParty, role mpc.Role, v *PartyView, reshare bool) (ok bool, err error) {
	r := &v.Record
	if p.NextStep() != uint32(r.Step) || p.Pos() != r.Start {
		return false, nil
	}
	if p.Prep(v.Prep) != nil || p.NextRows() != r.Count {
		return false, nil
	}
	kind := mpc.ShareInput
	if len(v.In) == 2 {
		kind = mpc.ShareReshare
	}
	x, err := p.Input(kind, v.In...)
	if err != nil {
		return false, nil
	}
	peer := &replayPeer{recv: v.Peer}
	y, err := p.Step(ctx, x, peer)
	switch {
	case ctx.Err() != nil:
		return false, ctx.Err()
	case err != nil, peer.next != len(peer.recv):
		return false, nil
	case skipCompare:
		return true, nil
	case peer.sent.Sum() != r.Peer[0]:
		return false, nil
	}
	// The cache rows it appended, which the steps after build on.
	for i, k := range []mpc.StateKind{mpc.StateOpened, mpc.StateMasks} {
		b, err := p.StepState(k)
		if err != nil || BodyHash(b) != r.State[i] {
			return false, nil
		}
	}
	if !reshare {
		var want [32]byte
		if r.Out[0] != want {
			want = BodyHash(p.Output(y, uint32(r.Step), r.Start))
		}
		return r.Out[0] == want && r.Out[1] == [32]byte{}, nil
	}
	return piecesSum(v.Out, y, role, uint32(r.Step), r.Start, r.Count), nil
}

// piecesSum reports whether the two RESHARE pieces a party sent are well
// formed for its step and add up to its re-executed output share y.
func piecesSum(out [][]byte, y []uint64, role mpc.Role, step uint32, pos, rows int) bool {
	same, err1 := mpc.DecodeShare(out[0])
	other, err2 := mpc.DecodeShare(out[1])
	if err1 != nil || err2 != nil {
		return false
	}
	for _, s := range []*mpc.Share{same, other} {
		if s.Kind != mpc.ShareReshare || s.Step != step || int(s.Pos) != pos || s.Rows != rows || len(s.Vals) != len(y) ||
			s.Hash != same.Hash {
			return false
		}
	}
	if same.Role != role || other.Role != 1-role {
		return false
	}
	for i := range y {
		if same.Vals[i]+other.Vals[i] != y[i] {
			return false
		}
	}
	return true
}

// errRanOut: the party needs more openings than it committed to receiving.
var errRanOut = errors.New("verify: no more openings in the ticket")

// replayPeer is the other party as the ticket recorded it: Recv returns
// the openings received, in order; Send hashes what the re-executed party
// sends. open() calls Send on a goroutine of its own, concurrently with
// Recv, and waits for both before the next round.
type replayPeer struct {
	recv []([]byte)
	next int
	sent PeerHasher
}

func (r *replayPeer) Send(_ context.Context, msg []byte) error {
	r.sent.Write(msg)
	return nil
}

func (r *replayPeer) Recv(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if r.next == len(r.recv) {
		return nil, errRanOut
	}
	r.next++
	return r.recv[r.next-1], nil
}
