package sharechain

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"testing"
)

// TestForkChoiceOrderIndependent adds the same forked block set in many
// orders (parents before children) and checks every chain picks the same
// tip: fork choice depends on the blocks, not on arrival.
func TestForkChoiceOrderIndependent(t *testing.T) {
	ctx := context.Background()
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	cs := credits(t, m, 10, 4)
	p := DefaultParams("t")
	a, b, c := identity(t, 1), identity(t, 2), identity(t, 3)
	g1 := mkBlock(t, p, a, nil, testNowMs, nil, pay(cs[0], 5))
	// Two equal-score siblings (tie broken by id) and a lighter one.
	x := mkBlock(t, p, b, g1, testNowMs+1, nil, pay(cs[1], 3))
	y := mkBlock(t, p, c, g1, testNowMs+2, nil, pay(cs[2], 3))
	z := mkBlock(t, p, a, g1, testNowMs+3, nil, pay(credits(t, m, 1, 1)[0], 2))
	blocks := []*Block{g1, x, y, z}
	want := x
	if bytes.Compare(y.id[:], x.id[:]) < 0 {
		want = y
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20; i++ {
		rest := append([]*Block{}, blocks[1:]...)
		r.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
		ch, _ := NewChain(ctx, p, ks, nil)
		for _, blk := range append([]*Block{g1}, rest...) {
			if err := ch.Add(ctx, blk, testNowMs); err != nil {
				t.Fatal(err)
			}
		}
		if ch.Tip().ID() != want.ID() {
			t.Fatalf("order %d: tip %x, want %x", i, ch.Tip().ID(), want.ID())
		}
	}
}

// TestReorg builds a main chain, then a heavier fork from its first block;
// the tip, the counted credits and the payouts follow the fork, and a
// credit of the abandoned branch may be spent again on the new one.
func TestReorg(t *testing.T) {
	ctx := context.Background()
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	cs := credits(t, m, 1, 5)
	p := DefaultParams("t")
	p.Maturity, p.Window = 0, 10
	a, b := identity(t, 1), identity(t, 2)
	ch, _ := NewChain(ctx, p, ks, nil)
	add := func(blk *Block) *Block {
		t.Helper()
		if err := ch.Add(ctx, blk, testNowMs); err != nil {
			t.Fatal(err)
		}
		return blk
	}
	root := add(mkBlock(t, p, b, nil, testNowMs, nil, pay(cs[4], 1)))
	a1 := add(mkBlock(t, p, a, root, testNowMs+1, nil, pay(cs[0], 1)))
	a2 := add(mkBlock(t, p, a, a1, testNowMs+2, nil, pay(cs[1], 1)))
	if ch.Tip().ID() != a2.ID() || !ch.Counted(cs[0].Credit.ID()) {
		t.Fatal("branch A is not the best chain")
	}
	// Branch B re-spends cs[0] (legal: not in its ancestry) and is heavier.
	b1 := add(mkBlock(t, p, b, root, testNowMs+1, nil, pay(cs[0], 1)))
	if ch.Tip().ID() != a2.ID() {
		t.Fatal("a lighter fork took the tip")
	}
	b2 := add(mkBlock(t, p, b, b1, testNowMs+2, nil, pay(cs[2], 1)))
	if ch.Tip().ID() != a2.ID() && ch.Tip().ID() != b2.ID() {
		t.Fatal("tip is neither branch")
	}
	b3 := add(mkBlock(t, p, b, b2, testNowMs+3, nil, pay(cs[3], 1)))
	if ch.Tip().ID() != b3.ID() {
		t.Fatalf("heavier fork did not take over")
	}
	if ch.Counted(cs[1].Credit.ID()) || !ch.Counted(cs[0].Credit.ID()) || !ch.Counted(cs[3].Credit.ID()) {
		t.Fatal("counted credits did not follow the reorg")
	}
	s := ch.Payouts()
	if len(s.Relays) != 1 || s.Relays[0].Relay != b.Fingerprint() || s.Relays[0].Amount != 4 || s.Value != 4 {
		t.Fatalf("payouts after reorg: %+v", s)
	}
}

func TestBlockRulesRejected(t *testing.T) {
	ctx := context.Background()
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	cs := credits(t, m, 1, 5)
	p := DefaultParams("t")
	a := identity(t, 1)
	ch, _ := NewChain(ctx, p, ks, nil)
	root := mkBlock(t, p, a, nil, testNowMs, nil, pay(cs[2], 1))
	// An entry spent to another relay, in a block a signs.
	stolen := &Block{Height: 2, Parent: root.ID(), TimeMs: testNowMs, Entries: []Entry{cs[3].Pay(identity(t, 2).Fingerprint(), 1)}}
	if err := stolen.Sign(a); err != nil {
		t.Fatal(err)
	}
	ok4 := pay(cs[4], 1) // valid on its own: the cases below fail for their own reason
	if err := ch.Add(ctx, root, testNowMs); err != nil {
		t.Fatal(err)
	}
	orphan := mkBlock(t, p, a, mkBlock(t, p, a, nil, testNowMs+5, nil), testNowMs+6, nil)
	cases := map[string]struct {
		blk  *Block
		want error
	}{
		"unknown parent":     {orphan, ErrUnknownParent},
		"twice in one block": {mkBlock(t, p, a, root, testNowMs, nil, pay(cs[0], 1), pay(cs[0], 1)), ErrBlockSpent},
		"too many units":     {mkBlock(t, p, a, root, testNowMs, nil, pay(cs[1], 1001)), nil},
		"time before parent": {mkBlock(t, p, a, root, testNowMs-1, nil, ok4), nil},
		"future":             {mkBlock(t, p, a, root, testNowMs+p.MaxFutureMs+1, nil, ok4), nil},
		"no entries":         {mkBlock(t, p, a, root, testNowMs, nil), nil},
		"spent to another":   {stolen, nil},
		"expired credit":     {mkBlock(t, p, a, root, testNowMs+2*86400*1000, nil, pay(cs[1], 1)), nil},
		"wrong network":      {mkBlock(t, DefaultParams("other"), a, nil, testNowMs, nil), ErrOtherNetwork},
		"unknown uncle":      {mkBlock(t, p, a, root, testNowMs, []BlockID{{1}}, ok4), nil},
		"uncle is ancestor":  {mkBlock(t, p, a, root, testNowMs, []BlockID{root.ID()}, ok4), nil},
	}
	for name, tc := range cases {
		now := uint64(testNowMs)
		if name == "expired credit" {
			now += 2 * 86400 * 1000 // the block is not from the future: only its credit is old
		}
		err := ch.Add(ctx, tc.blk, now)
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A wrong height cannot be produced by mkBlock: forge one directly.
	bad := &Block{Height: 5, Parent: root.ID(), TimeMs: testNowMs}
	if err := bad.Sign(a); err != nil {
		t.Fatal(err)
	}
	if err := ch.Add(ctx, bad, testNowMs); err == nil {
		t.Error("wrong height accepted")
	}
	if ch.Len() != 1 {
		t.Fatalf("rejected blocks were kept: %d blocks", ch.Len())
	}
}

// TestUnclePenalty: a sibling included as an uncle keeps (100-P)% of its
// shares (its work value); its nephew's producer gets the rest; nothing is
// lost.
func TestUnclePenalty(t *testing.T) {
	ctx := context.Background()
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	cs := credits(t, m, 10, 4)
	p := DefaultParams("t")
	p.Maturity, p.Window = 0, 100
	a, b, c := identity(t, 1), identity(t, 2), identity(t, 3)
	ch, _ := NewChain(ctx, p, ks, nil)
	main1 := mkBlock(t, p, a, nil, testNowMs, nil, pay(cs[0], 100), pay(cs[3], 100))
	side1 := mkBlock(t, p, b, nil, testNowMs, nil, pay(cs[1], 50))
	// main1 wins: it carries more value.
	for _, blk := range []*Block{main1, side1} {
		if err := ch.Add(ctx, blk, testNowMs); err != nil {
			t.Fatal(err)
		}
	}
	n2 := mkBlock(t, p, c, main1, testNowMs+1, []BlockID{side1.ID()}, pay(cs[2], 10))
	if err := ch.Add(ctx, n2, testNowMs); err != nil {
		t.Fatal(err)
	}
	// Including the same uncle twice along one chain is refused.
	if err := ch.Add(ctx, mkBlock(t, p, a, n2, testNowMs+2, []BlockID{side1.ID()}), testNowMs); err == nil {
		t.Fatal("uncle included twice")
	}
	if !ch.Counted(cs[1].Credit.ID()) {
		t.Fatal("uncle's credit not counted")
	}
	s := ch.Payouts()
	got := map[string]uint64{}
	for _, r := range s.Relays {
		got[r.Relay.String()] = r.Shares
	}
	if got[a.Fingerprint().String()] != 20 || got[b.Fingerprint().String()] != 8 || got[c.Fingerprint().String()] != 12 {
		t.Fatalf("shares with an uncle: %v", got)
	}
	if s.Value != 40 || s.Paid != 40 {
		t.Fatalf("value %d, paid %d, want 40", s.Value, s.Paid)
	}
}

// TestChainReload: a chain reopened from its store has the same blocks, tip
// and slashes.
func TestChainReload(t *testing.T) {
	ctx := context.Background()
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	cs := credits(t, m, 1, 4)
	p := DefaultParams("t")
	dir := t.TempDir()
	db, _ := OpenDB(dir)
	ch, err := NewChain(ctx, p, ks, db)
	if err != nil {
		t.Fatal(err)
	}
	var prev *Block
	for i, c := range cs[:3] {
		prev = mkBlock(t, p, identity(t, byte(i)), prev, testNowMs+uint64(i), nil, pay(c, 1))
		if err := ch.Add(ctx, prev, testNowMs); err != nil {
			t.Fatal(err)
		}
	}
	if err := ch.Add(ctx, mkBlock(t, p, identity(t, 9), nil, testNowMs, nil, pay(cs[3], 1)), testNowMs); err != nil {
		t.Fatal(err)
	}
	if err := ch.Slash(ctx, identity(t, 1).Fingerprint(), 2, []byte("proof")); err != nil {
		t.Fatal(err)
	}
	before := ch.Payouts()
	db.Close()
	db, _ = OpenDB(dir)
	defer db.Close()
	ch2, err := NewChain(ctx, p, ks, db)
	if err != nil {
		t.Fatal(err)
	}
	if ch2.Len() != 4 || ch2.Tip().ID() != prev.ID() {
		t.Fatalf("reloaded %d blocks, tip %x", ch2.Len(), ch2.Tip().ID())
	}
	after := ch2.Payouts()
	if len(after.Relays) != len(before.Relays) || after.Value != before.Value {
		t.Fatalf("payouts changed across reload: %+v vs %+v", before, after)
	}
}

// TestPublishedCreditsCannotBeStolen: once relay A's block is public, its
// credits and spend signatures are known to everyone. Another producer
// cannot count them on a fork of its own (with A's signatures, or with more
// units), and a relay refuses a payment spent to someone else. Without the
// spend binding, such a fork copying every published credit with maximal
// units would outweigh the honest chain and take its payouts.
func TestPublishedCreditsCannotBeStolen(t *testing.T) {
	ctx := context.Background()
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	p := DefaultParams("t")
	cs := credits(t, m, 10, 1)
	a, e := identity(t, 1), identity(t, 66)
	ch, _ := NewChain(ctx, p, ks, nil)
	honest := mkBlock(t, p, a, nil, testNowMs, nil, pay(cs[0], 5))
	if err := ch.Add(ctx, honest, testNowMs); err != nil {
		t.Fatal(err)
	}
	for name, entry := range map[string]Entry{
		"copied":       honest.Entries[0],
		"more units":   {Units: 10_000, Credit: honest.Entries[0].Credit, SpendSig: honest.Entries[0].SpendSig},
		"no signature": {Units: 5, Credit: honest.Entries[0].Credit, SpendSig: make([]byte, 64)},
	} {
		fork := &Block{Height: 1, Parent: p.Genesis(), TimeMs: testNowMs, Entries: []Entry{entry}}
		if err := fork.Sign(e); err != nil {
			t.Fatal(err)
		}
		parsed, err := ParseBlock(fork.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		if err := ch.Add(ctx, parsed, testNowMs); err == nil {
			t.Errorf("%s: a fork re-counting A's credit for another producer was accepted", name)
		}
	}
	if ch.Tip().ID() != honest.ID() {
		t.Fatal("the honest block lost the tip")
	}
	n, err := NewNode(ctx, NodeConfig{Params: p, Keys: ks, DB: openDB(t), Identity: e})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Pay(ctx, honest.Entries[0], testNowMs); err == nil {
		t.Fatal("a relay redeemed a payment spent to another relay")
	}
}

// TestCheckedCreditsCacheIsNoBypass: after a credit has verified once, a
// copy with a broken signature is still refused, and so is the good one
// once its epoch has passed.
func TestCheckedCreditsCacheIsNoBypass(t *testing.T) {
	ctx := context.Background()
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	p := DefaultParams("t")
	c := credits(t, m, 1, 1)[0]
	a := identity(t, 1)
	ch, _ := NewChain(ctx, p, ks, nil)
	if err := ch.Add(ctx, mkBlock(t, p, a, nil, testNowMs, nil, pay(c, 1)), testNowMs); err != nil {
		t.Fatal(err)
	}
	bad, _ := ParseCredit(c.Credit.Marshal())
	bad.Signature[40] ^= 1
	forged := Coin{Credit: bad, seed: c.seed}
	if err := ch.Add(ctx, mkBlock(t, p, identity(t, 2), nil, testNowMs, nil, pay(forged, 1)), testNowMs); err == nil {
		t.Fatal("a credit with a broken signature passed after its good copy was cached")
	}
	late := uint64(testNowMs + 2*86400*1000)
	if err := ch.Add(ctx, mkBlock(t, p, identity(t, 3), nil, late, nil, pay(c, 1)), late); err == nil {
		t.Fatal("an expired credit passed through the cache")
	}
}
