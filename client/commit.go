package client

// Commitments of an anonymous session (spec/11-verification.md §2.4): after
// SETUP_OK the client sends every compute hop COMMIT_ON with a fresh nonce;
// per step each hop sends a COMMIT, which the client rebuilds into the full
// commitment and checks: the hop's signature, the first hop's input hash
// against the token ids sent, and every hop's input hash against the
// previous hop's output hash. A failed check is a fault of the hop.

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/verify"
)

// commitCheck is one session's commitment state; feed's goroutine only.
type commitCheck struct {
	chains []*verify.Chain      // per compute hop
	step   []*verify.Commitment // the current step's, per compute hop
	got    int                  // COMMITs of the current step so far
	tokens *verify.Hasher
}

// startCommitments sends COMMIT_ON to every compute hop of an anonymous
// session (after setup, before the first input).
func (s *session) startCommitments(ctx context.Context) error {
	var nonce [32]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return fmt.Errorf("client: nonce: %w", err)
	}
	cc := &commitCheck{step: make([]*verify.Commitment, len(s.setups)), tokens: verify.NewHasher(verify.KindTokens)}
	for i, su := range s.setups {
		b := verify.Binding{ModelID: s.modelID, First: su.First, Last: su.Last, Nonce: nonce,
			InKind: verify.KindTokens, OutKind: dtypeKind(su.DType)}
		if i > 0 {
			b.InKind = dtypeKind(s.setups[i-1].DType)
		}
		if i == len(s.setups)-1 {
			b.OutKind = verify.KindLogits
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

// endStep waits for the COMMITs of the step ids (at s.pos) that have not
// arrived yet and checks that the step's hashes chain from the token ids
// through every hop.
func (s *session) endStep(ctx context.Context, ids []int) error {
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
	cc.tokens.Tokens(ids)
	want := cc.tokens.Sum()
	for i, c := range cc.step {
		if c.Start != s.pos || c.Count != len(ids) || c.In != want {
			return s.fail(firstCompute+i, fmt.Errorf("client: hop %d committed to another input than hop %d's output", firstCompute+i, firstCompute+i-1))
		}
		want = c.Out
		cc.step[i] = nil
	}
	cc.got = 0
	return nil
}
