package sharechain

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"

	"github.com/unfed/unfed/relay/keys"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pkRSA(t *testing.T, k any) *rsa.PublicKey {
	t.Helper()
	pk, ok := k.(*rsa.PublicKey)
	if !ok {
		t.Fatalf("not an RSA key: %T", k)
	}
	return pk
}

func identityFromHex(t *testing.T, s string) *keys.Identity {
	t.Helper()
	id, err := keys.IdentityFromSeed(unhex(t, s))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestWriteVectors regenerates spec/vectors/economy/vectors.json when
// UNFED_WRITE_VECTORS=1 (the mint key and credit are fresh each time; the
// split answers come from Split and are then frozen). Otherwise it checks
// the file exists, so a forgotten vector fails loudly.
func TestWriteVectors(t *testing.T) {
	if os.Getenv("UNFED_WRITE_VECTORS") != "1" {
		if _, err := os.Stat(vectorFile); err != nil {
			t.Fatal(err)
		}
		return
	}
	m := testMint(t, nil)
	k := keyOf(t, m, 10)
	coin := credits(t, m, 10, 1)[0]
	c := coin.Credit
	var v economyVector
	v.Network = "unfed-testnet"
	p := DefaultParams(v.Network)
	g := p.Genesis()
	v.Genesis = hex.EncodeToString(g[:])
	v.MintEpoch, v.MintDenom = k.Epoch, k.Denom
	der, _ := x509.MarshalPKIXPublicKey(k.Key)
	v.MintKeyPKIX = hex.EncodeToString(der)
	kid := k.ID()
	v.MintKeyID = hex.EncodeToString(kid[:])
	v.Credit = hex.EncodeToString(c.Marshal())
	cid := c.ID()
	v.CreditID = hex.EncodeToString(cid[:])
	v.SpendSeed = hex.EncodeToString(coin.seed)
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i)
	}
	v.ProducerSeed = hex.EncodeToString(seed)
	id, _ := keys.IdentityFromSeed(seed)
	b := &Block{Height: 1, TimeMs: testNowMs, Parent: g, Uncles: []BlockID{{0xaa}}, Entries: []Entry{coin.Pay(id.Fingerprint(), 250)}}
	if err := b.Sign(id); err != nil {
		t.Fatal(err)
	}
	v.Block = hex.EncodeToString(b.Marshal())
	bid := b.ID()
	v.BlockID = hex.EncodeToString(bid[:])
	for _, s := range []struct {
		pool   uint64
		shares []uint64
	}{{100, []uint64{1, 1, 1}}, {10, []uint64{5, 3, 2}}, {7, []uint64{2, 2, 3}}, {1, []uint64{1, 1}}, {1<<64 - 1, []uint64{1 << 40, 3, 1<<40 + 7}}, {5, []uint64{0, 0}}} {
		ws := make([]Weight, len(s.shares))
		for j, sh := range s.shares {
			ws[j] = Weight{Shares: sh}
			ws[j].Relay[19] = byte(j)
		}
		parts, err := Split(s.pool, ws)
		if err != nil {
			t.Fatal(err)
		}
		v.Splits = append(v.Splits, struct {
			Pool    uint64   `json:"pool"`
			Shares  []uint64 `json:"shares"`
			Payouts []uint64 `json:"payouts"`
		}{s.pool, s.shares, parts})
	}
	out, _ := json.MarshalIndent(v, "", "  ")
	if err := os.MkdirAll("../spec/vectors/economy", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vectorFile, append(out, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = context.Background()
}
