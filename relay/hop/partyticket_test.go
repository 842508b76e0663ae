package hop_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/unfed/unfed/compute/mpc"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/verify"
)

// Party tickets (spec/11 §7.4) of the parties of the in-memory circuit
// D1 A1 B1 D2 A2 B2, built from what the relays around each party revealed
// (PARTY_REVEAL, §7.5) and re-executed by verify.CheckParty: the hops'
// commitments (version 4, with the openings' and the state rows' hashes) bind exactly what
// their neighbours reveal and the verifier re-executes.

// reveals sends every dealer and party of the committed circuit the
// PARTY_REVEALs of spec/11 §7.5 for the session's steps and returns the
// answers, parsed: got[pos][what][step] is the list of bodies.
func reveals(t *testing.T, cc *committedConf) map[int]map[hop.RevealWhat][][][]byte {
	t.Helper()
	steps := len(cc.hist)
	asks := map[int][]hop.RevealWhat{}
	for pos := range 6 {
		switch {
		case pos%3 == 0:
			asks[pos] = []hop.RevealWhat{hop.RevealPrepA, hop.RevealPrepB, hop.RevealMasksA, hop.RevealMasksB}
		case pos < 3:
			asks[pos] = []hop.RevealWhat{hop.RevealPeerSent, hop.RevealSent0, hop.RevealSent1, hop.RevealOpened}
		default:
			asks[pos] = []hop.RevealWhat{hop.RevealPeerSent, hop.RevealRecv0, hop.RevealRecv1, hop.RevealOpened}
		}
	}
	got := map[int]map[hop.RevealWhat][][][]byte{}
	for pos, whats := range asks {
		got[pos] = map[hop.RevealWhat][][][]byte{}
		for _, what := range whats {
			// One reveal at a time per hop: the answers of one hop come in
			// order, and this test client reads them in order.
			cc.send(pos, &hop.PartyReveal{What: what, Steps: steps})
			var stream []byte
			for {
				from, m := cc.recv()
				if _, ok := m.(*hop.PartyCommit); ok && from%3 == 0 {
					continue // a dealer's commitment to the step dealt ahead
				}
				r, ok := m.(*hop.PartyRevealed)
				if from != pos || !ok {
					t.Fatalf("hop %d sent %v after a PARTY_REVEAL to hop %d", from, m.Type(), pos)
				}
				stream = append(stream, r.Data...)
				if r.Final {
					break
				}
			}
			got[pos][what] = parseStream(t, stream, steps)
		}
	}
	return got
}

// parseStream parses a reveal's answer: per step, count u32 ‖ count ×
// (len u32 ‖ body).
func parseStream(t *testing.T, b []byte, steps int) [][][]byte {
	t.Helper()
	var out [][][]byte
	u32 := func() int {
		if len(b) < 4 {
			t.Fatal("reveal stream truncated")
		}
		v := int(binary.BigEndian.Uint32(b))
		b = b[4:]
		return v
	}
	for range steps {
		var bodies [][]byte
		for range u32() {
			n := u32()
			if len(b) < n {
				t.Fatal("reveal stream truncated")
			}
			bodies, b = append(bodies, b[:n]), b[n:]
		}
		out = append(out, bodies)
	}
	if len(b) != 0 {
		t.Fatalf("%d bytes after the reveal stream", len(b))
	}
	return out
}

// partyTicket builds the ticket of the party at circuit position pos (1,
// 2, 4 or 5) for the session's last step from what the relays around it
// revealed, never from itself: its stage-1 inputs are the client's own
// MPC_INPUTs; later inputs the previous stage's pieces on the channels
// to it; its PREPs from its dealer; the openings from the other party of
// its stage; its pieces from the next stage's parties that received them;
// for the steps before its window, t0, its opened cache rows from the
// other party of its stage and its mask rows from its dealer. The records
// are its commitments as the client received them.
func partyTicket(cc *committedConf, rv map[int]map[hop.RevealWhat][][][]byte, pos, t0 int) *verify.PartyTicket {
	stage, side := pos/3, pos%3-1 // side 0: A, 1: B
	dealer, peer := 3*stage, 3*stage+2-side
	prep := []hop.RevealWhat{hop.RevealPrepA, hop.RevealPrepB}[side]
	masks := []hop.RevealWhat{hop.RevealMasksA, hop.RevealMasksB}[side]
	pt := &verify.PartyTicket{}
	for k := range cc.hist {
		rec := cc.hist[k][pos].PartyStep
		rec.Sig = [64]byte{}
		if k < t0 {
			pt.Prior = append(pt.Prior, verify.PartyState{Record: rec, Opened: rv[peer][hop.RevealOpened][k][0], Masks: rv[dealer][masks][k][0]})
			continue
		}
		pv := verify.PartyView{Record: rec, Prep: rv[dealer][prep][k][0], Peer: rv[peer][hop.RevealPeerSent][k]}
		if stage == 0 {
			pv.In = [][]byte{cc.inputs[k][side]}
			// Channel 0 went to the same side of stage 2, channel 1 to the other.
			pv.Out = [][]byte{rv[4+side][hop.RevealRecv0][k][0], rv[5-side][hop.RevealRecv1][k][0]}
		} else {
			same, other := 1+side, 2-side
			pv.In = [][]byte{rv[same][hop.RevealSent0][k][0], rv[other][hop.RevealSent1][k][0]}
		}
		pt.Steps = append(pt.Steps, pv)
	}
	pt.Commitment = cc.hist[len(cc.hist)-1][pos]
	return pt
}

// TestPartyTicketsFromHops: every party of an honest committed session,
// its ticket gathered from its neighbours' reveals, re-executes to its
// commitments (so the dealer's PREPs dealt again from its seed are the
// ones it sent); a party that alters its output share
// after computing it (hop.SetMiscompute), which every crosswise check of
// the client lets through, is Fraud, and only it, in every window that
// holds the step it miscomputed (1); a window after it is Honest. The
// state rows before a window come from the other party of the stage and
// the dealer (dealt again from its seed), and are the party's.
func TestPartyTicketsFromHops(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cheat int // circuit position of the cheater, 0 for none
	}{{"honest", 0}, {"A1 miscomputes", 1}, {"B2 miscomputes", 5}} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cheat != 0 {
				role, first := mpc.Role((tc.cheat-1)%3), storiesRanges[tc.cheat/3][0]
				defer hop.SetMiscompute(func(_ *hop.Config, r mpc.Role, f, step int, y []uint64) {
					if r == role && f == first && step == 1 {
						y[len(y)-1] += 1 << 20
					}
				})()
			}
			cc := newCommittedConf(t)
			for k, id := range prompt(t)[:3] {
				if err := cc.run(id); err != nil {
					t.Fatalf("step %d: the crosswise checks: %v", k, err)
				}
			}
			rv := reveals(t, cc)
			for _, pos := range []int{1, 2, 4, 5} {
				for t0 := range 3 {
					pt, err := verify.DecodePartyTicket(partyTicket(cc, rv, pos, t0).Append(nil))
					if err != nil {
						t.Fatal(err)
					}
					r := storiesRanges[pos/3]
					v, err := verify.CheckParty(context.Background(), pt, preparedStage(t, r[0], r[1]), storiesLayers)
					want := verify.Honest
					if pos == tc.cheat && t0 <= 1 {
						want = verify.Fraud
					}
					if err != nil || v != want {
						t.Errorf("hop %d, window from %d: %v, %v; want %v", pos, t0, v, err, want)
					}
				}
			}
		})
	}
}

// TestPartyRevealRefused: a reveal of more steps than were run (or from a
// step not run), of what the relay's place has not (a dealer's openings or
// opened rows, a party's mask rows, a last-stage party's pieces sent, a
// first-stage party's pieces received), or in a session without
// commitments is bad-message.
func TestPartyRevealRefused(t *testing.T) {
	for _, c := range []struct {
		pos int
		m   *hop.PartyReveal
	}{
		{1, &hop.PartyReveal{What: hop.RevealPeerSent, Steps: 2}},
		{0, &hop.PartyReveal{What: hop.RevealPeerSent, Steps: 1}},
		{4, &hop.PartyReveal{What: hop.RevealSent0, Steps: 1}},
		{2, &hop.PartyReveal{What: hop.RevealRecv1, Steps: 1}},
		{1, &hop.PartyReveal{What: hop.RevealOpened, From: 1, Steps: 1}},
		{0, &hop.PartyReveal{What: hop.RevealMasksB, From: 5, Steps: 1}},
		{2, &hop.PartyReveal{What: hop.RevealMasksA, Steps: 1}},
		{3, &hop.PartyReveal{What: hop.RevealOpened, Steps: 1}},
	} {
		cc := newCommittedConf(t)
		if err := cc.run(prompt(t)[0]); err != nil {
			t.Fatal(err)
		}
		cc.send(c.pos, c.m)
		for {
			from, m := cc.recv()
			if _, ok := m.(*hop.PartyCommit); ok && from%3 == 0 {
				continue
			}
			e, ok := m.(*hop.Error)
			if from != c.pos || !ok || e.Code != hop.CodeBadMessage {
				t.Fatalf("hop %d, %+v: hop %d answered %v", c.pos, c.m, from, m)
			}
			break
		}
	}
	off := newConfRun(t, false)
	if err := off.run(prompt(t)[0]); err != nil {
		t.Fatal(err)
	}
	off.send(1, &hop.PartyReveal{What: hop.RevealPeerSent, Steps: 1})
	off.expectError(1, hop.CodeBadMessage)
}

// TestPartyRevealsAreCommitted: after a session of several steps, what
// every dealer and party reveals of each step hashes to exactly what it
// committed to at that step: the PREPs and mask rows a dealer deals again,
// and the openings, pieces and opened rows a party kept. A party keeps the
// buffers it sent and received, not copies (spec/11 §7.5), so this fails if
// a later step wrote over one of them. A dealer keeps what it dealt again
// for one reveal for the next ones; with nothing kept it deals again from
// step 0 for every reveal, with the same bodies.
func TestPartyRevealsAreCommitted(t *testing.T) {
	for _, keep := range []bool{true, false} {
		t.Run(fmt.Sprintf("dealer keeps %v", keep), func(t *testing.T) {
			if !keep {
				defer hop.SetMaxRedealt(0)()
			}
			testRevealsCommitted(t)
		})
	}
}

func testRevealsCommitted(t *testing.T) {
	cc := newCommittedConf(t)
	for k, id := range prompt(t)[:4] {
		if err := cc.run(id); err != nil {
			t.Fatalf("step %d: %v", k, err)
		}
	}
	rv := reveals(t, cc)
	one := func(pos int, what hop.RevealWhat, k int) [32]byte {
		bs := rv[pos][what][k]
		if len(bs) != 1 {
			t.Fatalf("hop %d revealed %d bodies of %d at step %d", pos, len(bs), what, k)
		}
		return verify.BodyHash(bs[0])
	}
	for k, cs := range cc.hist {
		for pos, c := range cs {
			var got, want [][32]byte
			switch {
			case pos%3 == 0:
				got = [][32]byte{one(pos, hop.RevealPrepA, k), one(pos, hop.RevealPrepB, k),
					one(pos, hop.RevealMasksA, k), one(pos, hop.RevealMasksB, k)}
				want = [][32]byte{c.Out[0], c.Out[1], c.State[0], c.State[1]}
			default:
				got = [][32]byte{verify.PeerHash(rv[pos][hop.RevealPeerSent][k]), one(pos, hop.RevealOpened, k)}
				want = [][32]byte{c.Peer[0], c.State[0]}
				if pos < 3 {
					got = append(got, one(pos, hop.RevealSent0, k), one(pos, hop.RevealSent1, k))
					want = append(want, c.Out[0], c.Out[1])
				} else {
					got = append(got, one(pos, hop.RevealRecv0, k), one(pos, hop.RevealRecv1, k))
					want = append(want, c.In[0], c.In[1])
				}
			}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("step %d, hop %d: revealed body %d does not hash to its commitment", k, pos, i)
				}
			}
		}
	}
}

// TestPartyRevealCover: a reveal of no step (a cover, spec/11 §7.5) is
// answered by one empty FINAL PARTY_REVEALED, by a dealer (which deals
// nothing again) and by a party alike, for every what of its place.
func TestPartyRevealCover(t *testing.T) {
	cc := newCommittedConf(t)
	for k, id := range prompt(t)[:2] {
		if err := cc.run(id); err != nil {
			t.Fatalf("step %d: %v", k, err)
		}
	}
	for pos, whats := range map[int][]hop.RevealWhat{
		0: {hop.RevealPrepA, hop.RevealPrepB, hop.RevealMasksA, hop.RevealMasksB},
		1: {hop.RevealPeerSent, hop.RevealSent0, hop.RevealSent1, hop.RevealOpened},
		5: {hop.RevealPeerSent, hop.RevealRecv0, hop.RevealRecv1, hop.RevealOpened},
	} {
		for _, what := range whats {
			cc.send(pos, &hop.PartyReveal{What: what, From: 1, Steps: 0})
			for {
				from, m := cc.recv()
				if _, ok := m.(*hop.PartyCommit); ok && from%3 == 0 {
					continue
				}
				r, ok := m.(*hop.PartyRevealed)
				if from != pos || !ok || !r.Final || len(r.Data) != 0 {
					t.Fatalf("cover of %d to hop %d: hop %d answered %v", what, pos, from, m)
				}
				break
			}
		}
	}
}

// TestPartyRevealRedealOrder: a dealer asked the PREPs of later steps, then
// the mask rows of earlier ones (kept from the first dealing), then a PREP
// of an earlier step (not kept: dealt again from step 0), reveals exactly
// what it committed to each time.
func TestPartyRevealRedealOrder(t *testing.T) {
	cc := newCommittedConf(t)
	for k, id := range prompt(t)[:4] {
		if err := cc.run(id); err != nil {
			t.Fatalf("step %d: %v", k, err)
		}
	}
	const dealer = 3
	for _, a := range []struct {
		what      hop.RevealWhat
		from, n   int
		commitOut int // 0, 1 PREP to A, B (Out); 2, 3 masks of A, B (State)
	}{{hop.RevealPrepA, 2, 2, 0}, {hop.RevealMasksA, 0, 2, 2}, {hop.RevealPrepB, 3, 1, 1}, {hop.RevealPrepB, 0, 1, 1}, {hop.RevealMasksB, 1, 3, 3}} {
		cc.send(dealer, &hop.PartyReveal{What: a.what, From: a.from, Steps: a.n})
		var stream []byte
		for {
			from, m := cc.recv()
			if _, ok := m.(*hop.PartyCommit); ok && from%3 == 0 {
				continue
			}
			r, ok := m.(*hop.PartyRevealed)
			if from != dealer || !ok {
				t.Fatalf("hop %d sent %v", from, m.Type())
			}
			stream = append(stream, r.Data...)
			if r.Final {
				break
			}
		}
		for i, bs := range parseStream(t, stream, a.n) {
			c := cc.hist[a.from+i][dealer]
			want := [][32]byte{c.Out[0], c.Out[1], c.State[0], c.State[1]}[a.commitOut]
			if len(bs) != 1 || verify.BodyHash(bs[0]) != want {
				t.Errorf("reveal %d of [%d,+%d): step %d is not what the dealer committed to", a.what, a.from, a.n, a.from+i)
			}
		}
	}
}
