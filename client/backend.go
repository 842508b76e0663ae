package client

// The backend behind the OpenAI-compatible API (client/openai.Backend):
// a model is servable when the verified consensus lists it in its catalog,
// the client holds the same model file (manifest id), and a guard and the
// relays of a path of the mode (spec/08-client-api.md §10) can be chosen.
//
// Generate tokenizes the prompt, takes one of the client's generation slots
// (admission, relaystate.go), builds a fresh circuit for the request's
// isolation key (never shared with another key), feeds the prompt, then
// samples token by token at the client. When a circuit fails it tells
// capacity from faults (classify): a relay at capacity is backed off for
// seconds and other relays are tried, waiting (bounded by queue_timeout)
// when every path needs a busy relay; a fault is remembered against the
// relay it can be pinned on for this isolation key, or makes the rest of the
// generation prefer other relays when it cannot, and costs one of the
// generation's retries (a relay found gone while building costs none, and
// the generation never uses it again). Either way it builds a replacement
// circuit, replays the prompt and the tokens generated so far, and
// continues; greedy output is therefore the same as without the failure.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/unfed/unfed/client/openai"
	"github.com/unfed/unfed/compute/sample"
	"github.com/unfed/unfed/compute/tokenizer"
	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/link"
	"github.com/unfed/unfed/relay/origin"
	"github.com/unfed/unfed/relay/verify"
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
	dialer *dialer
	// dataDir holds fetched bundles (bundles/); empty: none are fetched.
	dataDir string
	// pay pays the hops where the consensus requires it (pay.go); nil in
	// tests that build a backend by hand.
	pay *payer

	modelsMu sync.RWMutex  // guards models
	models   []*localModel // configured, then fetched on first use
	fetchMu  sync.Mutex    // one bundle fetch at a time
	log      *slog.Logger
	recent   recentCircuits
	// metrics records requests, tokens and circuits; nil records nothing.
	metrics *clientMetrics
	// bridges, when configured, replace the public guards as first hops.
	bridges *bridgeSet
	// life is the client's lifetime, for circuits built ahead of need.
	life   context.Context
	spares spares
	// lastBuild is how long the latest circuit build took (ns): after a
	// slow one a generation starts its replacement spare as soon as its
	// prompt has left (session.sent), not after its first token.
	lastBuild atomic.Int64

	// relays holds busy relays and per-isolation-key faults.
	relays *relayState
	// adm bounds the generations running at once (nil: no bound).
	adm *admission
	// sub submits audit tickets (nil: none are gathered).
	sub *submitter

	mu  sync.Mutex // guards rng
	rng *rand.Rand
}

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

// markGuardFailed records a failure of the guard (or bridge) fp in the
// guard state (guard-spec), for every request: the guard is the one relay
// the client keeps.
func (b *backend) markGuardFailed(fp keys.Fingerprint) {
	if b.bridges != nil {
		b.bridges.markFailed(&directory.RouterStatus{Fingerprint: fp})
		return
	}
	if err := b.guards.MarkFailed(fp); err != nil {
		b.log.Warn("guard state not saved", "err", err)
	}
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
		return nil, fmt.Errorf("%w: %w", errNoGuard, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return SelectPath(c.Relays, PathSpec{Model: m.ID, NLayers: m.Layers, Mode: mode, Guard: g, Avoid: avoid}, b.rng)
}

// servable returns the consensus and the catalog entry for lm when the
// consensus offers a path of mode for it. What this client met on its own
// circuits (busy relays, faults) does not count: a model whose relays are
// all at capacity is still served, its requests wait or get 503.
func (b *backend) servable(lm *localModel, mode Mode) (*directory.Consensus, *directory.Model, error) {
	c, err := b.dir.Current()
	if err != nil {
		return nil, nil, err
	}
	m := catalogEntry(c, lm)
	if m == nil {
		return nil, nil, fmt.Errorf("%w: model not in the consensus catalog", ErrNoPath)
	}
	if _, err := b.selectPath(c, m, mode, nil); err != nil {
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
	c, _ := b.dir.Current()
	held := map[string]bool{}
	for _, lm := range b.localModels() {
		if m := catalogEntry(c, lm); m != nil {
			held[m.ID] = true
		}
		for _, mode := range Modes {
			c, m, err := b.servable(lm, mode)
			if err != nil {
				continue
			}
			if mode == b.mode {
				out = append(out, openai.Model{ID: m.ID, Name: m.Name, Created: c.ValidAfter.Unix(), ChatTemplate: lm.tok.ChatTemplate(), BOSText: tokenText(lm.tok, lm.tok.BOS()), EOSText: tokenText(lm.tok, lm.tok.EOS())})
			}
			out = append(out, openai.Model{ID: m.ID + ":" + string(mode), Name: m.Name, Created: c.ValidAfter.Unix(), ChatTemplate: lm.tok.ChatTemplate(), BOSText: tokenText(lm.tok, lm.tok.BOS()), EOSText: tokenText(lm.tok, lm.tok.EOS())})
		}
	}
	// Catalog models the client holds nothing of are listed too when a
	// relay serves their bundle: the first request fetches it (bundle.go).
	for i := range c.Models {
		m := &c.Models[i]
		if held[m.ID] || b.dataDir == "" || m.TensorHashRoot == m.ID || len(bundleServers(c, m)) == 0 {
			continue
		}
		for _, mode := range Modes {
			if _, err := b.selectPath(c, m, mode, nil); err != nil {
				continue
			}
			if mode == b.mode {
				out = append(out, openai.Model{ID: m.ID, Name: m.Name, Created: c.ValidAfter.Unix()})
			}
			out = append(out, openai.Model{ID: m.ID + ":" + string(mode), Name: m.Name, Created: c.ValidAfter.Unix()})
		}
	}
	return out, nil
}

// ResolveModel implements openai.ModelResolver: a model of the consensus
// catalog that has no path now is unavailable (503, with why), not unknown.
func (b *backend) ResolveModel(ctx context.Context, name string) (openai.Model, error) {
	lm, mode, err := b.lookup(ctx, name)
	if err != nil {
		return openai.Model{}, err
	}
	c, m, err := b.servable(lm, mode)
	if err != nil {
		return openai.Model{}, b.unavailable(c, fmt.Sprintf("model %s has no %s circuit now: %s", lm.id, mode, pathReason(err)))
	}
	return openai.Model{ID: name, Name: m.Name, Created: c.ValidAfter.Unix(), ChatTemplate: lm.tok.ChatTemplate(), BOSText: tokenText(lm.tok, lm.tok.BOS()), EOSText: tokenText(lm.tok, lm.tok.EOS())}, nil
}

// tokenText is the text of a special token (BOS, EOS) for a chat template,
// "" when the model has none.
func tokenText(tok *tokenizer.Tokenizer, id int) string {
	if id < 0 {
		return ""
	}
	return tok.Token(id)
}

// pathReason is the part of a path selection error a caller may read: what
// the consensus lacks (path.go's reasons name models, layers and counts,
// never addresses), or only that no guard could be used.
func pathReason(err error) string {
	switch {
	case errors.Is(err, directory.ErrNoConsensus), errors.Is(err, directory.ErrExpired):
		return "no valid consensus"
	case errors.Is(err, errNoGuard):
		return "no guard or bridge can be used"
	case errors.Is(err, ErrNoPath):
		return strings.TrimPrefix(strings.TrimPrefix(err.Error(), ErrNoPath.Error()), ": ")
	}
	return "no usable path"
}

// errNoGuard marks a failure to choose the first hop.
var errNoGuard = errors.New("client: no guard")

// maxNoPathRetryAfter bounds the Retry-After of a 503 for want of a path.
const maxNoPathRetryAfter = time.Minute

// unavailable is a 503 for want of a path, with the time until the next
// consensus (which may list relays anew) as Retry-After, within [1 s, 1 min].
func (b *backend) unavailable(c *directory.Consensus, reason string) error {
	ra := time.Second
	if c != nil {
		ra = min(max(time.Until(c.FreshUntil), time.Second), maxNoPathRetryAfter)
	}
	return &openai.UnavailableError{Reason: reason, RetryAfter: ra}
}

// healthy reports whether a consensus is present and a model servable (or
// fetchable: its bundle served by a relay).
func (b *backend) healthy() bool {
	for _, lm := range b.localModels() {
		if _, _, err := b.servable(lm, b.mode); err == nil {
			return true
		}
	}
	// A catalog model whose bundle a relay serves is servable too.
	ms, err := b.Models(context.Background())
	return err == nil && len(ms) > 0
}

// lookup finds the local model and the mode the API calls name ("<id>" or
// "<id>:<mode>", where the catalog's name of the model, in any case, may
// stand for the id); for a catalog model the client holds nothing of, it
// fetches and verifies the model's bundle (bundle.go).
func (b *backend) lookup(ctx context.Context, name string) (*localModel, Mode, error) {
	id, mode, err := splitModelMode(name, b.mode)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", openai.ErrUnknownModel, err)
	}
	c, err := b.dir.Current()
	if err != nil {
		return nil, "", &openai.UnavailableError{Reason: "no valid consensus: " + err.Error()}
	}
	if lm := b.localFor(c, id); lm != nil {
		return lm, mode, nil
	}
	for i := range c.Models {
		if m := &c.Models[i]; m.ID == id || m.Name != "" && strings.EqualFold(m.Name, id) {
			lm, err := b.catalogModel(ctx, c, m)
			if err != nil {
				return nil, "", err
			}
			return lm, mode, nil
		}
	}
	return nil, "", openai.ErrUnknownModel
}

// busyError says that every path for the generation needs a relay that is
// backing off after a capacity refusal; the first back-off ends at until.
type busyError struct{ until time.Time }

func (e *busyError) Error() string { return "client: every path needs a relay at capacity" }

// choosePath picks g's next path in c, preferring, in turn, one that avoids
// the busy relays, the relays that failed g's isolation key and the
// generation's suspects; one that avoids the busy relays and the faults;
// and one that avoids the busy relays and as many faults as it can, the
// newest first. Relays the generation found gone are always avoided. When
// only busy relays stand in the way it returns a *busyError.
func (b *backend) choosePath(c *directory.Consensus, m *directory.Model, g *generation) (*Path, []keys.Fingerprint, error) {
	busy, firstFree := b.relays.busyNow()
	busy = append(busy, g.gone...) // the relays this generation found gone never come back to it
	faults := b.relays.faultsFor(g.req.Isolation, c)
	preferred := append(append(slices.Clip(busy), faults...), g.suspects...)
	tiers := [][]keys.Fingerprint{preferred}
	if len(g.suspects) > 0 {
		tiers = append(tiers, append(slices.Clip(busy), faults...))
	}
	var p *Path
	var err error
	for _, avoid := range tiers {
		if p, err = b.selectPath(c, m, g.mode, avoid); err == nil {
			break
		}
	}
	if p == nil && len(faults) > 0 {
		// No path avoids every fault: avoid as many as can be, the newest
		// first (faultsFor's order), each only if a path still exists
		// without it. The relays the latest failure was pinned on stay
		// out while older faults give way, and of a pair blamed together
		// (either lied) at least one is left out.
		avoid := slices.Clip(busy)
		if p, err = b.selectPath(c, m, g.mode, avoid); err == nil {
			for _, f := range faults[:min(len(faults), maxFaultTiers)] {
				if q, err := b.selectPath(c, m, g.mode, append(slices.Clip(avoid), f)); err == nil {
					p, avoid = q, append(avoid, f)
				}
			}
		}
	}
	if p != nil {
		// The guard is never left for load: wait for it.
		if until, ok := b.relays.busyUntil(p.Hops[0].Fingerprint); ok {
			return nil, nil, &busyError{until: until}
		}
		return p, preferred, nil
	}
	if len(busy) > len(g.gone) && !errors.Is(err, errNoGuard) {
		if _, err2 := b.selectPath(c, m, g.mode, g.gone); err2 == nil {
			return nil, nil, &busyError{until: firstFree}
		}
	}
	return nil, nil, err
}

// open builds a circuit for g (or takes a spare) and opens its compute
// sessions. It sets g.path to the path it tried.
func (b *backend) open(ctx context.Context, g *generation) (*session, error) {
	g.path = nil
	c, err := b.dir.Current()
	if err != nil {
		return nil, err
	}
	m := catalogEntry(c, g.lm)
	if m == nil {
		return nil, openai.ErrUnknownModel
	}
	g.consensus = c
	bctx, cancel := context.WithTimeout(ctx, b.cfg.BuildTimeout)
	defer cancel()
	var p *Path
	var circ *origin.Circuit
	prebuilt := false
	p, preferred, err := b.choosePath(c, m, g)
	if err != nil {
		return nil, err
	}
	// A spare built before a relay of it was flagged BadCompute is not
	// used (spec/11 §5.3: in no position of any circuit).
	key := spareKey(g.lm, g.mode)
	avoid := append(slices.Clip(preferred), badComputeRelays(c)...)
	sp := b.spares.take(key, avoid)
	if ch := b.spares.pending(key); sp == nil && ch != nil {
		// A spare is being built (at start, or after the previous
		// request): it has a head start on any circuit built now, so wait
		// for it, as Tor attaches a stream to a pending circuit; build
		// anew only if it fails or does not fit this generation.
		select {
		case <-ch:
			sp = b.spares.take(key, avoid)
		case <-bctx.Done():
			return nil, fmt.Errorf("client: waiting for the circuit being built: %w", bctx.Err())
		}
	}
	if sp != nil {
		p, circ, prebuilt = sp.path, sp.circ, true
	}
	g.path = p
	if circ == nil {
		if circ, err = b.buildPath(bctx, p); err != nil {
			return nil, err
		}
		b.metrics.built(g.mode, false)
	}
	// The spare that replaces this circuit is built once the first token
	// is out (startRefill), not now: a build's handshakes would run on the
	// client and on each relay of the new path, the same relays and cores
	// the prompt is crossing (issue 16). Unless builds are slow: then the
	// round trips, not the handshakes, are the build's time, its few
	// handshakes are spread over them, and a build begun at the first token
	// (three round trips into the request) would make a next request that
	// comes soon wait for it: then it begins once the prompt has left
	// (session.sent, below).
	g.refillPending = b.life != nil
	b.recent.add(p, prebuilt)
	if err := b.guards.MarkSucceeded(p.Hops[0].Fingerprint); err != nil {
		b.log.Warn("guard state not saved", "err", err)
	}
	s := &session{c: circ, path: p, modelID: m.ID, timeout: b.cfg.StepTimeout, shape: b.cfg.Shape}
	if time.Duration(b.lastBuild.Load()) >= refillAtOnce {
		// Once the prompt has left: the build's first cell and the
		// client's key generation then follow the prompt, not precede it.
		s.sent = g.startRefill
	}
	if b.pay != nil && payRequired(c) {
		s.pay, s.payCons = b.pay, c
	}
	if g.mode == ModeConfidential {
		cs := &confState{ends: g.lm.ends, cfg: g.lm.mpcCfg, batch: confBatch(p, g.lm.mpcCfg)}
		s.setups, cs.stages, err = confidentialSetups(p, m.ID, g.lm.mpcCfg, m.Layers)
		s.conf = cs
	} else {
		s.ends = g.lm.ends
		s.setups, err = anonymousSetups(p, m.ID)
	}
	if err != nil {
		s.close()
		return nil, err
	}
	// An anonymous circuit sends its first batch right behind the SETUPs
	// and takes the SETUP_OKs with its answer: one circuit round trip less
	// to the first token (issue 16). Only a generation's first circuit
	// does: a refusal then costs the prompt's crossing to the hops before
	// the refusing one, which the bound on sends counts, so retries (often
	// after a capacity refusal) wait for every SETUP_OK first. A shaped
	// circuit waits too: the guard would otherwise see the SETUP_OKs
	// interleave with the batch as timing has it (spec 03 §8.1).
	if s.conf == nil && g.sends == 0 && !s.shape {
		// The SETUPs, COMMIT_ONs and the batch's first HIDDEN leave in
		// one write (feedAnonymous flushes).
		s.c.Hold()
		s.held = true
		err = s.sendSetups(bctx)
	} else {
		err = s.setup(bctx)
	}
	if err != nil {
		s.close()
		return nil, err
	}
	if s.conf != nil && !b.cfg.NoCommitments {
		if err := s.startPartyCommitments(bctx); err != nil {
			s.close()
			return nil, err
		}
		if p := b.auditPerMille(c); b.sub != nil && p > 0 && hasVerifier(c, m.ID) {
			s.conf.audit = newPartyAudit(p, len(s.conf.stages), cryptoDraw)
		}
	}
	if s.conf == nil && !b.cfg.NoCommitments {
		if err := s.startCommitments(bctx); err != nil {
			s.close()
			return nil, err
		}
		if p := b.auditPerMille(c); b.sub != nil && p > 0 && hasVerifier(c, m.ID) {
			s.audit = newAuditState(p, len(s.setups), s.ends.Config().Dim, cryptoDraw)
		}
	}
	if s.awaiting == 0 { // else over, once the SETUP_OKs are in
		s.accepted(b.relays)
	}
	return s, nil
}

// Generate implements openai.Backend.
func (b *backend) Generate(ctx context.Context, req openai.GenerateRequest, emit func(openai.Token) error) (usage openai.Usage, err error) {
	lm, mode, err := b.lookup(ctx, req.Model)
	if err != nil {
		return usage, err
	}
	prompt := lm.tok.Encode(req.Prompt, lm.tok.AddBOS())
	usage.PromptTokens = len(prompt)
	if len(prompt) == 0 {
		return usage, fmt.Errorf("client: empty prompt: %w", openai.ErrContextLength)
	}
	if err := checkContext(len(prompt), req, lm.cfg.ContextLength); err != nil {
		return usage, err
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
	timer := b.metrics.startRequest(mode)
	defer func() { timer.done(usage, err) }()
	userEmit := emit
	emit = func(t openai.Token) error {
		timer.token()
		return userEmit(t)
	}
	release, err := b.adm.acquire(ctx, b.cfg.QueueTimeout)
	if err != nil {
		return usage, err
	}
	defer release()
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

// checkContext refuses a prompt that leaves no room for a completion in a
// context of ctxLen tokens, and, as OpenAI does, a max_tokens the caller set
// that does not fit after the prompt; a default max_tokens only stops the
// generation when the context is full.
func checkContext(prompt int, req openai.GenerateRequest, ctxLen int) error {
	e := &openai.ContextLengthError{Context: ctxLen, Prompt: prompt}
	if prompt >= ctxLen {
		return e
	}
	if req.MaxTokensSet && prompt+req.MaxTokens > ctxLen {
		e.MaxTokens = req.MaxTokens
		return e
	}
	return nil
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

	// path is the path of the last attempt (nil if none was chosen), and
	// consensus the consensus it came from.
	path      *Path
	consensus *directory.Consensus
	// suspects are relays of circuits that failed without a culprit; the
	// generation's later attempts avoid them when they can.
	suspects []keys.Fingerprint
	// accepted: req.Accepted was called.
	accepted bool
	// gone are relays an EXTEND could not reach during this generation:
	// its later attempts never use them.
	gone []keys.Fingerprint
	// sends counts the circuits this generation sent its prompt on.
	sends int
	// steps counts the feeds (prompt and tokens) on the current circuit:
	// cover steps round it up (shaping.go).
	steps int
	// refillPending: a circuit was taken and its replacement spare is
	// still to be built (startRefill).
	refillPending bool
}

// startRefill builds the spare that replaces the circuit this generation
// took, if it has not yet: called once its first token is out, or when
// it ends without one.
func (g *generation) startRefill() {
	if g.refillPending {
		g.refillPending = false
		if testRefillStart != nil {
			testRefillStart(len(g.gen))
		}
		g.b.refill(g.b.life, g.lm, g.mode)
	}
}

// buildPath builds the circuit of a generation's path p (on demand or as a
// spare) and records how long it took (lastBuild).
func (b *backend) buildPath(ctx context.Context, p *Path) (*origin.Circuit, error) {
	t0 := time.Now()
	circ, err := b.dialer.buildCircuit(ctx, p, b.cfg.Hybrid)
	if err == nil {
		b.lastBuild.Store(int64(time.Since(t0)))
	}
	return circ, err
}

// refillAtOnce: a circuit build that took this long or longer (a wide-area
// circuit: 25 ms is a link round trip of about 4 ms per hop) makes the
// next generation start its replacement spare once its prompt has left
// rather than after its first token (spec/08 §10). A variable for tests.
var refillAtOnce = 25 * time.Millisecond

// testRefillStart, set only by tests, is told how many tokens a
// generation had produced when it started its replacement spare.
var testRefillStart func(tokens int)

// maxUnreachable bounds the relays one generation may find gone while
// building circuits (EXTEND failed to reach them) before such failures count
// against circuit.retries: a consensus can list relays that died since, for
// up to an interval, and finding one costs only a build.
const maxUnreachable = 8

// errDone ends a generation normally.
var errDone = errors.New("client: done")

// run generates over circuits until done, failing over as often as the
// failures allow: cfg.Retries faults (and as many misses of a path) besides
// up to maxUnreachable relays found gone while building, and capacity waits
// of at most cfg.QueueTimeout in a row.
func (g *generation) run(ctx context.Context) error {
	b := g.b
	defer g.startRefill()
	faults, unreachable := 0, 0
	var lastFault string
	var waitingSince time.Time // the start of the current wait for capacity
	capacityWaits := 0         // unattributed capacity refusals in a row
	for {
		if g.sends >= b.maxSends() {
			// Every circuit that got this far was sent the whole prompt
			// again: bound how often one request's prompt crosses the
			// network (08-client-api §6).
			return b.unavailable(g.consensus, fmt.Sprintf("the prompt was sent on %d circuits to model %s, the last failed because %s",
				g.sends, g.lm.id, lastFault))
		}
		s, err := b.open(ctx, g)
		stage := "build"
		if err == nil {
			stage = "use"
			waitingSince, capacityWaits = time.Time{}, 0
			g.sends++
			err = g.over(ctx, s)
			if errors.Is(err, errDone) {
				b.pathBias(g.path, nil)
				b.coverThenClose(g, s)
				return nil
			}
			s.close()
		}
		if ctx.Err() != nil {
			return fmt.Errorf("client: generation canceled: %w", ctx.Err())
		}
		if isEmitErr(err) || errors.Is(err, openai.ErrUnknownModel) {
			return err
		}
		b.metrics.circuitFailed(stage, err, g.path)
		var wait time.Duration
		capacity := false
		var busy *busyError
		switch {
		case errors.As(err, &busy):
			capacity, wait = true, max(time.Until(busy.until), minBusyWait)
			b.log.Debug("every path needs a relay at capacity: waiting", "wait", wait)
		case errors.Is(err, ErrNoPath), errors.Is(err, directory.ErrNoConsensus), errors.Is(err, directory.ErrExpired):
			// The network view may be between consensuses: wait a little
			// and try again, within the budget of faults.
			faults++
			b.log.Info("no path now", "attempt", faults, "err", err)
			if faults > b.cfg.Retries {
				return b.unavailable(g.consensus, fmt.Sprintf("no circuit to model %s can be built now: %s", g.lm.id, pathReason(err)))
			}
			wait = time.Second
		default:
			f := classify(err, g.path)
			if f.capacity {
				capacity = true
				for _, r := range f.relays {
					b.relays.markBusy(r.Fingerprint)
				}
				if len(f.relays) == 0 {
					// Refused for capacity somewhere on the circuit: back
					// off as for a busy relay, and prefer other relays.
					wait = busyBackoff(capacityWaits)
					capacityWaits++
					g.suspect()
				}
				b.log.Info("circuit refused for capacity, trying other relays", "cause", f.cause, "relays", len(f.relays), "wait", wait)
				break
			}
			b.pathBias(g.path, err)
			g.fault(f)
			lastFault = f.cause
			if f.unreachable && unreachable < maxUnreachable {
				// A relay the consensus still lists but that is gone: it
				// is avoided from now on, and no work was lost, so it
				// costs none of the retries.
				unreachable++
				b.log.Info("relay unreachable, rebuilding without it", "cause", f.cause)
				wait = retryBackoff(0)
				break
			}
			faults++
			b.log.Info("circuit failed, rebuilding", "attempt", faults, "cause", f.cause, "err", err)
			if faults > b.cfg.Retries {
				return b.unavailable(g.consensus, fmt.Sprintf("%d circuits to model %s failed, the last because %s",
					faults+unreachable, g.lm.id, lastFault))
			}
			// Back off before the next attempt: a relay that refused a
			// link (its per-address handshake rate, a restart) needs a
			// moment, and rebuilding at once from every waiting request
			// would only be refused again.
			wait = retryBackoff(faults - 1)
		}
		if capacity {
			now := time.Now()
			if waitingSince.IsZero() {
				waitingSince = now
			}
			if now.Add(wait).After(waitingSince.Add(b.cfg.QueueTimeout)) {
				return &openai.UnavailableError{RetryAfter: max(wait, time.Second),
					Reason: fmt.Sprintf("the relays that can serve model %s are at capacity", g.lm.id)}
			}
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("client: generation canceled: %w", ctx.Err())
			case <-t.C:
			}
		}
	}
}

// maxFaultTiers bounds the faults choosePath tries to keep avoiding when no
// path avoids them all (each costs a path selection).
const maxFaultTiers = 8

// maxCapacityResends is how many circuits of one generation may be sent the
// prompt again after capacity refusals, which cost none of circuit.retries.
const maxCapacityResends = 2

// maxSends bounds the circuits one generation sends its prompt on: the
// first, one per retry, and maxCapacityResends more.
func (b *backend) maxSends() int { return 1 + b.cfg.Retries + maxCapacityResends }

// pathBias counts the end of a circuit of path p against its guard
// (pathbias.go); a guard whose success rate is abnormal is warned about and
// then no longer used. Bridges are chosen by the user and not counted.
func (b *backend) pathBias(p *Path, err error) {
	if p == nil || b.bridges != nil || b.guards == nil {
		return
	}
	counts, ok := circuitOutcome(err)
	if !counts {
		return
	}
	fp := p.Hops[0].Fingerprint
	rate, disabled, serr := b.guards.RecordCircuit(fp, ok)
	switch {
	case serr != nil:
		b.log.Warn("guard state not saved", "err", serr)
	case disabled:
		b.log.Warn("guard disabled for path bias: too few of its circuits succeed; it may be killing circuits to steer paths",
			"guard", fp.String(), "success_rate", rate)
	case rate < pathBiasWarnRate:
		b.log.Warn("guard has an unusually low circuit success rate (path bias)", "guard", fp.String(), "success_rate", rate)
	}
}

// suspect makes the generation's later attempts prefer relays other than
// those of its last path (the guard excepted).
func (g *generation) suspect() {
	if g.path == nil {
		return
	}
	for _, r := range g.path.Hops[1:] {
		if !slices.Contains(g.suspects, r.Fingerprint) {
			g.suspects = append(g.suspects, r.Fingerprint)
		}
	}
}

// fault records f: against the guard in the guard state, against the relays
// it is pinned on for this isolation key (and, for relays an EXTEND could not
// reach, as gone for this generation; the hop that failed to extend is
// avoided when possible), or as suspicion of the whole path for this
// generation.
func (g *generation) fault(f failure) {
	if f.guard != nil {
		g.b.markGuardFailed(f.guard.Fingerprint)
	}
	for _, r := range f.relays {
		g.b.relays.markFault(g.req.Isolation, r.Fingerprint)
		if f.unreachable {
			g.gone = append(g.gone, r.Fingerprint)
		}
	}
	if e := f.extender; e != nil {
		// Avoided when possible, for this key and this generation, never
		// excluded: a path through it is better than none.
		g.b.relays.markFault(g.req.Isolation, e.Fingerprint)
		if !slices.Contains(g.suspects, e.Fingerprint) {
			g.suspects = append(g.suspects, e.Fingerprint)
		}
	}
	if f.guard == nil && len(f.relays) == 0 {
		g.suspect()
	}
}

// failure is how a failed attempt is handled.
type failure struct {
	// capacity: a refusal for load, not a fault.
	capacity bool
	// unreachable: a relay of the path could not be reached while the
	// circuit was built (listed, but gone): nothing was lost but the build.
	unreachable bool
	// relays are the relays it is pinned on (none: unattributed); guard is
	// set instead when the guard failed.
	relays []*directory.RouterStatus
	guard  *directory.RouterStatus
	// extender, for a failed EXTEND, is the hop that says it could not reach
	// relays[0]: a fault of its own too, but a soft one (the target may
	// simply be dead, and the extender the only relay of its layers).
	extender *directory.RouterStatus
	// cause says what happened, for logs and the caller's message; it holds
	// no address, key or content.
	cause string
}

// blameOnlyExtendTarget, set only by tests, blames a failed EXTEND on its
// target alone, as before issue 23 (TestPathBias's mutation).
var blameOnlyExtendTarget bool

// classify tells a capacity refusal from a fault and pins it on what the
// error names (spec/03-compute.md §7): ERROR out-of-capacity, EXTEND_FAILED
// and DESTROY with resource-limit, and a guard closing a new link unanswered,
// are capacity; ERROR mpc-failure is pinned on the sender's whole stage (the
// sender, its peer or their dealer failed, and from here it cannot be told
// which); other ERROR codes, a malformed or unexpected reply and a failed
// EXTEND on the relay that sent or was named; a circuit destroyed from afar,
// a step timeout or a send that failed on no one.
func classify(err error, p *Path) failure {
	var hf *hopFailure
	errors.As(err, &hf)
	var at *directory.RouterStatus
	if p != nil && hf != nil && hf.Relay != (keys.Fingerprint{}) {
		for _, h := range p.Hops {
			if h.Fingerprint == hf.Relay {
				at = h
			}
		}
	}
	pinned := func(f failure) failure {
		switch {
		case at == nil:
		case hf.Guard || at == p.Hops[0]:
			f.guard = at
		default:
			f.relays = []*directory.RouterStatus{at}
		}
		return f
	}
	var he *hop.Error
	var ee *origin.ExtendError
	var de *origin.DestroyedError
	switch {
	case errors.As(err, &he) && he.Code == hop.CodeCapacity:
		f := pinned(failure{capacity: true, cause: "a relay is out of capacity"})
		if f.guard != nil { // the guard is never left for load
			f.guard, f.relays = nil, nil
		}
		return f
	case errors.As(err, &he) && he.Code == hop.CodeMPCFailure:
		f := failure{cause: "a stage of the circuit failed (mpc-failure)"}
		if p != nil && at != nil {
			for _, st := range p.Stages {
				if st.A == at || st.B == at {
					f.relays = []*directory.RouterStatus{st.Dealer, st.A, st.B}
				}
			}
		}
		return f
	case errors.As(err, &he):
		return pinned(failure{cause: "a relay reported " + he.Code.String()})
	case errors.As(err, new(*verify.PartyMismatch)):
		// Two signed statements disagree: one of the two relays lied.
		f := pinned(failure{cause: "commitments of a confidential step disagree"})
		if p != nil && hf.Also != (keys.Fingerprint{}) {
			for _, h := range p.Hops {
				if h.Fingerprint == hf.Also {
					f.relays = append(f.relays, h)
				}
			}
		}
		return f
	case errors.As(err, &ee) && ee.Reason == cell.ReasonResourceLimit:
		f := pinned(failure{capacity: true, cause: "a relay refused a circuit for its limits"})
		f.guard = nil
		return f
	case errors.As(err, &ee):
		// The extending hop says it could not reach the next: either may
		// be lying or down, and the client cannot tell which, so both are
		// avoided (else a hop could fail every EXTEND to relays other than
		// its colluders and herd the client onto them). An EXTEND the guard
		// failed counts against it in path bias instead.
		f := pinned(failure{cause: "a relay could not be reached (" + ee.Reason.String() + ")"})
		if p != nil && ee.Hop >= 1 && ee.Hop < len(p.Hops) && len(f.relays) > 0 && !blameOnlyExtendTarget {
			f.extender = p.Hops[ee.Hop]
		}
		f.unreachable = len(f.relays) > 0
		return f
	case errors.As(err, &de) && de.Remote && de.Reason == cell.ReasonResourceLimit:
		return failure{capacity: true, cause: "a relay closed the circuit for its limits"}
	case hf != nil && hf.Guard && at != nil && linkRefused(err):
		// The guard took the connection and closed it before answering
		// the handshake: its listener refused us for its limits (handshake
		// rate, links or handshakes per address). Load: the guard is kept
		// and backed off, never replaced.
		return failure{capacity: true, relays: []*directory.RouterStatus{at}, cause: "the guard refused a link for its limits"}
	case errors.As(err, &de) && de.Remote:
		return failure{cause: "a relay closed the circuit (" + de.Reason.String() + ")"}
	case errors.Is(err, context.DeadlineExceeded):
		return pinned(failure{cause: "a step timed out"})
	case hf != nil && hf.Guard:
		return pinned(failure{cause: "the guard could not be reached"})
	case at != nil:
		return pinned(failure{cause: "a relay answered out of protocol"})
	}
	return failure{cause: "the circuit failed"}
}

// linkRefused reports whether a link handshake failed because the peer
// closed the connection before its first reply, which is how a relay's link
// listener refuses a connection over its limits (01-link).
func linkRefused(err error) bool {
	return errors.Is(err, link.ErrHandshake) && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE))
}

// retryBackoff is the wait after failed attempt n (from 0): 50 ms doubling
// up to 800 ms, each with up to half again at random so that requests that
// failed together do not retry together.
func retryBackoff(n int) time.Duration {
	d := 50 * time.Millisecond << min(n, 4)
	return d + time.Duration(rand.Int64N(int64(d/2)+1))
}

// busyBackoff is the wait after the n-th (from 0) capacity refusal in a row
// that names no relay: as a busy relay's back-off.
func busyBackoff(n int) time.Duration {
	d := min(busyBase<<min(n, 8), busyMax)
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
	// A stream's headers go out once a circuit is open, before the prompt
	// crosses it: capacity and path errors before this still get their
	// HTTP status.
	if !g.accepted && g.req.Accepted != nil {
		g.accepted = true
		g.req.Accepted()
	}
	// Each feed sends the next step's PREP ahead (MPC) only if another
	// feed can follow: one is wasted work for both parties otherwise.
	lg, err := s.feed(ctx, append(slices.Clip(g.prompt), g.gen...), len(g.gen)+1 < g.req.MaxTokens)
	if err != nil {
		return err
	}
	g.steps = 1
	// Every SETUP_OK has arrived with the first answer.
	s.accepted(g.b.relays)
	ctxLimit := g.lm.cfg.ContextLength
	if s.maxCtx > 0 && s.maxCtx < ctxLimit {
		ctxLimit = s.maxCtx
	}
	for {
		if len(g.gen) >= g.req.MaxTokens || len(g.prompt)+len(g.gen) >= ctxLimit {
			g.usage.FinishReason = "length"
			return errDone
		}
		var raw []float32 // the logits as they came, for logprobs
		if g.req.Logprobs {
			raw = slices.Clone(lg.Dense)
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
		// With logprobs every token is emitted, for its log-probability.
		if text := g.dec.Next(next); text != "" || g.req.Logprobs {
			t := openai.Token{Text: text, ID: next}
			if g.req.Logprobs {
				t.Logprob = g.logprob(raw, next)
			}
			if err := g.emit(t); err != nil {
				return &emitError{err}
			}
		}
		g.startRefill()
		if len(g.gen) >= g.req.MaxTokens {
			g.usage.FinishReason = "length"
			return errDone
		}
		if lg, err = s.feed(ctx, []int{next}, len(g.gen)+1 < g.req.MaxTokens); err != nil {
			return err
		}
		g.steps++
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

// logprob is the log-probability of id, and of the request's top
// alternatives, under logits (the log-softmax, before temperature
// and top-p). Both modes give the client every logit.
func (g *generation) logprob(logits []float32, id int) *openai.Logprob {
	lsm := sample.LogSoftmax(logits)
	tok := func(i int) openai.TokenLogprob {
		return openai.TokenLogprob{ID: i, Bytes: g.lm.tok.Piece(i), Logprob: lsm[i]}
	}
	lp := &openai.Logprob{TokenLogprob: tok(id)}
	if g.req.TopLogprobs > 0 {
		for _, e := range hop.TopK(logits, g.req.TopLogprobs) {
			lp.Top = append(lp.Top, tok(e.ID))
		}
	}
	return lp
}
