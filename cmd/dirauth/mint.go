package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/sharechain"
)

// mintConfig configures the authority's mint (spec/12-economy.md §2.1).
type mintConfig struct {
	Enabled bool     `mapstructure:"enabled" doc:"Run this authority's mint: keys in <data_dir>/mint-keys.pem, rotated per epoch (params mint-epoch) and listed in the authority's votes."`
	Faucet  bool     `mapstructure:"faucet" doc:"Sign credits for anyone at POST /mint/v1/issue (a testnet faucet); without it the mint serves only GET /mint/v1/keys."`
	Denoms  []uint64 `mapstructure:"denoms" doc:"Credit denominations in units (empty means 1, 10, 100, 1000; at most 16)."`
	// FaucetRate and GossipRate bound what one source address may ask.
	FaucetRate float64 `mapstructure:"faucet_rate" doc:"Faucet issue requests per second one source address may make, sustained (0 means 2; burst 10 times that)."`
	GossipRate float64 `mapstructure:"gossip_rate" doc:"Share-chain API requests (gossip, pulls, explorer) per second one source address may make, sustained (0 means 50; burst 10 times that)."`
}

// startMint opens the authority's mint and wires it into cfg: its keys
// into the votes, its API into the authority's HTTP server.
func startMint(mc mintConfig, cfg *directory.AuthorityConfig, log *slog.Logger) (closeFn func(), err error) {
	if !mc.Enabled {
		if mc.Faucet {
			return nil, errors.New("dirauth: mint.faucet needs mint.enabled")
		}
		return func() {}, nil
	}
	denoms := mc.Denoms
	if len(denoms) == 0 {
		denoms = []uint64{1, 10, 100, 1000}
	}
	epochSec := cfg.Params[directory.ParamMintEpoch]
	if epochSec == 0 {
		epochSec = directory.DefaultParams[directory.ParamMintEpoch]
	}
	if epochSec < 1 {
		return nil, fmt.Errorf("dirauth: params %s = %d, want a positive number of seconds", directory.ParamMintEpoch, epochSec)
	}
	db, err := sharechain.OpenDB(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	m, err := sharechain.OpenAuthorityMint(db, filepath.Join(cfg.DataDir, sharechain.MintKeysFile), denoms, uint64(epochSec), uint64(time.Now().UnixMilli()))
	if err != nil {
		db.Close()
		return nil, err
	}
	cfg.MintKeys = func(now time.Time) []directory.MintKey {
		pubs, err := m.KeysAt(uint64(epochSec), uint64(now.UnixMilli()))
		if err != nil {
			log.Error("mint keys", "err", err)
			return nil
		}
		out := make([]directory.MintKey, 0, len(pubs))
		for _, k := range pubs {
			der, err := x509.MarshalPKIXPublicKey(k.Key)
			if err != nil {
				log.Error("mint key", "err", err)
				return nil
			}
			out = append(out, directory.MintKey{Epoch: k.Epoch, Denom: k.Denom, PKIX: der})
		}
		return out
	}
	faucetRate, gossipRate := mc.FaucetRate, mc.GossipRate
	if faucetRate <= 0 {
		faucetRate = 2
	}
	if gossipRate <= 0 {
		gossipRate = 50
	}
	h := m.Handler()
	f := &follower{db: db, log: log}
	cfg.OnFraud = f.slash
	cfg.StakeOf = f.stakeOf
	cfg.Mount = func(a *directory.Authority, mux *http.ServeMux) {
		mux.Handle("GET /mint/v1/keys", h)
		if mc.Faucet {
			mux.Handle("POST /mint/v1/issue", directory.RateLimit(h, faucetRate, int(10*faucetRate)))
		}
		f.a = a
		mux.Handle("/sharechain/v1/", directory.RateLimit(f, gossipRate, int(10*gossipRate)))
	}
	pubs, _ := m.PublicKeys(context.Background())
	log.Info("mint running", "keys", len(pubs), "faucet", mc.Faucet, "epoch_seconds", epochSec)
	return func() {
		f.close()
		db.Close()
	}, nil
}

// follower is the authority's share-chain node (spec/12 §5.4): it takes the
// blocks relays post, verifies them against the mint keys of the
// authority's consensus, and serves the chain's API (the explorer's JSON,
// blocks for relays that pull). It is made on the first request after the
// authority has a consensus, with that consensus's chain parameters.
type follower struct {
	a   *directory.Authority
	db  *sharechain.DB
	log *slog.Logger

	mu   sync.Mutex // guards the fields below
	keys sharechain.KeySet
	last *directory.Consensus
	node *sharechain.Node
	h    http.Handler
}

func (f *follower) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, err := f.ensure(r.Context())
	if err != nil {
		http.Error(w, "share-chain: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	h.ServeHTTP(w, r)
}

// ensure takes the authority's consensus before its own lock: stakeOf is
// called under the authority's lock and takes f.mu.
func (f *follower) ensure(ctx context.Context) (http.Handler, error) {
	c := f.a.Current()
	if c == nil {
		return nil, errors.New("no consensus yet")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c != f.last {
		if err := sharechain.AddConsensusKeys(&f.keys, c); err != nil {
			return nil, err
		}
		if err := f.db.SaveKeys(ctx, f.keys.Keys()); err != nil {
			return nil, err
		}
		f.last = c
	}
	if f.node == nil {
		p := sharechain.ParamsFromConsensus(c)
		n, err := sharechain.NewNode(ctx, sharechain.NodeConfig{Params: p, Keys: &f.keys, DB: f.db, Log: f.log})
		if err != nil {
			return nil, err
		}
		f.node, f.h = n, n.Handler(nil)
		f.log.Info("share-chain node following", "network", p.Network)
	}
	return f.h, nil
}

// slash records a fraud proof the authority verified against relay fp on
// the chain (spec/12 §7.2): its unpaid shares are void and its stake burned.
func (f *follower) slash(fp keys.Fingerprint, proof []byte) {
	ctx := context.Background()
	if _, err := f.ensure(ctx); err != nil {
		f.log.Error("share-chain: fraud proof not recorded", "relay", fp.String(), "err", err)
		return
	}
	f.mu.Lock()
	n := f.node
	f.mu.Unlock()
	// The authority has judged the proof (directory.Authority.JudgeProof).
	judged := func([]byte) (keys.Fingerprint, bool, error) { return fp, true, nil }
	if _, err := n.SubmitProof(ctx, proof, judged); err != nil {
		f.log.Error("share-chain: fraud proof not recorded", "relay", fp.String(), "err", err)
	}
}

// stakeOf returns relay fp's stake on the chain (0 before the node
// exists). The authority calls it while voting, holding its own lock, so it
// must not ask the authority for anything (ensure does).
func (f *follower) stakeOf(fp keys.Fingerprint) uint64 {
	f.mu.Lock()
	n := f.node
	f.mu.Unlock()
	if n == nil {
		return 0
	}
	return n.Chain().Stake(fp)
}

func (f *follower) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.node != nil {
		f.node.Close()
	}
}
