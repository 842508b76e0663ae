package verify_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/modeltest"
	"github.com/unfed/unfed/compute/mpc"
	"github.com/unfed/unfed/compute/mpc/mpctest"
	"github.com/unfed/unfed/relay/verify"
	"github.com/unfed/unfed/relay/verify/verifytest"
)

// Party tickets (spec/11 §7.4) of stories260K in two confidential stages,
// [0,2) and [2,5), re-executed by verify.CheckParty.

var storiesStages = [][2]int{{0, 2}, {2, 5}}

// partyRun runs a session of a prompt step (3 positions) and two decode
// steps; miscompute, when set, is installed first.
func partyRun(t testing.TB, miscompute func(stage int, role mpc.Role, step int, y []uint64)) *verifytest.Session {
	t.Helper()
	s := verifytest.NewSession(t, modeltest.Path(t, "stories260K.gguf"), "stories260K", storiesStages, 5)
	s.Miscompute = miscompute
	s.Step(t, []int{1, 403, 407})
	s.Step(t, []int{29})
	s.Step(t, []int{31})
	return s
}

func checkParty(t testing.TB, s *verifytest.Session, stage int, role mpc.Role) (verify.Verdict, error) {
	t.Helper()
	// Through the encoding, as a verifier receives it.
	pt, err := verify.DecodePartyTicket(s.Ticket(stage, role).Append(nil))
	if err != nil {
		t.Fatal(err)
	}
	return verify.CheckParty(context.Background(), pt, s.Stages[stage].PS, s.Layers)
}

// TestCheckPartyHonest: every party of an honest session re-executes to its
// commitment.
func TestCheckPartyHonest(t *testing.T) {
	s := partyRun(t, nil)
	for stage := range storiesStages {
		for _, role := range []mpc.Role{mpc.RoleA, mpc.RoleB} {
			if v, err := checkParty(t, s, stage, role); err != nil || v != verify.Honest {
				t.Errorf("stage %d %v: %v, %v", stage+1, role, v, err)
			}
		}
	}
}

// TestCheckPartyMiscompute: a party that alters its output share after
// computing it from correct inputs, and commits to what it sent (so every
// crosswise check of the client passes), is Fraud on re-execution; the
// parties after it, which computed correctly on a wrong input, are Honest.
// With the comparison disabled (the mutation) the cheater passes: the
// verdict rests on re-execution, nothing else.
func TestCheckPartyMiscompute(t *testing.T) {
	for _, cheat := range []struct {
		stage int
		role  mpc.Role
	}{{0, mpc.RoleA}, {1, mpc.RoleB}} {
		s := partyRun(t, func(stage int, role mpc.Role, step int, y []uint64) {
			if stage == cheat.stage && role == cheat.role && step == 1 {
				y[len(y)-1] += 1 << 20
			}
		})
		for stage := range storiesStages {
			for _, role := range []mpc.Role{mpc.RoleA, mpc.RoleB} {
				want := verify.Honest
				if stage == cheat.stage && role == cheat.role {
					want = verify.Fraud
				}
				if v, err := checkParty(t, s, stage, role); err != nil || v != want {
					t.Errorf("cheater stage %d %v; stage %d %v: %v, %v, want %v", cheat.stage+1, cheat.role, stage+1, role, v, err, want)
				}
			}
		}
		undo := verify.SetSkipCompare()
		v, err := checkParty(t, s, cheat.stage, cheat.role)
		undo()
		if err != nil || v != verify.Honest {
			t.Fatalf("mutation: without the comparison the cheater is %v, %v; the test cannot tell", v, err)
		}
	}
}

// TestCheckPartyProvesNothing: a ticket whose view is not what the party
// committed to, whose records do not chain to the signed commitment, or
// whose signature fails proves nothing (an error, never Fraud), so no one
// can frame an honest party with a made-up view; a ticket for another
// stage's weights is not checkable.
func TestCheckPartyProvesNothing(t *testing.T) {
	s := partyRun(t, nil)
	ps := s.Stages[1].PS
	for _, tc := range []struct {
		name string
		mut  func(pt *verify.PartyTicket)
		want error
	}{
		{"input piece", func(pt *verify.PartyTicket) { pt.Steps[1].In[1] = flipped(pt.Steps[1].In[1]) }, verify.ErrInputs},
		{"PREP", func(pt *verify.PartyTicket) { pt.Steps[0].Prep = flipped(pt.Steps[0].Prep) }, verify.ErrInputs},
		{"opening received", func(pt *verify.PartyTicket) { pt.Steps[2].Peer[0] = flipped(pt.Steps[2].Peer[0]) }, verify.ErrInputs},
		{"opening dropped", func(pt *verify.PartyTicket) { pt.Steps[2].Peer = pt.Steps[2].Peer[1:] }, verify.ErrInputs},
		{"record and view", func(pt *verify.PartyTicket) {
			pt.Steps[1].Prep = flipped(pt.Steps[1].Prep)
			pt.Steps[1].Record.Prep = verify.BodyHash(pt.Steps[1].Prep)
		}, verify.ErrInputs},
		{"signature", func(pt *verify.PartyTicket) { pt.Commitment.Sig[0] ^= 1 }, verify.ErrSignature},
	} {
		pt, err := verify.DecodePartyTicket(s.Ticket(1, mpc.RoleA).Append(nil))
		if err != nil {
			t.Fatal(err)
		}
		tc.mut(pt)
		if v, err := verify.CheckParty(context.Background(), pt, ps, s.Layers); !errors.Is(err, tc.want) {
			t.Errorf("%s altered: %v, %v; want %v", tc.name, v, err, tc.want)
		}
	}
	pt := s.Ticket(1, mpc.RoleA)
	if _, err := verify.CheckParty(context.Background(), pt, s.Stages[0].PS, s.Layers); !errors.Is(err, verify.ErrShard) {
		t.Errorf("stage 2's ticket on stage 1's weights: %v", err)
	}
}

func flipped(b []byte) []byte {
	c := bytes.Clone(b)
	c[len(c)-1] ^= 1
	return c
}

// BenchmarkCheckParty is a verifier's cost per party ticket of a
// stories260K session of 32 positions (a prompt of 8 tokens in one step,
// then 24 generated, one step each) in the two stages [0,2) [2,5):
// re-executing one party's side of the whole session, and the ticket's
// size (ticket-bytes). The session itself (all four parties and both
// dealers, in memory) is timed once and reported as session-ms.
func BenchmarkCheckParty(b *testing.B) {
	s := verifytest.NewSession(b, modeltest.Path(b, "stories260K.gguf"), "stories260K", storiesStages, 21)
	t0 := time.Now()
	s.Step(b, []int{1, 403, 407, 263, 179, 284, 263, 431})
	for i := range 24 {
		s.Step(b, []int{29 + i})
	}
	session := time.Since(t0)
	for stage := range storiesStages {
		for _, role := range []mpc.Role{mpc.RoleA, mpc.RoleB} {
			b.Run(fmt.Sprintf("stage%d-%v", stage+1, role), func(b *testing.B) {
				pt := s.Ticket(stage, role)
				enc := pt.Append(nil)
				for b.Loop() {
					dec, err := verify.DecodePartyTicket(enc)
					if err != nil {
						b.Fatal(err)
					}
					if v, err := verify.CheckParty(context.Background(), dec, s.Stages[stage].PS, s.Layers); err != nil || v != verify.Honest {
						b.Fatal(v, err)
					}
				}
				b.ReportMetric(float64(len(enc)), "ticket-bytes")
				b.ReportMetric(float64(session.Milliseconds()), "session-ms")
			})
		}
	}
}

// windowRun runs a session of a prompt step (3 positions) and three decode
// steps, steps 0..3.
func windowRun(t testing.TB, miscompute func(stage int, role mpc.Role, step int, y []uint64)) *verifytest.Session {
	t.Helper()
	s := partyRun(t, miscompute)
	s.Step(t, []int{37})
	return s
}

func checkWindow(t testing.TB, s *verifytest.Session, stage int, role mpc.Role, t0, tt int) (verify.Verdict, error) {
	t.Helper()
	pt, err := verify.DecodePartyTicket(s.Window(stage, role, t0, tt).Append(nil))
	if err != nil {
		t.Fatal(err)
	}
	if pt.Window() != t0 || len(pt.Steps) != tt-t0+1 {
		t.Fatalf("ticket of window [%d,%d] decodes to %d prior steps and %d steps", t0, tt, pt.Window(), len(pt.Steps))
	}
	return verify.CheckParty(context.Background(), pt, s.Stages[stage].PS, s.Layers)
}

// TestCheckPartyWindow: a windowed ticket (the state rows of the steps
// before t0, the views of t0..t) re-executes Honest for every party of an
// honest session, whatever the window; a party that miscomputes its
// output at step 2 is Fraud in every window that holds step 2 and, since
// its cache rows were right, Honest in one that starts after it, while the
// parties after it stay Honest.
func TestCheckPartyWindow(t *testing.T) {
	s := windowRun(t, nil)
	for stage := range storiesStages {
		for _, role := range []mpc.Role{mpc.RoleA, mpc.RoleB} {
			for _, w := range [][2]int{{0, 3}, {1, 3}, {2, 3}, {3, 3}, {1, 2}, {2, 2}} {
				if v, err := checkWindow(t, s, stage, role, w[0], w[1]); err != nil || v != verify.Honest {
					t.Errorf("honest stage %d %v, window %v: %v, %v", stage+1, role, w, v, err)
				}
			}
		}
	}
	const cheatStage, cheatRole, cheatStep = 0, mpc.RoleB, 2
	s = windowRun(t, func(stage int, role mpc.Role, step int, y []uint64) {
		if stage == cheatStage && role == cheatRole && step == cheatStep {
			y[0] += 1 << 20
		}
	})
	for stage := range storiesStages {
		for _, role := range []mpc.Role{mpc.RoleA, mpc.RoleB} {
			for _, w := range [][2]int{{0, 3}, {2, 3}, {3, 3}, {1, 2}, {2, 2}, {0, 1}} {
				want := verify.Honest
				if stage == cheatStage && role == cheatRole && w[0] <= cheatStep && cheatStep <= w[1] {
					want = verify.Fraud
				}
				if v, err := checkWindow(t, s, stage, role, w[0], w[1]); err != nil || v != want {
					t.Errorf("cheater at step %d; stage %d %v, window %v: %v, %v, want %v", cheatStep, stage+1, role, w, v, err, want)
				}
			}
		}
	}
}

// TestCheckPartyWindowStateRows: state rows before the window that are not
// the ones the party signed prove nothing (ErrInputs, never Fraud), so an
// honest party cannot be framed with a made-up state; with that check
// removed (the mutation) the same ticket makes the honest party Fraud.
// Rows it signed but that are not of the step it signed them for are its
// own lie: Fraud.
func TestCheckPartyWindowStateRows(t *testing.T) {
	s := windowRun(t, nil)
	ps := s.Stages[1].PS
	tamper := func(which int) *verify.PartyTicket {
		pt, err := verify.DecodePartyTicket(s.Window(1, mpc.RoleA, 2, 3).Append(nil))
		if err != nil {
			t.Fatal(err)
		}
		st := &pt.Prior[1]
		if which == 0 {
			st.Opened = flipped(st.Opened)
		} else {
			st.Masks = flipped(st.Masks)
		}
		return pt
	}
	for which, name := range []string{"opened", "masks"} {
		if v, err := verify.CheckParty(context.Background(), tamper(which), ps, s.Layers); !errors.Is(err, verify.ErrInputs) {
			t.Errorf("%s rows altered: %v, %v; want %v", name, v, err, verify.ErrInputs)
		}
		undo := verify.SetSkipStateHash()
		v, err := verify.CheckParty(context.Background(), tamper(which), ps, s.Layers)
		undo()
		if err != nil || v != verify.Fraud {
			t.Fatalf("mutation: without the state check, %s rows altered give %v, %v: the test cannot tell", name, v, err)
		}
	}
	// Swap two steps' rows and their hashes in the records: the chain
	// breaks (proves nothing).
	pt, _ := verify.DecodePartyTicket(s.Window(1, mpc.RoleA, 2, 3).Append(nil))
	pt.Prior[0].Opened, pt.Prior[1].Opened = pt.Prior[1].Opened, pt.Prior[0].Opened
	pt.Prior[0].Record.State[0], pt.Prior[1].Record.State[0] = pt.Prior[1].Record.State[0], pt.Prior[0].Record.State[0]
	if v, err := verify.CheckParty(context.Background(), pt, ps, s.Layers); !errors.Is(err, verify.ErrInputs) {
		t.Errorf("state rows swapped with their hashes: %v, %v; want %v", v, err, verify.ErrInputs)
	}
	if v, err := checkWindow(t, s, 1, mpc.RoleA, 2, 3); err != nil || v != verify.Honest {
		t.Fatalf("untouched: %v, %v", v, err)
	}
}

// BenchmarkCheckPartyWindow is a verifier's cost per party ticket of a
// stories260K session of 32 or 128 positions (a prompt of 8 tokens in one
// step, then one token per step) in the two stages [0,2) [2,5), for stage
// 2's party B (the largest PREPs): the whole session's view (window from
// step 0, what version 4 tickets held; past 64 MiB it cannot be encoded,
// and is checked in memory) against a window of the last steps that fits
// 8 MiB (the client's budget). It reports the ticket's size, its window's
// steps and the session's steps.
func BenchmarkCheckPartyWindow(b *testing.B) {
	for _, positions := range []int{32, 128} {
		s := verifytest.NewSession(b, modeltest.Path(b, "stories260K.gguf"), "stories260K", storiesStages, 21)
		s.Step(b, []int{1, 403, 407, 263, 179, 284, 263, 431})
		for i := range positions - 8 {
			s.Step(b, []int{29 + i%200})
		}
		const stage, role = 1, mpc.RoleB
		last := positions - 8
		full := s.Window(stage, role, 0, last)
		start := func(tt int) int {
			t0 := tt
			for t0 > 0 && s.Window(stage, role, t0-1, tt).Size() <= 8<<20 {
				t0--
			}
			return t0
		}
		t0 := start(last)
		// The client draws t from last + W choices, W the window at the
		// last step, those past the last standing for the last (client
		// windows): the mean window, and how many choices put the least
		// and the most covered step in the window.
		w := last - t0 + 1
		choices := last + w
		covered := make([]int, last+1)
		var sum int
		for x := range choices {
			tt := min(x, last)
			w0 := start(tt)
			sum += tt - w0 + 1
			for k := w0; k <= tt; k++ {
				covered[k]++
			}
		}
		b.Logf("%d positions: window at the last step %d steps; mean window %.2f steps; a step is in the window for %d to %d of the %d choices of t",
			positions, w, float64(sum)/float64(choices), slices.Min(covered), slices.Max(covered), choices)
		for _, c := range []struct {
			name string
			pt   *verify.PartyTicket
		}{{"full", full}, {"window", s.Window(stage, role, t0, last)}} {
			b.Run(fmt.Sprintf("positions=%d/%s", positions, c.name), func(b *testing.B) {
				for b.Loop() {
					pt := c.pt
					if c.pt.Size() <= verify.MaxTicketBytes {
						dec, err := verify.DecodePartyTicket(c.pt.Append(nil))
						if err != nil {
							b.Fatal(err)
						}
						pt = dec
					}
					if v, err := verify.CheckParty(context.Background(), pt, s.Stages[stage].PS, s.Layers); err != nil || v != verify.Honest {
						b.Fatal(v, err)
					}
				}
				b.ReportMetric(float64(c.pt.Size()), "ticket-bytes")
				b.ReportMetric(float64(len(c.pt.Steps)), "window-steps")
				b.ReportMetric(float64(last+1), "steps")
			})
		}
	}
}

// cpuNow is the process's user and system CPU time so far.
func cpuNow() time.Duration {
	var r syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &r) != nil {
		return 0
	}
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}

// BenchmarkCheckPartyDrawn is what verification costs per audited party, in
// CPU, for a session as the testnet's confidential benchmark runs it
// (stories260K in the stages [0,2) [2,5), a 5-token prompt as one step then
// 31 steps of one token: 32 generated tokens), with the windows the client
// draws (spec/11 §7.4: t uniform over steps + W − 1 choices, the window the
// widest from t that fits 8 MiB): for every party and every choice of t,
// the verifier's decode and CheckParty of the ticket, and the dealer's
// dealing again of the steps its reveals need: [0, t] once, since a
// dealer keeps what it dealt again for the gathering's next reveals
// (relay/hop), against, before it did, [0, t] for the PREPs, [0, t0) for
// the mask rows (step 0 when t0 = 0) and step 0 twice for the covers of
// the other party's two reveals (dealer-before-cpu-ms/audit). It reports,
// per party, the mean verifier CPU per ticket and the mean dealer CPU per
// audit, the in-memory session's own CPU (4 parties, 2 dealers, no links),
// session-cpu-ms, and the dealer's CPU to deal step 0 alone, which a dealer
// dealt again for each of its 4 reveals in a session nobody near it
// audited (the covers) and now keeps as it deals it when it fits 8 MiB.
func BenchmarkCheckPartyDrawn(b *testing.B) {
	c0 := cpuNow()
	s := verifytest.NewSession(b, modeltest.Path(b, "stories260K.gguf"), "stories260K", storiesStages, 21)
	c1 := cpuNow()
	rows := []int{5}
	s.Step(b, []int{1, 403, 407, 263, 179})
	for i := range 31 {
		s.Step(b, []int{29 + i})
		rows = append(rows, 1)
	}
	session := cpuNow() - c1
	b.Logf("session setup %v CPU, %d steps %v CPU", c1-c0, len(rows), session)
	last := len(rows) - 1
	for stage := range storiesStages {
		ps := s.Stages[stage].PS
		first, end := s.Stages[stage].First, s.Stages[stage].Last
		deal := func(steps []int) time.Duration {
			d, err := mpc.NewStageDealer(ps.Config(), first, end, mpc.Params{}, 0, mpctest.NewRand(7))
			if err != nil {
				b.Fatal(err)
			}
			c := cpuNow()
			for _, r := range steps {
				if _, _, err := d.Next(r); err != nil {
					b.Fatal(err)
				}
				if _, err := d.StepMasks(mpc.RoleA); err != nil {
					b.Fatal(err)
				}
			}
			return cpuNow() - c
		}
		var cover, whole time.Duration
		for range 3 {
			cover += deal(rows[:1])
			whole += deal(rows)
		}
		for _, role := range []mpc.Role{mpc.RoleA, mpc.RoleB} {
			b.Run(fmt.Sprintf("stage%d-%v", stage+1, role), func(b *testing.B) {
				start := func(tt int) int {
					t0 := tt
					for t0 > 0 && s.Window(stage, role, t0-1, tt).Size() <= 8<<20 {
						t0--
					}
					return t0
				}
				w := last - start(last) + 1
				choices := last + w
				var verifier, dealer, before time.Duration
				var steps int
				step0 := cover / 3
				for b.Loop() {
					verifier, dealer, before, steps = 0, 0, 0, 0
					for x := range choices {
						tt := min(x, last)
						t0 := start(tt)
						steps += tt - t0 + 1
						enc := s.Window(stage, role, t0, tt).Append(nil)
						c := cpuNow()
						pt, err := verify.DecodePartyTicket(enc)
						if err != nil {
							b.Fatal(err)
						}
						if v, err := verify.CheckParty(context.Background(), pt, ps, s.Layers); err != nil || v != verify.Honest {
							b.Fatal(v, err)
						}
						verifier += cpuNow() - c
						d := deal(rows[:tt+1])
						dealer += d
						before += d + 2*step0
						if t0 > 0 {
							before += deal(rows[:t0])
						} else {
							before += step0
						}
					}
				}
				ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
				b.ReportMetric(ms(verifier)/float64(choices), "verifier-cpu-ms/ticket")
				b.ReportMetric(ms(dealer)/float64(choices), "dealer-cpu-ms/audit")
				b.ReportMetric(ms(before)/float64(choices), "dealer-before-cpu-ms/audit")
				b.ReportMetric(float64(steps)/float64(choices), "window-steps")
				b.ReportMetric(ms(session), "session-cpu-ms")
				b.ReportMetric(ms(whole)/3, "dealer-session-cpu-ms")
				b.ReportMetric(ms(cover)/3, "dealer-step0-cpu-ms")
			})
		}
	}
}
