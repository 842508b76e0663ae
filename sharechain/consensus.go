package sharechain

// What the network's consensus says about the economy (spec 12 §2.1,
// §6.1; 04-directory §5.1, §6.1): the mint keys relays accept and the
// chain's parameters.

import (
	"fmt"
	"strconv"

	"github.com/unfed/unfed/directory"
)

// NetworkName returns the name of the share-chain of a network whose
// consensus sets chain-id to id (spec 12 §5.1): DefaultNetwork for 0 (or
// unset), "unfed-" and the decimal id otherwise.
func NetworkName(id int64) string {
	if id <= 0 {
		return DefaultNetwork
	}
	return "unfed-" + strconv.FormatInt(id, 10)
}

// ConsensusNetwork returns the name of the chain c's network runs. A
// configured name (a node's pin, empty for none) that differs is an error:
// the node would otherwise follow a chain the network does not.
func ConsensusNetwork(configured string, c *directory.Consensus) (string, error) {
	name := NetworkName(c.Param(directory.ParamChainID, 0))
	if configured != "" && configured != name {
		return "", fmt.Errorf("sharechain: configured for network %q, but the consensus's chain-id names %q", configured, name)
	}
	return name, nil
}

// ParamsFromConsensus returns the chain parameters under c: the network
// its chain-id names, and the defaults of §6.1 with the consensus's
// mint-epoch, pplns-window, pplns-maturity, units-per-credit and unbond
// where it sets them (each at least 1; unbond at least the maturity).
func ParamsFromConsensus(c *directory.Consensus) Params {
	p := DefaultParams(NetworkName(c.Param(directory.ParamChainID, 0)))
	get := func(name string, def int64) int64 { return max(c.Param(name, def), 1) }
	p.EpochSeconds = uint64(get(directory.ParamMintEpoch, int64(p.EpochSeconds)))
	p.Window = int(min(get(directory.ParamPPLNSWindow, int64(p.Window)), 1<<20))
	p.Maturity = int(min(get(directory.ParamPPLNSMaturity, int64(p.Maturity)), 1<<20))
	p.UnitsPerCredit = uint64(min(get(directory.ParamUnitsPerCredit, int64(p.UnitsPerCredit)), 1<<20))
	p.Unbond = int(min(max(get(directory.ParamUnbond, int64(p.Unbond)), int64(p.Maturity)), 1<<30))
	return p
}

// AddConsensusKeys adds every mint key c lists to ks and returns how many
// it holds now. A key that does not pass the limits of §2.1 is an error
// (a consensus parser already refused it).
func AddConsensusKeys(ks *KeySet, c *directory.Consensus) error {
	for _, k := range c.MintKeys {
		rk, err := k.RSAKey()
		if err != nil {
			return fmt.Errorf("sharechain: consensus mint key %s: %w", k, err)
		}
		if err := ks.Add(MintPublicKey{Epoch: k.Epoch, Denom: k.Denom, Key: rk}); err != nil {
			return err
		}
	}
	return nil
}

// PricedUnits returns the units (positions of work) a credit of denom pays
// for at a relay's price (micro-credits per position, 04-directory §6.1):
// ⌊denom × 10^6 / price⌋, at most denom × UnitsPerCredit and MaxUnits
// (03-compute §3.15). A price of 0 is bounded by those limits only.
func (p Params) PricedUnits(denom, price uint64) uint32 {
	limit := uint64(MaxUnits)
	if p.UnitsPerCredit == 0 {
		limit = 0
	} else if denom <= MaxUnits/p.UnitsPerCredit {
		limit = denom * p.UnitsPerCredit
	}
	if price == 0 {
		return uint32(limit)
	}
	if denom > (1<<64-1)/1_000_000 {
		return uint32(limit)
	}
	return uint32(min(denom*1_000_000/price, limit))
}
