package sharechain

// PPLNS payouts (spec 12 §6): each matured block's value is split over the
// shares of the Window blocks ending at it, by exact integer arithmetic.

import (
	"bytes"
	"errors"
	"math/bits"
	"sort"

	"github.com/unfed/unfed/relay/keys"
)

// Weight is one relay's shares.
type Weight struct {
	Relay  keys.Fingerprint
	Shares uint64
}

// Split divides pool among weights in proportion to their shares, exactly
// (spec 12 §6.3): each gets floor(pool·w/W); the remainder goes one unit at
// a time by largest fractional part, ties to the lower fingerprint. The
// results sum to pool whenever W > 0; with W = 0 every result is 0. The
// output is in the order of weights.
func Split(pool uint64, weights []Weight) ([]uint64, error) {
	out := make([]uint64, len(weights))
	var total uint64
	for _, w := range weights {
		var carry uint64
		total, carry = bits.Add64(total, w.Shares, 0)
		if carry != 0 {
			return nil, errors.New("sharechain: total shares overflow 64 bits")
		}
	}
	if total == 0 {
		return out, nil
	}
	rem := make([]uint64, len(weights))
	var paid uint64
	for i, w := range weights {
		hi, lo := bits.Mul64(pool, w.Shares)
		// pool·w/W ≤ pool < 2^64, so hi < W and Div64 cannot overflow.
		out[i], rem[i] = bits.Div64(hi, lo, total)
		paid += out[i]
	}
	order := make([]int, len(weights))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		i, j := order[a], order[b]
		if rem[i] != rem[j] {
			return rem[i] > rem[j]
		}
		return bytes.Compare(weights[i].Relay[:], weights[j].Relay[:]) < 0
	})
	for k := 0; paid < pool; k++ {
		out[order[k]]++
		paid++
	}
	return out, nil
}

// blockShares returns what a block contributes to the window (spec 12 §6.2):
// its producer gets the value of its own work entries and the penalty cut
// of each uncle's; an uncle's producer gets the rest of the uncle's.
func (c *Chain) blockShares(n *node, add func(keys.Fingerprint, uint64)) {
	add(n.b.Fingerprint(), n.work)
	for _, u := range n.uncles {
		keep := u.work * (100 - c.params.UnclePenalty) / 100
		add(u.b.Fingerprint(), keep)
		add(n.b.Fingerprint(), u.work-keep)
	}
}

// Payout is one relay's total over the matured best chain.
type Payout struct {
	Relay  keys.Fingerprint
	Amount uint64
	Shares uint64 // shares in the current window (unmatured included)
}

// PayoutSummary is the result of Payouts.
type PayoutSummary struct {
	TipHeight uint64
	Matured   uint64 // blocks of height ≤ Matured are paid
	Value     uint64 // credit value of the matured blocks
	Paid      uint64 // sum of Amounts
	Carried   uint64 // value of blocks whose window had no shares, carried on
	Relays    []Payout
}

// Payouts computes every relay's payout over the matured part of the best
// chain: the blocks at least Maturity below the tip (spec 12 §6).
func (c *Chain) Payouts() PayoutSummary {
	c.mu.Lock()
	defer c.mu.Unlock()
	// The walk is O(chain); the explorer asks often and the answer only
	// changes with the tip or a slash.
	if c.payouts != nil && c.payoutsTip == c.tip && c.payoutsSlashes == c.slashVersion {
		return clonePayouts(*c.payouts)
	}
	s := c.payoutsLocked()
	c.payouts, c.payoutsTip, c.payoutsSlashes = &s, c.tip, c.slashVersion
	return clonePayouts(s)
}

func clonePayouts(s PayoutSummary) PayoutSummary {
	s.Relays = append([]Payout(nil), s.Relays...)
	return s
}

func (c *Chain) payoutsLocked() PayoutSummary {
	main := c.mainLocked()
	s := PayoutSummary{TipHeight: uint64(len(main))}
	if len(main) > c.params.Maturity {
		s.Matured = uint64(len(main) - c.params.Maturity)
	}
	window := map[keys.Fingerprint]uint64{}
	amount := map[keys.Fingerprint]uint64{}
	var carry uint64
	for i := uint64(0); i < s.Matured; i++ {
		n := main[i]
		c.blockShares(n, func(fp keys.Fingerprint, u uint64) { window[fp] += u })
		if old := int(i) - c.params.Window; old >= 0 {
			c.blockShares(main[old], func(fp keys.Fingerprint, u uint64) {
				window[fp] -= u
				if window[fp] == 0 {
					delete(window, fp)
				}
			})
		}
		s.Value += n.value
		pool := n.value + carry
		ws := c.eligible(window, n.height())
		parts, err := Split(pool, ws)
		if err != nil {
			// Unreachable within the limits of §4.1; pay nothing, carry on.
			parts = make([]uint64, len(ws))
		}
		var paid uint64
		for j, w := range ws {
			amount[w.Relay] += parts[j]
			paid += parts[j]
		}
		carry = pool - paid
	}
	s.Carried = carry
	cur := map[keys.Fingerprint]uint64{}
	lo := max(0, len(main)-c.params.Window)
	for _, n := range main[lo:] {
		c.blockShares(n, func(fp keys.Fingerprint, u uint64) { cur[fp] += u })
	}
	seen := map[keys.Fingerprint]bool{}
	for fp := range amount {
		seen[fp] = true
	}
	for fp := range cur {
		seen[fp] = true
	}
	for fp := range seen {
		if amount[fp] == 0 && cur[fp] == 0 {
			continue
		}
		s.Relays = append(s.Relays, Payout{Relay: fp, Amount: amount[fp], Shares: cur[fp]})
		s.Paid += amount[fp]
	}
	sort.Slice(s.Relays, func(i, j int) bool {
		return bytes.Compare(s.Relays[i].Relay[:], s.Relays[j].Relay[:]) < 0
	})
	return s
}

// eligible returns the window's weights, sorted by fingerprint, without the
// shares of relays slashed before the block at height h was paid (paid at
// h + Maturity; spec 12 §7.2).
func (c *Chain) eligible(window map[keys.Fingerprint]uint64, h uint64) []Weight {
	ws := make([]Weight, 0, len(window))
	for fp, u := range window {
		if sh, ok := c.slashed[fp]; ok && sh <= h+uint64(c.params.Maturity) {
			continue
		}
		ws = append(ws, Weight{Relay: fp, Shares: u})
	}
	sort.Slice(ws, func(i, j int) bool { return bytes.Compare(ws[i].Relay[:], ws[j].Relay[:]) < 0 })
	return ws
}
