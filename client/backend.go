package client

// The backend behind the OpenAI-compatible API (client/openai.Backend):
// a model is servable when the verified consensus lists it in its catalog,
// the client holds the same model file (manifest id), and a guard, an MPC
// pair (MPC mode) and compute relays covering every layer can be chosen.
//
// Generate tokenizes the prompt, builds a fresh circuit for the request's
// isolation key (never shared with another key), feeds the prompt, then
// samples token by token at the client. On a hop failure it marks the relay
// it can blame (or the guard), builds a replacement circuit avoiding it,
// replays the prompt and the tokens generated so far, and continues; greedy
// output is therefore the same as without the failure.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/unfed/unfed/client/openai"
	"github.com/unfed/unfed/compute/sample"
	"github.com/unfed/unfed/compute/tokenizer"
	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/origin"
)

// consensusSource yields the verified consensus in force.
type consensusSource interface {
	Current() (*directory.Consensus, error)
}

// backend implements openai.Backend over circuits.
type backend struct {
	cfg    CircuitConfig
	mode   Mode // the default circuit mode (cfg.Mode)
	dir    consensusSource
	guards *Guards
	models []*localModel
	dialer *dialer
	log    *slog.Logger
	recent recentCircuits
	// bridges, when configured, replace the public guards as first hops.
	bridges *bridgeSet
	// life is the client's lifetime, for circuits built ahead of need.
	life   context.Context
	spares spares

	mu  sync.Mutex // guards rng and failed
	rng *rand.Rand
	// failed are relays that failed recently, with when; paths avoid them
	// for failedFor.
	failed map[keys.Fingerprint]time.Time
}

// failedFor is how long a compute relay that failed is left out of paths.
const failedFor = 10 * time.Minute

// catalogEntry returns the consensus model matching lm, or nil.
func catalogEntry(c *directory.Consensus, lm *localModel) *directory.Model {
	for i := range c.Models {
		m := &c.Models[i]
		if lm.matches(m) && m.Layers == lm.cfg.NLayers {
			return m
		}
	}
	return nil
}

// avoid returns the relays to leave out of paths now.
func (b *backend) avoid() []keys.Fingerprint {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	var out []keys.Fingerprint
	for fp, at := range b.failed {
		if now.Sub(at) < failedFor {
			out = append(out, fp)
		} else {
			delete(b.failed, fp)
		}
	}
	return out
}

func (b *backend) markFailed(f *hopFailure) {
	if f.Relay == (keys.Fingerprint{}) {
		return
	}
	if f.Guard && b.bridges != nil {
		b.bridges.markFailed(&directory.RouterStatus{Fingerprint: f.Relay})
		return
	}
	if f.Guard {
		if err := b.guards.MarkFailed(f.Relay); err != nil {
			b.log.Warn("guard state not saved", "err", err)
		}
		return
	}
	b.mu.Lock()
	b.failed[f.Relay] = time.Now()
	b.mu.Unlock()
}

// selectPath chooses a guard and a path of mode for m, avoiding avoid.
func (b *backend) selectPath(c *directory.Consensus, m *directory.Model, mode Mode, avoid []keys.Fingerprint) (*Path, error) {
	var g *directory.RouterStatus
	var err error
	if b.bridges != nil {
		g, err = b.bridges.choose(context.Background())
	} else {
		g, err = b.guards.Choose(c.Relays)
	}
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return SelectPath(c.Relays, PathSpec{Model: m.ID, NLayers: m.Layers, Mode: mode, Guard: g, Avoid: avoid}, b.rng)
}

// servable returns the consensus and the catalog entry for lm when a path
// of mode can be chosen for it now.
func (b *backend) servable(lm *localModel, mode Mode) (*directory.Consensus, *directory.Model, error) {
	c, err := b.dir.Current()
	if err != nil {
		return nil, nil, err
	}
	m := catalogEntry(c, lm)
	if m == nil {
		return nil, nil, fmt.Errorf("%w: model not in the consensus catalog", ErrNoPath)
	}
	if _, err := b.selectPath(c, m, mode, b.avoid()); err != nil {
		return nil, nil, err
	}
	return c, m, nil
}

// Models implements openai.Backend: every servable model under its id (the
// default mode) and under "<id>:<mode>" for each mode a path exists for.
func (b *backend) Models(ctx context.Context) ([]openai.Model, error) {
	// Without a valid consensus nothing is servable, and the caller should
	// hear why (503) rather than that its model does not exist (404).
	if _, err := b.dir.Current(); err != nil {
		return nil, &openai.UnavailableError{Reason: "no valid consensus: " + err.Error()}
	}
	var out []openai.Model
	for _, lm := range b.models {
		for _, mode := range Modes {
			c, m, err := b.servable(lm, mode)
			if err != nil {
				continue
			}
			if mode == b.mode {
				out = append(out, openai.Model{ID: m.ID, Created: c.ValidAfter.Unix(), ChatTemplate: lm.tok.ChatTemplate()})
			}
			out = append(out, openai.Model{ID: m.ID + ":" + string(mode), Created: c.ValidAfter.Unix(), ChatTemplate: lm.tok.ChatTemplate()})
		}
	}
	return out, nil
}

// healthy reports whether a consensus is present and a model servable.
func (b *backend) healthy() bool {
	for _, lm := range b.models {
		if _, _, err := b.servable(lm, b.mode); err == nil {
			return true
		}
	}
	return false
}

// lookup finds the local model and the mode the API calls name ("<id>" or
// "<id>:<mode>").
func (b *backend) lookup(name string) (*localModel, Mode, error) {
	id, mode, err := splitModelMode(name, b.mode)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", openai.ErrUnknownModel, err)
	}
	c, err := b.dir.Current()
	if err != nil {
		return nil, "", fmt.Errorf("client: %w: %w", openai.ErrUnavailable, err)
	}
	for _, lm := range b.models {
		if m := catalogEntry(c, lm); m != nil && m.ID == id {
			return lm, mode, nil
		}
	}
	return nil, "", openai.ErrUnknownModel
}

// open builds a circuit for lm and opens its compute sessions; greedy asks
// the last hop for circuit.greedy_top_k logits instead of circuit.top_k.
func (b *backend) open(ctx context.Context, lm *localModel, mode Mode, greedy bool, suspects []keys.Fingerprint) (*session, error) {
	c, err := b.dir.Current()
	if err != nil {
		return nil, err
	}
	m := catalogEntry(c, lm)
	if m == nil {
		return nil, openai.ErrUnknownModel
	}
	avoid := b.avoid()
	bctx, cancel := context.WithTimeout(ctx, b.cfg.BuildTimeout)
	defer cancel()
	var p *Path
	var circ *origin.Circuit
	prebuilt := false
	if sp := b.spares.take(spareKey(lm, mode), append(slices.Clip(avoid), suspects...)); sp != nil {
		p, circ, prebuilt = sp.path, sp.circ, true
	} else {
		// Prefer a path without the relays of circuits that failed without
		// saying who was to blame; fall back to one with them.
		p, err = b.selectPath(c, m, mode, append(slices.Clip(avoid), suspects...))
		if err != nil && len(suspects) > 0 {
			p, err = b.selectPath(c, m, mode, avoid)
		}
		if err != nil {
			return nil, err
		}
		if circ, err = b.dialer.buildCircuit(bctx, p, b.cfg.Hybrid); err != nil {
			return nil, err
		}
	}
	if b.life != nil {
		b.refill(b.life, lm, mode)
	}
	b.recent.add(p, prebuilt)
	if err := b.guards.MarkSucceeded(p.Hops[0].Fingerprint); err != nil {
		b.log.Warn("guard state not saved", "err", err)
	}
	s := &session{c: circ, path: p, modelID: m.ID, timeout: b.cfg.StepTimeout}
	if mode == ModeConfidential {
		cs := &confState{ends: lm.ends, batch: confBatch(p, lm.mpcCfg)}
		s.setups, cs.stages, err = confidentialSetups(p, m.ID, lm.mpcCfg, m.Layers)
		s.conf = cs
	} else {
		s.setups, err = anonymousSetups(p, m.ID, lastHopTopK(b.cfg, lm.cfg.Vocab, greedy))
	}
	if err != nil {
		s.close()
		return nil, err
	}
	if err := s.setup(bctx); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// lastHopTopK is the top-k a SETUP asks the last hop for (0: dense logits).
func lastHopTopK(cfg CircuitConfig, vocab int, greedy bool) int {
	topK := cfg.TopK
	if greedy && cfg.GreedyTopK > 0 {
		// Argmax needs only the largest logit, and hop.TopK orders ties as
		// sample.Argmax does (lowest id first), so the choice is the same.
		topK = cfg.GreedyTopK
	}
	if topK == 0 && vocab > hop.MaxDenseLogits {
		topK = hop.MaxTopK
	}
	return min(topK, hop.MaxTopK)
}

// Generate implements openai.Backend.
func (b *backend) Generate(ctx context.Context, req openai.GenerateRequest, emit func(openai.Token) error) (openai.Usage, error) {
	var usage openai.Usage
	lm, mode, err := b.lookup(req.Model)
	if err != nil {
		return usage, err
	}
	prompt := lm.tok.Encode(req.Prompt, lm.tok.AddBOS())
	usage.PromptTokens = len(prompt)
	if len(prompt) == 0 {
		return usage, fmt.Errorf("client: empty prompt: %w", openai.ErrContextLength)
	}
	if len(prompt) >= lm.cfg.ContextLength {
		return usage, fmt.Errorf("client: prompt of %d tokens: %w", len(prompt), openai.ErrContextLength)
	}
	par := sample.Params{Temperature: req.Temperature, TopP: req.TopP}
	if req.Seed != nil {
		par.Seed = uint64(*req.Seed)
	} else {
		par.Seed = rand.Uint64()
	}
	smp, err := sample.New(par)
	if err != nil {
		return usage, fmt.Errorf("client: %w", err)
	}
	g := &generation{b: b, lm: lm, mode: mode, req: req, emit: emit, smp: smp, prompt: prompt, dec: lm.tok.NewStreamDecoder(), usage: &usage}
	if err := g.run(ctx); err != nil {
		return usage, err
	}
	// Bytes of a character the model never completed.
	if rest := g.dec.Flush(); rest != "" && len(g.gen) > 0 {
		if err := emit(openai.Token{Text: strings.ToValidUTF8(rest, "\uFFFD"), ID: g.gen[len(g.gen)-1]}); err != nil {
			return usage, err
		}
	}
	return usage, nil
}

// generation is one Generate call's state; it survives circuit failover.
type generation struct {
	b      *backend
	lm     *localModel
	mode   Mode
	req    openai.GenerateRequest
	emit   func(openai.Token) error
	smp    *sample.Sampler
	prompt []int
	gen    []int
	dec    *tokenizer.StreamDecoder
	usage  *openai.Usage
}

// errDone ends a generation normally.
var errDone = errors.New("client: done")

func (g *generation) run(ctx context.Context) error {
	var lastErr error
	var suspects []keys.Fingerprint
	for attempt := 0; attempt <= g.b.cfg.Retries; attempt++ {
		s, err := g.b.open(ctx, g.lm, g.mode, g.req.Temperature == 0, suspects)
		if err == nil {
			err = g.over(ctx, s)
			s.close()
			if errors.Is(err, errDone) {
				return nil
			}
			var hf *hopFailure
			if errors.As(err, &hf) && hf.Relay == (keys.Fingerprint{}) {
				for _, r := range s.path.Hops[1:] {
					suspects = append(suspects, r.Fingerprint)
				}
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("client: generation canceled: %w", ctx.Err())
		}
		var hf *hopFailure
		switch {
		case errors.As(err, &hf):
			g.b.markFailed(hf)
			g.b.log.Info("circuit failed, rebuilding", "attempt", attempt+1, "err", err)
		case errors.Is(err, ErrNoPath), errors.Is(err, directory.ErrNoConsensus), errors.Is(err, directory.ErrExpired):
			// The network view may be between consensuses: wait a little
			// and try again, within the same attempt budget.
			g.b.log.Info("no path now", "attempt", attempt+1, "err", err)
			select {
			case <-ctx.Done():
				return fmt.Errorf("client: generation canceled: %w", ctx.Err())
			case <-time.After(time.Second):
			}
		case errors.Is(err, openai.ErrUnknownModel):
			return err
		default:
			if isEmitErr(err) {
				return err
			}
			g.b.log.Info("circuit failed, rebuilding", "attempt", attempt+1, "err", err)
		}
		lastErr = err
		// Back off before the next attempt: a relay that refused a link
		// (its per-address handshake rate, a restart) needs a moment, and
		// rebuilding at once from every waiting request would only be
		// refused again.
		if attempt < g.b.cfg.Retries {
			select {
			case <-ctx.Done():
				return fmt.Errorf("client: generation canceled: %w", ctx.Err())
			case <-time.After(retryBackoff(attempt)):
			}
		}
	}
	return fmt.Errorf("client: %w: %d attempts failed, last: %w", openai.ErrUnavailable, g.b.cfg.Retries+1, lastErr)
}

// retryBackoff is the wait after failed attempt n (from 0): 50 ms doubling
// up to 800 ms, each with up to half again at random so that requests that
// failed together do not retry together.
func retryBackoff(n int) time.Duration {
	d := 50 * time.Millisecond << min(n, 4)
	return d + time.Duration(rand.Int64N(int64(d/2)+1))
}

// emitError marks an error returned by the caller's emit.
type emitError struct{ err error }

func (e *emitError) Error() string { return e.err.Error() }
func (e *emitError) Unwrap() error { return e.err }

func isEmitErr(err error) bool {
	var e *emitError
	return errors.As(err, &e)
}

// over runs the generation on s from where it stands: it replays the prompt
// and what was generated so far, then samples until a stop.
func (g *generation) over(ctx context.Context, s *session) error {
	ctxLimit := g.lm.cfg.ContextLength
	if s.maxCtx > 0 && s.maxCtx < ctxLimit {
		ctxLimit = s.maxCtx
	}
	// Each feed sends the next step's PREP ahead (MPC) only if another
	// feed can follow: one is wasted work for both parties otherwise.
	lg, err := s.feed(ctx, append(slices.Clip(g.prompt), g.gen...), len(g.gen)+1 < g.req.MaxTokens)
	if err != nil {
		return err
	}
	for {
		if len(g.gen) >= g.req.MaxTokens || len(g.prompt)+len(g.gen) >= ctxLimit {
			g.usage.FinishReason = "length"
			return errDone
		}
		next, err := g.pick(lg)
		if err != nil {
			return err
		}
		if g.lm.tok.IsEOG(next) {
			g.usage.FinishReason = "stop"
			return errDone
		}
		g.gen = append(g.gen, next)
		g.usage.CompletionTokens = len(g.gen)
		if text := g.dec.Next(next); text != "" {
			if err := g.emit(openai.Token{Text: text, ID: next}); err != nil {
				return &emitError{err}
			}
		}
		if len(g.gen) >= g.req.MaxTokens {
			g.usage.FinishReason = "length"
			return errDone
		}
		if lg, err = s.feed(ctx, []int{next}, len(g.gen)+1 < g.req.MaxTokens); err != nil {
			return err
		}
	}
}

// pick samples the next token from a LOGITS message.
func (g *generation) pick(lg *hop.Logits) (int, error) {
	if lg.TopK == nil {
		if len(lg.Dense) != g.lm.cfg.Vocab {
			return 0, &hopFailure{Err: fmt.Errorf("client: %d logits for a vocabulary of %d", len(lg.Dense), g.lm.cfg.Vocab)}
		}
		id, err := g.smp.Sample(lg.Dense)
		if err != nil {
			return 0, fmt.Errorf("client: %w", err)
		}
		return id, nil
	}
	if len(lg.TopK) == 0 {
		return 0, &hopFailure{Err: errors.New("client: empty top-k logits")}
	}
	vals := make([]float32, len(lg.TopK))
	for i, e := range lg.TopK {
		if e.ID < 0 || e.ID >= g.lm.cfg.Vocab {
			return 0, &hopFailure{Err: errors.New("client: top-k logit for a token outside the vocabulary")}
		}
		vals[i] = e.Value
	}
	i, err := g.smp.Sample(vals)
	if err != nil {
		return 0, fmt.Errorf("client: %w", err)
	}
	return lg.TopK[i].ID, nil
}
