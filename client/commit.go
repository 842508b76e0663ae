package client

// Commitments of an anonymous session (spec/11-verification.md §2.4): after
// SETUP_OK the client sends every compute hop COMMIT_ON with a fresh nonce;
// per step each hop sends a COMMIT, which the client rebuilds into the full
// commitment and checks: the hop's signature, the first hop's input hash
// against the embedded rows it sent, every hop's input hash against the
// previous hop's output hash, and the last hop's output hash against the
// FINAL_HIDDEN it received. A failed check is a fault of the hop.

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"

	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/verify"
)

// commitCheck is one session's commitment state; feed's goroutine only.
type commitCheck struct {
	chains []*verify.Chain      // per compute hop
	step   []*verify.Commitment // the current step's, per compute hop
	got    int                  // COMMITs of the current step so far
	in     *verify.Hasher       // the rows sent to the first hop this step
}

// input hashes rows sent to the first hop in the current step; a nil
// commitCheck (no commitments) ignores them.
func (cc *commitCheck) input(rows []float32) {
	if cc != nil {
		cc.in.Floats(rows)
	}
}

// startCommitments sends COMMIT_ON to every compute hop of an anonymous
// session (after setup, before the first input).
func (s *session) startCommitments(ctx context.Context) error {
	var nonce [32]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return fmt.Errorf("client: nonce: %w", err)
	}
	// The client embeds: the first hop's input is f32 rows (HIDDEN), and
	// the last hop's output the final hidden state (FINAL_HIDDEN).
	cc := &commitCheck{step: make([]*verify.Commitment, len(s.setups)), in: verify.NewHasher(verify.KindF32)}
	for i, su := range s.setups {
		b := verify.Binding{ModelID: s.modelID, First: su.First, Last: su.Last, Nonce: nonce,
			InKind: verify.KindF32, OutKind: dtypeKind(su.DType)}
		if i > 0 {
			b.InKind = dtypeKind(s.setups[i-1].DType)
		}
		if i == len(s.setups)-1 {
			b.OutKind = verify.KindFinal
		}
		id := s.path.Hops[firstCompute+i].Identity
		if len(id) != len(b.Identity) {
			return s.fail(firstCompute+i, fmt.Errorf("client: hop %d has no identity key", firstCompute+i))
		}
		copy(b.Identity[:], id)
		cc.chains = append(cc.chains, verify.NewChain(b))
		if err := s.send(ctx, firstCompute+i, &hop.CommitOn{Nonce: nonce}); err != nil {
			return err
		}
	}
	s.commits = cc
	return nil
}

func dtypeKind(d hop.DType) verify.Kind {
	if d == hop.F16 {
		return verify.KindF16
	}
	return verify.KindF32
}

// onCommit checks one COMMIT from circuit position from.
func (s *session) onCommit(from int, m *hop.Commit) error {
	cc, i := s.commits, from-firstCompute
	if cc == nil || i < 0 || i >= len(cc.chains) || cc.step[i] != nil {
		return s.fail(from, fmt.Errorf("client: hop %d sent an unexpected COMMIT", from))
	}
	c, ok := cc.chains[i].Commitment(&m.Step)
	if !ok || !c.Verify() {
		return s.fail(from, fmt.Errorf("client: hop %d: commitment of [%d,+%d) does not verify", from, m.Start, m.Count))
	}
	cc.step[i] = c
	cc.got++
	return nil
}

// endStep waits for the COMMITs of the step of n positions (at s.pos) that
// have not arrived yet and checks that the step's hashes chain from the
// rows sent (input) through every hop to final, the FINAL_HIDDEN row
// received.
func (s *session) endStep(ctx context.Context, n int, final []float32) error {
	cc := s.commits
	if cc == nil {
		return nil
	}
	for cc.got < len(cc.step) {
		from, m, err := s.recv(ctx)
		if err != nil {
			return err
		}
		c, ok := m.(*hop.Commit)
		if !ok {
			return s.fail(from, fmt.Errorf("client: hop %d sent an unexpected %v", from, m.Type()))
		}
		if err := s.onCommit(from, c); err != nil {
			return err
		}
	}
	want := cc.in.Sum()
	done := slices.Clone(cc.step)
	for i, c := range cc.step {
		if c.Start != s.pos || c.Count != n || c.In != want {
			if i == 0 {
				return s.fail(firstCompute, fmt.Errorf("client: hop %d committed to another input than the rows sent", firstCompute))
			}
			return s.fail(firstCompute+i, fmt.Errorf("client: hop %d committed to another input than hop %d's output", firstCompute+i, firstCompute+i-1))
		}
		want = c.Out
		cc.step[i] = nil
	}
	cc.got = 0
	out := verify.NewHasher(verify.KindFinal)
	out.Floats(final)
	if out.Sum() != want {
		return s.fail(s.lastPos(), fmt.Errorf("client: hop %d committed to another output than the FINAL_HIDDEN it sent", s.lastPos()))
	}
	s.audit.step(done)
	return nil
}
