package client

// A session is one built circuit with a compute session open on every
// compute hop, and the per-token loop over it (spec/03-compute.md §3):
//
//	anonymous:    TOKENS → S0 … Sn → LOGITS
//	confidential: DEAL → D_i, MPC_INPUT → A_1, B_1 → … → MPC_OUTPUT from
//	              A_k, B_k (confidential.go)
//
// A session is used by one generation at a time; it is not safe for
// concurrent use.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/origin"
)

type session struct {
	c       *origin.Circuit
	path    *Path
	modelID string
	setups  []*hop.Setup
	conf    *confState   // confidential mode only
	commits *commitCheck // anonymous mode with commitments (commit.go)
	pos     int          // positions the hops hold
	maxCtx  int          // the smallest context any hop allows
	timeout time.Duration
}

// first compute hop's circuit position: 1 (D_1, or S0 in anonymous mode).
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
func (s *session) setup(ctx context.Context) error {
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
		if ok.MaxContext > 0 && (s.maxCtx == 0 || ok.MaxContext < s.maxCtx) {
			s.maxCtx = ok.MaxContext
		}
	}
	return nil
}

// feed runs ids (positions s.pos on) through the circuit and returns the
// logits after the last one. With more set, another feed is expected, and
// in confidential mode the next step is dealt ahead while this one computes.
func (s *session) feed(ctx context.Context, ids []int, more bool) (*hop.Logits, error) {
	if s.conf != nil {
		return s.feedConfidential(ctx, ids, more)
	}
	var lg *hop.Logits
	for len(ids) > 0 {
		n := min(len(ids), hop.MaxTokens)
		if err := s.send(ctx, firstCompute, &hop.Tokens{Start: s.pos, IDs: ids[:n]}); err != nil {
			return nil, err
		}
		want := s.pos + n - 1
		for lg == nil || lg.Pos != want {
			from, m, err := s.recv(ctx)
			if err != nil {
				return nil, err
			}
			if cm, ok := m.(*hop.Commit); ok {
				if err := s.onCommit(from, cm); err != nil {
					return nil, err
				}
				continue
			}
			l, ok := m.(*hop.Logits)
			if !ok || from != s.lastPos() || l.Pos > want {
				return nil, s.fail(from, fmt.Errorf("client: hop %d sent an unexpected %v", from, m.Type()))
			}
			lg = l
		}
		if err := s.endStep(ctx, ids[:n]); err != nil {
			return nil, err
		}
		s.pos += n
		ids = ids[n:]
		if len(ids) > 0 {
			lg = nil
		}
	}
	return lg, nil
}
