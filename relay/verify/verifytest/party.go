package verifytest

// Confidential verification (spec/11 §7): an in-memory confidential session
// whose parties record their views and sign their commitments as committed
// parties do, and the party tickets of those sessions. A party can be made
// to compute wrongly (Miscompute).

import (
	"context"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/mpc"
	"github.com/unfed/unfed/compute/mpc/mpctest"
	"github.com/unfed/unfed/relay/verify"
)

// Session is a confidential session over stages, each a dealer and two
// parties joined by an in-memory pipe, every party committing to every
// step (spec/11 §7.1) with its own key.
type Session struct {
	Ends   *model.Ends
	Stages []*Stage
	Layers int
	Nonce  [32]byte
	// Miscompute, when set, may alter a party's output share y of a step
	// after the party computed it from correct inputs and before it
	// reshares or outputs it and commits: a party that sends and commits
	// to a wrong output, which only re-execution catches.
	Miscompute func(stage int, role mpc.Role, step int, y []uint64)

	step uint32
	pos  int
}

// Stage is one stage of a Session.
type Stage struct {
	PS      *mpc.PreparedStage
	First   int
	Last    int
	dealer  *mpc.StageDealer
	Parties [2]*Party
}

// Party is one party of a stage with its recorded views.
type Party struct {
	Key     ed25519.PrivateKey
	sp      *mpc.StageParty
	peer    *recPeer
	chain   *verify.PartyChain
	views   []verify.PartyView
	states  []verify.PartyState
	commits []*verify.PartyCommitment
	last    *verify.PartyCommitment
}

type edSigner ed25519.PrivateKey

func (s edSigner) Sign(msg []byte) []byte { return ed25519.Sign(ed25519.PrivateKey(s), msg) }

// NewSession loads the stages ranges of the model at path, whose parties
// commit to modelID; seed makes the dealers' randomness and the parties'
// keys deterministic.
func NewSession(t testing.TB, path, modelID string, ranges [][2]int, seed uint64) *Session {
	t.Helper()
	ends, err := model.LoadEnds(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ends.Close() })
	s := &Session{Ends: ends, Layers: ends.Config().NLayers, Nonce: [32]byte{byte(seed), 1}}
	for i, r := range ranges {
		w, err := mpc.LoadStageWeights(path, r[0], r[1])
		if err != nil {
			t.Fatal(err)
		}
		ps, err := mpc.PrepareStage(w, mpc.Params{})
		if err != nil {
			t.Fatal(err)
		}
		d, err := mpc.NewStageDealer(w.Config, r[0], r[1], mpc.Params{}, 0, mpctest.NewRand(seed+uint64(i)))
		if err != nil {
			t.Fatal(err)
		}
		st := &Stage{PS: ps, First: r[0], Last: r[1], dealer: d}
		pa, pb := mpctest.Pipe(64)
		for j, peer := range []*mpctest.Peer{pa, pb} {
			role := mpc.Role(j)
			sp, err := mpc.NewStageParty(role, ps, mpc.Options{})
			if err != nil {
				t.Fatal(err)
			}
			kseed := make([]byte, 32)
			kseed[0], kseed[1], kseed[2] = byte(seed), byte(i), byte(j)
			key := ed25519.NewKeyFromSeed(kseed)
			b := verify.PartyBinding{ModelID: modelID, First: r[0], Last: r[1], Role: verify.PartyRole(j + 1), Nonce: s.Nonce}
			copy(b.Identity[:], key.Public().(ed25519.PublicKey))
			st.Parties[j] = &Party{Key: key, sp: sp, peer: &recPeer{Peer: peer}, chain: verify.NewPartyChain(b)}
		}
		s.Stages = append(s.Stages, st)
	}
	return s
}

// Identity is the public key of a party.
func (p *Party) Identity() (id [32]byte) {
	copy(id[:], p.Key.Public().(ed25519.PublicKey))
	return id
}

// Step runs the positions of ids through every stage as one FINAL step and
// returns the hidden state the client reconstructs.
func (s *Session) Step(t testing.TB, ids []int) []float32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var x []float32
	for _, id := range ids {
		row, err := s.Ends.Embed(id)
		if err != nil {
			t.Fatal(err)
		}
		x = append(x, row...)
	}
	step, pos := s.step, s.pos
	inA, inB, err := mpc.ShareInputs(x, len(ids), s.Stages[0].PS.Hash(), step, pos)
	if err != nil {
		t.Fatal(err)
	}
	in := [2][][]byte{{inA}, {inB}}
	var outs [2][]byte
	for i, st := range s.Stages {
		ma, mb, err := st.dealer.Next(len(ids))
		if err != nil {
			t.Fatal(err)
		}
		preps := [2][]byte{ma, mb}
		var next [8]byte
		lastStage := i == len(s.Stages)-1
		if !lastStage {
			next = s.Stages[i+1].PS.Hash()
		}
		type res struct {
			out [][]byte
			err error
		}
		ch := make(chan res, 2)
		for j, p := range st.Parties {
			go func() {
				out, err := s.runParty(ctx, i, mpc.Role(j), p, preps[j], in[j], lastStage, next)
				ch <- res{out, err}
			}()
		}
		var got [2][][]byte
		for range 2 {
			r := <-ch
			if r.err != nil {
				t.Fatal(r.err)
			}
			if len(r.out) > 0 {
				// The piece on channel 0 went to the same side.
				if sh, err := mpc.DecodeShare(r.out[0]); err == nil {
					got[sh.Role] = r.out
				}
			}
		}
		if lastStage {
			outs = [2][]byte{got[0][0], got[1][0]}
			break
		}
		in = [2][][]byte{{got[0][0], got[1][1]}, {got[1][0], got[0][1]}}
	}
	h, err := mpc.ReconstructOutputs(outs[1], outs[0], s.Stages[len(s.Stages)-1].PS.Hash(), step)
	if err != nil {
		t.Fatal(err)
	}
	s.step++
	s.pos += len(ids)
	return h
}

// runParty runs one party's step as a committed party does and records its
// view; it returns its RESHARE pieces (same side, other side), or its
// MPC_OUTPUT body at the last stage.
func (s *Session) runParty(ctx context.Context, stage int, role mpc.Role, p *Party, prep []byte, in [][]byte,
	last bool, next [8]byte) ([][]byte, error) {
	kind := mpc.ShareInput
	if len(in) == 2 {
		kind = mpc.ShareReshare
	}
	step, pos := p.sp.NextStep(), p.sp.Pos()
	if err := p.sp.Prep(prep); err != nil {
		return nil, err
	}
	x, err := p.sp.Input(kind, in...)
	if err != nil {
		return nil, err
	}
	p.peer.sent, p.peer.recvd = nil, nil
	y, err := p.sp.Step(ctx, x, p.peer)
	if err != nil {
		return nil, err
	}
	if s.Miscompute != nil {
		s.Miscompute(stage, role, int(step), y)
	}
	var out [][]byte
	if last {
		out = [][]byte{p.sp.Output(y, step, pos)}
	} else {
		same, other, err := p.sp.Reshare(y, step, pos, next)
		if err != nil {
			return nil, err
		}
		out = [][]byte{same, other}
	}
	rec := verify.PartyStep{Step: int(step), Start: pos, Count: p.sp.Pos() - pos, Prep: verify.BodyHash(prep),
		Peer: [2][32]byte{verify.PeerHash(p.peer.sent), verify.PeerHash(p.peer.recvd)}}
	for k, b := range in {
		rec.In[k] = verify.BodyHash(b)
	}
	for k, b := range out {
		rec.Out[k] = verify.BodyHash(b)
	}
	var state [2][]byte
	for k, kind := range []mpc.StateKind{mpc.StateOpened, mpc.StateMasks} {
		if state[k], err = p.sp.StepState(kind); err != nil {
			return nil, err
		}
		rec.State[k] = verify.BodyHash(state[k])
	}
	c, ok := p.chain.Commitment(&rec)
	if !ok {
		return nil, errors.New("verifytest: commitment out of order")
	}
	if err := c.Sign(edSigner(p.Key), p.Key.Public().(ed25519.PublicKey)); err != nil {
		return nil, err
	}
	v := verify.PartyView{Record: rec, In: in, Prep: prep, Peer: p.peer.recvd}
	if !last {
		v.Out = out
	}
	p.views = append(p.views, v)
	p.states = append(p.states, verify.PartyState{Record: rec, Opened: state[0], Masks: state[1]})
	p.commits = append(p.commits, c)
	p.last = c
	return out, nil
}

// Ticket returns the party ticket of a party's last step with the whole
// session as its window.
func (s *Session) Ticket(stage int, role mpc.Role) *verify.PartyTicket {
	p := s.Stages[stage].Parties[role]
	return s.Window(stage, role, 0, len(p.views)-1)
}

// Window returns the party ticket of a party's step t whose window starts
// at step t0 ≤ t: the state rows of the steps before t0, the views of
// t0..t.
func (s *Session) Window(stage int, role mpc.Role, t0, t int) *verify.PartyTicket {
	p := s.Stages[stage].Parties[role]
	c := *p.commits[t]
	return &verify.PartyTicket{Commitment: &c, Prior: append([]verify.PartyState(nil), p.states[:t0]...),
		Steps: append([]verify.PartyView(nil), p.views[t0:t+1]...)}
}

// State returns the STATE messages (opened, masks) of a party's step k.
func (s *Session) State(stage int, role mpc.Role, k int) (opened, masks []byte) {
	st := s.Stages[stage].Parties[role].states[k]
	return st.Opened, st.Masks
}

// recPeer records the messages of one step in both directions, each in a
// slice of its own.
type recPeer struct {
	*mpctest.Peer
	sent, recvd [][]byte
}

func (r *recPeer) Send(ctx context.Context, msg []byte) error {
	r.sent = append(r.sent, append([]byte(nil), msg...))
	return r.Peer.Send(ctx, msg)
}

func (r *recPeer) Recv(ctx context.Context) ([]byte, error) {
	b, err := r.Peer.Recv(ctx)
	if err == nil {
		r.recvd = append(r.recvd, b)
	}
	return b, err
}

// Commitment returns a party's signed commitment of step k.
func (s *Session) Commitment(stage int, role mpc.Role, k int) *verify.PartyCommitment {
	c := *s.Stages[stage].Parties[role].commits[k]
	return &c
}

// View returns a party's view of step k (what its ticket holds in a
// window).
func (s *Session) View(stage int, role mpc.Role, k int) verify.PartyView {
	return s.Stages[stage].Parties[role].views[k]
}
