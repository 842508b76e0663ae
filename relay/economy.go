package relay

// The relay's part of the economy (spec/12-economy.md): a share-chain node
// in its data directory that redeems the credits clients pay with inside
// the relay's onion layer (PAY, spec/03 §3.15), produces a share block of
// them every block interval, and gossips its blocks to the authorities,
// which follow the chain (§5.4), and to its neighbour relays over their
// links (GOSSIP cells, §5.5). Mint keys and chain parameters come from the
// consensus (method 5).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/circuit"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/sharechain"
)

// EconomyConfig turns the economy on for a relay.
type EconomyConfig struct {
	Enabled       bool          `mapstructure:"enabled" doc:"Take payments (PAY) and run a share-chain node in <data_dir>/sharechain.db; needs authorities (mint keys and parameters come from the consensus)."`
	Network       string        `mapstructure:"network" doc:"Share-chain network name the relay expects; the consensus's chain-id decides it (0: unfed-testnet, N: unfed-N), and a relay whose name differs takes no payments. Empty: whatever the consensus names."`
	BlockInterval time.Duration `mapstructure:"block_interval" doc:"How often to put redeemed credits into a share block (0 means 10s)."`
	LinksOnly     bool          `mapstructure:"links_only" doc:"Gossip share blocks over relay links only: neither post them to the authorities nor pull the chain from them (a test of link gossip; a relay so configured catches up only through its neighbours)."`
	StakeFaucet   string        `mapstructure:"stake_faucet" doc:"URL of a mint that signs for anyone (a testnet faucet): the relay takes credits from it and locks them as its stake (the consensus's stake parameter) in its first block. Empty: no stake is locked."`
}

// economy implements hop.Payments over a share-chain node made on the
// first consensus.
type economy struct {
	cfg    EconomyConfig
	price  uint64
	id     *keys.Identity
	peers  []string
	client *http.Client
	cons   *consensusFunc
	log    *slog.Logger

	keys sharechain.KeySet

	// links is the link gossip once the node runs: read by the links'
	// readers without e.mu, which ensure holds while it makes the node.
	links atomic.Pointer[sharechain.LinkGossip]

	lastStake time.Time // last attempt to lock stake; touched by run only
	lastPrune time.Time // last pruning of the spent set; touched by run only

	mu         sync.Mutex // guards the fields below
	runCtx     context.Context
	db         *sharechain.DB
	node       *sharechain.Node
	neighbours func() []circuit.Neighbour
	reg        prometheus.Registerer
	lastCons   *directory.Consensus
}

// attach gives the economy the switch whose relay links it gossips on and
// the registry for its metrics.
func (e *economy) attach(sw *circuit.Switch, reg prometheus.Registerer) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.neighbours, e.reg = sw.Neighbours, reg
}

// LinkMessage implements circuit.LinkHandler: a GOSSIP cell from a
// neighbour relay goes to the link gossip, once the node runs.
func (e *economy) LinkMessage(from circuit.Neighbour, payload []byte) {
	if g := e.links.Load(); g != nil {
		g.Deliver(from, payload)
	}
}

// linkPeers returns the relay's open links to other relays.
func (e *economy) linkPeers() []sharechain.LinkPeer {
	e.mu.Lock()
	nb := e.neighbours
	e.mu.Unlock()
	if nb == nil {
		return nil
	}
	ns := nb()
	out := make([]sharechain.LinkPeer, len(ns))
	for i, n := range ns {
		out[i] = n
	}
	return out
}

func newEconomy(cfg *Config, id *keys.Identity, cons *consensusFunc, log *slog.Logger) (*economy, error) {
	if !cfg.Economy.Enabled {
		return nil, nil
	}
	if len(cfg.Authorities) == 0 {
		return nil, errors.New("relay: economy.enabled needs authorities")
	}
	e := &economy{cfg: cfg.Economy, price: cfg.PricePerToken, id: id, cons: cons, log: log,
		client: &http.Client{Timeout: 20 * time.Second}}
	if e.cfg.BlockInterval <= 0 {
		e.cfg.BlockInterval = 10 * time.Second
	}
	for _, a := range cfg.Authorities {
		e.peers = append(e.peers, "http://"+a.Address)
	}
	db, err := sharechain.OpenDB(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	e.db = db
	return e, nil
}

// close stops the node and closes the store.
func (e *economy) close() {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.node != nil {
		e.node.Close()
	}
	e.db.Close()
}

// consensus returns the relay's current consensus.
func (e *economy) consensus() (*directory.Consensus, error) {
	if *e.cons == nil {
		return nil, errors.New("no consensus yet")
	}
	return (*e.cons)()
}

// Required implements hop.Payments: the consensus's pay-required.
func (e *economy) Required() bool {
	c, err := e.consensus()
	return err == nil && c.Param(directory.ParamPayRequired, 0) == 1
}

// ensure takes the mint keys of a new consensus and makes the node on the
// first one.
func (e *economy) ensure(ctx context.Context) (*sharechain.Node, error) {
	c, err := e.consensus()
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if c != e.lastCons {
		if err := sharechain.AddConsensusKeys(&e.keys, c); err != nil {
			return nil, err
		}
		if err := e.db.SaveKeys(ctx, e.keys.Keys()); err != nil {
			return nil, err
		}
		e.lastCons = c
	}
	if e.node == nil {
		if e.runCtx == nil {
			return nil, errors.New("economy not running")
		}
		if _, err := sharechain.ConsensusNetwork(e.cfg.Network, c); err != nil {
			return nil, err
		}
		p := sharechain.ParamsFromConsensus(c)
		n, err := sharechain.NewNode(ctx, sharechain.NodeConfig{Params: p, Keys: &e.keys, DB: e.db, Identity: e.id, Log: e.log})
		if err != nil {
			return nil, err
		}
		if !e.cfg.LinksOnly {
			n.StartForwarder(e.runCtx, e.peers)
		}
		g := sharechain.NewLinkGossip(n, e.linkPeers, sharechain.LinkGossipConfig{Log: e.log})
		go g.Run(e.runCtx)
		e.links.Store(g)
		if e.reg != nil {
			for _, c := range append(n.Collectors(), g.Collectors()...) {
				if err := e.reg.Register(c); err != nil {
					e.log.Debug("share-chain metric not registered", "err", err)
				}
			}
		}
		e.node = n
		e.log.Info("share-chain node running", "network", p.Network, "height", heightOf(n))
	}
	return e.node, nil
}

func heightOf(n *sharechain.Node) uint64 {
	if t := n.Chain().Tip(); t != nil {
		return t.Height
	}
	return 0
}

// Redeem implements hop.Payments (spec/03 §3.15): the credit must parse,
// name a mint key of the consensus, pay at least this relay's price for the
// units it claims, and redeem at the node (spend signature, epoch, RSA
// signature, spent set).
func (e *economy) Redeem(ctx context.Context, pe hop.PayEntry) error {
	n, err := e.ensure(ctx)
	if err != nil {
		return fmt.Errorf("payments unavailable: %v", err)
	}
	cr, err := sharechain.ParseCredit(pe.Credit)
	if err != nil {
		return errors.New("credit does not parse")
	}
	k, ok := e.keys.Lookup(cr.KeyID)
	if !ok {
		return errors.New("credit of an unknown mint key")
	}
	if most := n.Chain().Params().PricedUnits(k.Denom, e.price); pe.Units > most {
		return fmt.Errorf("a credit of %d pays for at most %d positions at %d micro-credits", k.Denom, most, e.price)
	}
	err = n.Pay(ctx, sharechain.Entry{Units: pe.Units, Credit: cr, SpendSig: pe.SpendSig}, uint64(time.Now().UnixMilli()))
	switch {
	case errors.Is(err, sharechain.ErrDoubleSpend):
		return errors.New("credit already spent")
	case err != nil:
		e.log.Debug("payment refused", "err", err)
		return errors.New("credit refused")
	}
	return nil
}

// pull takes the other relays' blocks from the first authority that
// serves the chain (spec/12 §5.4), so this relay's next block goes on the
// network's best tip.
func (e *economy) pull(ctx context.Context, n *sharechain.Node) {
	if e.cfg.LinksOnly {
		return
	}
	for _, p := range e.peers {
		added, err := n.Pull(ctx, e.client, p, uint64(time.Now().UnixMilli()))
		if err == nil {
			if added > 0 {
				e.log.Debug("share blocks pulled", "peer", p, "blocks", added)
			}
			return
		}
		e.log.Debug("share-chain pull failed", "peer", p, "err", err)
	}
}

// lockStake tops the relay's stake on the chain up to the consensus's
// stake parameter with credits from the stake faucet, spent to itself as
// stake entries (0 units, spec/12 §7.1); they go in its next block.
func (e *economy) lockStake(ctx context.Context, n *sharechain.Node) error {
	c, err := e.consensus()
	if err != nil {
		return err
	}
	want := uint64(max(c.Param(directory.ParamStake, directory.DefaultParams[directory.ParamStake]), 0))
	fp := e.id.Fingerprint()
	have := n.Chain().Stake(fp)
	if e.cfg.StakeFaucet == "" || have >= want {
		return nil
	}
	epoch := n.Chain().Params().Epoch(uint64(time.Now().UnixMilli()))
	is := sharechain.HTTPIssuer{URL: e.cfg.StakeFaucet, Client: e.client}
	pubs, err := is.PublicKeys(ctx)
	if err != nil {
		return err
	}
	var k *sharechain.MintPublicKey
	for i := range pubs {
		if pubs[i].Epoch == epoch && (k == nil || pubs[i].Denom > k.Denom) && pubs[i].Denom <= want-have {
			k = &pubs[i]
		}
	}
	if k == nil {
		return fmt.Errorf("the stake faucet has no key of epoch %d for %d units", epoch, want-have)
	}
	count := int((want - have + k.Denom - 1) / k.Denom)
	w := sharechain.NewWallet(e.db)
	if _, err := w.Request(ctx, is, "stake", *k, count); err != nil {
		return err
	}
	coins, err := w.Spend(ctx, want-have, epoch)
	if err != nil {
		return err
	}
	now := uint64(time.Now().UnixMilli())
	for _, co := range coins {
		if err := n.Pay(ctx, co.Pay(fp, 0), now); err != nil {
			return err
		}
	}
	e.log.Info("stake locked", "units", want-have)
	return nil
}

// prune drops the spent-set entries of credits that expired (spec/12
// §3.2: a credit of key epoch e is redeemable in epochs e and e+1 only), so
// the store holds two epochs of redemptions.
func (e *economy) prune(ctx context.Context, n *sharechain.Node) {
	epoch := n.Chain().Params().Epoch(uint64(time.Now().UnixMilli()))
	k, err := e.db.PruneSpent(ctx, epoch)
	if err != nil {
		e.log.Warn("spent set not pruned", "err", err)
		return
	}
	if k > 0 {
		e.log.Info("spent set pruned", "entries", k, "epoch", epoch)
	}
}

// run produces a block of the redeemed credits every block interval.
func (e *economy) run(ctx context.Context) {
	e.mu.Lock()
	e.runCtx = ctx
	e.mu.Unlock()
	t := time.NewTicker(e.cfg.BlockInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := e.ensure(ctx)
		if err != nil {
			continue // no consensus yet
		}
		e.pull(ctx, n)
		// Stake entries in a block that loses the fork choice (and is
		// not taken as an uncle) do not count: check again now and then.
		if time.Since(e.lastStake) > 5*e.cfg.BlockInterval {
			e.lastStake = time.Now()
			if err := e.lockStake(ctx, n); err != nil {
				e.log.Warn("stake not locked", "err", err)
			}
		}
		if time.Since(e.lastPrune) > time.Hour {
			e.lastPrune = time.Now()
			e.prune(ctx, n)
		}
		b, err := n.Produce(ctx, uint64(time.Now().UnixMilli()))
		switch {
		case err != nil:
			e.log.Warn("share block not produced", "err", err)
		case b != nil:
			e.log.Info("share block produced", "height", b.Height, "entries", len(b.Entries))
		}
	}
}
