package mpc

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"time"
)

// Peer carries party A <-> party B traffic. Send must not wait for the peer
// to call Recv (both parties send before they receive in every round); Recv
// returns the next message from the peer. The caller provides it (over the
// circuit, or in memory in tests).
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
}

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
	kvK   []uint64 // opened masked keys K_j = k_j - b_j, pos x kvDim
	kvV   []uint64 // opened masked values V_j = v_j - d_j
	kvB   []uint64 // this party's shares of b_j
	kvD   []uint64 // this party's shares of d_j
	noise *mrand.Rand
	stats Stats
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

// Step runs the circuit of spec §7 for one token: msg is the client's step
// message for this party. It returns this party's encoded output share for
// S1. On any error the step is aborted and the session state is unchanged.
func (p *Party) Step(ctx context.Context, msg []byte, peer Peer) ([]byte, error) {
	start := time.Now()
	m, err := decodeStep(msg)
	if err != nil {
		return nil, err
	}
	if Role(m.role) != p.role {
		return nil, fmt.Errorf("%w: message for party %s", ErrMismatch, Role(m.role))
	}
	if m.cfgHash != p.hash {
		return nil, fmt.Errorf("%w: configuration hash", ErrMismatch)
	}
	if m.step != p.step || int(m.pos) != p.pos {
		return nil, fmt.Errorf("%w: step %d position %d, expected %d/%d", ErrMismatch, m.step, m.pos, p.step, p.pos)
	}
	if p.pos >= p.opt.MaxContext {
		return nil, fmt.Errorf("%w: context full at %d positions", ErrMismatch, p.pos)
	}
	tk, err := decodeTokenKey(m.tokenKey, p.w.cfg.Vocab, int(p.role))
	if err != nil {
		return nil, err
	}
	r := &run{party: int(p.role), step: m.step, peer: peer, keys: &keySource{b: m.keys}}
	if p.role == RoleA {
		r.src = newPRGSource(m.seed)
	} else {
		r.src = &bufSource{b: m.shares}
	}
	out, cache, err := p.circuit(ctx, r, &tk)
	if err != nil {
		p.opt.Logger.Warn("mpc step aborted", "role", p.role.String(), "step", m.step, "err", err)
		return nil, err
	}
	if err := r.src.done(); err != nil {
		return nil, err
	}
	if len(r.keys.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes of unused LUT keys", ErrMalformed, len(r.keys.b))
	}
	kv := p.w.cfg.kvDim()
	p.kvK = append(p.kvK, cache[0:kv]...)
	p.kvV = append(p.kvV, cache[kv:2*kv]...)
	p.kvB = append(p.kvB, cache[2*kv:3*kv]...)
	p.kvD = append(p.kvD, cache[3*kv:4*kv]...)
	p.stats = Stats{Rounds: int(r.round), OpenedValues: r.opened, Time: time.Since(start), PeerWait: r.wait}
	p.pos++
	p.step++
	if p.opt.NoiseSigma > 0 {
		addNoise(out, p.opt.NoiseSigma, p.noise)
	}
	return encodeOutput(p.role, m.step, m.pos, out), nil
}
