package sharechain

// The client's wallet (spec 12 §2.4): blind, ask the mint, finalize, store;
// spend marks credits spent in the same transaction that hands them out, so
// a crash never gives the same credit to two payments.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"sort"

	"github.com/cloudflare/circl/blindsign/blindrsa"

	"github.com/unfed/unfed/relay/keys"
)

// Wallet holds a client's credits in its store.
type Wallet struct {
	db *DB
}

// NewWallet returns the wallet kept in db.
func NewWallet(db *DB) *Wallet { return &Wallet{db: db} }

// blindedCredit is a credit waiting for its blind signature.
type blindedCredit struct {
	credit  Credit
	seed    []byte
	blinded []byte
	state   blindrsaState
}

// Coin is a credit in the client's hands: the credit and the seed of its
// one-time spend key, whose public key is the credit's nonce.
type Coin struct {
	Credit *Credit
	seed   []byte
}

// Pay binds the coin to relay fp for units of work: the entry the relay
// redeems and puts in its block (spec 12 §2.5).
func (c Coin) Pay(fp keys.Fingerprint, units uint32) Entry {
	sk := ed25519.NewKeyFromSeed(c.seed)
	return Entry{Units: units, Credit: c.Credit, SpendSig: ed25519.Sign(sk, SpendMessage(c.Credit.ID(), fp, units))}
}

// Request obtains n credits of key k from the issuer against deposit and
// stores them. Every returned signature is checked before anything is
// stored; a mint that signs wrongly gets an error, not a broken credit.
func (w *Wallet) Request(ctx context.Context, is Issuer, deposit string, k MintPublicKey, n int) ([]Coin, error) {
	if n <= 0 || n > MaxIssue {
		return nil, fmt.Errorf("sharechain: request %d credits, want 1..%d", n, MaxIssue)
	}
	cl, err := newBlindClient(k)
	if err != nil {
		return nil, err
	}
	pend := make([]blindedCredit, n)
	blinded := make([][]byte, n)
	for i := range pend {
		if pend[i], err = cl.blind(k.ID()); err != nil {
			return nil, err
		}
		blinded[i] = pend[i].blinded
	}
	sigs, err := is.Issue(ctx, deposit, k.ID(), blinded)
	if err != nil {
		return nil, err
	}
	if len(sigs) != n {
		return nil, fmt.Errorf("sharechain: mint returned %d signatures for %d messages", len(sigs), n)
	}
	out := make([]Coin, n)
	for i := range pend {
		c := pend[i].credit
		if c.Signature, err = cl.finalize(pend[i].state, sigs[i]); err != nil {
			return nil, err
		}
		if err := c.Verify(k); err != nil {
			return nil, err
		}
		out[i] = Coin{Credit: &c, seed: pend[i].seed}
	}
	if err := w.store(ctx, k, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (w *Wallet) store(ctx context.Context, k MintPublicKey, cs []Coin) error {
	tx, err := w.db.beginWrite(ctx)
	if err != nil {
		return fmt.Errorf("sharechain: wallet: %w", err)
	}
	defer tx.Rollback()
	for _, c := range cs {
		id := c.Credit.ID()
		if _, err := tx.Exec("INSERT INTO wallet(credit_id, denom, epoch, credit, spend_seed) VALUES (?,?,?,?,?)",
			id[:], int64(k.Denom), int64(k.Epoch), c.Credit.Marshal(), c.seed); err != nil {
			return fmt.Errorf("sharechain: wallet: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sharechain: wallet: %w", err)
	}
	return nil
}

// Balance is what a wallet holds, by denomination, counting only credits
// still redeemable at the given epoch.
type Balance struct {
	Total   uint64
	ByDenom map[uint64]int
	Expired int
}

// Balance sums the unspent credits.
func (w *Wallet) Balance(ctx context.Context, epoch uint64) (Balance, error) {
	rows, err := w.db.sql.QueryContext(ctx, "SELECT denom, epoch FROM wallet WHERE spent = 0")
	if err != nil {
		return Balance{}, fmt.Errorf("sharechain: wallet: %w", err)
	}
	defer rows.Close()
	b := Balance{ByDenom: map[uint64]int{}}
	for rows.Next() {
		var d, e int64
		if err := rows.Scan(&d, &e); err != nil {
			return Balance{}, fmt.Errorf("sharechain: wallet: %w", err)
		}
		if !Valid(uint64(e), epoch) {
			b.Expired++
			continue
		}
		b.Total += uint64(d)
		b.ByDenom[uint64(d)]++
	}
	return b, rows.Err()
}

// ErrInsufficient is returned when the wallet cannot cover an amount.
var ErrInsufficient = errors.New("sharechain: wallet: insufficient credits")

// Spend takes credits worth at least amount (largest first, then the
// smallest that covers the rest), valid at epoch, and marks them spent
// before returning them.
func (w *Wallet) Spend(ctx context.Context, amount uint64, epoch uint64) ([]Coin, error) {
	if amount == 0 {
		return nil, errors.New("sharechain: wallet: spend 0")
	}
	tx, err := w.db.beginWrite(ctx)
	if err != nil {
		return nil, fmt.Errorf("sharechain: wallet: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.Query("SELECT credit_id, denom, epoch, credit, spend_seed FROM wallet WHERE spent = 0")
	if err != nil {
		return nil, fmt.Errorf("sharechain: wallet: %w", err)
	}
	var avail []walletRow
	for rows.Next() {
		var r walletRow
		var d, e int64
		if err := rows.Scan(&r.id, &d, &e, &r.raw, &r.seed); err != nil {
			rows.Close()
			return nil, fmt.Errorf("sharechain: wallet: %w", err)
		}
		if Valid(uint64(e), epoch) {
			r.denom = uint64(d)
			avail = append(avail, r)
		}
	}
	rows.Close()
	sort.Slice(avail, func(i, j int) bool { return avail[i].denom > avail[j].denom })
	var picked []walletRow
	rest := amount
	for i := 0; i < len(avail) && rest > 0; i++ {
		// Take a large credit while it does not overshoot, or when nothing
		// smaller is left to cover the rest.
		if avail[i].denom <= rest || i == len(avail)-1 || sumDenoms(avail[i+1:]) < rest {
			picked = append(picked, avail[i])
			rest -= min(rest, avail[i].denom)
		}
	}
	if rest > 0 {
		return nil, ErrInsufficient
	}
	out := make([]Coin, 0, len(picked))
	for _, r := range picked {
		if _, err := tx.Exec("UPDATE wallet SET spent = 1 WHERE credit_id = ?", r.id); err != nil {
			return nil, fmt.Errorf("sharechain: wallet: %w", err)
		}
		c, err := ParseCredit(r.raw)
		if err != nil {
			return nil, err
		}
		if len(r.seed) != ed25519.SeedSize {
			return nil, errors.New("sharechain: wallet: credit without its spend key")
		}
		out = append(out, Coin{Credit: c, seed: r.seed})
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("sharechain: wallet: %w", err)
	}
	return out, nil
}

type walletRow struct {
	id    []byte
	denom uint64
	raw   []byte
	seed  []byte
}

func sumDenoms(rs []walletRow) uint64 {
	var s uint64
	for _, r := range rs {
		s += r.denom
	}
	return s
}

// blind client glue around circl (RFC 9474 §4).

type blindrsaState = blindrsa.State

type blindClient struct{ c blindrsa.Client }

func newBlindClient(k MintPublicKey) (blindClient, error) {
	if err := checkMintKey(k.Key); err != nil {
		return blindClient{}, err
	}
	c, err := blindrsa.NewClient(Variant, k.Key)
	if err != nil {
		return blindClient{}, fmt.Errorf("sharechain: %w", err)
	}
	return blindClient{c}, nil
}

// blind draws a one-time spend key, whose public key is the nonce,
// prepares the message with a random prefix and blinds it.
func (bc blindClient) blind(id KeyID) (blindedCredit, error) {
	var p blindedCredit
	p.credit.KeyID = id
	p.seed = make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(p.seed); err != nil {
		return p, fmt.Errorf("sharechain: %w", err)
	}
	copy(p.credit.Nonce[:], ed25519.NewKeyFromSeed(p.seed).Public().(ed25519.PublicKey))
	prepared, err := bc.c.Prepare(rand.Reader, creditMessage(id, &p.credit.Nonce))
	if err != nil {
		return p, fmt.Errorf("sharechain: %w", err)
	}
	copy(p.credit.Prefix[:], prepared[:PrefixLen])
	p.blinded, p.state, err = bc.c.Blind(rand.Reader, prepared)
	if err != nil {
		return p, fmt.Errorf("sharechain: blind: %w", err)
	}
	return p, nil
}

func (bc blindClient) finalize(st blindrsa.State, sig []byte) ([]byte, error) {
	s, err := bc.c.Finalize(st, sig)
	if err != nil {
		return nil, fmt.Errorf("sharechain: finalize: %w", err)
	}
	return s, nil
}
