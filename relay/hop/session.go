package hop

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/relay/cell"
)

// One circuit's compute session (spec §6): the state machine
//
//	new --SETUP ok--> ready --TEARDOWN or fatal error--> done
//
// A failed SETUP leaves the session new, so the client may send another one.
// What a ready session does depends on its role: a compute session runs its
// shard inside Deliver (below); a party session hands its inputs to a worker
// goroutine (party.go); a dealer session deals inside Deliver (dealer.go).

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

	mu      sync.Mutex // guards closed, failed, ms and release: Service.Close and a party's worker may race with a Deliver
	closed  bool
	failed  bool // an ERROR that ended the session was sent (at most one)
	ms      *model.Session
	release func() // frees the party or dealer slot

	state   state // touched only by the Deliver goroutine
	setup   *Setup
	dim     int
	vocab   int
	openers [maxChannel + 1]*Opener
	out     *Sealer
	party   *partyRun    // party roles: the step worker
	dealer  *dealerRun   // role dealer
	cm      *commitState // commitments, after COMMIT_ON (commit.go)
	tk      []byte       // the ticket being received (ticketmsg.go)
	paid    uint64       // positions paid for and not yet run (pay.go)
	msg     []byte       // scratch: the message being sealed or sent (Deliver goroutine)
	env     []byte       // scratch: its envelope
	spare   bool         // msg, env, rows, outRows and the commitments' kept rows go to Service.spares at close
	keptBuf []byte       // a spare's kept rows, for commitOn
	rows    []float32    // scratch: a HIDDEN's or ACTIVATIONS' rows, decoded (Deliver goroutine)
	outRows []float32    // scratch: a pass's output rows, unless the shard is the last
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
		ss.svc.capture(CaptureFromClient, m.Data)
		err = ss.client(m.Data)
	}
	if err != nil {
		ss.fail(err)
	}
}

// fail sends the client an ERROR for err; a fatal one ends the session. It
// runs on the Deliver goroutine.
func (ss *session) fail(err error) {
	if errors.Is(err, errSend) {
		ss.state = stateDone
		ss.end(nil)
		return
	}
	ce := asCoded(err)
	if ss.state != stateReady || !ce.code.Fatal() {
		// Before SETUP_OK, or a non-fatal code: the session stays as it is.
		ss.svc.log.Debug("compute error", "circuit", ss.c.ID(), "code", ce.code.String())
		e := &Error{Code: ce.code, Reason: ce.reason}
		if ss.sendRaw(e.Append(nil)) != nil {
			ss.state = stateDone
			ss.end(nil)
		}
		return
	}
	ss.state = stateDone
	ss.end(ce)
}

func asCoded(err error) *codedError {
	var ce *codedError
	if !errors.As(err, &ce) {
		ce = &codedError{code: CodeInternal, reason: "internal error"}
	}
	return ce
}

// end closes a ready session from any goroutine: with ce, it first sends the
// client that ERROR (only the first of racing ends does). A party session
// then tells the other party of its stage (PeerAbort), unless ce says the
// other party ended first.
func (ss *session) end(ce *codedError) {
	ss.mu.Lock()
	if ss.closed || ss.failed {
		ss.mu.Unlock()
		return
	}
	ss.failed = true
	ss.mu.Unlock()
	if ce != nil {
		ss.svc.log.Debug("compute session failed", "circuit", ss.c.ID(), "code", ce.code.String())
		e := &Error{Code: ce.code, Reason: ce.reason}
		_ = ss.sendRaw(e.Append(nil))
	}
	ss.close()
	if ss.party != nil && (ce == nil || !ce.peerEnded) {
		ss.party.sendAbort()
	}
}

func (ss *session) isClosed() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.closed
}

// close frees the session's KV cache, shares and slot; it is idempotent and
// may be called from any goroutine.
func (ss *session) close() {
	ss.mu.Lock()
	if ss.closed {
		ss.mu.Unlock()
		return
	}
	ss.closed = true
	ms, release := ss.ms, ss.release
	ss.ms, ss.release = nil, nil
	ss.mu.Unlock()
	ss.cancel()
	if ms != nil {
		ms.Close()
		if ss.spare && !ss.svc.isClosed() {
			// A compute session's buffers, for the next one: it is
			// closed on its Deliver goroutine or after its last Deliver
			// (Service.Closed), so nothing uses them any more; only
			// Service.Close may race with a Deliver, and it marks the
			// Service closed first.
			b := spareBufs{msg: ss.msg, env: ss.env, rows: ss.rows, out: ss.outRows}
			if ss.cm != nil {
				b.kept = ss.cm.kept
			}
			ss.msg, ss.env, ss.rows, ss.outRows = nil, nil, nil, nil
			ss.svc.putSpare(b)
		}
	}
	if release != nil {
		release()
	}
}

// hold records what close must free; it reports false (and frees nothing)
// when the session closed meanwhile.
func (ss *session) hold(ms *model.Session, release func()) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed {
		return false
	}
	ss.ms, ss.release = ms, release
	return true
}

func (ss *session) client(b []byte) error {
	msg, err := ss.decode(b)
	switch {
	case errors.Is(err, ErrUnknownType), errors.Is(err, ErrVersion):
		return coded(CodeUnsupported, "%v", err)
	case err != nil:
		return coded(CodeBadMessage, "%v", err)
	}
	if g, ok := msg.(*BundleGet); ok {
		return ss.bundle(g)
	}
	if t, ok := msg.(*Ticket); ok {
		return ss.ticket(t)
	}
	if _, ok := msg.(*Setup); !ok && ss.state != stateReady {
		return coded(CodeBadMessage, "%v before SETUP", msg.Type())
	}
	switch m := msg.(type) {
	case *Setup:
		return ss.open(m)
	case *Tokens:
		if ss.ms == nil {
			return coded(CodeBadMessage, "TOKENS to a %v", ss.setup.Role)
		}
		return ss.tokens(m)
	case *Hidden:
		if ss.ms == nil || m.Out {
			return coded(CodeBadMessage, "%v to a %v", m.Type(), ss.setup.Role)
		}
		err := ss.hidden(m)
		// The rows are decoded: the message's buffer (the circuit's
		// reassembly, the Service's: Inbound.Data) goes back for the
		// next one to be joined into.
		cell.FreeMessage(b)
		return err
	case *Deal:
		if ss.dealer == nil {
			return coded(CodeBadMessage, "DEAL to a %v", ss.setup.Role)
		}
		return ss.dealer.deal(m)
	case *MPCInput:
		if ss.party == nil || ss.setup.In != nil {
			return coded(CodeBadMessage, "MPC_INPUT to a hop that is not a party of the first stage")
		}
		return ss.party.addInput(m.Final, m.Body)
	case *Truncate:
		if ss.ms == nil {
			return coded(CodeUnsupported, "a %v cannot truncate", ss.setup.Role)
		}
		if err := ss.ms.Truncate(m.Pos); err != nil {
			return coded(CodeBadMessage, "truncate to %d of %d positions", m.Pos, ss.ms.Len())
		}
		return ss.commitTruncate(m.Pos)
	case *Pay:
		return ss.pay(m)
	case *CommitOn:
		return ss.commitOn(m)
	case *Reveal:
		return ss.reveal(m)
	case *PartyReveal:
		return ss.partyReveal(m)
	case *Teardown:
		ss.svc.log.Debug("compute session torn down", "circuit", ss.c.ID())
		ss.state = stateDone
		ss.end(nil)
		return nil
	}
	return coded(CodeBadMessage, "unexpected %v", msg.Type())
}

// decode is Decode, with a HIDDEN's rows decoded into the session's
// scratch (ss.rows) rather than new memory.
func (ss *session) decode(b []byte) (Msg, error) {
	if len(b) == 0 || MsgType(b[0]) != TypeHidden {
		return Decode(b)
	}
	h, err := decodeHiddenInto(TypeHidden, b, ss.rows)
	if err != nil {
		return nil, err
	}
	ss.rows = h.Data
	return h, nil
}

// forward runs a pass of n rows at start, its output (unless the shard is
// the last) in the session's scratch, ss.outRows.
func (ss *session) forward(rows []float32, n, start int) ([]float32, error) {
	if ss.svc.cfg.Shard.IsLast() {
		return ss.ms.ForwardActivations(rows, n, start)
	}
	out, err := ss.ms.ForwardActivationsInto(ss.outRows, rows, n, start)
	if err == nil {
		ss.outRows = out
	}
	return out, err
}

// open validates a SETUP against what this relay serves and opens the session
// (spec §6.1, spec/10 §3.2).
func (ss *session) open(m *Setup) error {
	if ss.state != stateNew {
		return coded(CodeBadMessage, "second SETUP")
	}
	if m.ModelID != ss.svc.cfg.ModelID {
		return coded(CodeWrongModel, "model not served")
	}
	switch m.Role {
	case RolePartyA, RolePartyB:
		return ss.openParty(m)
	case RoleDealer:
		return ss.openDealer(m)
	}
	return ss.openCompute(m)
}

// openCompute opens a compute session: a shard run in the clear.
func (ss *session) openCompute(m *Setup) error {
	cfg := &ss.svc.cfg
	sh := cfg.Shard
	if sh == nil {
		return coded(CodeRangeNotServed, "no compute layers here")
	}
	mc := sh.Config()
	switch {
	case m.First != sh.First() || m.Last != sh.Last():
		return coded(CodeRangeNotServed, "serves layers [%d,%d)", sh.First(), sh.Last())
	case m.Pair != nil || m.OutB != nil || m.Deal != nil || m.DealB != nil || m.InB != nil:
		return coded(CodeBadMessage, "confidential-stage key for a compute hop")
	case m.NextLast != 0:
		return coded(CodeBadMessage, "next stage for a compute hop")
	}
	switch m.Input {
	case InputTokens, InputHidden:
		// Embedding rows are a table lookup away from the token ids, so a
		// relay that refuses ids in the clear refuses them too.
		switch {
		case !cfg.AllowPlain:
			return coded(CodeInsecureRefused, "token ids in the clear refused")
		case !sh.IsFirst():
			return coded(CodeBadMessage, "%v input to layer %d", m.Input, sh.First())
		case m.In != nil:
			return coded(CodeBadMessage, "in-edge key with %v input", m.Input)
		}
	case InputActivations:
		if m.In == nil {
			return coded(CodeBadMessage, "activations input needs the in-edge key")
		}
	default:
		return coded(CodeBadMessage, "%v input to a compute hop", m.Input)
	}
	if m.HiddenOut && !sh.IsLast() {
		return coded(CodeBadMessage, "final hidden state asked of a shard before the last")
	}
	if sh.IsLast() {
		switch {
		case m.Out != nil:
			return coded(CodeBadMessage, "out-edge key on the last shard")
		case m.TopK == 0 && !m.HiddenOut && mc.Vocab > MaxDenseLogits:
			return coded(CodeBadMessage, "dense logits of %d do not fit a message", mc.Vocab)
		}
	} else if m.Out == nil {
		return coded(CodeBadMessage, "no out-edge key before the last shard")
	}
	if limit := sh.Limits().MaxContext; m.MaxContext > limit {
		return coded(CodeContextTooLong, "context limit %d", limit)
	}
	var err error
	if m.In != nil {
		if ss.openers[ChanData], err = NewOpener(m.In, ChanData); err != nil {
			return coded(CodeInternal, "edge key")
		}
	}
	if m.Out != nil {
		if ss.out, err = NewSealer(m.Out, ChanData); err != nil {
			return coded(CodeInternal, "edge key")
		}
	}
	ms, err := sh.NewSession(model.SessionOptions{MaxContext: m.MaxContext, FinalHidden: m.HiddenOut})
	if err != nil {
		return modelError(err)
	}
	if !ss.hold(ms, nil) {
		ms.Close()
		return errSend
	}
	ss.setup, ss.dim, ss.vocab = m, mc.Dim, mc.Vocab
	ss.state = stateReady
	b := ss.svc.takeSpare()
	ss.msg, ss.env, ss.keptBuf, ss.spare = b.msg, b.env, b.kept, true
	ss.rows, ss.outRows = b.rows, b.out
	ss.svc.log.Debug("compute session opened", "circuit", ss.c.ID(), "input", m.Input.String())
	ok := &SetupOK{First: sh.First(), Last: sh.Last(), Dim: mc.Dim, Vocab: mc.Vocab,
		MaxContext: ms.MaxContext(), ModelID: cfg.ModelID}
	return ss.send(ok)
}

func (ss *session) tokens(m *Tokens) error {
	if ss.setup.Input != InputTokens {
		return coded(CodeBadMessage, "TOKENS to a hop without TOKENS input")
	}
	if n := ss.ms.Len(); m.Start != n {
		return coded(CodeBadMessage, "TOKENS at %d, session at %d", m.Start, n)
	}
	for _, id := range m.IDs {
		if id >= ss.vocab {
			return coded(CodeBadMessage, "token id outside the vocabulary")
		}
	}
	if err := ss.charge(len(m.IDs)); err != nil {
		return err
	}
	if err := ss.commitIn(m.Start, len(m.IDs), m.IDs, nil, 0); err != nil {
		return err
	}
	t0 := time.Now()
	out, err := ss.ms.ForwardTokens(m.IDs, m.Start)
	if err != nil {
		return modelError(err)
	}
	ss.computeDone(len(m.IDs), t0)
	return ss.emit(out, m.Start, len(m.IDs), true)
}

// bundle answers a BUNDLE_GET (spec §3.13) with the bytes asked for, in
// BUNDLE_DATA messages of at most MaxBundleChunk bytes; with or without a
// session, and leaving it as it is.
func (ss *session) bundle(g *BundleGet) error {
	cfg := &ss.svc.cfg
	switch {
	case cfg.Bundle == nil:
		return coded(CodeUnsupported, "no bundle served here")
	case g.ModelID != cfg.ModelID:
		return coded(CodeWrongModel, "model not served")
	}
	b, err := cfg.Bundle()
	if err != nil {
		ss.svc.log.Warn("bundle unavailable", "err", err)
		return coded(CodeInternal, "bundle unavailable")
	}
	total := int64(len(b))
	if g.Offset >= total {
		return coded(CodeBadMessage, "offset %d of a bundle of %d bytes", g.Offset, total)
	}
	end := min(g.Offset+int64(g.Length), total)
	for off := g.Offset; off < end; {
		n := min(end-off, MaxBundleChunk)
		if err := ss.sendRaw((&BundleData{Total: total, Offset: off, Data: b[off : off+n]}).Append(nil)); err != nil {
			return errSend
		}
		off += n
	}
	return nil
}

// hidden runs the client's embedding rows (spec §3.11, §6.2).
func (ss *session) hidden(m *Hidden) error {
	if ss.setup.Input != InputHidden {
		return coded(CodeBadMessage, "HIDDEN to a hop without hidden input")
	}
	if m.Dim != ss.dim {
		return coded(CodeBadMessage, "hidden states of width %d, model %d", m.Dim, ss.dim)
	}
	if n := ss.ms.Len(); m.Start != n {
		return coded(CodeBadMessage, "HIDDEN at %d, session at %d", m.Start, n)
	}
	if err := ss.charge(m.N); err != nil {
		return err
	}
	if err := ss.commitIn(m.Start, m.N, nil, m.Data, m.DType); err != nil {
		return err
	}
	t0 := time.Now()
	out, err := ss.forward(m.Data, m.N, m.Start)
	if err != nil {
		return modelError(err)
	}
	ss.computeDone(m.N, t0)
	if skipLayers != nil && !ss.svc.cfg.Shard.IsLast() && skipLayers(&ss.svc.cfg) {
		out = m.Data // fault injection (commit.go): pass the input on as if computed
	}
	return ss.emit(out, m.Start, m.N, m.Final)
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
	ss.svc.capture(CaptureFromEdge, pt)
	// pt is this session's (the circuit's reassembled message, opened in
	// place): the MPC bodies may keep it.
	em, err := decodeEdgeInto(pt, false, ss.rows) // a compute session's scratch
	if err != nil {
		return coded(CodeBadMessage, "%v", err)
	}
	switch em := em.(type) {
	case *Activations:
		if ss.ms == nil || ch != ChanData || ss.setup.Input != InputActivations {
			return coded(CodeBadMessage, "unexpected ACTIVATIONS")
		}
		ss.rows = em.Data
		err := ss.activations(em)
		// The rows are decoded: the message's buffer (the circuit's
		// reassembly, opened in place) goes back for the next one.
		cell.FreeMessage(m.Data)
		return err
	case *MPCPeer:
		if ss.party == nil || (ch != ChanPairAB && ch != ChanPairBA) {
			return coded(CodeBadMessage, "unexpected MPC_PEER")
		}
		if em.IsAbort() {
			return &codedError{code: CodeMPCFailure, reason: "the other party of the stage ended its session", peerEnded: true}
		}
		return ss.party.addPeer(em.Body)
	case *MPCPrep:
		if ss.party == nil || ch != ChannelDeal {
			return coded(CodeBadMessage, "unexpected MPC_PREP")
		}
		return ss.party.addPrep(em.More, em.Body, m.Data)
	case *MPCReshare:
		if ss.party == nil || (ch != ChanData && ch != ChanDataB) {
			return coded(CodeBadMessage, "unexpected MPC_RESHARE")
		}
		return ss.party.addReshare(int(ch), em.Final, em.Body)
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
	if err := ss.charge(a.N); err != nil {
		return err
	}
	if err := ss.commitIn(a.Start, a.N, nil, a.Data, a.DType); err != nil {
		return err
	}
	t0 := time.Now()
	out, err := ss.forward(a.Data, a.N, a.Start)
	if err != nil {
		return modelError(err)
	}
	ss.computeDone(a.N, t0)
	if skipLayers != nil && !ss.svc.cfg.Shard.IsLast() && skipLayers(&ss.svc.cfg) {
		out = a.Data // fault injection (commit.go): pass the input on as if computed
	}
	return ss.emit(out, a.Start, a.N, a.Final)
}

// computeDone reports a forward pass of n positions begun at t0.
func (ss *session) computeDone(n int, t0 time.Time) {
	if f := ss.svc.cfg.ComputeDone; f != nil {
		f(n, time.Since(t0))
	}
}

// emit sends a forward pass's output on (spec §6.4): LOGITS to the client from
// the last shard at the end of a batch, else ACTIVATIONS over the out edge, in
// chunks that fit a message.
func (ss *session) emit(out []float32, start, n int, final bool) error {
	if err := ss.commitOut(out, final); err != nil {
		return err
	}
	if ss.svc.cfg.Shard.IsLast() {
		if !final {
			return nil
		}
		if ss.setup.HiddenOut {
			return ss.send(&Hidden{Out: true, Activations: Activations{Start: start + n - 1, N: 1, Dim: ss.dim, Final: true, Data: out}})
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

// send sends m to the client (Deliver goroutine only: it uses ss.msg).
func (ss *session) send(m Msg) error {
	ss.msg = m.Append(ss.msg[:0])
	if err := ss.sendRaw(ss.msg); err != nil {
		return errSend
	}
	return nil
}

// sendRaw sends an encoded message to the client; any goroutine.
func (ss *session) sendRaw(b []byte) error {
	ss.svc.capture(CaptureToClient, b)
	return ss.c.Send(ss.ctx, b)
}

// sendEdge seals m under the compute session's out key and sends it
// (Deliver goroutine only).
func (ss *session) sendEdge(m EdgeMsg, dir cell.Direction, hops int) error {
	var err error
	ss.msg, ss.env, err = sealSend(ss, ss.out, m, dir, hops, ss.msg, ss.env)
	return err
}

// sealSend encodes m into msg, seals it with sl into env and sends the
// envelope hops links in dir, returning the grown scratch buffers. Errors
// are coded (a seal failure) or errSend.
func sealSend(ss *session, sl *Sealer, m EdgeMsg, dir cell.Direction, hops int, msg, env []byte) ([]byte, []byte, error) {
	msg = m.Append(msg[:0])
	ss.svc.capture(CaptureToEdge, msg)
	env, err := sl.Seal(env[:0], msg)
	if err != nil {
		return msg, env, coded(CodeInternal, "edge seal")
	}
	if err := ss.c.SendEdge(ss.ctx, dir, hops, env); err != nil {
		return msg, env, errSend
	}
	return msg, env, nil
}
