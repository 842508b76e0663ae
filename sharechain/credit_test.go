package sharechain

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

func TestCreditIssueVerify(t *testing.T) {
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	cs := credits(t, m, 10, 3)
	for _, coin := range cs {
		c := coin.Credit
		back, err := ParseCredit(c.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(back.Marshal(), c.Marshal()) || back.ID() != c.ID() {
			t.Fatal("credit does not round-trip")
		}
		k, err := ks.CheckCredit(back, testEpoch)
		if err != nil || k.Denom != 10 {
			t.Fatalf("valid credit: %v (denom %d)", err, k.Denom)
		}
		if _, err := ks.CheckCredit(back, testEpoch+1); err != nil {
			t.Fatalf("credit in the next epoch: %v", err)
		}
		if _, err := ks.CheckCredit(back, testEpoch+2); err == nil {
			t.Fatal("expired credit accepted")
		}
	}
	if cs[0].Credit.ID() == cs[1].Credit.ID() {
		t.Fatal("two credits share an id")
	}
	// Tampering with any signed field breaks the signature.
	for _, mut := range []func(c *Credit){
		func(c *Credit) { c.Nonce[0] ^= 1 },
		func(c *Credit) { c.Prefix[5] ^= 1 },
		func(c *Credit) { c.Signature[10] ^= 1 },
	} {
		c, _ := ParseCredit(cs[0].Credit.Marshal())
		mut(c)
		if _, err := ks.CheckCredit(c, testEpoch); err == nil {
			t.Fatal("tampered credit accepted")
		}
	}
	// A credit of denomination 10 relabelled with the denomination-1 key id.
	c, _ := ParseCredit(cs[0].Credit.Marshal())
	c.KeyID = keyOf(t, m, 1).ID()
	if _, err := ks.CheckCredit(c, testEpoch); err == nil {
		t.Fatal("credit accepted under another key")
	}
}

func TestWalletBalanceSpend(t *testing.T) {
	ctx := context.Background()
	m := testMint(t, nil)
	db := openDB(t)
	w := NewWallet(db)
	if _, err := w.Request(ctx, m, "d", keyOf(t, m, 10), 3); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Request(ctx, m, "d", keyOf(t, m, 1), 4); err != nil {
		t.Fatal(err)
	}
	b, err := w.Balance(ctx, testEpoch)
	if err != nil || b.Total != 34 || b.ByDenom[10] != 3 || b.ByDenom[1] != 4 {
		t.Fatalf("balance %+v, %v", b, err)
	}
	got, err := w.Spend(ctx, 12, testEpoch)
	if err != nil {
		t.Fatal(err)
	}
	var sum uint64
	for _, coin := range got {
		c := coin.Credit
		k, _ := keySetOf(t, m).Lookup(c.KeyID)
		sum += k.Denom
	}
	if sum != 12 {
		t.Fatalf("spent %d for 12", sum)
	}
	b, _ = w.Balance(ctx, testEpoch)
	if b.Total != 22 {
		t.Fatalf("balance after spending 12 of 34: %d", b.Total)
	}
	if _, err := w.Spend(ctx, 23, testEpoch); !errors.Is(err, ErrInsufficient) {
		t.Fatalf("overspend: %v", err)
	}
	if b, _ := w.Balance(ctx, testEpoch+2); b.Total != 0 || b.Expired == 0 {
		t.Fatalf("balance two epochs later: %+v", b)
	}
}

// TestMintCannotLink checks P6 at the level of records. It runs issuance
// through a mint that logs everything it sees (key id, deposit, blinded
// message, blind signature) and redemption through a relay's spent set and a
// share block (credit id, key id, epoch, the encoded credit), then asserts:
// apart from the key id (common to every credit of one epoch and
// denomination, the anonymity set), no 8-byte window of any issuance record
// occurs in any redemption record, and vice versa. The check is proved live
// by a mutation: a wallet that skipped blinding (sending the prepared
// message itself) must be caught.
func TestMintCannotLink(t *testing.T) {
	ctx := context.Background()
	mintDB, relayDB := openDB(t), openDB(t)
	m := testMint(t, mintDB)
	ks := keySetOf(t, m)
	coins := credits(t, m, 1, 8)
	var cs []*Credit
	for _, coin := range coins {
		cs = append(cs, coin.Credit)
	}
	spent := NewSpentSet(relayDB, ks)
	defer spent.Close()
	var redeemed [][]byte
	for _, c := range cs {
		if _, err := spent.Redeem(ctx, c, testEpoch); err != nil {
			t.Fatal(err)
		}
	}
	blk := mkBlock(t, DefaultParams("t"), identity(t, 1), nil, testNowMs, nil, pay(coins[0], 1))
	redeemed = append(redeemed, blk.Marshal())
	rows, err := relayDB.sql.Query("SELECT credit_id, epoch FROM spent")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id []byte
		var e int64
		if err := rows.Scan(&id, &e); err != nil {
			t.Fatal(err)
		}
		redeemed = append(redeemed, id)
	}
	rows.Close()
	for _, c := range cs {
		redeemed = append(redeemed, c.Marshal())
	}
	log, err := mintDB.IssuanceLog(ctx)
	if err != nil || len(log) != 8 {
		t.Fatalf("issuance log: %d records, %v", len(log), err)
	}
	var issued [][]byte
	for _, r := range log {
		issued = append(issued, []byte(r.Deposit), r.Blinded, r.BlindSig)
	}
	public := [][]byte{keyOf(t, m, 1).ID().bytes()}
	if v, ok := SharedWindow(issued, redeemed, public); ok {
		t.Fatalf("issuance and redemption records share %x", v)
	}
	// Mutation: without blinding, the mint would log the prepared message,
	// whose nonce appears in the redeemed credit; the check must see it.
	c := cs[0]
	unblinded := append(append([]byte{}, c.Prefix[:]...), creditMessage(c.KeyID, &c.Nonce)...)
	if _, ok := SharedWindow(append(issued, unblinded), redeemed, public); !ok {
		t.Fatal("the linkage check misses an unblinded issuance")
	}
	// And the final signature must differ from the blind one the mint saw.
	if _, ok := SharedWindow(append(issued, c.Signature), redeemed, public); !ok {
		t.Fatal("the linkage check misses a shared signature")
	}
}

func (id KeyID) bytes() []byte { return id[:] }

func FuzzParseCredit(f *testing.F) {
	m := testMint(f, nil)
	for _, c := range credits(f, m, 1, 2) {
		f.Add(c.Credit.Marshal())
	}
	f.Add([]byte{1})
	f.Add(make([]byte, 80))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCredit(b)
		if err != nil {
			return
		}
		if !bytes.Equal(c.Marshal(), b) {
			t.Fatal("parse/marshal mismatch")
		}
	})
}
