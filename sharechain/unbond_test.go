package sharechain

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/unfed/unfed/relay/keys"
)

// stakedRelay is a relay node in dir that has locked stake worth 10 (one
// credit, from its own wallet, as lockStake does) in its first block.
func stakedRelay(t *testing.T, p Params, m *Mint, ks *KeySet, id *keys.Identity) (*Node, *DB, string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := OpenDB(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	n, err := NewNode(ctx, NodeConfig{Params: p, Keys: ks, DB: db, Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	w := NewWallet(db)
	if _, err := w.Request(ctx, m, "stake", keyOf(t, m, 10), 1); err != nil {
		t.Fatal(err)
	}
	coins, err := w.Spend(ctx, 10, testEpoch)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Pay(ctx, coins[0].Pay(id.Fingerprint(), 0), testNowMs); err != nil {
		t.Fatal(err)
	}
	if b, err := n.Produce(ctx, testNowMs); err != nil || b == nil {
		t.Fatalf("stake block: %v", err)
	}
	return n, db, dir
}

// produceWork pays n for one unit of work with a fresh credit and makes a
// block of it.
func produceWork(t *testing.T, n *Node, m *Mint, id *keys.Identity, ms uint64) *Block {
	t.Helper()
	if err := n.Pay(context.Background(), credits(t, m, 1, 1)[0].Pay(id.Fingerprint(), 1), ms); err != nil {
		t.Fatal(err)
	}
	b, err := n.Produce(context.Background(), ms)
	if err != nil || b == nil {
		t.Fatalf("produce: %v", err)
	}
	return b
}

// TestUnbond: a relay's `unfed sharechain unbond` puts an unbond entry in
// its next block; from then the stake no longer counts for the flags but
// is not released before Unbond blocks have passed; then it is, once; the
// stored chain reloads to the same state.
func TestUnbond(t *testing.T) {
	ctx := context.Background()
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	p := DefaultParams("t")
	p.Maturity, p.Unbond = 1, 3
	id := identity(t, 1)
	fp := id.Fingerprint()
	n, db, dir := stakedRelay(t, p, m, ks, id)
	if st := n.Chain().StakeOf(fp); st.Locked != 10 || n.Chain().Stake(fp) != 10 {
		t.Fatalf("after locking: %+v", st)
	}
	var out bytes.Buffer
	if err := Unbond(ctx, []string{"--data-dir", dir, "--network", "t"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "unbonding 10 units in 1 credits") {
		t.Fatalf("unbond said %q", out.String())
	}
	// The unbond entry alone makes a block: it adds no value to the score.
	before := n.Chain().TipScore()
	b, err := n.Produce(ctx, testNowMs+1)
	if err != nil || b == nil || len(b.Entries) != 1 || b.Entries[0].Units != UnbondUnits {
		t.Fatalf("unbond block: %v, %+v", err, b)
	}
	if got := n.Chain().TipScore(); got != before+1 {
		t.Fatalf("an unbond entry adds %d to the score, want 1", got-before)
	}
	unbondH := b.Height
	if st := n.Chain().StakeOf(fp); st.Locked != 0 || st.Unbonding != 10 || st.Released != 0 || st.ReleaseAt != unbondH+3 {
		t.Fatalf("after unbond: %+v", st)
	}
	if n.Chain().Stake(fp) != 0 {
		t.Fatal("unbonding stake still counts for the flags")
	}
	// The request counts on the best chain: the node drops it.
	produceWork(t, n, m, id, testNowMs+2)
	if es, _ := db.LoadUnbond(ctx); len(es) != 0 {
		t.Fatalf("%d unbond entries still stored", len(es))
	}
	for n.Chain().Tip().Height < unbondH+2 {
		produceWork(t, n, m, id, testNowMs+3)
	}
	if st := n.Chain().StakeOf(fp); st.Unbonding != 10 || st.Released != 0 {
		t.Fatalf("one block before release: %+v", st)
	}
	produceWork(t, n, m, id, testNowMs+4)
	if st := n.Chain().StakeOf(fp); st.Unbonding != 0 || st.Released != 10 || st.Locked != 0 {
		t.Fatalf("at release: %+v", st)
	}
	// A second unbond of the same credit is refused.
	if err := Unbond(ctx, []string{"--data-dir", dir, "--network", "t"}, io.Discard, io.Discard); err == nil {
		t.Fatal("a released credit was unbonded again")
	}
	ch, err := NewChain(ctx, p, ks, db)
	if err != nil {
		t.Fatal(err)
	}
	if st := ch.StakeOf(fp); st.Released != 10 {
		t.Fatalf("reloaded: %+v", st)
	}
}

// TestUnbondRules: an unbond entry is valid only for a stake credit of the
// block's own producer that counts on its chain and is not unbonding yet.
func TestUnbondRules(t *testing.T) {
	ctx := context.Background()
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	p := DefaultParams("t")
	p.Maturity, p.Unbond = 1, 3
	a, b := identity(t, 1), identity(t, 2)
	cs := credits(t, m, 10, 3)
	ch, _ := NewChain(ctx, p, ks, nil)
	root := mkBlock(t, p, a, nil, testNowMs, nil, pay(cs[0], 0), pay(cs[1], 5))
	if err := ch.Add(ctx, root, testNowMs); err != nil {
		t.Fatal(err)
	}
	unbond := mkBlock(t, p, a, root, testNowMs, nil, pay(cs[0], UnbondUnits))
	for name, blk := range map[string]*Block{
		"another relay's stake": mkBlock(t, p, b, root, testNowMs, nil, pay(cs[0], UnbondUnits)),
		"a work credit":         mkBlock(t, p, a, root, testNowMs, nil, pay(cs[1], UnbondUnits)),
		"a credit not on chain": mkBlock(t, p, a, root, testNowMs, nil, pay(cs[2], UnbondUnits)),
		"twice in one block":    mkBlock(t, p, a, root, testNowMs, nil, pay(cs[0], UnbondUnits), pay(cs[0], UnbondUnits)),
		"again after unbonding": mkBlock(t, p, a, unbond, testNowMs, nil, pay(cs[0], UnbondUnits)),
	} {
		if name == "again after unbonding" {
			if err := ch.Add(ctx, unbond, testNowMs); err != nil {
				t.Fatal(err)
			}
		}
		if err := ch.Add(ctx, blk, testNowMs); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if st := ch.StakeOf(a.Fingerprint()); st.Unbonding != 10 {
		t.Fatalf("%+v", st)
	}
}

// TestUnbondingSlashable: a fraud proof recorded during the unbonding
// period burns the stake, which is then never released; one recorded
// after the release leaves it released.
func TestUnbondingSlashable(t *testing.T) {
	ctx := context.Background()
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	p := DefaultParams("t")
	p.Maturity, p.Unbond = 1, 3
	for _, c := range []struct {
		name     string
		slashAt  uint64 // tip height when the proof is recorded
		released uint64
		burned   uint64
	}{
		{"during unbonding", 3, 0, 10},
		{"after release", 6, 10, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := identity(t, 1)
			fp := id.Fingerprint()
			n, _, dir := stakedRelay(t, p, m, ks, id)
			if err := Unbond(ctx, []string{"--data-dir", dir, "--network", "t"}, io.Discard, io.Discard); err != nil {
				t.Fatal(err)
			}
			if b, err := n.Produce(ctx, testNowMs+1); err != nil || b == nil || b.Height != 2 {
				t.Fatalf("unbond block: %v", err)
			}
			for h := uint64(3); h <= 7; h++ {
				produceWork(t, n, m, id, testNowMs+h)
				if h == c.slashAt {
					if err := n.Chain().Slash(ctx, fp, h, []byte("proof")); err != nil {
						t.Fatal(err)
					}
				}
			}
			if st := n.Chain().StakeOf(fp); st.Released != c.released || st.Burned != c.burned || st.Unbonding != 0 {
				t.Fatalf("%+v, want released %d burned %d", st, c.released, c.burned)
			}
		})
	}
}
