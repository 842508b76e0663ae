package hop

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/unfed/unfed/compute/mpc"
	"github.com/unfed/unfed/relay/cell"
)

// The MPC pair on a circuit (spec §6.5). A party's session runs compute/mpc
// steps on a goroutine of its own, because a step waits for the other party's
// MPC_PEER messages, which arrive through Deliver: the circuit switch hands a
// circuit's messages over one at a time, so a step run inside Deliver would
// wait for a message queued behind itself.
//
//	Deliver(MPC_STEP)  → steps queue ─┐
//	Deliver(MPC_PEER)  → peer queue ──┤→ worker: Party.Step → MPC_SHARE to S1
//	                                  └─ Peer.Send → MPC_PEER to the other party
//
// Both queues are bounded in bytes (PartyConfig.MaxPending); overflowing them
// is a fatal out-of-capacity error.

// PartyConfig makes a relay a party of an MPC pair for block 0.
type PartyConfig struct {
	// Role is RoleMPCA or RoleMPCB.
	Role Role
	// Weights are the model's embedding and block 0; required. NewService
	// prepares them once for every party session and keeps no reference.
	Weights *mpc.Weights
	// Options configure every party session (approximations, noise,
	// context).
	Options mpc.Options
	// MaxSessions bounds concurrent party sessions; 0 means 16.
	MaxSessions int
	// MaxPending bounds the bytes queued for one session (step and peer
	// messages); 0 means 32 MiB.
	MaxPending int
}

const (
	defaultPartySessions = 16
	defaultMaxPending    = 32 << 20
)

type stepItem struct {
	final bool
	body  []byte
}

// partyRun is the worker side of one party session. The queues are guarded
// by mu; the Party, the out and pair sealers and the scratch buffers belong
// to the worker goroutine alone.
type partyRun struct {
	ss      *session
	p       *mpc.Party
	out     *Sealer
	pair    *Sealer
	pairDir cell.Direction

	mu      sync.Mutex
	steps   []stepItem
	queued  atomic.Int32 // len(steps), read without mu while evaluating ahead
	partial []byte       // fragments of the step being received (MORE)
	peer    [][]byte
	pending int
	peerSig chan struct{} // peer messages arrived
	running bool
	msg     []byte
	env     []byte
}

func newPartyRun(ss *session, p *mpc.Party, out, pair *Sealer, pairDir cell.Direction) *partyRun {
	return &partyRun{ss: ss, p: p, out: out, pair: pair, pairDir: pairDir,
		peerSig: make(chan struct{}, 1)}
}

func (pr *partyRun) maxPending() int {
	if n := pr.ss.svc.cfg.Party.MaxPending; n > 0 {
		return n
	}
	return defaultMaxPending
}

// addStep queues a step, or joins a fragment to the step being received,
// and starts the worker if it is idle.
func (pr *partyRun) addStep(m *MPCStep) error {
	pr.mu.Lock()
	if pr.pending+len(m.Body) > pr.maxPending() {
		pr.mu.Unlock()
		return coded(CodeCapacity, "too many queued MPC steps")
	}
	pr.pending += len(m.Body)
	if m.More {
		pr.partial = append(pr.partial, m.Body...)
		pr.mu.Unlock()
		return nil
	}
	body := m.Body
	if pr.partial != nil {
		body = append(pr.partial, m.Body...)
		pr.partial = nil
	}
	pr.steps = append(pr.steps, stepItem{final: m.Final, body: body})
	pr.queued.Add(1)
	start := !pr.running
	pr.running = true
	pr.mu.Unlock()
	if start {
		go pr.work()
	}
	return nil
}

// addPeer queues a message from the other party for the running step.
func (pr *partyRun) addPeer(body []byte) error {
	pr.mu.Lock()
	if pr.pending+len(body) > pr.maxPending() {
		pr.mu.Unlock()
		return coded(CodeCapacity, "too many queued MPC peer messages")
	}
	pr.pending += len(body)
	pr.peer = append(pr.peer, body)
	pr.mu.Unlock()
	signal(pr.peerSig)
	return nil
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// work runs queued steps until the queue is empty or the session ends.
func (pr *partyRun) work() {
	ctx := pr.ss.ctx
	for {
		pr.mu.Lock()
		if len(pr.steps) == 0 || ctx.Err() != nil {
			pr.running = false
			pr.mu.Unlock()
			return
		}
		it := pr.steps[0]
		pr.steps[0] = stepItem{}
		pr.steps = pr.steps[1:]
		pr.queued.Add(-1)
		pr.pending -= len(it.body)
		pr.mu.Unlock()
		if err := pr.step(ctx, it); err != nil {
			pr.abort(err)
			return
		}
	}
}

func (pr *partyRun) step(ctx context.Context, it stepItem) error {
	pos := pr.p.Pos()
	if mpc.IsPrep(it.body) {
		// The next step's correlated randomness: no output, no rounds.
		// Its lookup keys are evaluated now only while the step's token
		// is not queued (it is for a prompt) and no other session is
		// computing (under load, evaluating ahead only adds work); the
		// step evaluates the rest.
		busy := func() bool {
			return pr.queued.Load() > 0 || pr.ss.svc.stepping.Load() > 0 || ctx.Err() != nil
		}
		var err error
		if busy() {
			err = pr.p.Prep(it.body, false)
		} else {
			err = pr.p.PrepUntil(it.body, busy)
		}
		if err != nil {
			return coded(CodeMPCFailure, "prep for %d refused", pos)
		}
		return nil
	}
	pr.ss.svc.stepping.Add(1)
	share, err := pr.p.Step(ctx, it.body, (*partyPeer)(pr))
	pr.ss.svc.stepping.Add(-1)
	switch {
	case ctx.Err() != nil:
		return errSend
	case errors.Is(err, errSend):
		return errSend
	case err != nil:
		return coded(CodeMPCFailure, "step at %d aborted", pos)
	}
	if done := pr.ss.svc.cfg.MPCStepDone; done != nil {
		done(pr.p.Role(), pr.p.Stats())
	}
	m := &MPCShare{Start: pos, N: 1, Final: it.final, Body: share}
	pr.msg = m.Append(pr.msg[:0])
	env, err := pr.out.Seal(pr.env[:0], pr.msg)
	if err != nil {
		return coded(CodeInternal, "edge seal")
	}
	pr.env = env
	if err := pr.ss.c.SendEdge(ctx, cell.Forward, pr.ss.setup.OutHops, env); err != nil {
		return errSend
	}
	return nil
}

// abort reports a failed step to the client and ends the session.
func (pr *partyRun) abort(err error) {
	var ce *codedError
	if errors.As(err, &ce) {
		pr.ss.svc.log.Debug("mpc step failed", "circuit", pr.ss.c.ID(), "code", ce.code.String())
		e := &Error{Code: ce.code, Reason: ce.reason}
		_ = pr.ss.c.Send(pr.ss.ctx, e.Append(nil))
	}
	pr.ss.close()
}

// partyPeer is the mpc.Peer of a party session: MPC_PEER edge messages under
// the pair key.
type partyPeer partyRun

// Send seals msg as MPC_PEER and sends it to the other party.
func (pp *partyPeer) Send(ctx context.Context, msg []byte) error {
	pr := (*partyRun)(pp)
	buf := (&MPCPeer{Body: msg}).Append(nil)
	env, err := pr.pair.Seal(nil, buf)
	if err != nil {
		return err
	}
	if err := pr.ss.c.SendEdge(ctx, pr.pairDir, 1, env); err != nil {
		return errSend
	}
	return nil
}

// Recv returns the next MPC_PEER body from the other party.
func (pp *partyPeer) Recv(ctx context.Context) ([]byte, error) {
	pr := (*partyRun)(pp)
	for {
		pr.mu.Lock()
		if len(pr.peer) > 0 {
			b := pr.peer[0]
			pr.peer[0] = nil
			pr.peer = pr.peer[1:]
			pr.pending -= len(b)
			pr.mu.Unlock()
			return b, nil
		}
		pr.mu.Unlock()
		select {
		case <-pr.peerSig:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// openParty validates a party SETUP and starts the party session.
func (ss *session) openParty(m *Setup) error {
	pc := ss.svc.cfg.Party
	switch {
	case pc == nil || pc.Role != m.Role:
		return coded(CodeRangeNotServed, "not party %v", m.Role)
	case m.First != 0 || m.Last != 1:
		return coded(CodeRangeNotServed, "the pair serves layers [0,1)")
	case m.Input != InputShares:
		return coded(CodeBadMessage, "a party takes MPC input only")
	case m.In != nil || m.InB != nil || m.Out == nil || m.Pair == nil:
		return coded(CodeBadMessage, "a party needs exactly the out-edge and pair keys")
	}
	opt := pc.Options
	limit := opt.MaxContext
	if limit <= 0 {
		limit = 2048
	}
	if m.MaxContext > limit {
		return coded(CodeContextTooLong, "context limit %d", limit)
	}
	if m.MaxContext > 0 {
		opt.MaxContext = m.MaxContext
	}
	if !ss.svc.takeParty() {
		return coded(CodeCapacity, "no capacity")
	}
	p, err := mpc.NewPartyPrepared(mpcRole(m.Role), ss.svc.prepared, opt)
	if err != nil {
		ss.svc.releaseParty()
		return coded(CodeInternal, "party setup failed")
	}
	outCh, pairOut, pairIn, pairDir := ChanData, ChanPairAB, ChanPairBA, cell.Forward
	if m.Role == RoleMPCB {
		outCh, pairOut, pairIn, pairDir = ChanDataB, ChanPairBA, ChanPairAB, cell.Backward
	}
	out, err1 := NewSealer(m.Out, outCh)
	pair, err2 := NewSealer(m.Pair, pairOut)
	in, err3 := NewOpener(m.Pair, pairIn)
	if err := errors.Join(err1, err2, err3); err != nil {
		ss.svc.releaseParty()
		return coded(CodeInternal, "edge key")
	}
	ss.openers[pairIn] = in
	ss.party = newPartyRun(ss, p, out, pair, pairDir)
	ss.mu.Lock()
	ss.partySlot = true
	closed := ss.closed
	ss.mu.Unlock()
	if closed {
		ss.svc.releaseParty()
		return errSend
	}
	mc := ss.svc.prepared.Config()
	ss.setup, ss.dim, ss.vocab = m, mc.Dim, mc.Vocab
	ss.state = stateReady
	ss.svc.log.Debug("mpc party session opened", "circuit", ss.c.ID(), "role", m.Role.String())
	ok := &SetupOK{First: 0, Last: 1, Dim: ss.dim, Vocab: ss.vocab, MaxContext: opt.MaxContext, ModelID: ss.svc.cfg.ModelID}
	if ok.MaxContext <= 0 {
		ok.MaxContext = limit
	}
	return ss.send(ok)
}

func mpcRole(r Role) mpc.Role {
	if r == RoleMPCB {
		return mpc.RoleB
	}
	return mpc.RoleA
}

// maxShareQueue bounds the output shares the hop after the pair holds while
// it waits for the other party's share of the same position.
const maxShareQueue = 64

// share takes one party's output share on the hop after the pair; once both
// parties' shares of the next position are in, it reconstructs the block 0
// output and runs the shard on it (spec §6.6).
func (ss *session) share(ch Channel, s *MPCShare) error {
	q := &ss.shares[ch]
	if len(*q) >= maxShareQueue {
		return coded(CodeCapacity, "too many unmatched MPC shares")
	}
	*q = append(*q, s)
	for len(ss.shares[0]) > 0 && len(ss.shares[1]) > 0 {
		a, b := ss.shares[0][0], ss.shares[1][0]
		ss.shares[0], ss.shares[1] = ss.shares[0][1:], ss.shares[1][1:]
		if a.Start != b.Start || a.N != b.N || a.Final != b.Final {
			return coded(CodeMPCFailure, "the parties' shares disagree")
		}
		if n := ss.ms.Len(); a.Start != n {
			return coded(CodeBadMessage, "MPC_SHARE at %d, session at %d", a.Start, n)
		}
		x, err := mpc.Reconstruct(a.Body, b.Body)
		if err != nil {
			return coded(CodeMPCFailure, "shares do not reconstruct")
		}
		if len(x) != a.N*ss.dim {
			return coded(CodeMPCFailure, "reconstructed %d values for %d rows", len(x), a.N)
		}
		out, err := ss.ms.ForwardActivations(x, a.N, a.Start)
		if err != nil {
			return modelError(err)
		}
		if err := ss.emit(out, a.Start, a.N, a.Final); err != nil {
			return err
		}
	}
	return nil
}
