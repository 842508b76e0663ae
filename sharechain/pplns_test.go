package sharechain

import (
	"bytes"
	"context"
	"math/big"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/unfed/unfed/relay/keys"
)

// TestSplitExact: on random pools and weights, the parts sum to the pool
// exactly, no part differs from its exact share by a unit or more, and when
// the pool divides evenly each part is exactly pool·w/W.
func TestSplitExact(t *testing.T) {
	r := rand.New(rand.NewPCG(18, 18))
	for i := 0; i < 2000; i++ {
		n := 1 + r.IntN(20)
		ws := make([]Weight, n)
		var total uint64
		for j := range ws {
			ws[j].Relay[0], ws[j].Relay[1] = byte(j), byte(i)
			ws[j].Shares = r.Uint64N(1 << 40)
			total += ws[j].Shares
		}
		pool := r.Uint64()
		if i%2 == 0 {
			pool = total * r.Uint64N(1000)
		}
		parts, err := Split(pool, ws)
		if err != nil {
			t.Fatal(err)
		}
		var sum uint64
		for j, p := range parts {
			sum += p
			// |p·W - pool·w| < W, in big integers.
			exact := new(big.Int).Mul(new(big.Int).SetUint64(pool), new(big.Int).SetUint64(ws[j].Shares))
			got := new(big.Int).Mul(new(big.Int).SetUint64(p), new(big.Int).SetUint64(total))
			if exact.Sub(exact, got).Abs(exact).Cmp(new(big.Int).SetUint64(total)) >= 0 {
				t.Fatalf("case %d: part %d off by a unit or more", i, j)
			}
			if total > 0 && pool%total == 0 && p != pool/total*ws[j].Shares {
				t.Fatalf("case %d: divisible pool, part %d = %d, want %d", i, j, p, pool/total*ws[j].Shares)
			}
		}
		if total > 0 && sum != pool {
			t.Fatalf("case %d: parts sum to %d, pool %d", i, sum, pool)
		}
	}
	if parts, _ := Split(100, []Weight{{Shares: 0}}); parts[0] != 0 {
		t.Fatal("zero weights got paid")
	}
	if _, err := Split(1, []Weight{{Shares: 1 << 63}, {Shares: 1 << 63}}); err == nil {
		t.Fatal("overflowing shares accepted")
	}
}

// TestPayoutsExact runs a chain of 40 blocks by three relays with a window
// of 10 and maturity 5, and checks the integer identities of spec 12 §6:
// sum of payouts = value of matured blocks - carried, carried = 0 here, and
// each relay's payout equals a naive block-by-block recomputation.
func TestPayoutsExact(t *testing.T) {
	ch, p, ks, _, value := payoutChain(t)
	s := ch.Payouts()
	if s.Matured != 35 || s.Value != value || s.Paid != value || s.Carried != 0 {
		t.Fatalf("summary %+v, want 35 matured blocks worth %d paid exactly", s, value)
	}
	// Recompute independently, block by block, with Split over the window.
	main := ch.MainChain()
	check := func(slashed map[keys.Fingerprint]uint64) {
		t.Helper()
		s := ch.Payouts()
		want := expectPayouts(main[:35], p, ks, slashed)
		for _, r := range s.Relays {
			if r.Amount != want[r.Relay] {
				t.Fatalf("relay %s paid %d, want %d", r.Relay, r.Amount, want[r.Relay])
			}
		}
	}
	check(nil)
}

// payoutChain is 40 blocks by three relays in turn, window 10, maturity 5;
// value is that of the 35 matured blocks.
func payoutChain(t *testing.T) (*Chain, Params, *KeySet, []*keys.Identity, uint64) {
	t.Helper()
	ctx := context.Background()
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	cs := credits(t, m, 10, 40)
	small := credits(t, m, 1, 40)
	p := DefaultParams("t")
	p.Window, p.Maturity = 10, 5
	ids := []*keys.Identity{identity(t, 1), identity(t, 2), identity(t, 3)}
	ch, _ := NewChain(ctx, p, ks, nil)
	var prev *Block
	var value uint64
	for i, c := range cs {
		// Relay i%3 is paid 10 or 11 (every fourth block a second credit
		// of 1): unequal windows, so the split has remainders to place.
		units := uint32(1 + i%7)
		pays := []payment{pay(c, units)}
		v := uint64(10)
		if i%4 == 0 {
			pays, v = append(pays, pay(small[i], 1)), 11
		}
		prev = mkBlock(t, p, ids[i%3], prev, testNowMs+uint64(i)*10_000, nil, pays...)
		if err := ch.Add(ctx, prev, testNowMs+1e6); err != nil {
			t.Fatal(err)
		}
		if i < 35 {
			value += v
		}
	}
	return ch, p, ks, ids, value
}

// TestSlashingVoidsUnpaidShares: a fraud proof against relay 2 recorded at
// height 38 voids its shares in the windows of blocks of height ≥ 33 (paid
// at ≥ 38), so it is paid less; blocks paid before stay paid; its loss goes
// to the other relays of those windows and the total is unchanged; the
// record survives in the store (TestChainReload).
func TestSlashingVoidsUnpaidShares(t *testing.T) {
	ctx := context.Background()
	ch, p, ks, ids, value := payoutChain(t)
	main := ch.MainChain()
	check := func(slashed map[keys.Fingerprint]uint64) map[keys.Fingerprint]uint64 {
		t.Helper()
		s := ch.Payouts()
		want := expectPayouts(main[:35], p, ks, slashed)
		var total uint64
		for _, r := range s.Relays {
			if r.Amount != want[r.Relay] {
				t.Fatalf("relay %s paid %d, want %d", r.Relay, r.Amount, want[r.Relay])
			}
			total += r.Amount
		}
		if total != value {
			t.Fatalf("paid %d of %d", total, value)
		}
		return want
	}
	before := check(nil)

	// Slashing relay 2 at height 38 voids its unpaid shares: blocks of
	// height ≥ 38-5 = 33 (paid at ≥ 38) pay it nothing; earlier ones stay
	// paid. Its loss goes to the others, so the total is unchanged.
	fp := ids[1].Fingerprint()
	if err := ch.Slash(ctx, fp, 38, []byte("fraud")); err != nil {
		t.Fatal(err)
	}
	after := check(map[keys.Fingerprint]uint64{fp: 38})
	if after[fp] >= before[fp] {
		t.Fatalf("slashed relay paid %d, before %d", after[fp], before[fp])
	}
}

// expectPayouts is spec 12 §6 written out naively for a chain without
// uncles: for each block, the window's work value per relay (slashed relays
// dropped for blocks of height h with slash ≤ h + Maturity), then Split of
// the block's value.
func expectPayouts(main []*Block, p Params, ks *KeySet, slashed map[keys.Fingerprint]uint64) map[keys.Fingerprint]uint64 {
	work := func(b *Block) uint64 {
		var v uint64
		for _, e := range b.Entries {
			if k, _ := ks.Lookup(e.Credit.KeyID); e.Units > 0 {
				v += k.Denom
			}
		}
		return v
	}
	want := map[keys.Fingerprint]uint64{}
	for i, b := range main {
		win := map[keys.Fingerprint]uint64{}
		for k := max(0, i-p.Window+1); k <= i; k++ {
			win[main[k].Fingerprint()] += work(main[k])
		}
		var ws []Weight
		for fp, u := range win {
			if sh, ok := slashed[fp]; ok && sh <= b.Height+uint64(p.Maturity) {
				continue
			}
			ws = append(ws, Weight{Relay: fp, Shares: u})
		}
		sort.Slice(ws, func(i, j int) bool { return bytes.Compare(ws[i].Relay[:], ws[j].Relay[:]) < 0 })
		parts, _ := Split(work(b), ws)
		for j, w := range ws {
			want[w.Relay] += parts[j]
		}
	}
	return want
}

// TestSelfDealingGainsNothing: a relay that pays itself a small credit and
// claims the most units it may gets shares by the value it paid in, not by
// the units it claims, so it takes out no more than it put in; and its
// block weighs by that value in fork choice. (Weighting by claimed units, a
// credit of 1 claiming 1000 units would take 1000/1010 of every pool.)
func TestSelfDealingGainsNothing(t *testing.T) {
	ctx := context.Background()
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	p := DefaultParams("t")
	p.Maturity, p.Window = 0, 10
	honest, dealer := identity(t, 1), identity(t, 2)
	ch, _ := NewChain(ctx, p, ks, nil)
	var prev *Block
	for i := 0; i < 6; i++ {
		prev = mkBlock(t, p, honest, prev, testNowMs+uint64(i), nil, pay(credits(t, m, 10, 1)[0], 10))
		if err := ch.Add(ctx, prev, testNowMs); err != nil {
			t.Fatal(err)
		}
		self := mkBlock(t, p, dealer, prev, testNowMs+uint64(i), nil, pay(credits(t, m, 1, 1)[0], 1000))
		if err := ch.Add(ctx, self, testNowMs); err != nil {
			t.Fatal(err)
		}
		prev = self
	}
	var paidIn, paidOut uint64 = 6, 0
	for _, r := range ch.Payouts().Relays {
		if r.Relay == dealer.Fingerprint() {
			paidOut = r.Amount
		}
	}
	if paidOut > paidIn {
		t.Fatalf("a self-dealing relay paid in %d and took out %d", paidIn, paidOut)
	}
	// A fork of the dealer's own blocks claiming 1000 units each, as long
	// as the honest chain, does not outweigh it.
	var fork *Block
	for i := 0; i < 12; i++ {
		fork = mkBlock(t, p, dealer, fork, testNowMs+uint64(i), nil, pay(credits(t, m, 1, 1)[0], 1000))
		if err := ch.Add(ctx, fork, testNowMs); err != nil {
			t.Fatal(err)
		}
	}
	if ch.Tip().ID() != prev.ID() {
		t.Fatal("a fork of inflated units took the tip")
	}
}
