package hop

import (
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/mpc"
	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/internal/netyield"
	"github.com/unfed/unfed/relay/verify"
)

// A dealer of a confidential stage on a circuit (spec/10 §3.4, §5): on each
// DEAL it deals the steps asked for, in order, and sends every step's PREP
// to party A (channel ChannelDeal under SlotDeal, 1 hop forward) and party B
// (under SlotDealB, 2 hops forward, through A, which cannot open it), cut
// into MPC_PREP fragments. It needs the model's shape only, never weights.
// Dealing runs inside Deliver: a DEAL holds the circuit's later messages to
// this hop until its PREPs are sent, which is the flow control the dealer
// needs. Every dealSlice of dealing and sealing, it steps aside until the
// runtime has polled the network (relay/internal/netyield): cells this relay
// passes on, a later stage's reshare pieces among them, must not wait for
// a deal of several milliseconds when the relay has one P (the testnet's
// MPC processes) or every P dealing.

// DealerConfig makes a relay a dealer of any stage of its model.
type DealerConfig struct {
	// Model is the model's shape (model.ReadConfig or a manifest's Config):
	// a dealer reads no weights. Required.
	Model model.Config
	// Params are the stage parameters; they must equal the parties'. The
	// zero value means the defaults.
	Params mpc.Params
	// MaxSessions bounds concurrent dealer sessions; 0 means 16.
	MaxSessions int
	// MaxContext bounds the steps one session deals; 0 means 2048.
	MaxContext int
}

func (d *DealerConfig) check() (mpc.Config, error) {
	mc, err := mpc.ConfigOf(d.Model)
	if err != nil {
		return mpc.Config{}, fmt.Errorf("hop: dealer model: %w", err)
	}
	if d.Model.NLayers < 1 {
		return mpc.Config{}, errors.New("hop: dealer model without layers")
	}
	if d.MaxSessions < 0 || d.MaxContext < 0 || d.MaxContext > mpc.MaxContext {
		return mpc.Config{}, errors.New("hop: dealer limits out of range")
	}
	return mc, nil
}

func (d *DealerConfig) contextLimit() int {
	if d.MaxContext > 0 {
		return d.MaxContext
	}
	return defaultMPCContext
}

// dealerRun is one dealer session; it runs on the Deliver goroutine.
type dealerRun struct {
	ss       *session
	d        *mpc.StageDealer
	toA, toB *Sealer
	max      int                // steps this session may deal
	cm       *verify.PartyChain // commitments on (spec/11 §7), partycommit.go
	seed     [32]byte           // with commitments: the dealing's randomness, for reveals (partyreveal.go)
	rows     []int              // with commitments: every step's rows, for reveals
	rd       *redealt           // with commitments: what reveals dealt again (partyreveal.go)
	slicer   netyield.Slicer    // the deal's pauses for the network
}

// dealSlice is the most a dealer computes without letting the network
// through: a yield costs about 7 µs (netyield's benchmark), a stories260K
// stage's step deals and seals in 2-5 ms. A variable for tests
// (SetDealSlice).
var dealSlice = 500 * time.Microsecond

// openDealer validates a dealer SETUP (spec/10 §3.2) and opens the session.
func (ss *session) openDealer(m *Setup) error {
	dc := ss.svc.cfg.Dealer
	if dc == nil {
		return coded(CodeRangeNotServed, "not a dealer")
	}
	if m.Last > dc.Model.NLayers || m.Last-m.First > mpc.MaxStageLayers {
		return coded(CodeRangeNotServed, "deals stages within layers [0,%d)", dc.Model.NLayers)
	}
	switch {
	case m.Input != InputNone:
		return coded(CodeBadMessage, "a dealer takes no %v input", m.Input)
	case m.Deal == nil || m.DealB == nil || m.In != nil || m.InB != nil || m.Out != nil || m.OutB != nil || m.Pair != nil:
		return coded(CodeBadMessage, "a dealer needs exactly the deal and deal-B keys")
	case m.TopK != 0 || m.NextLast != 0:
		return coded(CodeBadMessage, "top-k or a next stage for a dealer")
	}
	limit := dc.contextLimit()
	if m.MaxContext > limit {
		return coded(CodeContextTooLong, "context limit %d", limit)
	}
	max := limit
	if m.MaxContext > 0 {
		max = m.MaxContext
	}
	toA, err1 := NewSealer(m.Deal, ChannelDeal)
	toB, err2 := NewSealer(m.DealB, ChannelDeal)
	if errors.Join(err1, err2) != nil {
		return coded(CodeInternal, "edge key")
	}
	if !ss.svc.takeSlot(true, dc.MaxSessions) {
		return coded(CodeCapacity, "no dealer session free")
	}
	release := func() { ss.svc.releaseSlot(true) }
	d, err := mpc.NewStageDealer(ss.svc.dealerCfg, m.First, m.Last, dc.Params, max, rand.Reader)
	if err != nil {
		release()
		return coded(CodeInternal, "dealer setup failed")
	}
	if !ss.hold(nil, release) {
		release()
		return errSend
	}
	ss.dealer = &dealerRun{ss: ss, toA: toA, toB: toB, max: max,
		slicer: netyield.Slicer{Y: &ss.svc.netYield, Slice: dealSlice}}
	ss.dealer.use(d)
	mc := ss.svc.dealerCfg
	ss.setup, ss.dim, ss.vocab = m, mc.Dim, mc.Vocab
	ss.state = stateReady
	ss.svc.log.Debug("dealer session opened", "circuit", ss.c.ID())
	return ss.send(&SetupOK{First: m.First, Last: m.Last, Dim: mc.Dim, Vocab: mc.Vocab, MaxContext: max,
		ModelID: ss.svc.cfg.ModelID})
}

// use makes d the session's dealer, pausing for the network.
func (dr *dealerRun) use(d *mpc.StageDealer) {
	d.SetPause(dr.slicer.Pause)
	dr.d = d
}

// deal runs one DEAL: the step m.Step, covering m.Rows positions.
func (dr *dealerRun) deal(m *Deal) error {
	ss := dr.ss
	switch next := dr.d.Step(); {
	case m.Step != next:
		return coded(CodeBadMessage, "DEAL for step %d, the next is %d", m.Step, next)
	case m.Rows < 1 || m.Rows > MaxDealRows:
		return coded(CodeBadMessage, "DEAL of %d rows", m.Rows)
	case dr.d.Pos()+m.Rows > dr.max:
		return coded(CodeContextTooLong, "context limit %d", dr.max)
	}
	if err := ss.charge(m.Rows); err != nil { // a dealer is paid per position dealt (pay.go)
		return err
	}
	if ss.ctx.Err() != nil {
		return errSend
	}
	pos := dr.d.Pos()
	dr.slicer.Start()
	a, b, err := dr.d.Next(m.Rows)
	if err != nil {
		return coded(CodeInternal, "dealing failed")
	}
	if dr.cm != nil {
		dr.slicer.Pause() // (the commitment hashes megabytes)
		dr.rows = append(dr.rows, m.Rows)
		if err := dr.commitDeal(m.Step, pos, m.Rows, a, b); err != nil {
			return err
		}
	}
	if tamperPrep != nil {
		tamperPrep(&ss.svc.cfg, ss.setup.First, m.Step, 0, a)
		tamperPrep(&ss.svc.cfg, ss.setup.First, m.Step, 1, b)
	}
	if err := dr.send(dr.toA, 1, a); err != nil {
		return err
	}
	if err := dr.send(dr.toB, 2, b); err != nil {
		return err
	}
	// Both are sealed into cells (copied) and hashed: the next step is
	// dealt into them.
	dr.d.Recycle(a, b)
	return nil
}

// send sends one PREP as MPC_PREP fragments sealed with sl, hops forward.
func (dr *dealerRun) send(sl *Sealer, hops int, prep []byte) error {
	ss := dr.ss
	for _, f := range SplitPrep(prep, 0) {
		dr.slicer.Pause()
		var err error
		if ss.msg, ss.env, err = sealSend(ss, sl, f, cell.Forward, hops, ss.msg, ss.env); err != nil {
			return err
		}
	}
	if h := ss.svc.cfg.PrepDealt; h != nil {
		h(len(prep))
	}
	return nil
}
