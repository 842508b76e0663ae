package mpc

// Confidential stages (spec/10-confidential.md §4-§6): two parties evaluate
// the contiguous layers [First, Last) of a model on additive shares of the
// residual stream, with the correlated randomness dealt by a third relay
// (StageDealer). Every layer runs the circuit of §5: an RMSNorm on shares,
// the block of spec 05 §7, a truncation back to scale Frac.
//
//	client or previous stage → SHARE (INPUT/RESHARE) → StageParty.Input
//	dealer: StageDealer.Next → PREP → StageParty.Prep
//	StageParty.Step (rounds with the other party through Peer) → output share
//	→ StageParty.Reshare (to the next stage) or StageParty.Output (to the client)

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/mpc/dpf"
)

// StageVersion is the version of the stage messages (PREP and SHARE of
// spec/10 §4) and of the peer messages of a stage.
const StageVersion = 13

// StageRounds returns the rounds between the two parties of a stage of the
// given layers per step, whatever the step's rows (spec/10 §5): 15 per
// layer and one for the stage's first opening of its input.
func StageRounds(layers int) int { return 15*layers + 1 }

// LayerWeights are one transformer block's public float32 weights, every
// matrix row-major as (out, in).
type LayerWeights struct {
	AttnNorm   []float32 // Dim
	Wq, Wk, Wv []float32 // NHeads*HeadDim x Dim, NKVHeads*HeadDim x Dim (x2)
	Bq, Bk, Bv []float32 // optional (qwen2)
	Wo         []float32 // Dim x NHeads*HeadDim
	FFNNorm    []float32 // Dim
	W1, W3     []float32 // FFN x Dim (gate, up)
	W2         []float32 // Dim x FFN (down)
}

// StageWeights are the public weights of the layers [First, Last) of a model.
type StageWeights struct {
	Config      Config
	First, Last int
	Layers      []LayerWeights // Last - First blocks, in order
}

// MaxStageLayers bounds the layers of one stage.
const MaxStageLayers = 1 << 10

func checkRange(first, last int) error {
	if first < 0 || last <= first || last-first > MaxStageLayers {
		return fmt.Errorf("%w: stage layers [%d, %d)", ErrConfig, first, last)
	}
	return nil
}

func (w *StageWeights) validate() error {
	if err := checkRange(w.First, w.Last); err != nil {
		return err
	}
	if len(w.Layers) != w.Last-w.First {
		return fmt.Errorf("%w: %d layers of weights for [%d, %d)", ErrConfig, len(w.Layers), w.First, w.Last)
	}
	for i := range w.Layers {
		l := &w.Layers[i]
		// The per-layer checks of Weights, without the embedding this
		// stage does not hold.
		bw := &Weights{Config: w.Config,
			AttnNorm: l.AttnNorm, Wq: l.Wq, Wk: l.Wk, Wv: l.Wv, Bq: l.Bq, Bk: l.Bk, Bv: l.Bv,
			Wo: l.Wo, FFNNorm: l.FFNNorm, W1: l.W1, W2: l.W2, W3: l.W3}
		if err := bw.check(false); err != nil {
			return fmt.Errorf("layer %d: %w", w.First+i, err)
		}
	}
	return nil
}

// LoadStageWeights reads the blocks [first, last) of a model file (GGUF or
// llama2.c) as float32, through compute/model's exports.
func LoadStageWeights(path string, first, last int) (*StageWeights, error) {
	if err := checkRange(first, last); err != nil {
		return nil, err
	}
	w := &StageWeights{First: first, Last: last}
	for l := first; l < last; l++ {
		lw, c, err := model.LoadLayerWeightsF32(path, l)
		if err != nil {
			return nil, fmt.Errorf("mpc: block %d: %w", l, err)
		}
		if l == first {
			if w.Config, err = ConfigOf(c); err != nil {
				return nil, err
			}
		}
		w.Layers = append(w.Layers, LayerWeights{AttnNorm: lw.AttnNorm, FFNNorm: lw.FFNNorm,
			Wq: lw.Wq, Wk: lw.Wk, Wv: lw.Wv, Wo: lw.Wo, Bq: lw.Bq, Bk: lw.Bk, Bv: lw.Bv,
			W1: lw.WGate, W2: lw.WDown, W3: lw.WUp})
	}
	return w, nil
}

// StageHash binds a stage's shape, parameters and layer range; it travels in
// every PREP and SHARE message of the stage (spec/10 §4.1).
func StageHash(c Config, par Params, first, last int) [8]byte {
	par = par.withDefaults()
	h0 := c.hash(par)
	b := append([]byte("unfed/mpc/stage/v1"), h0[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(first))
	b = binary.BigEndian.AppendUint32(b, uint32(last))
	h := sha256.Sum256(b)
	var o [8]byte
	copy(o[:], h[:8])
	return o
}

// PreparedStage is a stage's weights in fixed point, shared read-only by
// every session of a relay.
type PreparedStage struct {
	cfg         Config
	par         Params
	first, last int
	hash        [8]byte
	layers      []layerW
	tb          *tables
	size        stageSize
}

// PrepareStage converts w for par (zero fields take their defaults). It does
// not retain w.
func PrepareStage(w *StageWeights, par Params) (*PreparedStage, error) {
	if err := w.validate(); err != nil {
		return nil, err
	}
	par = par.withDefaults()
	ps := &PreparedStage{cfg: w.Config, par: par, first: w.First, last: w.Last,
		hash: StageHash(w.Config, par, w.First, w.Last), tb: newTables(w.Config, par)}
	for i := range w.Layers {
		ps.layers = append(ps.layers, quantLayer(w.Config, &w.Layers[i], w.Layers[i].AttnNorm))
	}
	ps.size = newStageSize(w.Config, par, w.Last-w.First)
	return ps, nil
}

// Config returns the model shape.
func (ps *PreparedStage) Config() Config { return ps.cfg }

// Range returns the stage's layers [first, last).
func (ps *PreparedStage) Range() (first, last int) { return ps.first, ps.last }

// Hash returns the stage hash (StageHash).
func (ps *PreparedStage) Hash() [8]byte { return ps.hash }

// --- the stage circuit (spec/10 §5) ---

// stageCircuit runs every layer of the stage for the n positions
// t0..t0+n-1 at once on this party's shares x of the residual stream (n x
// Dim, scale Frac) and returns its shares of the stage's output (scale Frac)
// and the new cache entries of every layer.
func stageCircuit(ctx context.Context, r *run, ps *PreparedStage, t0, n int, kv []kvCache, x []uint64) ([]uint64, [][]uint64, error) {
	c := ps.cfg
	caches := make([][]uint64, len(ps.layers))
	var in *normIn
	for i := range ps.layers {
		if i == 0 {
			// The stage's input: open x − a (N1). Later layers take theirs
			// from the last truncation's opening (spec §6.10).
			var err error
			if in, err = openNormIn(ctx, r, x, n); err != nil {
				return nil, nil, err
			}
		}
		// hn at scale 2F goes to the block as it is: RoPE is in the
		// scores (spec 05 §4.2), so q, k and v need one truncation.
		hn, err := normShares(ctx, r, ps.tb, in, n)
		if err != nil {
			return nil, nil, err
		}
		out, cache, err := block(ctx, r, c, &ps.layers[i], ps.tb, t0, n, &kv[i], x, hn)
		if err != nil {
			return nil, nil, err
		}
		to, err := r.readTrunc(n*c.Dim, 2*Frac)
		if err != nil {
			return nil, nil, err
		}
		o, err := r.open(ctx, to.mask(r, out))
		if err != nil {
			return nil, nil, err
		}
		x = to.finish(r, o)
		if i+1 < len(ps.layers) {
			// The next layer's norm takes x from this opening.
			if in, err = truncNormIn(r, to, o, n); err != nil {
				return nil, nil, err
			}
		}
		caches[i] = cache
	}
	return x, caches, nil
}

// dealStage mirrors stageCircuit value for value; masks[i] holds layer i's
// cache masks of the earlier positions, and the new positions' are returned.
func dealStage(dl *dealing, c Config, par Params, t0, n int, masks [][]uint64) [][]uint64 {
	cur := make([][]uint64, len(masks))
	var R []uint64 // the last layer's final truncation masks
	for i := range masks {
		dl.yield()
		if i == 0 {
			dealNorm(dl, par, c.Dim, n)
		} else {
			dealNormTrunc(dl, par, c.Dim, n, R, 2*Frac)
		}
		cur[i] = dealBlock(dl, c, par, t0, n, masks[i])
		R = dealTrunc(dl, n*c.Dim, 2*Frac)
	}
	return cur
}

// stageSize sizes a stage's PREPs. Every correlated value of a step is
// either per row or per score, so each size is A*n + B*sum(L) + C for a
// step of n rows from t0, sum(L) = n*t0 + n(n+1)/2; three dry runs of the
// dealer give A, B and C (TestStageSizeAffine checks others).
type stageSize struct{ shares, keys [3]int }

func newStageSize(c Config, par Params, layers int) stageSize {
	at := func(t0, n int) (int, int) {
		masks := make([][]uint64, layers)
		for i := range masks {
			masks[i] = make([]uint64, t0*2*c.kvDim())
		}
		dl := &dealing{count: true}
		dealStage(dl, c, par, t0, n, masks)
		return dl.nShares, dl.nKeys
	}
	// (t0, n) = (0, 1), (1, 1), (0, 2): sum(L) = 1, 2, 3.
	s1, k1 := at(0, 1)
	s2, k2 := at(1, 1)
	s3, k3 := at(0, 2)
	solve := func(v1, v2, v3 int) [3]int {
		b := v2 - v1
		a := v3 - v2 - b
		return [3]int{a, b, v1 - a - b}
	}
	return stageSize{shares: solve(s1, s2, s3), keys: solve(k1, k2, k3)}
}

func (z stageSize) at(t0, n int) (shares, keys int) {
	sumL := n*t0 + n*(n+1)/2
	return z.shares[0]*n + z.shares[1]*sumL + z.shares[2], z.keys[0]*n + z.keys[1]*sumL + z.keys[2]
}

// --- dealer ---

// MaxStepRows bounds the positions of one step (one PREP covers them all).
const MaxStepRows = 255

// StageDealer deals the correlated randomness of one stage for one session
// (spec/10 §5): a relay that is neither party. It needs the model's shape
// only. Not safe for concurrent use.
type StageDealer struct {
	cfg         Config
	par         Params
	first, last int
	hash        [8]byte
	rng         io.Reader
	step        uint32
	pos         int
	max         int
	masks       [][]uint64 // per layer: b_j | d_j per position
	size        stageSize
	// lastMasks are the STATE messages (StateMasks) of the last step
	// dealt, for A and B.
	lastMasks [2][]byte
	// spare are PREP messages handed back (Recycle), dealt into again.
	spare [2][]byte
	pause func() // SetPause
}

// SetPause makes Next call pause (nil: nothing) between the pieces of a
// step's dealing, seven per layer (about 0.3 ms each for a stories260K
// token): a relay's dealer lets its network through there
// (relay/internal/netyield). What is dealt does not depend on it.
func (d *StageDealer) SetPause(pause func()) { d.pause = pause }

// Recycle hands back the PREP messages of the last step dealt once the
// caller is done with them (sent: copied into cells), so that the next
// step is dealt into them: a stage's PREPs run to megabytes per token, and
// new ones are zeroed and then written in memory the process has not
// touched since its last collection. Every byte of a PREP is written when
// it is dealt, so nothing of the old one remains. The caller must not
// touch msgA or msgB again.
func (d *StageDealer) Recycle(msgA, msgB []byte) {
	d.spare = [2][]byte{msgA, msgB}
}

// NewStageDealer starts a session's dealing for the layers [first, last).
// rng must be a cryptographically secure source; par must equal the
// parties' Params; maxContext bounds the positions (0: MaxContext).
func NewStageDealer(cfg Config, first, last int, par Params, maxContext int, rng io.Reader) (*StageDealer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := checkRange(first, last); err != nil {
		return nil, err
	}
	if maxContext <= 0 || maxContext > MaxContext {
		maxContext = MaxContext
	}
	par = par.withDefaults()
	return &StageDealer{cfg: cfg, par: par, first: first, last: last, hash: StageHash(cfg, par, first, last),
		rng: rng, max: maxContext, masks: make([][]uint64, last-first), size: newStageSize(cfg, par, last-first)}, nil
}

// Step returns the step the next PREP is for.
func (d *StageDealer) Step() int { return int(d.step) }

// Pos returns the position the next step starts at.
func (d *StageDealer) Pos() int { return d.pos }

// Next deals the next step's correlated randomness, for rows positions
// (1..MaxStepRows; a prompt's positions cross the stage together), and
// returns the PREP messages for party A and party B. Both are new at every
// step unless the caller handed earlier ones back with Recycle (then the
// step is dealt into those); StepMasks' rows are always new. The dealer
// never writes a message again that was not handed back, so a caller may
// keep them (relay/hop's re-dealing for reveals keeps them and recycles
// nothing).
func (d *StageDealer) Next(rows int) (msgA, msgB []byte, err error) {
	t := d.pos
	if rows < 1 || rows > MaxStepRows {
		return nil, nil, fmt.Errorf("mpc: a step of %d rows (1..%d)", rows, MaxStepRows)
	}
	if t+rows > d.max {
		return nil, nil, fmt.Errorf("%w at %d positions", ErrContextFull, t+rows)
	}
	shares, keys := d.size.at(t, rows)
	dl, err := newDealingInto(d.rng, shares, keys, d.spare)
	d.spare = [2][]byte{}
	if err != nil {
		return nil, nil, err
	}
	dl.keep, dl.pause = true, d.pause
	cur := dealStage(dl, d.cfg, d.par, t, rows, d.masks)
	if dl.err != nil {
		return nil, nil, dl.err
	}
	if len(dl.kept) != 2*len(d.masks) {
		return nil, nil, fmt.Errorf("mpc: internal error: %d cache masks kept for %d layers", len(dl.kept), len(d.masks))
	}
	kvd := d.cfg.kvDim()
	for role := range d.lastMasks {
		s := &StepState{Kind: StateMasks, Role: Role(role), Hash: d.hash, Step: d.step, Pos: uint32(t), Rows: rows,
			Layers: len(d.masks), KVDim: kvd, Vals: make([]uint64, 0, len(d.masks)*rows*2*kvd)}
		for l := range d.masks {
			b, dm := dl.kept[2*l][role], dl.kept[2*l+1][role]
			for r := range rows {
				s.Vals = append(s.Vals, b[r*kvd:(r+1)*kvd]...)
				s.Vals = append(s.Vals, dm[r*kvd:(r+1)*kvd]...)
			}
		}
		d.lastMasks[role] = EncodeState(s)
	}
	ma := &stepMsg{version: StageVersion, rows: byte(rows), kind: kindPrep, role: 0, cfgHash: d.hash, step: d.step, pos: uint32(t)}
	mb := &stepMsg{version: StageVersion, rows: byte(rows), kind: kindPrep, role: 1, cfgHash: d.hash, step: d.step, pos: uint32(t)}
	if msgA, msgB, err = dl.prep(ma, mb); err != nil {
		return nil, nil, err
	}
	for i := range d.masks {
		d.masks[i] = append(d.masks[i], cur[i]...)
	}
	d.step++
	d.pos += rows
	return msgA, msgB, nil
}

// StepMasks returns the STATE message (StateMasks) of the cache masks
// party role received in the last step dealt: the shares of b_t and d_t
// that party appends to its caches in that step (StageParty.StepState), as
// the dealer dealt them.
func (d *StageDealer) StepMasks(role Role) ([]byte, error) {
	if role != RoleA && role != RoleB {
		return nil, fmt.Errorf("mpc: role %d", role)
	}
	if d.lastMasks[role] == nil {
		return nil, fmt.Errorf("%w: no step dealt", ErrMismatch)
	}
	return d.lastMasks[role], nil
}

// --- party ---

// MaxQueuedPreps bounds the PREPs a stage party holds ahead of its steps.
const MaxQueuedPreps = 64

// StageParty is one side of a stage for one session: it owns the stage's
// secret-shared KV caches. Not safe for concurrent use.
type StageParty struct {
	role  Role
	ps    *PreparedStage
	opt   Options
	step  uint32
	pos   int
	kv    []kvCache
	preps []*pendingPrep // for steps step, step+1, ...
	stats Stats
	arena []uint64
	// lastRows are the rows of the last completed step (StepState).
	lastRows int
}

// NewStageParty starts one session on shared prepared weights.
func NewStageParty(role Role, ps *PreparedStage, opt Options) (*StageParty, error) {
	if role != RoleA && role != RoleB {
		return nil, fmt.Errorf("mpc: role %d", role)
	}
	opt.Params = opt.Params.withDefaults()
	if opt.Params != ps.par {
		return nil, fmt.Errorf("%w: session parameters %+v, weights prepared for %+v", ErrConfig, opt.Params, ps.par)
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
	return &StageParty{role: role, ps: ps, opt: opt, kv: make([]kvCache, len(ps.layers))}, nil
}

// Pos returns the positions in the party's caches (the next step's first
// position).
func (p *StageParty) Pos() int { return p.pos }

// NextStep returns the next step's number.
func (p *StageParty) NextStep() uint32 { return p.step }

// Stats returns the statistics of the last completed step.
func (p *StageParty) Stats() Stats { return p.stats }

// QueuedPreps returns the number of PREPs held for future steps.
func (p *StageParty) QueuedPreps() int { return len(p.preps) }

// NextRows returns the rows of the next step, from its PREP (0 if none is
// queued).
func (p *StageParty) NextRows() int {
	if len(p.preps) == 0 {
		return 0
	}
	return p.preps[0].rows
}

// Prep takes the PREP of the step after those already queued (spec/10
// §4.1). A refused PREP changes nothing.
func (p *StageParty) Prep(msg []byte) error {
	m, err := decodeStepMsgV(msg, kindPrep, StageVersion)
	if err != nil {
		return err
	}
	return p.takePrep(m, len(m.keys), func() ([]dpf.Key, error) { return decodeKeys(m.keys, int(p.role)) })
}

// PrepParts is Prep for a PREP that arrived cut into pieces (parts, in
// order, their concatenation the message), as a relay receives one larger
// than an edge message: it reads the pieces where they lie, copying only a
// field or key that straddles two, instead of joining megabytes first.
func (p *StageParty) PrepParts(parts [][]byte) error {
	if len(parts) == 1 {
		return p.Prep(parts[0])
	}
	m, keyBytes, keyParts, err := decodePrepParts(parts)
	if err != nil {
		return err
	}
	return p.takePrep(m, keyBytes, func() ([]dpf.Key, error) { return decodeKeyParts(keyParts, int(p.role)) })
}

// takePrep queues the decoded PREP m, whose key section is keyBytes long
// and decoded by keys once the rest has been checked.
func (p *StageParty) takePrep(m *stepMsg, keyBytes int, keys func() ([]dpf.Key, error)) error {
	step, pos := p.step+uint32(len(p.preps)), p.pos
	for _, q := range p.preps {
		pos += q.rows
	}
	rows := int(m.rows)
	if Role(m.role) != p.role {
		return fmt.Errorf("%w: PREP for party %s", ErrMismatch, Role(m.role))
	}
	if m.cfgHash != p.ps.hash {
		return fmt.Errorf("%w: stage hash", ErrMismatch)
	}
	if m.step != step || int(m.pos) != pos {
		return fmt.Errorf("%w: PREP for step %d position %d, expected %d/%d", ErrMismatch, m.step, m.pos, step, pos)
	}
	if len(p.preps) >= MaxQueuedPreps {
		return fmt.Errorf("%w: %d PREPs queued", ErrMismatch, len(p.preps))
	}
	if pos+rows > p.opt.MaxContext {
		return fmt.Errorf("%w: context full at %d positions", ErrMismatch, pos+rows)
	}
	shares, nkeys := p.ps.size.at(pos, rows)
	if p.role == RoleB && len(m.shares) != shares {
		return fmt.Errorf("%w: %d bytes of shares at position %d, want %d", ErrMalformed, len(m.shares), pos, shares)
	}
	if keyBytes != nkeys {
		return fmt.Errorf("%w: %d bytes of LUT keys at position %d, want %d", ErrMalformed, keyBytes, pos, nkeys)
	}
	pp := &pendingPrep{step: m.step, pos: m.pos, rows: rows,
		seed: append([]byte(nil), m.seed...), shares: append([]byte(nil), m.shares...)}
	var err error
	if pp.keys, err = keys(); err != nil {
		return err
	}
	p.preps = append(p.preps, pp)
	return nil
}

// Input decodes and checks the SHARE messages that make up this party's
// input for its next step (one INPUT from the client, or the two RESHARE
// pieces from the previous stage) and returns their sum (rows x Dim). The
// step's PREP must be queued: it fixes the rows.
func (p *StageParty) Input(kind ShareKind, msgs ...[]byte) ([]uint64, error) {
	want := 1
	if kind == ShareReshare {
		want = 2
	}
	if kind != ShareInput && kind != ShareReshare || len(msgs) != want {
		return nil, fmt.Errorf("%w: %d %s shares", ErrMismatch, len(msgs), kind)
	}
	rows := p.NextRows()
	if rows == 0 {
		return nil, fmt.Errorf("%w: input for step %d before its PREP", ErrMismatch, p.step)
	}
	var sum []uint64
	for _, b := range msgs {
		s, err := DecodeShare(b)
		if err != nil {
			return nil, err
		}
		if s.Kind != kind || s.Role != p.role || s.Hash != p.ps.hash || s.Step != p.step || int(s.Pos) != p.pos ||
			s.Rows != rows || s.Dim != p.ps.cfg.Dim {
			return nil, fmt.Errorf("%w: %s share (role %s, step %d, %d x %d) for party %s at step %d (%d rows)", ErrMismatch,
				s.Kind, s.Role, s.Step, s.Rows, s.Dim, p.role, p.step, rows)
		}
		if sum == nil {
			sum = s.Vals
			continue
		}
		for i, v := range s.Vals {
			sum[i] += v
		}
	}
	return sum, nil
}

// Step runs the stage circuit for the next step's positions on this party's
// input shares x (Input) with the first queued PREP, and returns its shares
// of the stage's output (rows x Dim, scale Frac). On error the session is
// unchanged (the PREP stays queued); the caller should abort the session,
// since the other party may have advanced.
func (p *StageParty) Step(ctx context.Context, x []uint64, peer Peer) ([]uint64, error) {
	start := time.Now()
	if len(p.preps) == 0 {
		return nil, fmt.Errorf("%w: no PREP for step %d", ErrMismatch, p.step)
	}
	pp := p.preps[0]
	if len(x) != pp.rows*p.ps.cfg.Dim {
		return nil, fmt.Errorf("%w: input of %d values for %d rows", ErrMalformed, len(x), pp.rows)
	}
	if len(pp.keys) > 0 && p.opt.PrecomputeBytes >= 0 {
		// Evaluate the keys on the worker pool before the rounds start.
		pp.ys = precompute(pp.keys, p.opt.PrecomputeBytes, &p.arena, nil)
	}
	r := &run{party: int(p.role), step: p.step, peer: peer, keys: &keySource{keys: pp.keys, ys: pp.ys}, version: StageVersion}
	if p.role == RoleA {
		r.src = newPRGSource(pp.seed)
	} else {
		r.src = &bufSource{b: pp.shares}
	}
	out, caches, err := stageCircuit(ctx, r, p.ps, p.pos, pp.rows, p.kv, append([]uint64(nil), x...))
	if err == nil {
		err = r.src.done()
	}
	if err == nil {
		err = r.keys.done()
	}
	if err != nil {
		p.opt.Logger.Warn("mpc stage step aborted", "role", p.role.String(), "step", p.step, "err", err)
		return nil, err
	}
	kvd := p.ps.cfg.kvDim()
	for i := range p.kv {
		p.kv[i].add(caches[i], kvd)
	}
	p.preps[0] = nil
	p.preps = p.preps[1:]
	p.stats = Stats{Rounds: int(r.round), OpenedValues: r.opened, Time: time.Since(start), PeerWait: r.wait}
	p.step++
	p.pos += pp.rows
	p.lastRows = pp.rows
	return out, nil
}

// Reshare splits this party's output y of a step (rows x Dim, from position
// pos) into the two RESHARE pieces for the next stage (spec/10 §5): y - r
// for the party of the same side and r for the other side, r uniform from
// crypto/rand. next is the next stage's hash.
func (p *StageParty) Reshare(y []uint64, step uint32, pos int, next [8]byte) (same, other []byte, err error) {
	r, err := uniform(len(y))
	if err != nil {
		return nil, nil, err
	}
	d := make([]uint64, len(y))
	for i := range y {
		d[i] = y[i] - r[i]
	}
	dim := p.ps.cfg.Dim
	same = EncodeShare(&Share{Kind: ShareReshare, Role: p.role, Hash: next, Step: step, Pos: uint32(pos), Rows: len(y) / dim, Dim: dim, Vals: d})
	other = EncodeShare(&Share{Kind: ShareReshare, Role: 1 - p.role, Hash: next, Step: step, Pos: uint32(pos), Rows: len(y) / dim, Dim: dim, Vals: r})
	return same, other, nil
}

// Output encodes, for the client, this party's share of the last row of a
// step's output y (rows x Dim, from position pos): the hidden state after the
// model's last layer at the step's last position, the only one the client
// samples from.
func (p *StageParty) Output(y []uint64, step uint32, pos int) []byte {
	dim := p.ps.cfg.Dim
	rows := len(y) / dim
	return EncodeShare(&Share{Kind: ShareOutput, Role: p.role, Hash: p.ps.hash, Step: step, Pos: uint32(pos + rows - 1),
		Rows: 1, Dim: dim, Vals: y[(rows-1)*dim:]})
}

func uniform(n int) ([]uint64, error) {
	b := make([]byte, 8*n)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("mpc: randomness: %w", err)
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return out, nil
}

// --- SHARE messages (spec/10 §4.2) ---

// ShareKind is the kind byte of a SHARE message.
type ShareKind uint8

// SHARE kinds.
const (
	ShareInput   ShareKind = 5 // client → a party of the first stage
	ShareReshare ShareKind = 6 // a party of stage i → a party of stage i+1
	ShareOutput  ShareKind = 7 // a party of the last stage → client
)

func (k ShareKind) String() string {
	switch k {
	case ShareInput:
		return "INPUT"
	case ShareReshare:
		return "RESHARE"
	case ShareOutput:
		return "OUTPUT"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Share is a decoded SHARE message.
type Share struct {
	Kind      ShareKind
	Role      Role
	Hash      [8]byte
	Step, Pos uint32 // Pos: the first row's position
	Rows, Dim int
	Vals      []uint64 // Rows x Dim, at scale Frac
}

const shareHeader = 28

// EncodeShare encodes s.
func EncodeShare(s *Share) []byte {
	b := make([]byte, 0, shareHeader+8*len(s.Vals))
	b = append(b, StageVersion, byte(s.Kind), byte(s.Role), Frac)
	b = append(b, s.Hash[:]...)
	b = binary.BigEndian.AppendUint32(b, s.Step)
	b = binary.BigEndian.AppendUint32(b, s.Pos)
	b = binary.BigEndian.AppendUint32(b, uint32(s.Rows))
	b = binary.BigEndian.AppendUint32(b, uint32(s.Dim))
	for _, v := range s.Vals {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	return b
}

// DecodeShare parses a SHARE message.
func DecodeShare(b []byte) (*Share, error) {
	if len(b) < shareHeader {
		return nil, fmt.Errorf("%w: share of %d bytes", ErrMalformed, len(b))
	}
	if b[0] != StageVersion {
		return nil, fmt.Errorf("%w: %d", ErrVersion, b[0])
	}
	k := ShareKind(b[1])
	if k != ShareInput && k != ShareReshare && k != ShareOutput || b[2] > 1 || b[3] != Frac {
		return nil, fmt.Errorf("%w: share header (kind %d, role %d, scale %d)", ErrMalformed, b[1], b[2], b[3])
	}
	rows, dim := binary.BigEndian.Uint32(b[20:]), binary.BigEndian.Uint32(b[24:])
	if rows == 0 || rows > MaxStepRows || dim == 0 || dim > MaxDim || uint64(len(b)) != shareHeader+8*uint64(rows)*uint64(dim) {
		return nil, fmt.Errorf("%w: share of %d x %d values in %d bytes", ErrMalformed, rows, dim, len(b))
	}
	s := &Share{Kind: k, Role: Role(b[2]), Step: binary.BigEndian.Uint32(b[12:]), Pos: binary.BigEndian.Uint32(b[16:]),
		Rows: int(rows), Dim: int(dim), Vals: make([]uint64, rows*dim)}
	copy(s.Hash[:], b[4:12])
	for i := range s.Vals {
		s.Vals[i] = binary.BigEndian.Uint64(b[shareHeader+8*i:])
	}
	return s, nil
}

// ShareInputs is the client's side of a first stage: it encodes the
// residual stream entering layer 0 (the embedding rows x, rows x dim, for
// positions pos..) as fixed point and returns the INPUT messages of step for
// party A and party B of the stage with hash first.
func ShareInputs(x []float32, rows int, first [8]byte, step uint32, pos int) (msgA, msgB []byte, err error) {
	if rows < 1 || rows > MaxStepRows || len(x)%rows != 0 || len(x) == 0 {
		return nil, nil, fmt.Errorf("mpc: %d values for %d rows", len(x), rows)
	}
	a, err := uniform(len(x))
	if err != nil {
		return nil, nil, err
	}
	b := make([]uint64, len(x))
	for i, v := range x {
		b[i] = fix(float64(v), Frac) - a[i]
	}
	dim := len(x) / rows
	msgA = EncodeShare(&Share{Kind: ShareInput, Role: RoleA, Hash: first, Step: step, Pos: uint32(pos), Rows: rows, Dim: dim, Vals: a})
	msgB = EncodeShare(&Share{Kind: ShareInput, Role: RoleB, Hash: first, Step: step, Pos: uint32(pos), Rows: rows, Dim: dim, Vals: b})
	return msgA, msgB, nil
}

// ReconstructOutputs adds the last stage's OUTPUT shares (in either order),
// checking they come from both parties of the stage with hash last for
// step, and returns the hidden state as float32.
func ReconstructOutputs(x, y []byte, last [8]byte, step uint32) ([]float32, error) {
	a, err := DecodeShare(x)
	if err != nil {
		return nil, err
	}
	b, err := DecodeShare(y)
	if err != nil {
		return nil, err
	}
	if a.Kind != ShareOutput || b.Kind != ShareOutput || a.Role == b.Role || a.Hash != last || b.Hash != last ||
		a.Step != step || b.Step != step || a.Pos != b.Pos || a.Rows != 1 || b.Rows != 1 || len(a.Vals) != len(b.Vals) {
		return nil, fmt.Errorf("%w: output shares (roles %s/%s, steps %d/%d, want %d)", ErrMismatch, a.Role, b.Role, a.Step, b.Step, step)
	}
	out := make([]float32, len(a.Vals))
	for i := range out {
		out[i] = float32(unfix(a.Vals[i]+b.Vals[i], Frac))
	}
	return out, nil
}

// StagePrepBytes returns the sizes of party A's and party B's PREP for a
// step of rows positions from pos of the stage [first, last), in bytes
// (header included): what a client budgets when it decides how many
// positions to send in one step.
func StagePrepBytes(c Config, par Params, first, last, pos, rows int) (a, b int, err error) {
	if err := c.Validate(); err != nil {
		return 0, 0, err
	}
	if err := checkRange(first, last); err != nil {
		return 0, 0, err
	}
	shares, keys := newStageSize(c, par.withDefaults(), last-first).at(pos, rows)
	return prepBodyA + keys, prepKeysB(shares) + keys, nil
}
