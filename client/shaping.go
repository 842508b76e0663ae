package client

// Guard traffic shaping (spec/03-compute.md §8.1). With circuit.shape every
// message the client sends goes in the cells of a message of its size
// rounded up to a power of two (origin.SendShaped); the client applies the
// output head itself, so every answer is a FINAL_HIDDEN of one row, whatever
// the sampling. The guard's view of a request is then: the rounded size of
// each burst the client sends, the size of each answer (fixed per model),
// and the number of steps. With circuit.cover_tokens (anonymous mode) the
// number of steps is rounded up too: after the generation the client sends
// cover steps, PADDING of a decode step's size that the last hop answers
// with PADDING of the sizes of a step's answers (the hops' COMMITs when
// commitments are on, and a FINAL_HIDDEN), until the steps are a multiple
// of cover_tokens. Cover runs after the answer was
// given, on the same circuit, which is closed when it ends.

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/keys"
)

// coverTimeout bounds the cover steps of one generation.
const coverTimeout = 2 * time.Minute

// coverThenClose sends the generation's cover steps, if the policy asks
// for any, and closes s; the cover runs in the background, so the caller's
// answer is not delayed.
func (b *backend) coverThenClose(g *generation, s *session) {
	n := b.cfg.CoverTokens
	missing := 0
	if b.cfg.Shape && n > 0 && g.mode == ModeAnonymous && s.conf == nil && s.ends != nil && g.steps > 0 && g.steps%n != 0 {
		missing = n - g.steps%n
	}
	if missing == 0 && s.audit == nil && (s.conf == nil || s.conf.audit == nil) {
		s.close()
		return
	}
	if missing == 0 {
		go b.endAudits(g.req.Isolation, s)
		return
	}
	// A decode step's HIDDEN (one embedded row) and the FINAL_HIDDEN it
	// gets back.
	dim := s.ends.Config().Dim
	row := hop.Activations{Start: s.pos, N: 1, Dim: dim, Final: true, Data: make([]float32, dim)}
	up := len((&hop.Hidden{Activations: row}).Append(nil))
	// The answers of a real step: with commitments a COMMIT from every
	// compute hop, then the FINAL_HIDDEN (spec/11 §2.4).
	var down []int
	if s.commits != nil {
		for range s.setups {
			down = append(down, len((&hop.Commit{}).Append(nil)))
		}
	}
	down = append(down, len((&hop.Hidden{Out: true, Activations: row}).Append(nil)))
	ctx := b.life
	if ctx == nil {
		ctx = context.Background()
	}
	go func() {
		ctx, cancel := context.WithTimeout(ctx, coverTimeout)
		defer cancel()
		for range missing {
			if err := s.c.Cover(ctx, s.lastPos(), up, down...); err != nil {
				b.log.Debug("cover traffic ended early", "err", err)
				s.close()
				return
			}
		}
		b.endAudits(g.req.Isolation, s)
	}()
}

// endAudits gathers the tickets of s's audited steps (audit.go), queues
// them for submission and closes s. It runs after the session's last step
// and cover steps, on a goroutine of its own. A relay the gathering names
// (a revealer that refused, or whose bodies are not what it committed to)
// is marked faulty for the isolation key, as a failed check during the
// session would have it.
func (b *backend) endAudits(isolation string, s *session) {
	defer s.close()
	ctx := b.life
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, coverTimeout)
	defer cancel()
	if s.conf != nil && s.conf.audit != nil {
		ts, err := s.gatherPartyTickets(ctx)
		if err != nil {
			b.log.Info("party audit views not gathered", "err", err)
			for _, fp := range named(err) {
				b.relays.markFault(isolation, fp)
			}
		}
		for _, t := range ts {
			b.log.Debug("party ticket gathered", "step", t.Commitment.Step, "window", t.Window(), "bytes", t.Size())
			b.sub.add(s.modelID, t)
		}
		return
	}
	if s.audit == nil {
		return
	}
	ts, err := s.gatherTickets(ctx)
	if err != nil {
		b.log.Info("audit inputs not gathered", "err", err)
		for _, fp := range named(err) {
			b.relays.markFault(isolation, fp)
		}
	}
	for _, t := range ts {
		b.sub.add(s.modelID, t)
	}
}

// named returns the relays err's hop failures are pinned on (err may join
// several), the guard's excepted: a guard's failure is the link's, not a
// wrong answer.
func named(err error) []keys.Fingerprint {
	var out []keys.Fingerprint
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var hf *hopFailure
		if errors.As(e, &hf) && !hf.Guard {
			for _, fp := range []keys.Fingerprint{hf.Relay, hf.Also} {
				if fp != (keys.Fingerprint{}) && !slices.Contains(out, fp) {
					out = append(out, fp)
				}
			}
		}
	}
	walk(err)
	return out
}
