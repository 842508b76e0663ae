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
	ch, p, _, value := payoutChain(t)
	s := ch.Payouts()
	if s.Matured != 35 || s.Value != value || s.Paid != value || s.Carried != 0 {
		t.Fatalf("summary %+v, want 35 matured blocks worth %d paid exactly", s, value)
	}
	// Recompute independently, block by block, with Split over the window.
	main := ch.MainChain()
	check := func(slashed map[keys.Fingerprint]uint64) {
		t.Helper()
		s := ch.Payouts()
		want := expectPayouts(main[:35], p, 10, slashed)
		for _, r := range s.Relays {
			if r.Amount != want[r.Relay] {
				t.Fatalf("relay %s paid %d, want %d", r.Relay, r.Amount, want[r.Relay])
			}
		}
	}
	check(nil)
}

// payoutChain is 40 blocks of one 10-unit credit each by three relays in
// turn, window 10, maturity 5; value is that of the 35 matured blocks.
func payoutChain(t *testing.T) (*Chain, Params, []*keys.Identity, uint64) {
	t.Helper()
	ctx := context.Background()
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	cs := credits(t, m, 10, 40)
	p := DefaultParams("t")
	p.Window, p.Maturity = 10, 5
	ids := []*keys.Identity{identity(t, 1), identity(t, 2), identity(t, 3)}
	ch, _ := NewChain(ctx, p, ks, nil)
	var prev *Block
	var value uint64
	for i, c := range cs {
		units := uint32(1 + i%7)
		prev = mkBlock(t, p, ids[i%3], prev, testNowMs+uint64(i)*10_000, nil, pay(c, units))
		if err := ch.Add(ctx, prev, testNowMs+1e6); err != nil {
			t.Fatal(err)
		}
		if i < 35 {
			value += 10
		}
	}
	return ch, p, ids, value
}

// TestSlashingVoidsUnpaidShares: a fraud proof against relay 2 recorded at
// height 38 voids its shares in the windows of blocks of height ≥ 33 (paid
// at ≥ 38), so it is paid less; blocks paid before stay paid; its loss goes
// to the other relays of those windows and the total is unchanged; the
// record survives in the store (TestChainReload).
func TestSlashingVoidsUnpaidShares(t *testing.T) {
	ctx := context.Background()
	ch, p, ids, value := payoutChain(t)
	main := ch.MainChain()
	check := func(slashed map[keys.Fingerprint]uint64) map[keys.Fingerprint]uint64 {
		t.Helper()
		s := ch.Payouts()
		want := expectPayouts(main[:35], p, 10, slashed)
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

// expectPayouts is spec 12 §6 written out naively: for each block, the
// window's units per relay (slashed relays dropped for blocks of height
// h with slash ≤ h + Maturity), then Split of the block's value.
func expectPayouts(main []*Block, p Params, value uint64, slashed map[keys.Fingerprint]uint64) map[keys.Fingerprint]uint64 {
	want := map[keys.Fingerprint]uint64{}
	for i, b := range main {
		win := map[keys.Fingerprint]uint64{}
		for k := max(0, i-p.Window+1); k <= i; k++ {
			win[main[k].Fingerprint()] += main[k].Units()
		}
		var ws []Weight
		for fp, u := range win {
			if sh, ok := slashed[fp]; ok && sh <= b.Height+uint64(p.Maturity) {
				continue
			}
			ws = append(ws, Weight{Relay: fp, Shares: u})
		}
		sort.Slice(ws, func(i, j int) bool { return bytes.Compare(ws[i].Relay[:], ws[j].Relay[:]) < 0 })
		parts, _ := Split(value, ws)
		for j, w := range ws {
			want[w.Relay] += parts[j]
		}
	}
	return want
}
