package sharechain

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/oasisprotocol/curve25519-voi/curve"
	"github.com/oasisprotocol/curve25519-voi/curve/scalar"

	"github.com/unfed/unfed/relay/keys"
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

// mixedOrderSpend returns a valid credit of the test mint whose one-time
// key A' = aB + T has a small-order component T, and a spend signature by a
// for relay fp and units that holds under the cofactored equation of spec
// 12 §2.5 but not under the cofactorless one of crypto/ed25519 (k·T ≠ 0).
func mixedOrderSpend(t *testing.T, m *Mint, fp keys.Fingerprint, units uint32) Entry {
	t.Helper()
	seed := sha512.Sum512([]byte("mixed-order spend key"))
	var ab [32]byte
	copy(ab[:], seed[:32])
	ab[0] &= 248
	ab[31] &= 127
	ab[31] |= 64
	a, err := scalar.New().SetBytesModOrder(ab[:])
	if err != nil {
		t.Fatal(err)
	}
	A := curve.NewEdwardsPoint().MulBasepoint(curve.ED25519_BASEPOINT_TABLE, a)
	A.Add(A, curve.EIGHT_TORSION[1])
	var Ac curve.CompressedEdwardsY
	Ac.SetEdwardsPoint(A)
	k := keyOf(t, m, 1)
	c := &Credit{KeyID: k.ID()}
	copy(c.Nonce[:], Ac[:])
	c.Prefix[0] = 1
	h := sha512.Sum384(c.prepared())
	rsig, err := rsa.SignPSS(rand.Reader, testRSA[0], crypto.SHA384, h[:], &rsa.PSSOptions{SaltLength: 48})
	if err != nil {
		t.Fatal(err)
	}
	c.Signature = rsig
	msg := SpendMessage(c.ID(), fp, units)
	for range 64 {
		r, err := scalar.New().SetRandom(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		var Rc curve.CompressedEdwardsY
		Rc.SetEdwardsPoint(curve.NewEdwardsPoint().MulBasepoint(curve.ED25519_BASEPOINT_TABLE, r))
		d := sha512.New()
		d.Write(Rc[:])
		d.Write(Ac[:])
		d.Write(msg)
		kk, err := scalar.New().SetBytesModOrderWide(d.Sum(nil))
		if err != nil {
			t.Fatal(err)
		}
		s := scalar.New().Mul(kk, a)
		s.Add(s, r)
		sig := make([]byte, 64)
		copy(sig, Rc[:])
		if err := s.ToBytes(sig[32:]); err != nil {
			t.Fatal(err)
		}
		if !ed25519.Verify(c.Nonce[:], msg, sig) { // k·T ≠ 0: only the cofactored rule accepts it
			return Entry{Units: units, Credit: c, SpendSig: sig}
		}
	}
	t.Fatal("no signature with k·T ≠ 0 in 64 tries")
	return Entry{}
}

// TestSpendRuleOneForPayAndBlocks: a spend signature that only the
// cofactored rule accepts (a mixed-order one-time key) is accepted by a
// relay's Pay, alone and in a batch, and the relay's block carrying it is
// accepted by a peer, alone and batched with other entries: the relay
// never does work for a payment its peers would refuse in its block.
func TestSpendRuleOneForPayAndBlocks(t *testing.T) {
	ctx := context.Background()
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	p := DefaultParams("t")
	id := identity(t, 1)
	e := mixedOrderSpend(t, m, id.Fingerprint(), 5)
	if !e.VerifySpend(id.Fingerprint()) {
		t.Fatal("the cofactored rule refuses the mixed-order spend signature")
	}
	others := fastCredits(t, m, 7)
	checks := []spendCheck{spendCheckOf(e, id.Fingerprint())}
	for _, c := range others {
		checks = append(checks, spendCheckOf(c.Pay(id.Fingerprint(), 1), id.Fingerprint()))
	}
	for i, ok := range verifySpends(checks) {
		if !ok {
			t.Fatalf("batch with the mixed-order signature: check %d refused", i)
		}
	}
	relay := newNode(t, p, ks, id)
	es := []Entry{e}
	for _, c := range others {
		es = append(es, c.Pay(id.Fingerprint(), 1))
	}
	for i, err := range payConcurrently(relay, es) {
		if err != nil {
			t.Fatalf("payment %d: %v", i, err)
		}
	}
	b, err := relay.Produce(ctx, testNowMs)
	if err != nil || b == nil || len(b.Entries) != len(es) {
		t.Fatalf("relay's block: %v", err)
	}
	peer := newNode(t, p, ks, identity(t, 2))
	raw, err := ParseBlock(b.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if err := peer.Chain().Add(ctx, raw, testNowMs); err != nil {
		t.Fatalf("a peer refuses the relay's block: %v", err)
	}
}
