package client

// Audits of an anonymous session (spec/11-verification.md §3): for each
// compute hop of a session the client draws, with a CSPRNG, whether to
// audit it (probability verify-fraction per mille, from the consensus); an
// audited hop has every step of the session checked by one ticket of its
// last step (whose commitment's chains bind every step), so that one
// re-execution of the session checks all of them and the verifiers' work
// is p of the network's. At the end of the session,
// after any cover steps, it gathers every audited hop's inputs: the rows it
// embedded itself for the first hop, and REVEAL from hop i−1 for hop i. The checked
// hop sees nothing of this: REVEAL and REVEALED travel between the client
// and hop i−1 only. So that the end of a session looks the same to every
// hop whether or not anything was audited (the circuit is destroyed one
// REVEAL round trip after the last step either way), every hop that is not
// the last gets a REVEAL: of the prefix an audit needs, else of position 0
// alone. The client checks the revealed rows against the checked hop's
// input chain and hands the tickets to the submitter (submit.go), which
// sends them later, batched, over another circuit to a verifier.

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/verify"
)

// auditState is one session's audit draws; feed's goroutine only.
type auditState struct {
	dim    int
	rows   []byte               // the f32 rows sent to the first hop, in order
	starts []int                // every step's start
	picked []bool               // per compute hop: audited
	last   []*verify.Commitment // per audited compute hop, its latest step's commitment (its chains bind the session)
}

// newAuditState draws, for each of hops compute hops, whether to audit it
// with probability perMille/1000; nil when perMille ≤ 0.
func newAuditState(perMille, hops, dim int, draw func() int) *auditState {
	if perMille <= 0 {
		return nil
	}
	a := &auditState{dim: dim, picked: make([]bool, hops), last: make([]*verify.Commitment, hops)}
	for i := range a.picked {
		a.picked[i] = draw() < perMille
	}
	return a
}

// cryptoDraw is uniform in [0, 1000) from the CSPRNG (the bias of a 64-bit
// value reduced mod 1000 is below 2^-54).
func cryptoDraw() int {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("client: crypto/rand: %v", err)) // crypto/rand.Read does not fail (Go ≥ 1.24)
	}
	return int(binary.BigEndian.Uint64(b[:]) % 1000)
}

// input records rows sent to the first hop; a nil auditState ignores them.
func (a *auditState) input(rows []float32) {
	if a != nil {
		a.rows = verify.AppendFloats(a.rows, verify.KindF32, rows)
	}
}

// step records a checked step's commitments, one per compute hop (the
// latest of each audited hop is kept: it binds every earlier step).
func (a *auditState) step(cs []*verify.Commitment) {
	if a == nil {
		return
	}
	a.starts = append(a.starts, cs[0].Start)
	for i, c := range cs {
		if a.picked[i] {
			a.last[i] = c
		}
	}
}

// gatherTickets sends the session-end REVEALs and builds the ticket of
// every audited hop. It returns the tickets that check and an error naming
// each hop whose REVEALED rows do not match the next hop's chain (that
// hop's fault).
func (s *session) gatherTickets(ctx context.Context) ([]*verify.Ticket, error) {
	a := s.audit
	if a == nil || s.commits == nil || s.pos == 0 {
		return nil, nil
	}
	n := len(s.setups)
	// need[j]: the prefix hop j must reveal for hop j+1's audit.
	need := make([]int, n)
	for j := 0; j+1 < n; j++ {
		need[j] = 1 // cover: position 0 alone
		if c := a.last[j+1]; c != nil {
			need[j] = c.Start + c.Count
		}
		if err := s.send(ctx, firstCompute+j, &hop.Reveal{Start: 0, Count: need[j]}); err != nil {
			return nil, err
		}
	}
	revealed := make([][]float32, n)
	pending := n - 1
	for pending > 0 {
		from, m, err := s.recv(ctx)
		if err != nil {
			return nil, err
		}
		j := from - firstCompute
		rv, ok := m.(*hop.Revealed)
		if !ok || j < 0 || j+1 >= n || need[j] == 0 || rv.Start != len(revealed[j])/max(rv.Dim, 1) ||
			rv.Dim != a.dim || rv.Start+rv.N > need[j] {
			return nil, s.fail(from, fmt.Errorf("client: hop %d sent an unexpected %v after REVEAL", from, m.Type()))
		}
		revealed[j] = append(revealed[j], rv.Data...)
		if rv.Final {
			if len(revealed[j]) != need[j]*a.dim {
				return nil, s.fail(from, fmt.Errorf("client: hop %d revealed %d rows of %d", from, len(revealed[j])/a.dim, need[j]))
			}
			need[j] = 0
			pending--
		}
	}
	var out []*verify.Ticket
	var errs []error
	for i, c := range a.last {
		if c == nil {
			continue
		}
		end := c.Start + c.Count
		var prefix []byte
		if i == 0 {
			prefix = a.rows[:end*a.dim*4]
		} else {
			prefix = verify.AppendFloats(nil, c.InKind, revealed[i-1][:end*a.dim])
		}
		k := slices.Index(a.starts, c.Start)
		t, err := verify.NewTicket(c, a.dim, a.starts[:k+1], prefix)
		if err != nil {
			return nil, err
		}
		// A hop whose inputs do not check is not submitted; the others
		// still are.
		if err := verify.CheckInputs(t); err != nil {
			if i == 0 {
				errs = append(errs, fmt.Errorf("client: the rows sent do not match hop %d's chain: %w", firstCompute, err))
			} else {
				errs = append(errs, s.fail(firstCompute+i-1, fmt.Errorf("client: hop %d revealed rows that are not hop %d's inputs: %w", firstCompute+i-1, firstCompute+i, err)))
			}
			continue
		}
		out = append(out, t)
	}
	return out, errors.Join(errs...)
}

// auditPerMille is the fraction of steps to audit under consensus c: the
// client's own (audit_per_mille), else c's verify-fraction; ≤ 0: none.
func (b *backend) auditPerMille(c *directory.Consensus) int {
	switch p := b.cfg.AuditPerMille; {
	case p < 0:
		return 0
	case p > 0:
		return min(p, 1000)
	}
	return int(min(max(c.Param(directory.ParamVerifyFraction, directory.DefaultParams[directory.ParamVerifyFraction]), 0), 1000))
}
