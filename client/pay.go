package client

// Paying the hops of a circuit (spec/03-compute.md §3.15,
// spec/12-economy.md §2.6): where the consensus sets pay-required, the
// client pays each compute hop, inside that hop's own onion layer, for the
// positions it is about to run, at the hop's price, with credits from the
// wallet in its data directory (sharechain.db). With wallet.faucet set it
// asks that mint for credits when the wallet cannot pay.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/sharechain"
)

// WalletConfig configures how the client pays (spec/12 §2.6).
type WalletConfig struct {
	Faucet string `mapstructure:"faucet" doc:"URL of a mint that signs credits for anyone (a testnet faucet, e.g. an authority with mint.faucet); the wallet asks it for credits when it cannot pay. Empty: pay only with credits already in the wallet (unfed wallet request)."`
	Refill int    `mapstructure:"refill" doc:"Credits to ask the faucet for at a time (0 means 64; at most 1024)."`
}

// payer pays hops from the wallet in the client's data directory, opened
// on first use.
type payer struct {
	dir string
	cfg WalletConfig

	mu     sync.Mutex // serializes wallet use and guards the fields below
	db     *sharechain.DB
	wallet *sharechain.Wallet
	keys   sharechain.KeySet
	last   *directory.Consensus
}

func (p *payer) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.db != nil {
		p.db.Close()
	}
}

// replay is the double-spending fault hook (spec/12 §3.3, §3.4): when
// set, it is called (under payer.mu) with each PAY's relay and the coins
// the wallet spent for it, and returns coins already spent to present to
// that relay again, first in the PAY. It is nil in every production build;
// paycheat.go (build tag unfedcheat) sets it.
var replay func(fp keys.Fingerprint, coins []sharechain.Coin) []sharechain.Coin

// required reports whether c makes the client pay.
func payRequired(c *directory.Consensus) bool {
	return c.Param(directory.ParamPayRequired, 0) == 1
}

// pay returns a PAY for relay fp, whose price is price micro-credits per
// position, covering at least n positions, and the positions it covers.
func (p *payer) pay(ctx context.Context, c *directory.Consensus, fp keys.Fingerprint, price uint64, n int) (*hop.Pay, int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.db == nil {
		db, err := sharechain.OpenDB(p.dir)
		if err != nil {
			return nil, 0, fmt.Errorf("client: wallet: %w", err)
		}
		p.db, p.wallet = db, sharechain.NewWallet(db)
	}
	if c != p.last {
		if err := sharechain.AddConsensusKeys(&p.keys, c); err != nil {
			return nil, 0, fmt.Errorf("client: %w", err)
		}
		p.last = c
	}
	params := sharechain.ParamsFromConsensus(c)
	epoch := params.Epoch(uint64(time.Now().UnixMilli()))
	// Credit units needed: the price of n positions, and enough that no
	// entry claims more than units-per-credit per unit.
	amount := max((uint64(n)*price+999_999)/1_000_000, (uint64(n)+params.UnitsPerCredit-1)/params.UnitsPerCredit, 1)
	coins, err := p.wallet.Spend(ctx, amount, epoch)
	if errors.Is(err, sharechain.ErrInsufficient) && p.cfg.Faucet != "" {
		if err = p.refill(ctx, epoch, amount); err == nil {
			coins, err = p.wallet.Spend(ctx, amount, epoch)
		}
	}
	if err != nil {
		return nil, 0, fmt.Errorf("client: paying relay %s: %w", fp, err)
	}
	if replay != nil {
		coins = append(replay(fp, coins), coins...)
	}
	if len(coins) > hop.MaxPayEntries {
		return nil, 0, fmt.Errorf("client: paying relay %s takes %d credits, more than one PAY carries", fp, len(coins))
	}
	m := &hop.Pay{}
	covered := 0
	for _, co := range coins {
		k, ok := p.keys.Lookup(co.Credit.KeyID)
		if !ok {
			return nil, 0, fmt.Errorf("client: a wallet credit's mint key is not in the consensus")
		}
		units := params.PricedUnits(k.Denom, price)
		e := co.Pay(fp, units)
		m.Entries = append(m.Entries, hop.PayEntry{Units: units, Credit: e.Credit.Marshal(), SpendSig: e.SpendSig})
		covered += int(units)
	}
	if covered < n {
		return nil, 0, fmt.Errorf("client: credits worth %d pay for %d of %d positions at relay %s", amount, covered, n, fp)
	}
	return m, covered, nil
}

// refill asks the faucet for credits of its smallest denomination of
// epoch, at least amount units' worth.
func (p *payer) refill(ctx context.Context, epoch, amount uint64) error {
	is := sharechain.HTTPIssuer{URL: p.cfg.Faucet}
	pubs, err := is.PublicKeys(ctx)
	if err != nil {
		return err
	}
	var k *sharechain.MintPublicKey
	for i := range pubs {
		if pubs[i].Epoch == epoch && (k == nil || pubs[i].Denom < k.Denom) {
			k = &pubs[i]
		}
	}
	if k == nil {
		return fmt.Errorf("client: the faucet has no key of epoch %d", epoch)
	}
	n := p.cfg.Refill
	if n <= 0 {
		n = 64
	}
	n = min(max(n, int((amount+k.Denom-1)/k.Denom)), sharechain.MaxIssue)
	_, err = p.wallet.Request(ctx, is, "faucet", *k, n)
	return err
}

// payFor pays every compute hop of an anonymous circuit for the n
// positions about to be fed, where the consensus requires it.
func (s *session) payFor(ctx context.Context, n int) error {
	for pos := firstCompute; pos < len(s.path.Hops); pos++ {
		if err := s.payHop(ctx, pos, n); err != nil {
			return err
		}
	}
	return nil
}

// payHop makes sure the hop at circuit position pos holds a balance for n
// more positions, paying it ahead (at its price) when it does not, and
// takes them from what the client counts it holds.
func (s *session) payHop(ctx context.Context, pos, n int) error {
	if s.pay == nil {
		return nil
	}
	if s.paid == nil {
		s.paid = make([]int, len(s.path.Hops))
	}
	if s.paid[pos] < n {
		h := s.path.Hops[pos]
		m, units, err := s.pay.pay(ctx, s.payCons, h.Fingerprint, h.PricePerToken, n-s.paid[pos])
		if err != nil {
			return err
		}
		if err := s.send(ctx, pos, m); err != nil {
			return err
		}
		s.paid[pos] += units
	}
	s.paid[pos] -= n
	return nil
}
