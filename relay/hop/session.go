package hop

import (
	"context"
	"errors"
	"sync"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/relay/cell"
)

// One circuit's compute session (spec §6): the state machine
//
//	new --SETUP ok--> ready --TEARDOWN or fatal error--> done
//
// A failed SETUP leaves the session new, so the client may send another one.

type state uint8

const (
	stateNew state = iota
	stateReady
	stateDone
)

type session struct {
	svc    *Service
	c      Circuit
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex // guards closed, ms and partySlot: Service.Close may race with a Deliver
	closed    bool
	ms        *model.Session
	partySlot bool

	state   state // touched only by the Deliver goroutine
	setup   *Setup
	dim     int
	vocab   int
	openers [maxChannel + 1]*Opener
	out     *Sealer
	party   *partyRun      // MPC roles: the step worker
	shares  [2][]*MPCShare // input shares: output shares from A and B, in order
	msg     []byte         // scratch: the message being sealed
	env     []byte         // scratch: its envelope
}

func newSession(s *Service, c Circuit) *session {
	ctx, cancel := context.WithCancel(context.Background())
	return &session{svc: s, c: c, ctx: ctx, cancel: cancel}
}

// handle runs one message and reports any failure to the client.
func (ss *session) handle(m Inbound) {
	if ss.state == stateDone || ss.isClosed() {
		return
	}
	var err error
	if m.Edge {
		err = ss.edge(m)
	} else {
		ss.svc.observe(ss.c, ObsClient, m.Data)
		err = ss.client(m.Data)
	}
	if err != nil {
		ss.fail(err)
	}
}

// fail sends the client an ERROR for err; a fatal one ends the session.
func (ss *session) fail(err error) {
	var ce *codedError
	if !errors.As(err, &ce) {
		ce = &codedError{code: CodeInternal, reason: "internal error"}
	}
	if errors.Is(err, errSend) {
		ss.close()
		return
	}
	ss.svc.log.Debug("compute error", "circuit", ss.c.ID(), "code", ce.code.String())
	e := &Error{Code: ce.code, Reason: ce.reason}
	if sendErr := ss.c.Send(ss.ctx, e.Append(nil)); sendErr != nil {
		ss.close()
		return
	}
	if ss.state == stateReady && ce.code.Fatal() {
		ss.state = stateDone
		ss.close()
	}
}

func (ss *session) isClosed() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.closed
}

// close frees the session's KV cache; it is idempotent and may be called from
// any goroutine.
func (ss *session) close() {
	ss.mu.Lock()
	if ss.closed {
		ss.mu.Unlock()
		return
	}
	ss.closed = true
	ms, slot := ss.ms, ss.partySlot
	ss.mu.Unlock()
	ss.cancel()
	if ms != nil {
		ms.Close()
	}
	if slot {
		ss.svc.releaseParty()
	}
}

func (ss *session) client(b []byte) error {
	msg, err := Decode(b)
	switch {
	case errors.Is(err, ErrUnknownType), errors.Is(err, ErrVersion):
		return coded(CodeUnsupported, "%v", err)
	case err != nil:
		return coded(CodeBadMessage, "%v", err)
	}
	if _, ok := msg.(*Setup); !ok && ss.state != stateReady {
		return coded(CodeBadMessage, "%v before SETUP", msg.Type())
	}
	switch m := msg.(type) {
	case *Setup:
		return ss.open(m)
	case *Tokens:
		return ss.tokens(m)
	case *MPCStep:
		if ss.party == nil {
			return coded(CodeBadMessage, "MPC_STEP to a hop that is not a party")
		}
		return ss.party.addStep(m)
	case *Truncate:
		if ss.party != nil {
			return coded(CodeUnsupported, "the MPC stage cannot truncate")
		}
		if err := ss.ms.Truncate(m.Pos); err != nil {
			return coded(CodeBadMessage, "truncate to %d of %d positions", m.Pos, ss.ms.Len())
		}
		return nil
	case *Teardown:
		ss.svc.log.Debug("compute session torn down", "circuit", ss.c.ID())
		ss.state = stateDone
		ss.close()
		return nil
	}
	return coded(CodeBadMessage, "unexpected %v", msg.Type())
}

// open validates a SETUP against what this relay serves and opens the session
// (spec §6.1).
func (ss *session) open(m *Setup) error {
	if ss.state != stateNew {
		return coded(CodeBadMessage, "second SETUP")
	}
	cfg := &ss.svc.cfg
	if m.ModelID != cfg.ModelID {
		return coded(CodeWrongModel, "model not served")
	}
	if m.Role != RoleCompute {
		return ss.openParty(m)
	}
	sh := cfg.Shard
	if sh == nil {
		return coded(CodeRangeNotServed, "no compute layers here")
	}
	mc := sh.Config()
	switch {
	case m.First != sh.First() || m.Last != sh.Last():
		return coded(CodeRangeNotServed, "serves layers [%d,%d)", sh.First(), sh.Last())
	case m.Pair != nil:
		return coded(CodeBadMessage, "pair key for a compute hop")
	}
	switch m.Input {
	case InputPlain:
		switch {
		case !cfg.AllowPlain:
			return coded(CodeInsecureRefused, "embed=plain refused")
		case !sh.IsFirst():
			return coded(CodeBadMessage, "plain input to layer %d", sh.First())
		case m.In != nil || m.InB != nil:
			return coded(CodeBadMessage, "in-edge key with plain input")
		}
	case InputActivations:
		if m.In == nil || m.InB != nil {
			return coded(CodeBadMessage, "activations input needs exactly the in-edge key")
		}
	case InputShares:
		switch {
		case sh.First() != 1:
			return coded(CodeBadMessage, "MPC input to layer %d; the pair computes block 0", sh.First())
		case m.In == nil || m.InB == nil:
			return coded(CodeBadMessage, "MPC input needs the in-edge keys of both parties")
		}
	}
	if sh.IsLast() {
		switch {
		case m.Out != nil:
			return coded(CodeBadMessage, "out-edge key on the last shard")
		case m.TopK == 0 && mc.Vocab > MaxDenseLogits:
			return coded(CodeBadMessage, "dense logits of %d do not fit a message", mc.Vocab)
		}
	} else if m.Out == nil {
		return coded(CodeBadMessage, "no out-edge key before the last shard")
	}
	if limit := sh.Limits().MaxContext; m.MaxContext > limit {
		return coded(CodeContextTooLong, "context limit %d", limit)
	}
	ms, err := sh.NewSession(model.SessionOptions{MaxContext: m.MaxContext})
	if err != nil {
		return modelError(err)
	}
	if m.In != nil {
		if ss.openers[ChanData], err = NewOpener(m.In, ChanData); err != nil {
			ms.Close()
			return coded(CodeInternal, "edge key")
		}
	}
	if m.InB != nil {
		if ss.openers[ChanDataB], err = NewOpener(m.InB, ChanDataB); err != nil {
			ms.Close()
			return coded(CodeInternal, "edge key")
		}
	}
	if m.Out != nil {
		if ss.out, err = NewSealer(m.Out, ChanData); err != nil {
			ms.Close()
			return coded(CodeInternal, "edge key")
		}
	}
	ss.mu.Lock()
	if ss.closed {
		ss.mu.Unlock()
		ms.Close()
		return errSend
	}
	ss.ms = ms
	ss.mu.Unlock()
	ss.setup, ss.dim, ss.vocab = m, mc.Dim, mc.Vocab
	ss.state = stateReady
	ss.svc.log.Debug("compute session opened", "circuit", ss.c.ID(), "input", m.Input.String())
	ok := &SetupOK{First: sh.First(), Last: sh.Last(), Dim: mc.Dim, Vocab: mc.Vocab,
		MaxContext: ms.MaxContext(), ModelID: cfg.ModelID}
	return ss.send(ok)
}

func (ss *session) tokens(m *Tokens) error {
	if ss.setup.Input != InputPlain {
		return coded(CodeBadMessage, "TOKENS to a hop without plain input")
	}
	if n := ss.ms.Len(); m.Start != n {
		return coded(CodeBadMessage, "TOKENS at %d, session at %d", m.Start, n)
	}
	for _, id := range m.IDs {
		if id >= ss.vocab {
			return coded(CodeBadMessage, "token id outside the vocabulary")
		}
	}
	out, err := ss.ms.ForwardTokens(m.IDs, m.Start)
	if err != nil {
		return modelError(err)
	}
	return ss.emit(out, m.Start, len(m.IDs), true)
}

// edge opens and runs one edge message (spec §5, §6.3).
func (ss *session) edge(m Inbound) error {
	ss.svc.observe(ss.c, ObsEdge, m.Data)
	if ss.state != stateReady {
		return coded(CodeBadMessage, "edge message before SETUP")
	}
	ch, err := EnvelopeChannel(m.Data)
	if err != nil || ss.openers[ch] == nil {
		return coded(CodeEdgeAuth, "no such edge")
	}
	if want := cell.Forward; (ch == ChanPairBA) != (m.Dir != want) {
		return coded(CodeEdgeAuth, "edge from the wrong side")
	}
	pt, err := ss.openers[ch].Open(m.Data)
	if err != nil {
		return coded(CodeEdgeAuth, "edge message did not authenticate")
	}
	ss.svc.observe(ss.c, ObsEdgePlain, pt)
	em, err := DecodeEdge(pt)
	if err != nil {
		return coded(CodeBadMessage, "%v", err)
	}
	switch em := em.(type) {
	case *Activations:
		if ch != ChanData || ss.setup.Input != InputActivations {
			return coded(CodeBadMessage, "unexpected ACTIVATIONS")
		}
		return ss.activations(em)
	case *MPCShare:
		if ch > ChanDataB || ss.setup.Input != InputShares || ss.party != nil {
			return coded(CodeBadMessage, "unexpected MPC_SHARE")
		}
		return ss.share(ch, em)
	case *MPCPeer:
		if ss.party == nil || (ch != ChanPairAB && ch != ChanPairBA) {
			return coded(CodeBadMessage, "unexpected MPC_PEER")
		}
		return ss.party.addPeer(em.Body)
	}
	return coded(CodeBadMessage, "unexpected %v", em.EdgeType())
}

func (ss *session) activations(a *Activations) error {
	if a.Dim != ss.dim {
		return coded(CodeBadMessage, "activations of width %d, model %d", a.Dim, ss.dim)
	}
	if n := ss.ms.Len(); a.Start != n {
		return coded(CodeBadMessage, "ACTIVATIONS at %d, session at %d", a.Start, n)
	}
	out, err := ss.ms.ForwardActivations(a.Data, a.N, a.Start)
	if err != nil {
		return modelError(err)
	}
	return ss.emit(out, a.Start, a.N, a.Final)
}

// emit sends a forward pass's output on (spec §6.4): LOGITS to the client from
// the last shard at the end of a batch, else ACTIVATIONS over the out edge, in
// chunks that fit a message.
func (ss *session) emit(out []float32, start, n int, final bool) error {
	if ss.svc.cfg.Shard.IsLast() {
		if !final {
			return nil
		}
		lg := &Logits{Pos: start + n - 1}
		if k := ss.setup.TopK; k > 0 {
			lg.TopK = TopK(out, k)
		} else {
			lg.Dense = out
		}
		return ss.send(lg)
	}
	rows := RowsPerMessage(ss.dim, ss.setup.DType)
	if cr := ss.svc.cfg.ChunkRows; cr > 0 {
		rows = min(rows, cr)
	}
	for i := 0; i < n; i += rows {
		k := min(rows, n-i)
		a := Activations{Start: start + i, N: k, Dim: ss.dim, DType: ss.setup.DType,
			Final: final && i+k == n, Data: out[i*ss.dim : (i+k)*ss.dim]}
		if err := ss.sendEdge(&a, cell.Forward, ss.setup.OutHops); err != nil {
			return err
		}
	}
	return nil
}

func (ss *session) send(m Msg) error {
	ss.msg = m.Append(ss.msg[:0])
	if err := ss.c.Send(ss.ctx, ss.msg); err != nil {
		return errSend
	}
	return nil
}

func (ss *session) sendEdge(m EdgeMsg, dir cell.Direction, hops int) error {
	ss.msg = m.Append(ss.msg[:0])
	env, err := ss.out.Seal(ss.env[:0], ss.msg)
	if err != nil {
		return coded(CodeInternal, "edge seal")
	}
	ss.env = env
	if err := ss.c.SendEdge(ss.ctx, dir, hops, env); err != nil {
		return errSend
	}
	return nil
}
