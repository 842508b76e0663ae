package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/unfed/unfed/compute/modeltest"
	"github.com/unfed/unfed/compute/mpc"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/verify"
	"github.com/unfed/unfed/relay/verify/verifytest"
)

// TestPartyRevealsSameShape: whatever was drawn, every dealer and party of
// a confidential session gets the same PARTY_REVEALs, in the same order,
// only their ranges differ (spec/11 §7.5); an audited party's window
// [t0, t] is asked exactly of the relays whose reveals its ticket needs
// (its dealer's PREPs, the other party of its stage's openings, the
// parties of the stages before and after on the channels to and from it),
// the steps before t0 of its dealer (its mask rows) and of the other party
// (the opened rows), and never anything of the party itself.
func TestPartyRevealsSameShape(t *testing.T) {
	stages := []confStage{{dealer: 1, a: 2, b: 3}, {dealer: 4, a: 5, b: 6}, {dealer: 7, a: 8, b: 9}}
	const t0, tt = 2, 5
	shape := func(asks map[int][]revealAsk) map[int][]hop.RevealWhat {
		out := map[int][]hop.RevealWhat{}
		for pos, as := range asks {
			for _, a := range as {
				out[pos] = append(out[pos], a.what)
			}
		}
		return out
	}
	fresh := func() *session {
		return &session{conf: &confState{stages: stages, audit: &partyAudit{picked: make([][2]bool, 3), win: make([][2][2]int, 3)}}}
	}
	base := shape(fresh().partyReveals())
	for j := range stages {
		for side := range 2 {
			s := fresh()
			s.conf.audit.picked[j][side] = true
			s.conf.audit.win[j][side] = [2]int{t0, tt}
			asks := s.partyReveals()
			got := shape(asks)
			for pos, w := range base {
				if len(got[pos]) != len(w) {
					t.Fatalf("stage %d side %d audited: hop %d gets %v, unaudited %v", j, side, pos, got[pos], w)
				}
				for i := range w {
					if got[pos][i] != w[i] {
						t.Fatalf("stage %d side %d audited: hop %d gets %v, unaudited %v", j, side, pos, got[pos], w)
					}
				}
			}
			st := stages[j]
			me, other := []int{st.a, st.b}[side], []int{st.a, st.b}[1-side]
			window, before := [2]int{t0, tt - t0 + 1}, [2]int{0, t0}
			want := map[[2]int][2]int{
				{st.dealer, int([]hop.RevealWhat{hop.RevealPrepA, hop.RevealPrepB}[side])}:   window,
				{other, int(hop.RevealPeerSent)}:                                             window,
				{st.dealer, int([]hop.RevealWhat{hop.RevealMasksA, hop.RevealMasksB}[side])}: before,
				{other, int(hop.RevealOpened)}:                                               before,
			}
			if j > 0 {
				p := stages[j-1]
				want[[2]int{[]int{p.a, p.b}[side], int(hop.RevealSent0)}] = window
				want[[2]int{[]int{p.a, p.b}[1-side], int(hop.RevealSent1)}] = window
			}
			if j+1 < len(stages) {
				n := stages[j+1]
				want[[2]int{[]int{n.a, n.b}[side], int(hop.RevealRecv0)}] = window
				want[[2]int{[]int{n.a, n.b}[1-side], int(hop.RevealRecv1)}] = window
			}
			for pos, as := range asks {
				for _, a := range as {
					w, ok := want[[2]int{pos, int(a.what)}]
					if !ok {
						w = [2]int{0, 0} // a cover
					}
					if a.from != w[0] || a.steps != w[1] {
						t.Errorf("stage %d side %d audited: hop %d asked %d for [%d,+%d), want [%d,+%d)", j, side, pos, a.what,
							a.from, a.steps, w[0], w[1])
					}
					if pos == me && ok {
						t.Errorf("the audited party itself is asked for its own view")
					}
				}
			}
		}
	}
}

// TestWindowStart: the window reaches back as far as the budget allows,
// always holds its last step, and a ticket of the whole session is chosen
// when it fits.
func TestWindowStart(t *testing.T) {
	prior := []int{1, 1, 1, 1, 1}
	view := []int{10, 10, 10, 10, 10}
	for _, c := range []struct{ budget, t, want int }{
		{100, 4, 0}, {50, 4, 0}, {49, 4, 1}, {24, 4, 3}, {14, 4, 4}, {5, 4, 4}, {100, 0, 0}, {21, 2, 1},
	} {
		if got := windowStart(prior[:c.t+1], view[:c.t+1], c.budget); got != c.want {
			t.Errorf("budget %d, t %d: t0 %d, want %d", c.budget, c.t, got, c.want)
		}
	}
}

// TestParseReveal: a reveal stream parses into its steps' bodies; a
// truncated one or one with trailing bytes is refused.
func TestParseReveal(t *testing.T) {
	b := []byte{0, 0, 0, 2, 0, 0, 0, 1, 9, 0, 0, 0, 0, 0, 0, 0, 0}
	got, err := parseReveal(b, 2)
	if err != nil || len(got) != 2 || len(got[0]) != 2 || len(got[0][0]) != 1 || len(got[0][1]) != 0 || len(got[1]) != 0 {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range [][]byte{b[:len(b)-1], append(append([]byte(nil), b...), 0), {0, 0, 0, 9}} {
		if _, err := parseReveal(bad, 2); err == nil {
			t.Errorf("%x accepted", bad)
		}
	}
}

// FuzzParseReveal: nothing panics, and an accepted stream has the steps
// asked for, whose bodies fit in it.
func FuzzParseReveal(f *testing.F) {
	f.Add([]byte{0, 0, 0, 2, 0, 0, 0, 1, 9, 0, 0, 0, 0, 0, 0, 0, 0}, uint8(2))
	f.Add([]byte{0, 0, 0, 0}, uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, steps uint8) {
		got, err := parseReveal(b, int(steps))
		if err != nil {
			return
		}
		n := 0
		for _, bs := range got {
			n += 4
			for _, x := range bs {
				n += 4 + len(x)
			}
		}
		if len(got) != int(steps) || n != len(b) {
			t.Fatalf("%d steps of %d bytes from %d bytes, %d steps asked", len(got), n, len(b), steps)
		}
	})
}

// TestPartyTicketWindowFromReveals: the client builds a windowed ticket of
// stage 2's party A from what its neighbours revealed for its window
// [t0, t] and for the steps before it (its opened rows from party B, its
// mask rows from its dealer): it re-executes Honest. An opened row or a
// mask row that is not what the party committed to is refused, naming
// the revealer, and no ticket is built.
func TestPartyTicketWindowFromReveals(t *testing.T) {
	vs := verifytest.NewSession(t, modeltest.Path(t, "stories260K.gguf"), "stories260K", [][2]int{{0, 2}, {2, 5}}, 7)
	vs.Step(t, []int{1, 403, 407})
	for _, id := range []int{29, 31, 37} {
		vs.Step(t, []int{id})
	}
	const steps, t0, tt = 4, 2, 3
	stages := []confStage{{dealer: 1, a: 2, b: 3}, {dealer: 4, a: 5, b: 6, hash: vs.Stages[1].PS.Hash()}}
	const j, side, pos, peer, dealer = 1, 0, 5, 6, 4
	build := func(mut func(got revealed)) (*verify.PartyTicket, error) {
		pa := &partyAudit{picked: make([][2]bool, 2), win: make([][2][2]int, 2)}
		pa.picked[j][side], pa.win[j][side] = true, [2]int{t0, tt}
		got := revealed{dealer: {}, peer: {}, 2: {}, 3: {}}
		for k := range steps {
			rec := make([]*verify.PartyCommitment, 6)
			rec[pos-firstCompute] = vs.Commitment(j, mpc.RoleA, k)
			pa.records = append(pa.records, rec)
			if k < t0 {
				opened, masks := vs.State(j, mpc.RoleA, k)
				got[peer][hop.RevealOpened] = append(got[peer][hop.RevealOpened], [][]byte{opened})
				got[dealer][hop.RevealMasksA] = append(got[dealer][hop.RevealMasksA], [][]byte{masks})
				continue
			}
			if k > tt {
				continue
			}
			v := vs.View(j, mpc.RoleA, k)
			got[dealer][hop.RevealPrepA] = append(got[dealer][hop.RevealPrepA], [][]byte{v.Prep})
			got[peer][hop.RevealPeerSent] = append(got[peer][hop.RevealPeerSent], v.Peer)
			got[2][hop.RevealSent0] = append(got[2][hop.RevealSent0], [][]byte{v.In[0]})
			got[3][hop.RevealSent1] = append(got[3][hop.RevealSent1], [][]byte{v.In[1]})
		}
		if mut != nil {
			mut(got)
		}
		s := &session{path: &Path{}, conf: &confState{stages: stages, audit: pa}}
		return s.partyTicket(got, j, side)
	}
	pt, err := build(nil)
	if err != nil {
		t.Fatal(err)
	}
	if pt.Window() != t0 || len(pt.Steps) != tt-t0+1 || pt.Commitment.Step != tt {
		t.Fatalf("ticket of %d prior steps and %d steps for step %d, want [%d, %d]", pt.Window(), len(pt.Steps), pt.Commitment.Step, t0, tt)
	}
	dec, err := verify.DecodePartyTicket(pt.Append(nil))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := verify.CheckParty(context.Background(), dec, vs.Stages[j].PS, vs.Layers); err != nil || v != verify.Honest {
		t.Fatalf("windowed ticket from the reveals: %v, %v", v, err)
	}
	flip := func(b []byte) []byte {
		c := append([]byte(nil), b...)
		c[len(c)-1] ^= 1
		return c
	}
	for name, c := range map[string]struct {
		mut func(revealed)
		by  int
	}{
		"opened rows": {func(got revealed) { got[peer][hop.RevealOpened][1][0] = flip(got[peer][hop.RevealOpened][1][0]) }, peer},
		"mask rows":   {func(got revealed) { got[dealer][hop.RevealMasksA][0][0] = flip(got[dealer][hop.RevealMasksA][0][0]) }, dealer},
		"missing":     {func(got revealed) { got[peer][hop.RevealOpened] = got[peer][hop.RevealOpened][:1] }, peer},
	} {
		_, err := build(c.mut)
		var hf *hopFailure
		if !errors.As(err, &hf) || !strings.Contains(err.Error(), fmt.Sprintf("hop %d revealed", c.by)) {
			t.Errorf("%s altered: %v, want hop %d's failure", name, err, c.by)
		}
	}
}
