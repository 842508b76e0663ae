package mpc

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"runtime"
	"time"

	"github.com/unfed/unfed/compute/mpc/dpf"
	"github.com/unfed/unfed/compute/tensor"
)

// Peer carries party A <-> party B traffic. Send must not wait for the peer
// to call Recv (both parties send before they receive in every round); Recv
// returns the next message from the peer. The caller provides it (over the
// circuit, or in memory in tests). A party allocates every message it sends
// and never writes it after Send: a Peer may keep msg (relay/hop keeps the
// openings sent for reveals, spec/11 §7.5).
type Peer interface {
	Send(ctx context.Context, msg []byte) error
	Recv(ctx context.Context) ([]byte, error)
}

// Role names the two parties.
type Role int

const (
	RoleA Role = 0
	RoleB Role = 1
)

func (r Role) String() string {
	if r == RoleA {
		return "A"
	}
	return "B"
}

// Options configure a party. The zero value is usable.
type Options struct {
	// Params are the approximation parameters; they must equal the dealer's.
	Params Params
	// MaxContext bounds the positions the party keeps (default 2048).
	MaxContext int
	// NoiseSigma, when positive, is the standard deviation of the Gaussian
	// noise this party adds to each element of its output share (spec §9).
	NoiseSigma float64
	// Logger receives step-level events (never values); nil discards.
	Logger *slog.Logger
	// PrecomputeBytes bounds the memory a PREP's lookup keys may take
	// evaluated ahead of their token (spec §5.2); keys beyond it are
	// evaluated during the step. 0 means 128 MiB; negative means none.
	PrecomputeBytes int
}

const defaultPrecompute = 128 << 20

// Stats describe the last completed step.
type Stats struct {
	Rounds       int // A<->B rounds
	OpenedValues int // ring elements each party sent to the other
	// Time is the step's wall time, from the client's message to the
	// output share; PeerWait is the part of it spent waiting for the other
	// party's openings.
	Time, PeerWait time.Duration
}

// Party is one side (A or B) of the MPC pair for one session: it owns the
// secret-shared KV cache of block 0. Not safe for concurrent Steps.
type Party struct {
	role  Role
	w     *prepared
	opt   Options
	hash  [8]byte
	step  uint32
	pos   int
	kv    kvCache // block 0's
	noise *mrand.Rand
	stats Stats
	prep  *pendingPrep // the next step's correlated randomness, if received
	arena []uint64     // the evaluations of PREPs' keys, reused from step to step
}

// pendingPrep is one step's correlated randomness (a PREP message), held
// until its token arrives; the lookup keys are decoded and, within the
// budget, evaluated over their domains.
type pendingPrep struct {
	step, pos uint32
	rows      int    // a stage's PREP: the step's positions
	seed      []byte // role A
	shares    []byte // role B
	keys      []dpf.Key
	ys        [][]uint64
}

// Prepared is a model's embedding table and block 0 in the fixed-point form
// the parties compute with (spec §4.2, §6.1), for one set of Params. It is
// read-only once built, so one Prepared serves every session of a relay:
// for qwen2.5-0.5B its embedding table alone is 1.1 GB.
type Prepared struct {
	p *prepared
}

// Prepare builds the fixed-point weights and tables for par (zero fields
// take their defaults). It does not retain w.
func Prepare(w *Weights, par Params) (*Prepared, error) {
	p, err := prepare(w, par.withDefaults())
	if err != nil {
		return nil, err
	}
	return &Prepared{p: p}, nil
}

// Config returns the model configuration pw was prepared for.
func (pw *Prepared) Config() Config { return pw.p.cfg }

// NewParty prepares the fixed-point weights and tables and starts one
// session. A relay serving many sessions should Prepare once and use
// NewPartyPrepared.
func NewParty(role Role, w *Weights, opt Options) (*Party, error) {
	pw, err := Prepare(w, opt.Params)
	if err != nil {
		return nil, err
	}
	return NewPartyPrepared(role, pw, opt)
}

// NewPartyPrepared starts one session on shared prepared weights.
// opt.Params must be those pw was prepared for (zero fields meaning their
// defaults).
func NewPartyPrepared(role Role, pw *Prepared, opt Options) (*Party, error) {
	if role != RoleA && role != RoleB {
		return nil, fmt.Errorf("mpc: role %d", role)
	}
	opt.Params = opt.Params.withDefaults()
	if opt.Params != pw.p.par {
		return nil, fmt.Errorf("%w: session parameters %+v, weights prepared for %+v", ErrConfig, opt.Params, pw.p.par)
	}
	if opt.MaxContext <= 0 {
		opt.MaxContext = 2048
	}
	if opt.MaxContext > MaxContext {
		return nil, fmt.Errorf("%w: max context %d exceeds %d", ErrConfig, opt.MaxContext, MaxContext)
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("mpc: noise seed: %w", err)
	}
	return &Party{role: role, w: pw.p, opt: opt, hash: pw.p.cfg.hash(opt.Params), noise: mrand.New(mrand.NewChaCha8(seed))}, nil
}

// Role returns the party's role.
func (p *Party) Role() Role { return p.role }

// Pos returns the number of positions in the party's KV cache.
func (p *Party) Pos() int { return p.pos }

// Stats returns the statistics of the last completed step.
func (p *Party) Stats() Stats { return p.stats }

// checkHeader checks a client message's role, configuration, step and
// position against the session.
func (p *Party) checkHeader(m *stepMsg) error {
	if Role(m.role) != p.role {
		return fmt.Errorf("%w: message for party %s", ErrMismatch, Role(m.role))
	}
	if m.cfgHash != p.hash {
		return fmt.Errorf("%w: configuration hash", ErrMismatch)
	}
	if m.step != p.step || int(m.pos) != p.pos {
		return fmt.Errorf("%w: step %d position %d, expected %d/%d", ErrMismatch, m.step, m.pos, p.step, p.pos)
	}
	if p.pos >= p.opt.MaxContext {
		return fmt.Errorf("%w: context full at %d positions", ErrMismatch, p.pos)
	}
	return nil
}

// Prep takes the PREP message of the next step (spec §5.1): its correlated
// randomness, which does not depend on the token, so the client sends it
// ahead. The party decodes the lookup keys; with ahead set (the token is not
// here yet) it also evaluates them over their domains now, within
// Options.PrecomputeBytes, so that the step itself only reads them. Without
// it (the STEP is already waiting, as for a prompt) evaluating ahead would
// only add memory traffic, so the step evaluates them. The results are the
// same bits either way. A second PREP for the same step is refused; a failed
// Prep changes no state.
func (p *Party) Prep(msg []byte, ahead bool) error {
	return p.prep0(msg, ahead, nil)
}

// PrepUntil is Prep evaluating ahead, except that it stops evaluating once
// stop reports true: a relay passes "the STEP has arrived, or another
// session has a step to run", so that evaluating ahead never holds up a
// step by more than one key. The keys it did not reach are evaluated in the
// step, with the same bits.
func (p *Party) PrepUntil(msg []byte, stop func() bool) error {
	return p.prep0(msg, true, stop)
}

func (p *Party) prep0(msg []byte, ahead bool, stop func() bool) error {
	m, err := decodeStepMsg(msg, kindPrep)
	if err != nil {
		return err
	}
	if err := p.checkHeader(m); err != nil {
		return err
	}
	if p.prep != nil {
		return fmt.Errorf("%w: a second PREP for step %d", ErrMismatch, m.step)
	}
	// The circuit fixes the sizes: check them before decoding or
	// allocating anything for the keys.
	shares, keys := p.w.prepSize.at(p.pos)
	if p.role == RoleB && len(m.shares) != shares {
		return fmt.Errorf("%w: %d bytes of shares at position %d, want %d", ErrMalformed, len(m.shares), p.pos, shares)
	}
	if len(m.keys) != keys {
		return fmt.Errorf("%w: %d bytes of LUT keys at position %d, want %d", ErrMalformed, len(m.keys), p.pos, keys)
	}
	pp := &pendingPrep{step: m.step, pos: m.pos,
		seed: append([]byte(nil), m.seed...), shares: append([]byte(nil), m.shares...)}
	if pp.keys, err = decodeKeys(m.keys, int(p.role)); err != nil {
		return err
	}
	if ahead {
		pp.ys = precompute(pp.keys, p.opt.PrecomputeBytes, &p.arena, stop)
	}
	p.prep = pp
	return nil
}

// decodeKeys parses a PREP's concatenated lookup keys, all for party role.
func decodeKeys(b []byte, role int) ([]dpf.Key, error) {
	keys, err := dpf.DecodeAll(b)
	return checkRole(keys, err, role)
}

// decodeKeyParts is decodeKeys for a key section in pieces.
func decodeKeyParts(parts [][]byte, role int) ([]dpf.Key, error) {
	keys, err := dpf.DecodeAllParts(parts)
	return checkRole(keys, err, role)
}

// checkRole checks that decoded keys are all for party role.
func checkRole(keys []dpf.Key, err error, role int) ([]dpf.Key, error) {
	if err != nil {
		return nil, fmt.Errorf("%w: LUT key: %w", ErrMalformed, err)
	}
	for i := range keys {
		if int(keys[i].Party) != role {
			return nil, fmt.Errorf("%w: LUT key for the other party", ErrMalformed)
		}
	}
	return keys, nil
}

// precompute evaluates keys over their domains, in order, while their total
// stays within budget bytes (0: the default; negative: none) and stop (if
// not nil) reports false, leaving nil for the keys it skips, on the
// engine's worker pool, into *arena (grown when too small: a step's keys
// grow with its position, and fresh memory would be zeroed and faulted in
// every step).
func precompute(keys []dpf.Key, budget int, arena *[]uint64, stop func() bool) [][]uint64 {
	if budget == 0 {
		budget = defaultPrecompute
	}
	var words int
	n := 0
	// (comparison keys are evaluated at points once their inputs are open:
	// nothing to make ahead, no room)
	width := func(k *dpf.Key) int {
		if k.Cmp || (k.Elems != 0 && k.Elems != 2) {
			return 0 // (refused when its lookup reads it)
		}
		return max(1, k.Elems) << uint(k.Bits)
	}
	for ; n < len(keys); n++ {
		w := width(&keys[n])
		if 8*(words+w) > budget {
			break
		}
		words += w
	}
	if n == 0 || words == 0 {
		return nil
	}
	if len(*arena) < words {
		// Grow by doubling, up to the budget: the keys of a step grow
		// with the context, one position per token, and an arena grown
		// by an eighth was zeroed afresh every few tokens.
		*arena = make([]uint64, max(words+words/8, min(2*len(*arena), budget/8)))
	}
	free := *arena
	ys := make([][]uint64, n)
	grain := 0
	for i := range ys {
		if w := width(&keys[i]); w > 0 {
			ys[i], free = free[:w:w], free[w:]
			grain = max(grain, w)
		}
	}
	tensor.ParallelFor(n, runtime.GOMAXPROCS(0), grain, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			if ys[i] == nil {
				continue
			}
			if stop != nil && stop() {
				// the step evaluates the rest of this range
				clear(ys[i:hi])
				return
			}
			// len(ys[i]) is the key's domain (times its elements): cannot fail
			if k := &keys[i]; k.Elems == 2 {
				size := 1 << uint(k.Bits)
				_ = k.EvalAllVec([][]uint64{ys[i][:size], ys[i][size:]})
			} else if k.Elems == 0 {
				_ = k.EvalAll(ys[i])
			}
		}
	})
	return ys
}

// Step runs the circuit of spec §7 for one token: msg is the client's STEP
// message for this party, whose PREP the party took before. It returns this
// party's encoded output share for S1. On any error the step is aborted and
// the session state is unchanged (the PREP stays for a retry).
func (p *Party) Step(ctx context.Context, msg []byte, peer Peer) ([]byte, error) {
	start := time.Now()
	m, err := decodeStepMsg(msg, kindStep)
	if err != nil {
		return nil, err
	}
	if err := p.checkHeader(m); err != nil {
		return nil, err
	}
	pp := p.prep
	if pp == nil || pp.step != m.step {
		return nil, fmt.Errorf("%w: no PREP for step %d", ErrMismatch, m.step)
	}
	tk, err := decodeTokenKey(m.tokenKey, p.w.cfg.Vocab, int(p.role))
	if err != nil {
		return nil, err
	}
	r := &run{party: int(p.role), step: m.step, peer: peer, keys: &keySource{keys: pp.keys, ys: pp.ys}}
	if p.role == RoleA {
		r.src = newPRGSource(pp.seed)
	} else {
		r.src = &bufSource{b: pp.shares}
	}
	out, cache, err := p.circuit(ctx, r, &tk)
	if err != nil {
		p.opt.Logger.Warn("mpc step aborted", "role", p.role.String(), "step", m.step, "err", err)
		return nil, err
	}
	if err := r.src.done(); err != nil {
		return nil, err
	}
	if err := r.keys.done(); err != nil {
		return nil, err
	}
	p.prep = nil
	p.kv.add(cache, p.w.cfg.kvDim())
	p.stats = Stats{Rounds: int(r.round), OpenedValues: r.opened, Time: time.Since(start), PeerWait: r.wait}
	p.pos++
	p.step++
	if p.opt.NoiseSigma > 0 {
		addNoise(out, p.opt.NoiseSigma, p.noise)
	}
	return encodeOutput(p.role, m.step, m.pos, out), nil
}
