package hop_test

import (
	"crypto/rand"
	"errors"
	"testing"

	"github.com/unfed/unfed/compute/mpc"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/verify"
)

// Commitments of confidential parties and dealers (spec/11 §7), on the
// in-memory circuit D1 A1 B1 D2 A2 B2 of stories260K.

// committedConf is a confidential circuit with COMMIT_ON sent to every hop.
type committedConf struct {
	*confClient
	chains []*verify.PartyChain // per circuit position
	steps  map[int][]*verify.PartyCommitment
	hist   [][]*verify.PartyCommitment // every step's commitments, checked
	inputs [][2][]byte                 // every step's MPC_INPUT bodies to A1 and B1
	off    bool                        // no COMMIT_ON: the baseline of the benchmark
}

func newCommittedConf(t testing.TB) *committedConf {
	return newConfRun(t, true)
}

func newConfRun(t testing.TB, on bool) *committedConf {
	t.Helper()
	ids := make([]*keys.Identity, 6)
	mods := map[int]func(*hop.Config){}
	for pos := range ids {
		id, err := keys.NewIdentity(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		ids[pos] = id
		mods[pos] = func(c *hop.Config) { c.Identity = id }
	}
	svcs := confServices(t, storiesRanges, mods)
	_, c := chainOf(t, 71, svcs)
	setups := confSetups(t, storiesRanges)
	c.setupAll(setups)
	cc := &committedConf{confClient: newConfClient(t, c, storiesRanges), steps: map[int][]*verify.PartyCommitment{}, off: !on}
	var nonce [32]byte
	rand.Read(nonce[:])
	for pos, su := range setups {
		role := []verify.PartyRole{verify.Dealer, verify.PartyA, verify.PartyB}[pos%3]
		b := verify.PartyBinding{ModelID: su.ModelID, First: su.First, Last: su.Last, Role: role, Nonce: nonce}
		copy(b.Identity[:], ids[pos].Public)
		cc.chains = append(cc.chains, verify.NewPartyChain(b))
		if on {
			c.send(pos, &hop.CommitOn{Nonce: nonce})
		}
	}
	return cc
}

// run runs one position (token id) as a FINAL step, with the next step
// dealt ahead, and checks its commitments; it returns CheckParties' verdict.
func (cc *committedConf) run(id int) error {
	t := cc.t
	t.Helper()
	k := cc.confClient.step
	cc.dealUpTo(k + 2)
	x, err := cc.ends.Embed(id)
	if err != nil {
		t.Fatal(err)
	}
	a, b, err := mpc.ShareInputs(x, 1, cc.hashes[0], uint32(k), k)
	if err != nil {
		t.Fatal(err)
	}
	cc.inputs = append(cc.inputs, [2][]byte{a, b})
	cc.send(1, &hop.MPCInput{Final: true, Body: a})
	cc.send(2, &hop.MPCInput{Final: true, Body: b})
	cc.confClient.step++
	outs := map[int][]byte{}
	for len(outs) < 2 || (!cc.off && !cc.complete(k)) {
		from, m := cc.recv()
		switch m := m.(type) {
		case *hop.MPCOutput:
			if (from != 4 && from != 5) || outs[from] != nil {
				t.Fatalf("unexpected MPC_OUTPUT from hop %d", from)
			}
			outs[from] = m.Body
		case *hop.PartyCommit:
			c, ok := cc.chains[from].Commitment(&m.PartyStep)
			if !ok || !c.Verify() {
				t.Fatalf("hop %d: commitment of step %d does not verify", from, m.Step)
			}
			if cc.steps[c.Step] == nil {
				cc.steps[c.Step] = make([]*verify.PartyCommitment, 6)
			}
			cc.steps[c.Step][from] = c
		default:
			t.Fatalf("hop %d sent %v", from, m.Type())
		}
	}
	if cc.off {
		return nil
	}
	s := cc.steps[k]
	delete(cc.steps, k)
	cc.hist = append(cc.hist, s)
	st := []verify.StageStep{{D: s[0], A: s[1], B: s[2]}, {D: s[3], A: s[4], B: s[5]}}
	return verify.CheckParties(st, verify.BodyHash(a), verify.BodyHash(b), verify.BodyHash(outs[4]), verify.BodyHash(outs[5]))
}

func (cc *committedConf) complete(k int) bool {
	for _, c := range cc.steps[k] {
		if c == nil {
			return false
		}
	}
	return cc.steps[k] != nil
}

// TestPartyCommitmentsHonest: every party and dealer commits to every step
// of an honest confidential session, the signatures and chains verify and
// the crosswise checks pass.
func TestPartyCommitmentsHonest(t *testing.T) {
	cc := newCommittedConf(t)
	for i, id := range prompt(t)[:4] {
		if err := cc.run(id); err != nil {
			t.Fatalf("step %d of an honest session: %v", i, err)
		}
	}
}

// TestPartyCommitmentsDetectTampering: a party that sends another piece
// than it committed to, or a dealer another PREP, is caught by the
// crosswise check of the step, at the signer whose commitment disagrees.
func TestPartyCommitmentsDetectTampering(t *testing.T) {
	const bad = 2 // the step tampered with
	flip := func(b []byte) {
		if len(b) > 0 {
			b[len(b)-1] ^= 1
		}
	}
	for _, tc := range []struct {
		name   string
		hook   func() func()
		stage  int
		role   verify.PartyRole
		sender verify.PartyRole // at the stage before, or the dealer of the same stage
	}{
		{"A1 piece to B2", func() func() {
			return hop.SetTamperPiece(func(_ *hop.Config, r mpc.Role, first, step, ch int, p []byte) {
				if r == mpc.RoleA && step == bad && ch == 1 && first == 0 {
					flip(p)
				}
			})
		}, 1, verify.PartyB, verify.PartyA},
		{"B1 piece to B2", func() func() {
			return hop.SetTamperPiece(func(_ *hop.Config, r mpc.Role, first, step, ch int, p []byte) {
				if r == mpc.RoleB && step == bad && ch == 0 && first == 0 {
					flip(p)
				}
			})
		}, 1, verify.PartyB, verify.PartyB},
		{"A2 output", func() func() {
			return hop.SetTamperPiece(func(_ *hop.Config, r mpc.Role, first, step, ch int, p []byte) {
				if r == mpc.RoleA && step == bad && first == 2 {
					flip(p)
				}
			})
		}, 1, verify.PartyA, 0},
		{"A2 opening to B2", func() func() {
			return hop.SetTamperPeer(func(_ *hop.Config, r mpc.Role, first, step int, p []byte) {
				if r == mpc.RoleA && step == bad && first == 2 {
					flip(p)
				}
			})
		}, 1, verify.PartyB, verify.PartyA},
		{"D2 PREP to A2", func() func() {
			return hop.SetTamperPrep(func(_ *hop.Config, first, step, ch int, p []byte) {
				if step == bad && ch == 0 && first == 2 {
					flip(p)
				}
			})
		}, 1, verify.PartyA, verify.Dealer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc := newCommittedConf(t)
			defer tc.hook()()
			for k, id := range prompt(t)[:bad+1] {
				err := cc.run(id)
				if k < bad {
					if err != nil {
						t.Fatalf("step %d before the tampering: %v", k, err)
					}
					continue
				}
				var pm *verify.PartyMismatch
				if !errors.As(err, &pm) || pm.Stage != tc.stage || pm.Role != tc.role || pm.Sender != tc.sender {
					t.Fatalf("tampered step: %v (%+v), want a mismatch at stage %d %v, sender %v", err, pm, tc.stage+1, tc.role, tc.sender)
				}
			}
		})
	}
}

// BenchmarkCommittedConfidentialStep is one decode step (one position)
// through the two-stage stories260K confidential circuit in process, with
// commitments off and on (six hops hash and sign a PARTY_COMMIT each; the
// client verifies six and checks them crosswise). Use -benchtime ≤ 500x.
func BenchmarkCommittedConfidentialStep(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			cc := newConfRun(b, on)
			id := prompt(b)[0]
			for b.Loop() {
				if err := cc.run(id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestPartyCommitOnLate: a dealer refuses COMMIT_ON after its first DEAL, a
// party after its first input (spec/11 §7.2): a commitment must cover the
// session from its start.
func TestPartyCommitOnLate(t *testing.T) {
	for _, pos := range []int{0, 1} {
		svcs := confServices(t, storiesRanges, map[int]func(*hop.Config){pos: func(c *hop.Config) {
			id, err := keys.NewIdentity(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			c.Identity = id
		}})
		_, c := chainOf(t, uint64(80+pos), svcs)
		c.setupAll(confSetups(t, storiesRanges))
		cc := newConfClient(t, c, storiesRanges)
		cc.dealUpTo(1)
		if pos == 1 {
			x, _ := cc.ends.Embed(1)
			a, _, err := mpc.ShareInputs(x, 1, cc.hashes[0], 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			c.send(1, &hop.MPCInput{Final: true, Body: a})
		}
		c.send(pos, &hop.CommitOn{Nonce: [32]byte{1}})
		c.expectError(pos, hop.CodeBadMessage)
	}
}
