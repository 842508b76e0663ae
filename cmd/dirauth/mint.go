package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/sharechain"
)

// mintConfig configures the authority's mint (spec/12-economy.md §2.1).
type mintConfig struct {
	Enabled bool     `mapstructure:"enabled" doc:"Run this authority's mint: keys in <data_dir>/mint-keys.pem, rotated per epoch (params mint-epoch) and listed in the authority's votes."`
	Faucet  bool     `mapstructure:"faucet" doc:"Sign credits for anyone at POST /mint/v1/issue (a testnet faucet); without it the mint serves only GET /mint/v1/keys."`
	Denoms  []uint64 `mapstructure:"denoms" doc:"Credit denominations in units (empty means 1, 10, 100, 1000; at most 16)."`
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
	h := m.Handler()
	cfg.Mount = func(mux *http.ServeMux) {
		mux.Handle("GET /mint/v1/keys", h)
		if mc.Faucet {
			mux.Handle("POST /mint/v1/issue", h)
		}
	}
	pubs, _ := m.PublicKeys(context.Background())
	log.Info("mint running", "keys", len(pubs), "faucet", mc.Faucet, "epoch_seconds", epochSec)
	return func() { db.Close() }, nil
}
