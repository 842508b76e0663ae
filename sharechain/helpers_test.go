package sharechain

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"sync"
	"testing"

	"github.com/unfed/unfed/relay/keys"
)

// testEpoch is the epoch every test mint key belongs to; testNowMs is a
// time inside it with the default 86400 s epochs.
const (
	testEpoch = 20000
	testNowMs = testEpoch*86400*1000 + 3600*1000
)

var (
	testKeysOnce sync.Once
	testRSA      [2]*rsa.PrivateKey
)

// testMint returns a mint (denominations 1 and 10, epoch testEpoch) whose
// RSA keys are generated once per test binary, logging issuance into db.
func testMint(t testing.TB, db *DB) *Mint {
	t.Helper()
	testKeysOnce.Do(func() {
		for i := range testRSA {
			k, err := rsa.GenerateKey(rand.Reader, MintKeyBits)
			if err != nil {
				panic(err)
			}
			testRSA[i] = k
		}
	})
	m := &Mint{db: db}
	for i, d := range []uint64{1, 10} {
		if err := m.addKey(testEpoch, d, testRSA[i]); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func keySetOf(t testing.TB, m *Mint) *KeySet {
	t.Helper()
	ks := &KeySet{}
	pubs, _ := m.PublicKeys(context.Background())
	for _, k := range pubs {
		if err := ks.Add(k); err != nil {
			t.Fatal(err)
		}
	}
	return ks
}

func keyOf(t testing.TB, m *Mint, denom uint64) MintPublicKey {
	t.Helper()
	pubs, _ := m.PublicKeys(context.Background())
	for _, k := range pubs {
		if k.Denom == denom {
			return k
		}
	}
	t.Fatalf("no key of denomination %d", denom)
	return MintPublicKey{}
}

// credits issues n credits of denom through a wallet kept in a fresh store.
func credits(t testing.TB, m *Mint, denom uint64, n int) []Coin {
	t.Helper()
	db, err := OpenDB(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cs, err := NewWallet(db).Request(context.Background(), m, "test-deposit", keyOf(t, m, denom), n)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func openDB(t testing.TB) *DB {
	t.Helper()
	db, err := OpenDB(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func identity(t testing.TB, seed byte) *keys.Identity {
	t.Helper()
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	id, err := keys.IdentityFromSeed(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// payment is a coin to spend to a block's producer for units.
type payment struct {
	coin  Coin
	units uint32
}

func pay(c Coin, units uint32) payment { return payment{c, units} }

// mkBlock signs a block on parent (nil: genesis) at time ms, its payments
// spent to id.
func mkBlock(t testing.TB, p Params, id *keys.Identity, parent *Block, ms uint64, uncles []BlockID, pays ...payment) *Block {
	t.Helper()
	b := &Block{Height: 1, Parent: p.Genesis(), TimeMs: ms, Uncles: uncles}
	for _, py := range pays {
		b.Entries = append(b.Entries, py.coin.Pay(id.Fingerprint(), py.units))
	}
	if parent != nil {
		b.Height, b.Parent = parent.Height+1, parent.ID()
	}
	if err := b.Sign(id); err != nil {
		t.Fatal(err)
	}
	// Round-trip through the parser, as a received block would be.
	out, err := ParseBlock(b.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	return out
}
