package client

// A session is one built circuit with a compute session open on every
// compute hop, and the per-token loop over it (spec/03-compute.md §3):
//
//	plain: TOKENS → S0 … Sn → LOGITS
//	MPC:   dealer.Token(id) → MPC_STEP to A and B → … → S1 … Sn → LOGITS,
//	       each step's PREP sent to A and B ahead of its token
//
// A session is used by one generation at a time; it is not safe for
// concurrent use.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/unfed/unfed/compute/mpc"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/origin"
)

// mpcBatch is how many tokens the client shares with the pair before it
// asks for logits (FINAL), bounding what the parties queue.
const mpcBatch = 16

type session struct {
	c       *origin.Circuit
	path    *Path
	modelID string
	setups  []*hop.Setup
	dealer  *mpc.Dealer // MPC mode only
	// prepped is the dealer position whose PREP the parties have (-1:
	// none).
	prepped int
	pos     int // positions the hops hold
	maxCtx  int // the smallest context any hop allows
	timeout time.Duration
}

// first compute hop's circuit position: 1 (A, or S0 in plain mode).
const firstCompute = 1

// lastPos is the circuit position of the last shard.
func (s *session) lastPos() int { return len(s.path.Hops) - 1 }

func (s *session) close() {
	if s != nil && s.c != nil {
		s.c.Destroy()
	}
}

// fail pins err on the relay at circuit position pos.
func (s *session) fail(pos int, err error) error {
	if pos >= 0 && pos < len(s.path.Hops) {
		return &hopFailure{Relay: s.path.Hops[pos].Fingerprint, Guard: pos == 0, Err: err}
	}
	return &hopFailure{Err: err}
}

func (s *session) send(ctx context.Context, pos int, m hop.Msg) error {
	sctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.c.Send(sctx, pos, m.Append(nil)); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &hopFailure{Err: fmt.Errorf("client: send to hop %d: %w", pos, err)}
	}
	return nil
}

// recv returns the next hop message, turning hop errors, circuit death and
// timeouts into hopFailures.
func (s *session) recv(ctx context.Context) (int, hop.Msg, error) {
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	from, b, err := s.c.Recv(rctx)
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return 0, nil, ctx.Err()
		}
		return 0, nil, &hopFailure{Err: fmt.Errorf("client: circuit: %w", err)}
	}
	m, err := hop.Decode(b)
	if err != nil {
		return 0, nil, s.fail(from, fmt.Errorf("client: hop %d: %w", from, err))
	}
	if e, ok := m.(*hop.Error); ok {
		return 0, nil, s.fail(from, fmt.Errorf("client: hop %d: %w", from, e))
	}
	return from, m, nil
}

// setup opens the compute sessions and waits for every SETUP_OK.
func (s *session) setup(ctx context.Context, mpcCfg *mpc.Config) error {
	for i, m := range s.setups {
		if err := s.send(ctx, firstCompute+i, m); err != nil {
			return err
		}
	}
	s.maxCtx = 0
	for range s.setups {
		from, m, err := s.recv(ctx)
		if err != nil {
			return err
		}
		ok, isOK := m.(*hop.SetupOK)
		i := from - firstCompute
		if !isOK || i < 0 || i >= len(s.setups) {
			return s.fail(from, fmt.Errorf("client: hop %d answered SETUP with %v", from, m.Type()))
		}
		if ok.First != s.setups[i].First || ok.Last != s.setups[i].Last || ok.ModelID != s.modelID {
			return s.fail(from, fmt.Errorf("client: hop %d serves layers [%d,%d) of another model or range", from, ok.First, ok.Last))
		}
		if s.maxCtx == 0 || ok.MaxContext < s.maxCtx {
			s.maxCtx = ok.MaxContext
		}
	}
	if mpcCfg != nil {
		d, err := mpc.NewDealer(*mpcCfg, mpc.Params{}, rand.Reader)
		if err != nil {
			return fmt.Errorf("client: mpc dealer: %w", err)
		}
		s.dealer, s.prepped = d, -1
	}
	return nil
}

// sendPrep deals the correlated randomness of the dealer's next step and
// sends its PREP to both parties (05-mpc §5.1), unless they have it. A
// dealer error (a full context) is returned as is; the caller decides
// whether it matters.
func (s *session) sendPrep(ctx context.Context) error {
	if s.prepped == s.dealer.Pos() {
		return nil
	}
	a, b, err := s.dealer.Prep()
	if err != nil {
		return fmt.Errorf("client: mpc dealer: %w", err)
	}
	// B's first, as for the steps below.
	for _, m := range hop.SplitMPCStep(b, false, mpcStepFragment) {
		if err := s.send(ctx, firstCompute+1, m); err != nil {
			return err
		}
	}
	for _, m := range hop.SplitMPCStep(a, false, mpcStepFragment) {
		if err := s.send(ctx, firstCompute, m); err != nil {
			return err
		}
	}
	s.prepped = s.dealer.Pos()
	return nil
}

// mpcStepFragment is the largest MPC_STEP body the client sends; 0 means
// hop.MaxMPCStepFragment. Tests make it small to exercise fragmentation.
var mpcStepFragment = 0

// feed runs ids (positions s.pos on) through the circuit and returns the
// logits after the last one. With more set, another feed is expected, and
// in MPC mode the next step's PREP is sent ahead while this one computes.
func (s *session) feed(ctx context.Context, ids []int, more bool) (*hop.Logits, error) {
	var lg *hop.Logits
	for len(ids) > 0 {
		n := min(len(ids), hop.MaxTokens)
		if s.dealer != nil {
			n = min(len(ids), mpcBatch)
			for i, id := range ids[:n] {
				if err := s.sendPrep(ctx); err != nil {
					return nil, err
				}
				a, b, err := s.dealer.Token(id)
				if err != nil {
					return nil, fmt.Errorf("client: mpc dealer: %w", err)
				}
				final := i == n-1
				// B's step first: it crosses A, and A starts computing as
				// soon as its own step is whole, so B's would then cross a
				// busy relay and B would start late (A waits for B in every
				// round). On the qwen2.5-0.5B shape this halved the time
				// from the first byte sent to both steps delivered.
				for _, m := range hop.SplitMPCStep(b, final, mpcStepFragment) {
					if err := s.send(ctx, firstCompute+1, m); err != nil {
						return nil, err
					}
				}
				for _, m := range hop.SplitMPCStep(a, final, mpcStepFragment) {
					if err := s.send(ctx, firstCompute, m); err != nil {
						return nil, err
					}
				}
			}
			// The next step's PREP goes while this batch is in flight, so
			// the parties evaluate its lookup keys before its token is
			// known. At a full context there is no next step: the dealer's
			// error would come back from Token if one were asked for.
			// Within a long prompt the next batch follows anyway.
			if (more || len(ids) > n) && s.dealer.Pos() < s.maxCtx {
				if err := s.sendPrep(ctx); err != nil && !errors.Is(err, mpc.ErrContextFull) {
					return nil, err
				}
			}
		} else if err := s.send(ctx, firstCompute, &hop.Tokens{Start: s.pos, IDs: ids[:n]}); err != nil {
			return nil, err
		}
		want := s.pos + n - 1
		for lg == nil || lg.Pos != want {
			from, m, err := s.recv(ctx)
			if err != nil {
				return nil, err
			}
			l, ok := m.(*hop.Logits)
			if !ok || from != s.lastPos() || l.Pos > want {
				return nil, s.fail(from, fmt.Errorf("client: hop %d sent an unexpected %v", from, m.Type()))
			}
			lg = l
		}
		s.pos += n
		ids = ids[n:]
		if len(ids) > 0 {
			lg = nil
		}
	}
	return lg, nil
}
