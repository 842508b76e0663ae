package client

import (
	"testing"

	"github.com/unfed/unfed/relay/hop"
)

// TestPartyRevealsSameShape: whatever was drawn, every dealer and party of
// a confidential session gets the same PARTY_REVEALs, in the same order,
// only their step counts differ (spec/11 §7.5); and the full session is
// asked exactly of the relays whose reveals an audited party's ticket
// needs: its dealer, the other party of its stage, and the parties of the
// stages before and after on the channels to and from it.
func TestPartyRevealsSameShape(t *testing.T) {
	stages := []confStage{{dealer: 1, a: 2, b: 3}, {dealer: 4, a: 5, b: 6}, {dealer: 7, a: 8, b: 9}}
	const steps = 7
	shape := func(asks map[int][]revealAsk) map[int][]hop.RevealWhat {
		out := map[int][]hop.RevealWhat{}
		for pos, as := range asks {
			for _, a := range as {
				out[pos] = append(out[pos], a.what)
			}
		}
		return out
	}
	none := &session{conf: &confState{stages: stages, audit: &partyAudit{picked: make([][2]bool, 3)}}}
	base := shape(none.partyReveals(steps))
	for j := range stages {
		for side := range 2 {
			s := &session{conf: &confState{stages: stages, audit: &partyAudit{picked: make([][2]bool, 3)}}}
			s.conf.audit.picked[j][side] = true
			asks := s.partyReveals(steps)
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
			// What must be the full session, and nothing else.
			st := stages[j]
			me, other := []int{st.a, st.b}[side], []int{st.a, st.b}[1-side]
			want := map[[2]int]bool{
				{st.dealer, int([]hop.RevealWhat{hop.RevealPrepA, hop.RevealPrepB}[side])}: true,
				{other, int(hop.RevealPeerSent)}:                                           true,
			}
			if j > 0 {
				p := stages[j-1]
				want[[2]int{[]int{p.a, p.b}[side], int(hop.RevealSent0)}] = true
				want[[2]int{[]int{p.a, p.b}[1-side], int(hop.RevealSent1)}] = true
			}
			if j+1 < len(stages) {
				n := stages[j+1]
				want[[2]int{[]int{n.a, n.b}[side], int(hop.RevealRecv0)}] = true
				want[[2]int{[]int{n.a, n.b}[1-side], int(hop.RevealRecv1)}] = true
			}
			for pos, as := range asks {
				for _, a := range as {
					full := a.steps == steps
					if full != want[[2]int{pos, int(a.what)}] || (!full && a.steps != 1) {
						t.Errorf("stage %d side %d audited: hop %d asked %d for %d steps", j, side, pos, a.what, a.steps)
					}
					if pos == me && full {
						t.Errorf("the audited party itself is asked for its own view")
					}
				}
			}
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
