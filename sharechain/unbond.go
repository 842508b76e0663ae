package sharechain

// Unbonding (spec 12 §7.4): a relay withdraws a stake credit by carrying,
// in a block of its own, an unbond entry for it (the stake credit again,
// units UnbondUnits, a spend signature by the credit's one-time key). The
// stake stops counting for the flags at once, stays slashable for Unbond
// blocks, and is released to the relay after that unless a fraud proof
// slashed it first. The operator asks with `unfed sharechain unbond`,
// which signs the entries into the store's unbond table; the relay's node
// carries them in its next block and deletes them once they count.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/unfed/unfed/relay/keys"
)

// UnbondUnits in an entry's units field marks an unbond entry (§4.1).
const UnbondUnits = 1<<32 - 1

// checkUnbond applies §7.4 to an unbond entry of credit id in a block of
// producer fp on parent: the credit is a stake entry of fp that counts in
// parent's chain and is not unbonding there yet, nor twice in the block.
func (c *Chain) checkUnbond(id CreditID, fp keys.Fingerprint, parent *node, seen map[CreditID]bool) error {
	if seen[id] {
		return errors.New("unbond entry listed twice")
	}
	seen[id] = true
	staked := false
	for _, n := range c.credits[id] {
		if ancestorAt(parent, n.height()) != n {
			continue
		}
		staked = stakeEntryOf(n, id, fp)
		break // a credit counts once on a chain
	}
	if !staked {
		return errors.New("unbond entry for a credit that is not this producer's stake on the chain")
	}
	for _, n := range c.unbonds[id] {
		if ancestorAt(parent, n.height()) == n {
			return fmt.Errorf("stake credit %x is unbonding since height %d", id[:8], n.height())
		}
	}
	return nil
}

// stakeEntryOf reports whether id counts at n (in n's own entries or an
// uncle's) as a stake entry of a block fp produced.
func stakeEntryOf(n *node, id CreditID, fp keys.Fingerprint) bool {
	for _, b := range append([]*node{n}, n.uncles...) {
		for _, e := range b.b.Entries {
			if e.Credit.ID() == id && e.Units != UnbondUnits {
				return e.Units == 0 && b.b.Fingerprint() == fp
			}
		}
	}
	return false
}

// StakeStatus is a relay's stake on the best chain (spec 12 §7.1, §7.4).
type StakeStatus struct {
	Locked    uint64 // staked and not unbonding: what the flags count
	Unbonding uint64 // asked to withdraw, still slashable
	Released  uint64 // withdrawn after the unbonding period: the relay's again
	Burned    uint64 // slashed while locked or unbonding (§7.3)
	// ReleaseAt is the best-chain height at which the last unbonding stake
	// is released (0 if none is unbonding).
	ReleaseAt uint64
}

// StakeOf returns fp's stake on the best chain at the tip.
func (c *Chain) StakeOf(fp keys.Fingerprint) StakeStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	var st StakeStatus
	if c.tip == nil {
		return st
	}
	tipH := c.tip.height()
	slashH, slashed := c.slashed[fp]
	// The unbond entries of fp on the best chain (own entries only).
	unbondAt := map[CreditID]uint64{}
	for n := c.tip; n != nil; n = n.parent {
		if n.b.Fingerprint() != fp {
			continue
		}
		for _, e := range n.b.Entries {
			if e.Units == UnbondUnits {
				unbondAt[e.Credit.ID()] = n.height()
			}
		}
	}
	add := func(b *Block) {
		if b.Fingerprint() != fp {
			return
		}
		for _, e := range b.Entries {
			if e.Units != 0 {
				continue
			}
			k, _ := c.keys.Lookup(e.Credit.KeyID)
			u, unbonding := unbondAt[e.Credit.ID()]
			release := u + uint64(c.params.Unbond)
			switch {
			case unbonding && tipH >= release && (!slashed || slashH >= release):
				st.Released += k.Denom
			case slashed:
				st.Burned += k.Denom
			case unbonding:
				st.Unbonding += k.Denom
				st.ReleaseAt = max(st.ReleaseAt, release)
			default:
				st.Locked += k.Denom
			}
		}
	}
	for n := c.tip; n != nil; n = n.parent {
		add(n.b)
		for _, u := range n.uncles {
			add(u.b)
		}
	}
	return st
}

// AddUnbond stores unbond entries for the relay's node to carry in its next
// block (spec 12 §7.4, §8).
func (db *DB) AddUnbond(ctx context.Context, es []Entry) error {
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return fmt.Errorf("sharechain: unbond: %w", err)
	}
	defer tx.Rollback()
	for _, e := range es {
		if e.Units != UnbondUnits {
			return errors.New("sharechain: unbond: not an unbond entry")
		}
		id := e.Credit.ID()
		if _, err := tx.Exec("INSERT OR REPLACE INTO unbond(credit_id, credit, spend_sig) VALUES (?,?,?)", id[:], e.Credit.Marshal(), e.SpendSig); err != nil {
			return fmt.Errorf("sharechain: unbond: %w", err)
		}
	}
	return tx.Commit()
}

// LoadUnbond returns the stored unbond entries.
func (db *DB) LoadUnbond(ctx context.Context) ([]Entry, error) {
	rows, err := db.sql.QueryContext(ctx, "SELECT credit, spend_sig FROM unbond ORDER BY credit_id LIMIT ?", MaxEntries)
	if err != nil {
		return nil, fmt.Errorf("sharechain: unbond: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var raw, sig []byte
		if err := rows.Scan(&raw, &sig); err != nil {
			return nil, fmt.Errorf("sharechain: unbond: %w", err)
		}
		cr, err := ParseCredit(raw)
		if err != nil {
			return nil, fmt.Errorf("sharechain: unbond: %w", err)
		}
		out = append(out, Entry{Units: UnbondUnits, Credit: cr, SpendSig: sig})
	}
	return out, rows.Err()
}

// dropUnbond deletes stored unbond entries.
func (db *DB) dropUnbond(ctx context.Context, ids []CreditID) error {
	if len(ids) == 0 {
		return nil
	}
	err := db.write(ctx, func(tx *writeTx) error {
		for _, id := range ids {
			if _, err := tx.Exec("DELETE FROM unbond WHERE credit_id = ?", id[:]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sharechain: unbond: %w", err)
	}
	return nil
}

// unbondEntries returns the stored unbond entries that a block of this
// node on the best tip may carry, deleting those that already count on the
// best chain or can no longer (the stake is not this relay's there).
func (n *Node) unbondEntries(ctx context.Context) []Entry {
	es, err := n.cfg.DB.LoadUnbond(ctx)
	if err != nil {
		n.log.Warn("share-chain: unbond entries not read", "err", err)
		return nil
	}
	fp := n.cfg.Identity.Fingerprint()
	var take []Entry
	var drop []CreditID
	n.chain.mu.Lock()
	seen := map[CreditID]bool{}
	for _, e := range es {
		id := e.Credit.ID()
		if err := n.chain.checkUnbond(id, fp, n.chain.tip, seen); err != nil || !e.VerifySpend(fp) {
			drop = append(drop, id)
			continue
		}
		take = append(take, e)
	}
	n.chain.mu.Unlock()
	if err := n.cfg.DB.dropUnbond(ctx, drop); err != nil {
		n.log.Warn("share-chain: unbond entries not dropped", "err", err)
	}
	return take
}

// SpentCoins returns the wallet's spent credits, with their spend keys.
func (w *Wallet) SpentCoins(ctx context.Context) ([]Coin, error) {
	rows, err := w.db.sql.QueryContext(ctx, "SELECT credit, spend_seed FROM wallet WHERE spent = 1")
	if err != nil {
		return nil, fmt.Errorf("sharechain: wallet: %w", err)
	}
	defer rows.Close()
	var out []Coin
	for rows.Next() {
		var raw, seed []byte
		if err := rows.Scan(&raw, &seed); err != nil {
			return nil, fmt.Errorf("sharechain: wallet: %w", err)
		}
		c, err := ParseCredit(raw)
		if err != nil {
			return nil, err
		}
		out = append(out, Coin{Credit: c, seed: seed})
	}
	return out, rows.Err()
}

// Unbond implements `unfed sharechain unbond --data-dir DIR [--amount N]`,
// run on a relay's data directory: it signs unbond entries for the
// relay's locked stake credits (those of its wallet that are stake entries
// of its blocks on the best chain and not unbonding), at least N units'
// worth (0: all), and stores them; the relay carries them in its next
// block. It prints what it asked for and when it will be released.
func Unbond(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var amount *uint64
	ch, db, fs, err := loadChain(ctx, "sharechain unbond", "--data-dir DIR [--amount N]", args, stderr,
		func(fs *flag.FlagSet) {
			amount = fs.Uint64("amount", 0, "unbond stake credits worth at least `N` units (0: all)")
		})
	if err != nil {
		return err
	}
	defer db.Close()
	if err := noArgs(fs); err != nil {
		return err
	}
	coins, err := NewWallet(db).SpentCoins(ctx)
	if err != nil {
		return err
	}
	es, total := ch.unbondable(coins, *amount)
	if len(es) == 0 {
		return errors.New("sharechain: unbond: no locked stake of this relay on the best chain")
	}
	if err := db.AddUnbond(ctx, es); err != nil {
		return err
	}
	var h uint64
	if t := ch.Tip(); t != nil {
		h = t.Height
	}
	fmt.Fprintf(stdout, "unbonding %d units in %d credits; released about %d blocks after the relay's next block (tip height %d)\n",
		total, len(es), ch.Params().Unbond, h)
	return nil
}

// unbondable signs unbond entries for the coins that are locked stake
// entries on the best chain, of their producer, worth at least amount
// (0: all).
func (c *Chain) unbondable(coins []Coin, amount uint64) ([]Entry, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Entry
	var total uint64
	for _, co := range coins {
		if amount > 0 && total >= amount || len(out) == MaxEntries {
			break
		}
		id := co.Credit.ID()
		for _, n := range c.credits[id] {
			if ancestorAt(c.tip, n.height()) != n {
				continue
			}
			for _, b := range append([]*node{n}, n.uncles...) {
				fp := b.b.Fingerprint()
				if !stakeEntryOf(n, id, fp) || c.checkUnbond(id, fp, c.tip, map[CreditID]bool{}) != nil {
					continue
				}
				if len(co.seed) == 0 {
					continue
				}
				k, _ := c.keys.Lookup(co.Credit.KeyID)
				out = append(out, co.Pay(fp, UnbondUnits))
				total += k.Denom
				break
			}
			break
		}
	}
	return out, total
}
