package client

// Guard traffic shaping (spec/03-compute.md §8.1). With circuit.shape every
// message the client sends goes in the cells of a message of its size
// rounded up to a power of two (origin.SendShaped), and greedy and sampled
// requests ask the last hop for the same top-k, so the guard's view of a
// request is: the rounded size of each burst the client sends, the size of
// each answer (fixed per model and top-k), and the number of steps. With
// circuit.cover_tokens (anonymous mode) the number of steps is rounded up
// too: after the generation the client sends cover steps, PADDING that the
// last hop answers with PADDING of the size of a LOGITS message, until the
// steps are a multiple of cover_tokens. Cover runs after the answer was
// given, on the same circuit, which is closed when it ends.

import (
	"context"
	"time"

	"github.com/unfed/unfed/relay/hop"
)

// coverTimeout bounds the cover steps of one generation.
const coverTimeout = 2 * time.Minute

// coverThenClose sends the generation's cover steps, if the policy asks
// for any, and closes s; the cover runs in the background, so the caller's
// answer is not delayed.
func (b *backend) coverThenClose(g *generation, s *session) {
	n := b.cfg.CoverTokens
	if !b.cfg.Shape || n <= 0 || g.mode != ModeAnonymous || s.conf != nil || g.lastLogits == nil || g.steps%n == 0 {
		s.close()
		return
	}
	missing := n - g.steps%n
	// A decode step's TOKENS (one id) and the LOGITS it gets back.
	up := len((&hop.Tokens{Start: s.pos, IDs: []int{0}}).Append(nil))
	down := len(g.lastLogits.Append(nil))
	ctx := b.life
	if ctx == nil {
		ctx = context.Background()
	}
	go func() {
		defer s.close()
		ctx, cancel := context.WithTimeout(ctx, coverTimeout)
		defer cancel()
		for range missing {
			if err := s.c.Cover(ctx, s.lastPos(), up, down); err != nil {
				b.log.Debug("cover traffic ended early", "err", err)
				return
			}
		}
	}()
}
