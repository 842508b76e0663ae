package client

// A session is one built circuit with a compute session open on every
// compute hop, and the per-token loop over it (spec/03-compute.md §3):
//
//	anonymous:    HIDDEN → S0 … Sn → FINAL_HIDDEN (the client embeds and
//	              applies the head)
//	confidential: DEAL → D_i, MPC_INPUT → A_1, B_1 → … → MPC_OUTPUT from
//	              A_k, B_k (confidential.go)
//
// A session is used by one generation at a time; it is not safe for
// concurrent use.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/directory"
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
	audit   *auditState  // audits drawn, with commitments and p > 0 (audit.go)
	ends    *model.Ends  // anonymous mode: embedding, final norm, output head
	pos     int          // positions the hops hold
	maxCtx  int          // the smallest context any hop allows
	// awaiting counts the SETUP_OKs still due; opened marks the hops that
	// answered (sendSetups).
	awaiting int
	opened   []bool
	timeout  time.Duration
	shape    bool // send every message shaped (shaping.go)
	// held: the circuit holds what is sent (origin.Circuit.Hold) until
	// the first batch's first HIDDEN is sent, so a pipelined first flight
	// leaves in one write.
	held bool
	// pay, when set, pays each compute hop and dealer ahead of its work
	// (pay.go), under the consensus payCons; paid[pos] is what the hop at
	// circuit position pos holds.
	pay     *payer
	payCons *directory.Consensus
	paid    []int
	// sent, when set, runs once the first feed's inputs have left the
	// client (onSent), before its answer is awaited.
	sent func()
}

// rowsPool and msgPool keep a prompt's embedded rows and encoded messages
// between requests: buffers new each time are fresh pages, each a page
// fault the first time it is written (docs/PERFORMANCE.md, sixth look).
var (
	rowsPool = sync.Pool{New: func() any { return new([]float32) }}
	msgPool  = sync.Pool{New: func() any { return new([]byte) }}
)

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
	send := s.c.Send
	if s.shape {
		send = s.c.SendShaped
	}
	bp := msgPool.Get().(*[]byte)
	defer msgPool.Put(bp)
	*bp = m.Append((*bp)[:0])
	if err := send(sctx, pos, *bp); err != nil { // a send keeps nothing of the message
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &hopFailure{Err: fmt.Errorf("client: send to hop %d: %w", pos, err)}
	}
	return nil
}

// flush writes what the circuit holds (see held).
func (s *session) flush() error {
	if !s.held {
		return nil
	}
	s.held = false
	if err := s.c.Flush(); err != nil {
		return &hopFailure{Err: fmt.Errorf("client: send: %w", err)}
	}
	return nil
}

// recv returns the next hop message, turning hop errors, circuit death and
// timeouts into hopFailures.
func (s *session) recv(ctx context.Context) (int, hop.Msg, error) {
	if err := s.flush(); err != nil {
		return 0, nil, err
	}
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
	if err := s.sendSetups(ctx); err != nil {
		return err
	}
	for s.awaiting > 0 {
		from, m, err := s.recv(ctx)
		if err != nil {
			return err
		}
		if err := s.onSetupOK(from, m); err != nil {
			return err
		}
	}
	return nil
}

// sendSetups sends every hop its SETUP and returns without waiting: the
// SETUP_OKs are counted in s.awaiting, and an anonymous circuit takes them
// with the answer to its first batch (feedAnonymous), which it sends at once
// behind the SETUPs (spec/03-compute.md §7): each hop handles its messages
// in order, so a hop opens its session before it reads the batch, and a
// refusal comes back as the ERROR it would have been.
func (s *session) sendSetups(ctx context.Context) error {
	for i, m := range s.setups {
		if err := s.send(ctx, firstCompute+i, m); err != nil {
			return err
		}
	}
	s.maxCtx, s.awaiting, s.opened = 0, len(s.setups), make([]bool, len(s.setups))
	return nil
}

// accepted tells rs that every compute hop of the circuit opened its
// session: none of them is at capacity.
func (s *session) accepted(rs *relayState) {
	for _, h := range s.path.Hops[1:] {
		rs.accepted(h.Fingerprint)
	}
}

// onSetupOK checks m, from circuit position from, as the SETUP_OK that hop
// owes.
func (s *session) onSetupOK(from int, m hop.Msg) error {
	ok, isOK := m.(*hop.SetupOK)
	i := from - firstCompute
	if !isOK || i < 0 || i >= len(s.setups) || s.opened[i] {
		return s.fail(from, fmt.Errorf("client: hop %d answered SETUP with %v", from, m.Type()))
	}
	if ok.First != s.setups[i].First || ok.Last != s.setups[i].Last || ok.ModelID != s.modelID {
		return s.fail(from, fmt.Errorf("client: hop %d serves layers [%d,%d) of another model or range", from, ok.First, ok.Last))
	}
	if ok.MaxContext > 0 && (s.maxCtx == 0 || ok.MaxContext < s.maxCtx) {
		s.maxCtx = ok.MaxContext
	}
	s.opened[i] = true
	s.awaiting--
	return nil
}

// onSent runs s.sent, once: a feed's inputs have left the client.
func (s *session) onSent() {
	if f := s.sent; f != nil {
		s.sent = nil
		f()
	}
}

// feed runs ids (positions s.pos on) through the circuit and returns the
// logits after the last one. With more set, another feed is expected, and
// in confidential mode the next step is dealt ahead while this one computes.
func (s *session) feed(ctx context.Context, ids []int, more bool) (*hop.Logits, error) {
	if s.conf != nil {
		return s.feedConfidential(ctx, ids, more)
	}
	return s.feedAnonymous(ctx, ids)
}

// A long prompt crosses an anonymous circuit in up to maxPrefillChunks
// HIDDEN messages of at least minPrefillChunk positions each (one batch,
// FINAL on the last; spec/03 §4.2): every hop runs each message as it
// arrives and passes its output on, so the next hop computes the first
// chunk while this one computes the second, and the prompt's time to its
// first token is about one hop's pass plus the others' last chunks rather
// than every hop's whole pass. Results are those of one pass: a row's
// computation does not depend on the rows batched with it.
const (
	maxPrefillChunks = 4
	minPrefillChunk  = 32
)

// prefillRows is how many positions of an n-position feed go in one HIDDEN
// message (before the message size limit).
func prefillRows(n int) int {
	if n < 2*minPrefillChunk {
		return max(n, 1)
	}
	return max(minPrefillChunk, (n+maxPrefillChunks-1)/maxPrefillChunks)
}

// feedAnonymous runs ids (positions s.pos on) through an anonymous circuit:
// the client embeds them, sends the rows to the first hop as HIDDEN
// messages (one batch, FINAL on the last, so every hop runs its batched
// kernels over the prompt in one pass and fills its KV cache once), and
// applies the final norm and head to the FINAL_HIDDEN the last hop returns.
func (s *session) feedAnonymous(ctx context.Context, ids []int) (*hop.Logits, error) {
	if len(ids) == 0 {
		return nil, errors.New("client: empty feed")
	}
	dim := s.ends.Config().Dim
	rows := hop.HiddenRows(dim)
	if rows < 1 {
		return nil, fmt.Errorf("client: a row of %d values does not fit a HIDDEN message", dim)
	}
	rows = min(rows, prefillRows(len(ids)))
	if err := s.payFor(ctx, len(ids)); err != nil {
		return nil, err
	}
	xp := rowsPool.Get().(*[]float32)
	defer rowsPool.Put(xp)
	for i := 0; i < len(ids); i += rows {
		n := min(rows, len(ids)-i)
		x := (*xp)[:0]
		for _, id := range ids[i : i+n] {
			var err error
			if x, err = s.ends.AppendEmbed(x, id); err != nil {
				return nil, fmt.Errorf("client: %w", err)
			}
		}
		*xp = x
		m := &hop.Hidden{Activations: hop.Activations{Start: s.pos + i, N: n, Dim: dim, Final: i+n == len(ids), Data: x}}
		if err := s.send(ctx, firstCompute, m); err != nil {
			return nil, err
		}
		if err := s.flush(); err != nil {
			return nil, err
		}
		s.commits.input(x) // neither keeps x
		s.audit.input(x)
	}
	s.onSent()
	want := s.pos + len(ids) - 1
	var h *hop.Hidden
	for h == nil {
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
		if _, ok := m.(*hop.SetupOK); ok {
			if err := s.onSetupOK(from, m); err != nil {
				return nil, err
			}
			continue
		}
		// Every hop sent its SETUP_OK before it read the batch, and the
		// last hop's answer passes each of them on its way back.
		if s.awaiting > 0 {
			return nil, s.fail(from, fmt.Errorf("client: hop %d sent %v before every hop opened its session", from, m.Type()))
		}
		fh, ok := m.(*hop.Hidden)
		if !ok || !fh.Out || from != s.lastPos() || fh.Start != want || fh.Dim != dim || len(fh.Data) != dim {
			return nil, s.fail(from, fmt.Errorf("client: hop %d sent an unexpected %v", from, m.Type()))
		}
		h = fh
	}
	if err := s.endStep(ctx, len(ids), h.Data); err != nil {
		return nil, err
	}
	logits, err := s.ends.Logits(h.Data)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	s.pos += len(ids)
	return &hop.Logits{Pos: want, Dense: logits}, nil
}
