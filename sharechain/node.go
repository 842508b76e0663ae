package sharechain

// Node is what a relay (or an authority, without Pay and Produce) embeds:
// its spent set, its view of the chain, the entries it has been paid for
// and not yet put in a block, gossip handling, the explorer's JSON API and
// metrics. mu guards pending.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/unfed/unfed/relay/keys"
)

// NodeConfig configures a Node. Every field is required except Identity
// (a node without one follows and serves the chain but produces nothing)
// and Log.
type NodeConfig struct {
	Params   Params         // chain parameters
	Keys     *KeySet        // accepted mint keys
	DB       *DB            // the node's store
	Identity *keys.Identity // the relay's identity key, which signs its blocks
	Log      *slog.Logger   // nil: discard
}

// Node is a share-chain participant.
type Node struct {
	cfg    NodeConfig
	log    *slog.Logger
	spent  *SpentSet
	chain  *Chain
	spends *spendBatcher // Pay's spend signatures, verified in batches
	m      nodeMetrics

	mu      sync.Mutex
	pending []Entry
	mine    []*Block // blocks this node produced whose credits may not count yet
	forward *Forwarder
	links   *LinkGossip
}

// maxMine bounds the produced blocks a node watches for falling off the
// best chain.
const maxMine = 64

// forwardBlock hands b to the forwarder, if there is one.
func (n *Node) forwardBlock(b *Block) {
	n.mu.Lock()
	f, g := n.forward, n.links
	n.mu.Unlock()
	if f != nil {
		f.enqueue(b)
	}
	if g != nil {
		g.Announce(b)
	}
}

type nodeMetrics struct {
	redeemed, doubleSpends, produced, accepted, rejected prometheus.Counter
	height                                               prometheus.GaugeFunc
}

// NewNode opens a node on its store, reloading the stored chain.
func NewNode(ctx context.Context, cfg NodeConfig) (*Node, error) {
	if cfg.DB == nil || cfg.Keys == nil {
		return nil, errors.New("sharechain: node needs a store and mint keys")
	}
	if err := cfg.DB.SaveKeys(ctx, cfg.Keys.Keys()); err != nil {
		return nil, err
	}
	ch, err := NewChain(ctx, cfg.Params, cfg.Keys, cfg.DB)
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Log, chain: ch, spent: NewSpentSet(cfg.DB, cfg.Keys), spends: newSpendBatcher(runtime.GOMAXPROCS(0))}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	// A crash between storing a received block and adding its credits to the
	// spent set (HandleGossip) is repaired here: the best chain's credits are
	// spent for this relay (§3.4).
	for _, b := range ch.MainChain() {
		if err := n.markSpent(ctx, b); err != nil {
			n.Close()
			return nil, err
		}
	}
	if cfg.Identity != nil {
		if err := n.reload(ctx); err != nil {
			n.Close()
			return nil, err
		}
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "unfed", Subsystem: "sharechain", Name: name, Help: help})
	}
	n.m = nodeMetrics{
		redeemed:     counter("redemptions_total", "Credits redeemed and acknowledged."),
		doubleSpends: counter("double_spends_total", "Credits refused as already spent."),
		produced:     counter("blocks_produced_total", "Share blocks this node produced."),
		accepted:     counter("blocks_accepted_total", "Gossiped share blocks accepted."),
		rejected:     counter("blocks_rejected_total", "Gossiped share blocks or frames refused."),
		height: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "unfed", Subsystem: "sharechain", Name: "height", Help: "Height of the best tip."},
			func() float64 {
				if t := ch.Tip(); t != nil {
					return float64(t.Height)
				}
				return 0
			}),
	}
	return n, nil
}

// reload restores what a relay had not yet settled when it stopped (spec 12
// §8): the pending entries stored with their redemptions, except those whose
// credit counts on the best chain by now (their rows are deleted), and its
// own stored blocks whose entries count nowhere on the best chain, which
// Produce carries again once they can no longer be uncles (§4.2).
func (n *Node) reload(ctx context.Context) error {
	es, err := n.cfg.DB.LoadPending(ctx)
	if err != nil {
		return err
	}
	var drop []CreditID
	for _, e := range es {
		if n.chain.Counted(e.Credit.ID()) {
			drop = append(drop, e.Credit.ID())
			continue
		}
		n.pending = append(n.pending, e)
	}
	if err := n.cfg.DB.DropPending(ctx, drop); err != nil {
		return err
	}
	for _, b := range n.chain.ProducedBy(n.cfg.Identity.Fingerprint()) {
		counted := false
		for _, e := range b.Entries {
			if n.chain.Counted(e.Credit.ID()) {
				counted = true
				break
			}
		}
		if !counted {
			n.mine = append(n.mine, b)
		}
	}
	if len(n.mine) > maxMine {
		n.mine = n.mine[len(n.mine)-maxMine:]
	}
	if len(n.pending) > 0 || len(n.mine) > 0 {
		n.log.Info("share-chain: reloaded unsettled work", "pending", len(n.pending), "own_blocks_off_chain", len(n.mine))
	}
	return nil
}

// Collectors returns the node's metrics, to register on a registry.
func (n *Node) Collectors() []prometheus.Collector {
	return []prometheus.Collector{n.m.redeemed, n.m.doubleSpends, n.m.produced, n.m.accepted, n.m.rejected, n.m.height}
}

// Chain returns the node's chain view.
func (n *Node) Chain() *Chain { return n.chain }

// Close stops the spent set's writer. The store stays open (its owner
// closes it).
func (n *Node) Close() { n.spent.Close() }

// acceptSpent is the mutation hook of the double-spending tests: when set
// and true, Pay acknowledges a credit already spent (without storing it
// again) instead of refusing it. It is nil in every production build;
// cheat.go (build tag unfedcheat) sets it.
var acceptSpent func() bool

// deafToBlocks is the partition hook of the competing-blocks test: while
// it returns true, HandleGossip drops every block a peer sends (as if the
// relay were cut off from the others), so two relays paid with one credit
// each put it in a block of their own. It is nil in every production
// build; cheat.go (build tag unfedcheat) sets it.
var deafToBlocks func() bool

// Pay redeems a payment e (a credit spent to this relay for e.Units of
// work) at local time nowMs (spec 12 §2.5). On nil the redemption is durable
// and the work may be done; the entry goes into the node's next block. An
// entry of 0 units locks the credit's value as this relay's stake (§7.1).
func (n *Node) Pay(ctx context.Context, e Entry, nowMs uint64) error {
	units, c := e.Units, e.Credit
	if units > MaxUnits || c == nil {
		return fmt.Errorf("sharechain: pay for %d units", units)
	}
	if n.cfg.Identity == nil || !n.spends.verify(spendCheckOf(e, n.cfg.Identity.Fingerprint())) {
		return errors.New("sharechain: the credit was not spent to this relay")
	}
	k, ok := n.cfg.Keys.Lookup(c.KeyID)
	if ok && uint64(units) > k.Denom*n.cfg.Params.UnitsPerCredit {
		return fmt.Errorf("sharechain: a credit of %d pays at most %d units", k.Denom, k.Denom*n.cfg.Params.UnitsPerCredit)
	}
	if n.chain.Counted(c.ID()) {
		if acceptSpent != nil && acceptSpent() {
			return nil
		}
		n.m.doubleSpends.Inc()
		return ErrDoubleSpend
	}
	if _, err := n.spent.RedeemEntry(ctx, e, n.cfg.Params.Epoch(nowMs)); err != nil {
		if errors.Is(err, ErrDoubleSpend) {
			if acceptSpent != nil && acceptSpent() {
				return nil
			}
			n.m.doubleSpends.Inc()
		}
		return err
	}
	n.m.redeemed.Inc()
	n.chain.NoteRedeemed(e, n.cfg.Identity.Fingerprint())
	n.mu.Lock()
	n.pending = append(n.pending, e)
	n.mu.Unlock()
	return nil
}

// Produce makes a block on the best tip of the entries paid since the last
// one (at most MaxEntries, oldest first), with uncles where there are any,
// and adds it to the chain. It returns nil, nil when there is nothing to put
// in a block. Entries whose credit another relay's block has counted in the
// meantime are dropped (spec 12 §3.4).
func (n *Node) Produce(ctx context.Context, nowMs uint64) (*Block, error) {
	if n.cfg.Identity == nil {
		return nil, errors.New("sharechain: a node without an identity produces no blocks")
	}
	n.mu.Lock()
	n.recarry()
	var take []Entry
	var counted []CreditID
	rest := n.pending[:0]
	for _, e := range n.pending {
		switch {
		case n.chain.Counted(e.Credit.ID()):
			n.log.Info("paid credit counted by another relay's block; dropped")
			counted = append(counted, e.Credit.ID())
		case len(take) < MaxEntries:
			take = append(take, e)
		default:
			rest = append(rest, e)
		}
	}
	n.pending = rest
	n.mu.Unlock()
	if err := n.cfg.DB.DropPending(ctx, counted); err != nil {
		n.log.Warn("share-chain: could not drop counted pending entries", "err", err)
	}
	unbond := n.unbondEntries(ctx)
	if len(take)+len(unbond) > MaxEntries {
		unbond = unbond[:MaxEntries-len(take)]
	}
	if len(take) == 0 && len(unbond) == 0 {
		return nil, nil
	}
	own := make([]CreditID, len(take))
	for i, e := range take {
		own[i] = e.Credit.ID()
	}
	entries := append(append([]Entry(nil), take...), unbond...)
	b := &Block{Height: 1, Parent: n.cfg.Params.Genesis(), TimeMs: nowMs, Entries: entries, Uncles: n.chain.UncleCandidates(own)}
	if tip := n.chain.Tip(); tip != nil {
		b.Height, b.Parent, b.TimeMs = tip.Height+1, tip.ID(), max(nowMs, tip.TimeMs)
	}
	if err := b.Sign(n.cfg.Identity); err != nil {
		return nil, n.requeue(ctx, take, nowMs, err)
	}
	if err := n.chain.addStored(ctx, b, nowMs, own); err != nil {
		return nil, n.requeue(ctx, take, nowMs, err)
	}
	n.m.produced.Inc()
	n.mu.Lock()
	n.mine = append(n.mine, b)
	if len(n.mine) > maxMine {
		n.mine = n.mine[len(n.mine)-maxMine:]
	}
	n.mu.Unlock()
	n.forwardBlock(b)
	return b, nil
}

// recarry puts back into pending the entries of this node's blocks that
// fell off the best chain without counting anywhere on it and can no
// longer be uncles (another relay's block won the fork choice, and no
// block took ours as an uncle in time: this node had nothing more to put
// in a block, and the others never saw it), so the next block carries them
// on the best tip (spec 12 §4.2). Only this
// relay can: the spend signatures name it. The chain's rules keep a credit
// from counting twice whichever of the two blocks ends up best. Called
// with mu held.
func (n *Node) recarry() {
	keep := n.mine[:0]
	for _, b := range n.mine {
		counted := false
		for _, e := range b.Entries {
			if n.chain.Counted(e.Credit.ID()) {
				counted = true
				break
			}
		}
		// A block that can still be an uncle of the next block stays one:
		// the next block of this node takes it (UncleCandidates).
		if counted || n.chain.CanBeUncle(b.ID()) {
			keep = append(keep, b)
			continue
		}
		n.log.Info("own share block fell off the best chain; carrying its entries again", "height", b.Height, "entries", len(b.Entries))
		n.pending = append(n.pending, b.Entries...)
	}
	n.mine = keep
}

// requeue puts entries back after a failed production, except those that
// can never go into a block any more (expired credits), so one of them
// cannot block the others for good.
func (n *Node) requeue(ctx context.Context, es []Entry, nowMs uint64, err error) error {
	epoch := n.cfg.Params.Epoch(nowMs)
	keep := es[:0]
	var expired []CreditID
	for _, e := range es {
		if k, ok := n.cfg.Keys.Lookup(e.Credit.KeyID); ok && Valid(k.Epoch, epoch) {
			keep = append(keep, e)
		} else {
			expired = append(expired, e.Credit.ID())
		}
	}
	if err := n.cfg.DB.DropPending(ctx, expired); err != nil {
		n.log.Warn("share-chain: could not drop expired pending entries", "err", err)
	}
	if len(keep) < len(es) {
		n.log.Warn("dropped paid entries whose credits expired before a block took them", "count", len(es)-len(keep))
	}
	n.mu.Lock()
	n.pending = append(keep, n.pending...)
	n.mu.Unlock()
	return err
}

// Pending returns how many paid entries wait for a block.
func (n *Node) Pending() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.pending)
}

// HandleGossip processes one frame from a peer at local time nowMs and
// returns the frames to send back: a GET_BLOCK for the parent and each
// uncle it lacks for a BLOCK (which the peer sends again after them), the
// block asked for by a GET_BLOCK.
func (n *Node) HandleGossip(ctx context.Context, frame []byte, nowMs uint64) ([][]byte, error) {
	m, err := ParseGossip(frame)
	if err != nil {
		n.m.rejected.Inc()
		return nil, err
	}
	switch m.Type {
	case MsgGetBlock:
		if b, ok := n.chain.Block(m.BlockID); ok {
			return [][]byte{EncodeGossip(MsgBlock, b.Marshal())}, nil
		}
		return nil, nil
	default: // MsgBlock
		if deafToBlocks != nil && deafToBlocks() {
			return nil, nil
		}
		if _, known := n.chain.Block(m.Block.ID()); known {
			return nil, nil // nothing new: neither counted nor forwarded again
		}
		if miss := n.chain.Missing(m.Block); len(miss) > 0 {
			var asks [][]byte
			for _, id := range miss {
				asks = append(asks, EncodeGossip(MsgGetBlock, id[:]))
			}
			return asks, nil
		}
		err := n.chain.Add(ctx, m.Block, nowMs)
		if err != nil {
			n.m.rejected.Inc()
			return nil, err
		}
		n.m.accepted.Inc()
		if err := n.markSpent(ctx, m.Block); err != nil {
			return nil, err
		}
		n.forwardBlock(m.Block)
		return nil, nil
	}
}

// markSpent adds the credits that count at b to the spent set (§3.4).
func (n *Node) markSpent(ctx context.Context, b *Block) error {
	var cs []*Credit
	for _, e := range b.Entries {
		if e.Units != UnbondUnits {
			cs = append(cs, e.Credit)
		}
	}
	for _, uid := range b.Uncles {
		if u, ok := n.chain.Block(uid); ok {
			for _, e := range u.Entries {
				if e.Units != UnbondUnits {
					cs = append(cs, e.Credit)
				}
			}
		}
	}
	for _, c := range cs {
		k, _ := n.cfg.Keys.Lookup(c.KeyID)
		if err := n.spent.MarkSpent(ctx, c.ID(), k.Epoch); err != nil && !errors.Is(err, ErrDoubleSpend) {
			return err
		}
	}
	return nil
}

// RelayWork is a relay's verified work units on the best chain.
type RelayWork struct {
	Relay keys.Fingerprint
	Units uint64
}

// Work sums each producer's own entries' units over the best chain.
func (c *Chain) Work() []RelayWork {
	m := map[keys.Fingerprint]uint64{}
	for _, b := range c.MainChain() {
		m[b.Fingerprint()] += b.Units()
	}
	out := make([]RelayWork, 0, len(m))
	for fp, u := range m {
		out = append(out, RelayWork{fp, u})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Relay.String() < out[j].Relay.String() })
	return out
}

// ProofJudge re-executes a fraud proof (spec 11 §5.2) and returns the relay
// it convicts, or ok = false for an honest step. An authority passes
// directory.Authority.JudgeProof with its model loader; the share-chain
// itself never runs the engine.
type ProofJudge func(proof []byte) (relay keys.Fingerprint, fraud bool, err error)

// ErrNotFraud is returned by SubmitProof for a proof whose re-execution
// matched the commitment.
var ErrNotFraud = errors.New("sharechain: the proof's step re-executes honestly")

// MaxProofLen bounds a fraud proof a node keeps with a slash.
const MaxProofLen = 64 << 20

// SubmitProof judges a fraud proof and, when it convicts a relay, slashes
// it at the best tip's height (spec 12 §7.2): its unpaid shares are void.
func (n *Node) SubmitProof(ctx context.Context, proof []byte, judge ProofJudge) (keys.Fingerprint, error) {
	if len(proof) > MaxProofLen {
		return keys.Fingerprint{}, fmt.Errorf("sharechain: proof of %d bytes exceeds %d", len(proof), MaxProofLen)
	}
	fp, fraud, err := judge(proof)
	if err != nil {
		return fp, err
	}
	if !fraud {
		return fp, ErrNotFraud
	}
	var h uint64
	if t := n.chain.Tip(); t != nil {
		h = t.Height
	}
	n.log.Warn("slashing relay on a verified fraud proof", "relay", fp.String(), "height", h)
	return fp, n.chain.Slash(ctx, fp, h, proof)
}
