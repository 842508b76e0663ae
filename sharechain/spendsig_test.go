package sharechain

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// acceptAllFallback is the mutant of spendFallback that trusts a failed
// batch: every signature in it passes.
func acceptAllFallback(cs []spendCheck, ok []bool) {
	for i := range ok {
		ok[i] = true
	}
}

// withFallback runs f with spendFallback replaced by fb.
func withFallback(fb func([]spendCheck, []bool), f func()) {
	real := spendFallback
	spendFallback = fb
	defer func() { spendFallback = real }()
	f()
}

// spendChecks returns n valid spend checks for relay 1 and the same with
// the one at bad forged (its units changed after signing).
func spendChecks(t *testing.T, n, bad int) (good, forged []spendCheck) {
	t.Helper()
	fp := identity(t, 1).Fingerprint()
	for i := range n {
		seed := make([]byte, ed25519.SeedSize)
		seed[0], seed[1] = byte(i), 0xa5
		sk := ed25519.NewKeyFromSeed(seed)
		var c Credit
		copy(c.Nonce[:], sk.Public().(ed25519.PublicKey))
		c.KeyID[0] = byte(i)
		msg := SpendMessage(c.ID(), fp, 7)
		good = append(good, spendCheck{pub: c.Nonce[:], msg: msg, sig: ed25519.Sign(sk, msg)})
	}
	forged = append([]spendCheck(nil), good...)
	forged[bad].msg = SpendMessage(CreditID{byte(bad)}, fp, 8)
	return good, forged
}

// onlyRejected checks that verifySpends accepts every check but bad.
func onlyRejected(cs []spendCheck, bad int) error {
	for i, ok := range verifySpends(cs) {
		if ok == (i == bad) {
			return fmt.Errorf("check %d of %d: verified %v", i, len(cs), ok)
		}
	}
	return nil
}

func TestVerifySpendsRejectsOnlyTheForged(t *testing.T) {
	for _, n := range []int{2, 33, maxSpendBatch + 5} {
		bad := n / 2
		good, forged := spendChecks(t, n, bad)
		for i, ok := range verifySpends(good) {
			if !ok {
				t.Fatalf("%d checks: valid signature %d refused", n, i)
			}
		}
		if err := onlyRejected(forged, bad); err != nil {
			t.Fatalf("%d checks, %d forged: %v", n, bad, err)
		}
		// A malformed signature (wrong length) fails only itself too.
		short := append([]spendCheck(nil), good...)
		short[bad].sig = short[bad].sig[:63]
		if err := onlyRejected(short, bad); err != nil {
			t.Fatalf("%d checks, %d short: %v", n, bad, err)
		}
	}
	// The property holds because of the fallback: trusting a failed batch
	// lets the forged signature through.
	_, forged := spendChecks(t, 33, 5)
	withFallback(acceptAllFallback, func() {
		if onlyRejected(forged, 5) == nil {
			t.Fatal("with a fallback that accepts a failed batch, the forged signature is still refused: the test shows nothing")
		}
	})
}

// payConcurrently pays entries to n at once and returns each Pay's error.
func payConcurrently(n *Node, es []Entry) []error {
	errs := make([]error, len(es))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, e := range es {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = n.Pay(context.Background(), e, testNowMs)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// TestPayBatchRejectsOnlyTheForged pays 64 entries at once, one of them
// with a spend signature that does not cover its units: exactly that
// payment is refused, whichever batch it lands in, and the others are
// redeemed. With the fallback mutated to trust a failed batch, the forged
// payment is redeemed.
func TestPayBatchRejectsOnlyTheForged(t *testing.T) {
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	p := DefaultParams("t")
	id := identity(t, 1)
	cs := fastCredits(t, m, 128)
	entries := func(cs []Coin, bad int) []Entry {
		es := make([]Entry, len(cs))
		for i, c := range cs {
			es[i] = c.Pay(id.Fingerprint(), 3)
		}
		es[bad].Units = 4 // the signature covers 3
		return es
	}
	const bad = 41
	n := newNode(t, p, ks, id)
	errs := payConcurrently(n, entries(cs[:64], bad))
	for i, err := range errs {
		if (err != nil) != (i == bad) {
			t.Fatalf("payment %d: %v", i, err)
		}
	}
	if !strings.Contains(errs[bad].Error(), "not spent to this relay") {
		t.Fatalf("forged payment: %v", errs[bad])
	}
	if got := n.Pending(); got != 63 {
		t.Fatalf("%d entries pending, want 63", got)
	}
	withFallback(acceptAllFallback, func() {
		n := newNode(t, p, ks, id)
		if errs := payConcurrently(n, entries(cs[64:], bad)); errs[bad] == nil {
			return // the mutant let it through: the test above can fail
		}
		t.Fatal("with a fallback that accepts a failed batch, the forged payment is still refused: the test shows nothing")
	})
}

// TestBlockBatchRejectsTheForged gives a node a peer's block of 40 entries
// whose 23rd spend signature does not cover its units: the block is refused
// for that entry. With the fallback mutated to trust a failed batch, it is
// accepted.
func TestBlockBatchRejectsTheForged(t *testing.T) {
	ctx := context.Background()
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	p := DefaultParams("t")
	peer := identity(t, 2)
	var pays []payment
	for _, c := range fastCredits(t, m, 40) {
		pays = append(pays, pay(c, 2))
	}
	const bad = 23
	b := mkBlock(t, p, peer, nil, testNowMs, nil, pays...)
	b.Entries[bad].Units = 3
	if err := b.Sign(peer); err != nil {
		t.Fatal(err)
	}
	b, err := ParseBlock(b.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	n := newNode(t, p, ks, identity(t, 1))
	err = n.Chain().Add(ctx, b, testNowMs)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("entry %d: the credit was not spent", bad)) {
		t.Fatalf("block with a forged entry %d: %v", bad, err)
	}
	withFallback(acceptAllFallback, func() {
		n := newNode(t, p, ks, identity(t, 1))
		if err := n.Chain().Add(ctx, b, testNowMs); err != nil {
			t.Fatalf("with a fallback that accepts a failed batch the block is still refused (%v): the test shows nothing", err)
		}
	})
}
