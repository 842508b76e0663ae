package hop

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/unfed/unfed/compute/mpc"
	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/verify"
	"lukechampine.com/blake3"
)

// A party of a confidential stage on a circuit (spec/10 §3, §5). The
// session runs compute/mpc stage steps on a goroutine of its own, because a
// step waits for the other party's MPC_PEER messages, which arrive through
// Deliver: the circuit switch hands a circuit's messages over one at a time,
// so a step run inside Deliver would wait for a message queued behind itself.
//
//	Deliver(MPC_PREP, joined on MORE) → PREP queue ───┐
//	Deliver(MPC_INPUT) or (MPC_RESHARE ×2) → inputs ──┤→ worker: Prep, Input, Step
//	Deliver(MPC_PEER)  → peer queue ──────────────────┘   → MPC_RESHARE ×2 to the next stage,
//	                                                        or MPC_OUTPUT to the client
//	                                                      ↔ MPC_PEER to the other party
//
// Everything queued for a session counts against PartyConfig.MaxPending
// bytes, and at most mpc.MaxQueuedPreps PREPs are held; overflow is a fatal
// out-of-capacity error.

// PartyConfig makes a relay a party (A or B, as each client chooses) of one
// confidential stage: the layers [first, last) of Stage.
type PartyConfig struct {
	// Stage is the stage's weights in fixed point (mpc.LoadStageWeights,
	// mpc.PrepareStage), shared read-only by every session; required.
	Stage *mpc.PreparedStage
	// Layers is the model's layer count; a stage ending there is the last
	// and answers the client with MPC_OUTPUT. Required.
	Layers int
	// Options configure every party session. Options.Params must be the
	// parameters Stage was prepared with; Options.MaxContext is the relay's
	// context limit (0: 2048).
	Options mpc.Options
	// MaxSessions bounds concurrent party sessions; 0 means 16.
	MaxSessions int
	// MaxPending bounds the bytes queued for one session (PREPs until their
	// step completes, inputs, reshare pieces and peer messages); 0 means
	// 256 MiB.
	MaxPending int
}

const (
	defaultMaxPending = 256 << 20
	defaultMPCContext = 2048
	// itemOverhead is what every queued message costs beyond its bytes, so
	// that many tiny messages cannot hold more memory than the limit says.
	itemOverhead = 64
	// abortTimeout bounds the wait for send credit of the PeerAbort notice.
	abortTimeout = 10 * time.Second
)

func (p *PartyConfig) check() error {
	if p.Stage == nil {
		return errors.New("hop: party without a prepared stage")
	}
	if _, last := p.Stage.Range(); p.Layers < last {
		return fmt.Errorf("hop: party stage ends at layer %d of a %d-layer model", last, p.Layers)
	}
	if p.MaxPending < 0 || p.MaxSessions < 0 || p.Options.MaxContext < 0 || p.Options.MaxContext > mpc.MaxContext {
		return errors.New("hop: party limits out of range")
	}
	// The session options must fit the prepared weights.
	if _, err := mpc.NewStageParty(mpc.RoleA, p.Stage, p.Options); err != nil {
		return fmt.Errorf("hop: party options: %w", err)
	}
	return nil
}

func (p *PartyConfig) contextLimit() int {
	if p.Options.MaxContext > 0 {
		return p.Options.MaxContext
	}
	return defaultMPCContext
}

// inputItem is one queued input message: an MPC_INPUT body or one
// MPC_RESHARE piece.
type inputItem struct {
	final bool
	body  []byte
}

// work is one thing the worker does: take a PREP, or run a step.
type work struct {
	prep   [][]byte  // a PREP's MPC_PREP fragments, in order
	bufs   [][]byte  // the edge messages they lie in, freed once taken
	hash   *[32]byte // H(PREP), when it was hashed as it arrived (addPrep)
	final  bool
	inputs [][]byte
}

// queuedPrep is a complete PREP the party has not taken yet: its
// fragments, and its hash when commitments are (or may still be) on.
type queuedPrep struct {
	parts [][]byte
	bufs  [][]byte // the edge messages parts lie in
	hash  *[32]byte
}

// partyRun is the worker side of one party session. The queues are guarded
// by mu; the StageParty, the out sealers and the worker's scratch buffers
// belong to the worker goroutine alone; the pair sealer is shared with
// sendAbort under pairMu.
type partyRun struct {
	ss       *session
	p        *mpc.StageParty
	role     mpc.Role
	first    bool    // stage 1: inputs come from the client (MPC_INPUT)
	last     bool    // the model's last stage: outputs go to the client
	nextHash [8]byte // the next stage's hash, when not last
	out      *Sealer // channel 0 to the same side of the next stage
	outB     *Sealer // channel 1 to the other side of the next stage
	hopsB    int     // links to the other side of the next stage
	limit    int     // MaxPending

	pairMu  sync.Mutex
	pair    *Sealer
	pairDir cell.Direction

	mu       sync.Mutex
	partial  [][]byte       // MPC_PREP fragments of the PREP being received
	partBufs [][]byte       // the edge messages partial lies in
	preps    []queuedPrep   // complete PREPs the party has not taken yet
	prepCost []int          // cost of every PREP received whose step has not completed, oldest first
	inputs   []inputItem    // stage 1: the client's inputs, in order
	pieces   [2][]inputItem // later stages: reshare pieces by channel (0 same side, 1 other side)
	peer     [][]byte
	pending  int
	wake     chan struct{} // work arrived
	peerSig  chan struct{} // peer messages arrived
	begun    bool          // an input or reshare piece arrived
	cm       *partyCommit  // commitments on (spec/11 §7), partycommit.go

	// prepH hashes the PREP being received, fragment by fragment, when
	// hashing (addPrep: the Deliver goroutine alone).
	prepH   *blake3.Hasher
	hashing bool

	prepHashes [][32]byte // worker: H(PREP) of the PREPs taken, oldest first
	// hashPeer is set by the worker before a committed step; sent is
	// written by Send (under pairMu), recvd by Recv, both during the step
	// only, and read by the worker after it.
	hashPeer    bool
	sent, recvd verify.PeerHasher
	sentBodies  [][]byte // the step's openings sent, kept for reveals

	msg, env []byte // worker scratch
	// unwritten: the worker sent an opening and has not yet waited or
	// yielded since (Send, Recv).
	unwritten bool
}

func (pr *partyRun) charge(n int) error {
	if pr.pending+n > pr.limit {
		return coded(CodeCapacity, "too much queued for this session")
	}
	pr.pending += n
	return nil
}

// prepHead is how many of a PREP's first bytes addPrep reads for its
// header (mpc.PrepRows): more than the header's 20.
const prepHead = 32

// addPrep takes one MPC_PREP fragment from the dealer. body lies in buf,
// the opened edge message, which nothing else keeps: once the worker has
// taken the PREP it goes back to the circuit layer's free list
// (cell.FreeMessage), for a later message to be joined into.
func (pr *partyRun) addPrep(more bool, body, buf []byte) error {
	pr.mu.Lock()
	if err := pr.charge(len(body)); err != nil {
		pr.mu.Unlock()
		return err
	}
	pr.partBufs = append(pr.partBufs, buf)
	first, hash := len(pr.partial) == 0, pr.cm != nil || !pr.begun
	pr.mu.Unlock()
	// With commitments on, or while they may still be turned on, each
	// fragment is hashed here, as it arrives, just after it was opened,
	// instead of on the worker's path when it takes the PREP: the same
	// CPU (measured: BLAKE3 is bound by its compression, not by reading
	// the bytes), but beside the worker's step rather than before it; and
	// outside mu, which the worker takes for every opening it receives.
	if first {
		pr.hashing = hash
		if hash {
			if pr.prepH == nil {
				pr.prepH = blake3.New(32, nil)
			}
			pr.prepH.Reset()
		}
	}
	if pr.hashing {
		pr.prepH.Write(body)
	}
	var h *[32]byte
	if pr.hashing && !more {
		h = new([32]byte)
		pr.prepH.Sum(h[:0])
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if more {
		// (body is this party's: the opened edge message)
		pr.partial = append(pr.partial, body)
		return nil
	}
	// The fragments are kept as they came: the worker hashes and decodes
	// them in place (mpc.StageParty.PrepParts), where joining would copy
	// every byte of a PREP of megabytes once more.
	prep, bufs := append(pr.partial, body), pr.partBufs
	pr.partial, pr.partBufs = nil, nil
	size := 0
	var head []byte // the PREP's first bytes, for its header
	for _, f := range prep {
		size += len(f)
		if len(head) < prepHead {
			head = append(head, f[:min(len(f), prepHead-len(head))]...)
		}
	}
	if len(pr.prepCost) >= mpc.MaxQueuedPreps {
		return coded(CodeCapacity, "more than %d PREPs queued", mpc.MaxQueuedPreps)
	}
	// A party is paid per position of each step it runs (pay.go), taken
	// when the step's PREP arrives: every step needs one. A PREP whose
	// header does not parse is refused by the worker before any step.
	if rows, err := mpc.PrepRows(head); err == nil {
		if err := pr.ss.charge(rows); err != nil {
			return err
		}
	}
	if err := pr.charge(itemOverhead); err != nil {
		return err
	}
	pr.preps = append(pr.preps, queuedPrep{prep, bufs, h})
	pr.prepCost = append(pr.prepCost, size+itemOverhead)
	signal(pr.wake)
	return nil
}

// addInput takes the client's MPC_INPUT (stage 1).
func (pr *partyRun) addInput(final bool, body []byte) error {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if err := pr.charge(len(body) + itemOverhead); err != nil {
		return err
	}
	pr.begun = true
	pr.inputs = append(pr.inputs, inputItem{final, body})
	signal(pr.wake)
	return nil
}

// addReshare takes one reshare piece of the previous stage: ch 0 from the
// same side, 1 from the other side.
func (pr *partyRun) addReshare(ch int, final bool, body []byte) error {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.first {
		return coded(CodeBadMessage, "MPC_RESHARE to the first stage")
	}
	if err := pr.charge(len(body) + itemOverhead); err != nil {
		return err
	}
	pr.begun = true
	pr.pieces[ch] = append(pr.pieces[ch], inputItem{final, body})
	signal(pr.wake)
	return nil
}

// addPeer queues a message from the other party for the running step.
func (pr *partyRun) addPeer(body []byte) error {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if err := pr.charge(len(body) + itemOverhead); err != nil {
		return err
	}
	pr.peer = append(pr.peer, body)
	signal(pr.peerSig)
	return nil
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// next waits for the worker's next job: a PREP first (they arrive in step
// order), else a step whose PREP and input are both in. ok is false once
// the session ends.
func (pr *partyRun) next(ctx context.Context) (w work, ok bool) {
	pr.mu.Lock()
	for {
		if ctx.Err() != nil {
			pr.mu.Unlock()
			return work{}, false
		}
		if len(pr.preps) > 0 {
			w.prep, w.bufs, w.hash = pr.preps[0].parts, pr.preps[0].bufs, pr.preps[0].hash
			pr.preps[0] = queuedPrep{}
			pr.preps = pr.preps[1:]
			pr.mu.Unlock()
			return w, true
		}
		if pr.p.QueuedPreps() > 0 {
			if w, ok = pr.takeInput(); ok {
				pr.mu.Unlock()
				return w, true
			}
		}
		pr.mu.Unlock()
		select {
		case <-pr.wake:
		case <-ctx.Done():
		}
		pr.mu.Lock()
	}
}

// takeInput pops the next step's input, if complete. Called with mu held.
func (pr *partyRun) takeInput() (work, bool) {
	pop := func(q *[]inputItem) inputItem {
		it := (*q)[0]
		(*q)[0] = inputItem{}
		*q = (*q)[1:]
		pr.pending -= len(it.body) + itemOverhead
		return it
	}
	if pr.first {
		if len(pr.inputs) == 0 {
			return work{}, false
		}
		it := pop(&pr.inputs)
		return work{final: it.final, inputs: [][]byte{it.body}}, true
	}
	if len(pr.pieces[0]) == 0 || len(pr.pieces[1]) == 0 {
		return work{}, false
	}
	same, other := pop(&pr.pieces[0]), pop(&pr.pieces[1])
	w := work{final: same.final, inputs: [][]byte{same.body, other.body}}
	if same.final != other.final {
		w.inputs = nil // the pieces disagree: do reports it
	}
	return w, true
}

// stepDone releases the PREP of a completed step.
func (pr *partyRun) stepDone() {
	pr.mu.Lock()
	pr.pending -= pr.prepCost[0]
	pr.prepCost = pr.prepCost[1:]
	pr.mu.Unlock()
}

// run is the worker: it takes PREPs and runs steps until the session ends.
func (pr *partyRun) run() {
	ctx := pr.ss.ctx
	for {
		w, ok := pr.next(ctx)
		if !ok {
			return
		}
		err := pr.do(ctx, w)
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return // ended by someone else, who reported it
		case errors.Is(err, errSend):
			pr.ss.end(nil)
			return
		default:
			pr.ss.end(asCoded(err))
			return
		}
	}
}

func (pr *partyRun) do(ctx context.Context, w work) error {
	if w.prep != nil {
		if w.hash != nil {
			pr.prepHashes = append(pr.prepHashes, *w.hash)
		}
		if err := pr.p.PrepParts(w.prep); err != nil {
			return coded(CodeMPCFailure, "PREP for step %d refused", int(pr.p.NextStep())+pr.p.QueuedPreps())
		}
		// PrepParts copied out what it keeps (shares, seed, decoded
		// keys), and the hash is taken: the messages are free.
		for _, b := range w.bufs {
			cell.FreeMessage(b)
		}
		return nil
	}
	step, pos := pr.p.NextStep(), pr.p.Pos()
	kind := mpc.ShareInput
	if !pr.first {
		kind = mpc.ShareReshare
	}
	if w.inputs == nil {
		return coded(CodeMPCFailure, "reshare pieces of step %d disagree on FINAL", step)
	}
	cm := pr.commitment()
	var st verify.PartyStep
	if cm != nil && len(pr.prepHashes) == 0 {
		return coded(CodeInternal, "no PREP hash for step %d", step)
	}
	if cm != nil {
		st = verify.PartyStep{Step: int(step), Start: pos, Prep: pr.prepHashes[0]}
		for i, in := range w.inputs {
			st.In[i] = verify.BodyHash(in)
		}
	}
	if len(pr.prepHashes) > 0 {
		pr.prepHashes = pr.prepHashes[1:]
	}
	x, err := pr.p.Input(kind, w.inputs...)
	if err != nil {
		return coded(CodeMPCFailure, "input of step %d refused", step)
	}
	pr.hashPeer = cm != nil
	pr.sent.Reset()
	pr.recvd.Reset()
	pr.sentBodies = nil
	y, err := pr.p.Step(ctx, x, (*partyPeer)(pr))
	switch {
	case ctx.Err() != nil, errors.Is(err, errSend):
		return errSend
	case err != nil:
		return coded(CodeMPCFailure, "step %d aborted", step)
	}
	pr.stepDone()
	if miscompute != nil {
		miscompute(&pr.ss.svc.cfg, pr.role, pr.ss.setup.First, int(step), y)
	}
	if done := pr.ss.svc.cfg.MPCStepDone; done != nil {
		done(pr.role, pr.p.Stats())
	}
	st.Count = pr.p.Pos() - pos
	var recvd [2][]byte
	var state [2][]byte
	if cm != nil {
		pr.pairMu.Lock()
		st.Peer = [2][32]byte{pr.sent.Sum(), pr.recvd.Sum()}
		pr.pairMu.Unlock()
		for i, k := range []mpc.StateKind{mpc.StateOpened, mpc.StateMasks} {
			if state[i], err = pr.p.StepState(k); err != nil {
				return coded(CodeInternal, "state of step %d", step)
			}
			st.State[i] = verify.BodyHash(state[i])
		}
		if !pr.first {
			recvd = [2][]byte{w.inputs[0], w.inputs[1]}
		}
	}
	if pr.last {
		var m *MPCOutput
		if w.final {
			m = &MPCOutput{Final: true, Body: pr.p.Output(y, step, pos)}
			st.Out[0] = verify.BodyHash(m.Body)
		}
		if cm != nil {
			cm.kept.step(pr.sentBodies, [2][]byte{}, recvd, state[0])
			if err := pr.commitStep(&st); err != nil {
				return err
			}
		}
		if m == nil {
			return nil
		}
		if tamperPiece != nil {
			tamperPiece(&pr.ss.svc.cfg, pr.role, pr.ss.setup.First, int(step), 0, m.Body)
		}
		pr.msg = m.Append(pr.msg[:0])
		if pr.ss.sendRaw(pr.msg) != nil {
			return errSend
		}
		return nil
	}
	same, other, err := pr.p.Reshare(y, step, pos, pr.nextHash)
	if err != nil {
		return coded(CodeInternal, "reshare failed")
	}
	if cm != nil {
		st.Out = [2][32]byte{verify.BodyHash(same), verify.BodyHash(other)}
		cm.kept.step(pr.sentBodies, [2][]byte{same, other}, recvd, state[0])
		if err := pr.commitStep(&st); err != nil {
			return err
		}
	}
	if tamperPiece != nil {
		tamperPiece(&pr.ss.svc.cfg, pr.role, pr.ss.setup.First, int(step), 0, same)
		tamperPiece(&pr.ss.svc.cfg, pr.role, pr.ss.setup.First, int(step), 1, other)
	}
	if pr.msg, pr.env, err = sealSend(pr.ss, pr.out, &MPCReshare{Final: w.final, Body: same}, cell.Forward, pr.ss.setup.OutHops, pr.msg, pr.env); err != nil {
		return err
	}
	pr.msg, pr.env, err = sealSend(pr.ss, pr.outB, &MPCReshare{Final: w.final, Body: other}, cell.Forward, pr.hopsB, pr.msg, pr.env)
	return err
}

// sendAbort tells the other party that this session ended (PeerAbort), so
// that a step it runs or starts fails at once instead of waiting. Best
// effort: it runs after close, with its own deadline.
func (pr *partyRun) sendAbort() {
	pr.pairMu.Lock()
	defer pr.pairMu.Unlock()
	msg := (&MPCPeer{Body: PeerAbort}).Append(nil)
	pr.ss.svc.capture(CaptureToEdge, msg)
	env, err := pr.pair.Seal(nil, msg)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), abortTimeout)
	defer cancel()
	_ = pr.ss.c.SendEdge(ctx, pr.pairDir, 1, env)
}

// partyPeer is the mpc.Peer of a party session: MPC_PEER edge messages under
// the pair key.
type partyPeer partyRun

// Send seals msg as MPC_PEER and sends it to the other party. The link's
// writer writes it; Recv makes sure it runs first (unwritten).
func (pp *partyPeer) Send(ctx context.Context, msg []byte) error {
	pr := (*partyRun)(pp)
	pr.unwritten = true
	pr.pairMu.Lock()
	defer pr.pairMu.Unlock()
	if pr.hashPeer {
		// Kept as it is, not copied: the party never writes a message
		// after sending it (mpc.Peer), and TestPartyRevealsAreCommitted
		// fails if a later step changed what a reveal returns.
		pr.sent.Write(msg)
		pr.sentBodies = append(pr.sentBodies, msg)
	}
	if tamperPeer != nil {
		msg = append([]byte(nil), msg...)
		tamperPeer(&pr.ss.svc.cfg, pr.role, pr.ss.setup.First, int(pr.p.NextStep()), msg)
	}
	buf := (&MPCPeer{Body: msg}).Append(nil)
	pr.ss.svc.capture(CaptureToEdge, buf)
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
		if len(pr.peer) > 0 && pr.unwritten {
			// The peer's opening is in, so this worker would compute on
			// at once, and the link's writer, just woken for the opening
			// sent, would wait for the P (one per MPC process) until the
			// worker next blocks, and the peer with it: yield once.
			// Only here: a worker that blocks below is woken ahead of
			// the other goroutines, a yielded one after them (measured,
			// docs/perf/confidential.md § The round's wake-up chain).
			pr.unwritten = false
			pr.mu.Unlock()
			runtime.Gosched()
			continue
		}
		pr.unwritten = false
		if len(pr.peer) > 0 {
			b := pr.peer[0]
			pr.peer[0] = nil
			pr.peer = pr.peer[1:]
			pr.pending -= len(b) + itemOverhead
			pr.mu.Unlock()
			if pr.hashPeer {
				pr.recvd.Write(b)
			}
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

// openParty validates a party SETUP (spec/10 §3.2) and starts the session's
// worker.
func (ss *session) openParty(m *Setup) error {
	pc := ss.svc.cfg.Party
	if pc == nil {
		return coded(CodeRangeNotServed, "not a party of a confidential stage")
	}
	first, last := pc.Stage.Range()
	if m.First != first || m.Last != last {
		return coded(CodeRangeNotServed, "serves the stage [%d,%d)", first, last)
	}
	isLast := last == pc.Layers
	own, other := m.Deal, m.DealB
	if m.Role == RolePartyB {
		own, other = m.DealB, m.Deal
	}
	switch {
	case m.Input != InputShares:
		return coded(CodeBadMessage, "a party takes shares, not %v", m.Input)
	case m.TopK != 0:
		return coded(CodeBadMessage, "top-k for a party")
	case m.Pair == nil:
		return coded(CodeBadMessage, "a party needs the pair key")
	case own == nil || other != nil:
		return coded(CodeBadMessage, "a party needs exactly the deal key of its side")
	case (m.In != nil) != (first > 0) || (m.InB != nil) != (first > 0):
		return coded(CodeBadMessage, "in and in-B keys go exactly with a stage after the first")
	case isLast && (m.Out != nil || m.OutB != nil || m.NextLast != 0):
		return coded(CodeBadMessage, "out keys or a next stage for the last stage")
	case !isLast && (m.Out == nil || m.OutB == nil || m.OutHops != 3):
		return coded(CodeBadMessage, "a stage before the last needs the out and out-B keys, 3 hops out")
	case !isLast && m.NextLast == 0:
		return coded(CodeBadMessage, "a stage before the last needs next last, where the next stage ends")
	case !isLast && (m.NextLast <= last || m.NextLast > pc.Layers || m.NextLast-last > mpc.MaxStageLayers):
		return coded(CodeBadMessage, "next stage [%d,%d) outside the model", last, m.NextLast)
	}
	limit := pc.contextLimit()
	if m.MaxContext > limit {
		return coded(CodeContextTooLong, "context limit %d", limit)
	}
	opt := pc.Options
	opt.MaxContext = limit
	if m.MaxContext > 0 {
		opt.MaxContext = m.MaxContext
	}
	if opt.Logger == nil {
		opt.Logger = ss.svc.log
	}
	role := mpc.RoleA
	pairOut, pairIn, pairDir, hopsB := ChanPairAB, ChanPairBA, cell.Forward, 4
	if m.Role == RolePartyB {
		role = mpc.RoleB
		pairOut, pairIn, pairDir, hopsB = ChanPairBA, ChanPairAB, cell.Backward, 2
	}
	pr := &partyRun{ss: ss, role: role, first: first == 0, last: isLast, hopsB: hopsB, pairDir: pairDir,
		limit: pc.MaxPending, wake: make(chan struct{}, 1), peerSig: make(chan struct{}, 1)}
	if pr.limit == 0 {
		pr.limit = defaultMaxPending
	}
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	var err error
	pr.pair, err = NewSealer(m.Pair, pairOut)
	add(err)
	var openers [maxChannel + 1]*Opener
	openers[pairIn], err = NewOpener(m.Pair, pairIn)
	add(err)
	openers[ChannelDeal], err = NewOpener(own, ChannelDeal)
	add(err)
	if !pr.first {
		openers[ChanData], err = NewOpener(m.In, ChanData)
		add(err)
		openers[ChanDataB], err = NewOpener(m.InB, ChanDataB)
		add(err)
	}
	if !isLast {
		pr.out, err = NewSealer(m.Out, ChanData)
		add(err)
		pr.outB, err = NewSealer(m.OutB, ChanDataB)
		add(err)
		pr.nextHash = mpc.StageHash(pc.Stage.Config(), pc.Options.Params, last, m.NextLast)
	}
	if errors.Join(errs...) != nil {
		return coded(CodeInternal, "edge key")
	}
	if !ss.svc.takeSlot(false, pc.MaxSessions) {
		return coded(CodeCapacity, "no party session free")
	}
	release := func() { ss.svc.releaseSlot(false) }
	if pr.p, err = mpc.NewStageParty(role, pc.Stage, opt); err != nil {
		release()
		return coded(CodeInternal, "party setup failed")
	}
	if !ss.hold(nil, release) {
		release()
		return errSend
	}
	ss.openers = openers
	ss.party = pr
	mc := pc.Stage.Config()
	ss.setup, ss.dim, ss.vocab = m, mc.Dim, mc.Vocab
	ss.state = stateReady
	ss.svc.log.Debug("party session opened", "circuit", ss.c.ID(), "role", m.Role.String())
	err = ss.send(&SetupOK{First: first, Last: last, Dim: mc.Dim, Vocab: mc.Vocab, MaxContext: opt.MaxContext,
		ModelID: ss.svc.cfg.ModelID})
	go pr.run()
	return err
}
