package sharechain

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
)

// TestDoubleSpendRejected presents one credit to one relay from 32
// goroutines at once, and to two relays at once, then again later. Exactly
// one redemption per relay is acknowledged; across relays the share-chain
// counts the credit once: the block of the relay that lost cannot join the
// best chain with it, as a child or as an uncle.
func TestDoubleSpendRejected(t *testing.T) {
	ctx := context.Background()
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	coins := credits(t, m, 1, 2)
	coin := coins[0]
	c := coin.Credit

	dbA := openDB(t)
	a := NewSpentSet(dbA, ks)
	defer a.Close()
	var wg sync.WaitGroup
	results := make([]error, 32)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, results[i] = a.Redeem(ctx, c, testEpoch)
		}(i)
	}
	wg.Wait()
	won := 0
	for _, err := range results {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrDoubleSpend):
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of 32 concurrent redemptions at one relay succeeded, want 1", won)
	}
	if _, err := a.Redeem(ctx, c, testEpoch); !errors.Is(err, ErrDoubleSpend) {
		t.Fatalf("later redemption: %v", err)
	}

	// Two relays at once: each has its own spent set, so both accept; the
	// chain is where one of them loses.
	b := NewSpentSet(openDB(t), ks)
	defer b.Close()
	if _, err := b.Redeem(ctx, c, testEpoch); err != nil {
		t.Fatalf("relay B: %v", err)
	}
	p := DefaultParams("t")
	idA, idB, idC := identity(t, 1), identity(t, 2), identity(t, 3)
	ch, err := NewChain(ctx, p, ks, nil)
	if err != nil {
		t.Fatal(err)
	}
	blkA := mkBlock(t, p, idA, nil, testNowMs, nil, pay(coin, 1))
	blkB := mkBlock(t, p, idB, nil, testNowMs, nil, pay(coin, 1))
	for _, blk := range []*Block{blkA, blkB} {
		if err := ch.Add(ctx, blk, testNowMs); err != nil {
			t.Fatal(err)
		}
	}
	win, lose := blkA, blkB
	if ch.Tip().ID() != blkA.ID() {
		win, lose = blkB, blkA
	}
	// The loser as an uncle of a block on the winner: rejected.
	if err := ch.Add(ctx, mkBlock(t, p, idC, win, testNowMs+10_000, []BlockID{lose.ID()}), testNowMs); !errors.Is(err, ErrBlockSpent) {
		t.Fatalf("uncle spending the credit again: %v", err)
	}
	// The credit again, later, on top of the winner: rejected.
	if err := ch.Add(ctx, mkBlock(t, p, idC, win, testNowMs+10_000, nil, pay(coin, 1)), testNowMs); !errors.Is(err, ErrBlockSpent) {
		t.Fatalf("block spending the credit again: %v", err)
	}
	next := mkBlock(t, p, idC, win, testNowMs+10_000, nil, pay(coins[1], 1))
	if err := ch.Add(ctx, next, testNowMs); err != nil {
		t.Fatal(err)
	}
	if !ch.Counted(c.ID()) {
		t.Fatal("credit not counted on the best chain")
	}
	n := 0
	for _, blk := range ch.MainChain() {
		for _, e := range blk.Entries {
			if e.Credit.ID() == c.ID() {
				n++
			}
		}
	}
	if n != 1 {
		t.Fatalf("credit counted %d times on the best chain", n)
	}
	if s := ch.Payouts(); s.TipHeight != 2 {
		t.Fatalf("tip height %d", s.TipHeight)
	}
}

func TestSpentSetSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	var cs []*Credit
	for _, coin := range credits(t, m, 1, 3) {
		cs = append(cs, coin.Credit)
	}
	dir := t.TempDir()
	db, err := OpenDB(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := NewSpentSet(db, ks)
	for _, c := range cs {
		if _, err := s.Redeem(ctx, c, testEpoch); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	db.Close()
	db, err = OpenDB(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s = NewSpentSet(db, ks)
	defer s.Close()
	for _, c := range cs {
		if _, err := s.Redeem(ctx, c, testEpoch); !errors.Is(err, ErrDoubleSpend) {
			t.Fatalf("after reopen: %v", err)
		}
	}
	if n, _ := db.SpentCount(ctx); n != 3 {
		t.Fatalf("spent count %d", n)
	}
	// Pruning: at epoch testEpoch+1 the credits may still be redeemed, so
	// they stay; at +2 they have expired and go.
	if n, _ := db.PruneSpent(ctx, testEpoch+1); n != 0 {
		t.Fatalf("pruned %d still-valid ids", n)
	}
	if n, _ := db.PruneSpent(ctx, testEpoch+2); n != 3 {
		t.Fatalf("pruned %d expired ids, want 3", n)
	}
}

func TestRedeemRejectsBadCredits(t *testing.T) {
	ctx := context.Background()
	m := testMint(t, nil)
	s := NewSpentSet(openDB(t), keySetOf(t, m))
	defer s.Close()
	c := credits(t, m, 1, 1)[0].Credit
	bad, _ := ParseCredit(c.Marshal())
	bad.Signature[3] ^= 0x40
	if _, err := s.Redeem(ctx, bad, testEpoch); err == nil || errors.Is(err, ErrDoubleSpend) {
		t.Fatalf("forged credit: %v", err)
	}
	if _, err := s.Redeem(ctx, c, testEpoch+2); err == nil {
		t.Fatal("expired credit redeemed")
	}
	// The failures above must not have burnt the credit.
	if _, err := s.Redeem(ctx, c, testEpoch); err != nil {
		t.Fatalf("good credit after bad attempts: %v", err)
	}
}

// TestGroupCommitAnswers: one group commit of 87 requests (multi-row
// INSERTs of 64, 16, 4 and 1 rows) answers each on its own: a fresh credit
// is acknowledged and its entry kept as pending, a credit spent before and
// the second of a credit twice in the batch are double spends and leave no
// pending row.
func TestGroupCommitAnswers(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	s := NewSpentSet(db, &KeySet{})
	defer s.Close()
	entry := func() *Entry {
		c := &Credit{Signature: make([]byte, 256)}
		rand.Read(c.Nonce[:])
		return &Entry{Units: 1, Credit: c, SpendSig: make([]byte, 64)}
	}
	var before []*Entry
	for range 5 {
		e := entry()
		before = append(before, e)
		if err := s.MarkSpent(ctx, e.Credit.ID(), testEpoch); err != nil {
			t.Fatal(err)
		}
	}
	var batch []*spendReq
	want := map[*spendReq]error{}
	add := func(e *Entry, err error) {
		r := &spendReq{id: e.Credit.ID(), epoch: testEpoch, entry: e, done: make(chan error, 1)}
		batch = append(batch, r)
		want[r] = err
	}
	var fresh []*Entry
	for i := range 80 {
		e := entry()
		fresh = append(fresh, e)
		add(e, nil)
		if i%20 == 3 {
			add(before[i/20], ErrDoubleSpend)
		}
	}
	add(fresh[0], ErrDoubleSpend)
	add(fresh[70], ErrDoubleSpend)
	add(before[4], ErrDoubleSpend)
	if len(batch) != 87 {
		t.Fatalf("batch of %d", len(batch))
	}
	s.commit(batch)
	for i, r := range batch {
		if got := <-r.done; got != want[r] {
			t.Fatalf("request %d: %v, want %v", i, got, want[r])
		}
	}
	got, err := db.LoadPending(ctx)
	if err != nil || len(got) != len(fresh) {
		t.Fatalf("%d pending entries (%v), want %d", len(got), err, len(fresh))
	}
	for i, e := range got {
		if e.Credit.ID() != fresh[i].Credit.ID() {
			t.Fatalf("pending entry %d is not the %dth fresh credit", i, i)
		}
	}
	if n, err := db.SpentCount(ctx); err != nil || n != int64(len(before)+len(fresh)) {
		t.Fatalf("spent set of %d (%v), want %d", n, err, len(before)+len(fresh))
	}
}
