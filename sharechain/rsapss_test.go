package sharechain

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"math/big"
	"testing"
)

// stdVerify is crypto/rsa's verdict on a credit signature.
func stdVerify(pub *rsa.PublicKey, mHash, sig []byte) bool {
	return rsa.VerifyPSS(pub, crypto.SHA384, mHash, sig, pssOptions) == nil
}

// TestPSSMatchesCryptoRSA: the prepared-key verification gives crypto/rsa's
// verdict on valid credit signatures, on each of them with one bit flipped,
// on signatures with another salt length, over another message, and on
// random values below the modulus; and it refuses what crypto/rsa refuses.
func TestPSSMatchesCryptoRSA(t *testing.T) {
	m := testMint(t, nil)
	pub := &testRSA[0].PublicKey
	pk, err := newPSSKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	same := func(what string, mHash, sig []byte) bool {
		t.Helper()
		ours, std := pk.verify(mHash, sig) == nil, stdVerify(pub, mHash, sig)
		if ours != std {
			t.Fatalf("%s: prepared key says %v, crypto/rsa %v", what, ours, std)
		}
		return ours
	}
	for i, c := range fastCredits(t, m, 24) {
		h := sha512.Sum384(c.Credit.prepared())
		if !same("valid", h[:], c.Credit.Signature) {
			t.Fatalf("credit %d: valid signature refused", i)
		}
		bad := append([]byte(nil), c.Credit.Signature...)
		bad[(i*37)%len(bad)] ^= 1 << (i % 8)
		if same("bit flipped", h[:], bad) {
			t.Fatalf("credit %d: flipped signature accepted", i)
		}
		other := h
		other[i%len(other)] ^= 0x80
		if same("other message", other[:], c.Credit.Signature) {
			t.Fatalf("credit %d: signature accepted for another message", i)
		}
	}
	h := sha512.Sum384([]byte("salt"))
	for _, salt := range []int{0, 32, 64} {
		sig, err := rsa.SignPSS(rand.Reader, testRSA[0], crypto.SHA384, h[:], &rsa.PSSOptions{SaltLength: salt})
		if err != nil {
			t.Fatal(err)
		}
		if same("salt length", h[:], sig) {
			t.Fatalf("salt of %d bytes accepted", salt)
		}
	}
	for range 50 {
		r, _ := rand.Int(rand.Reader, pub.N)
		same("random", h[:], r.FillBytes(make([]byte, pk.k)))
	}
	nBytes := pub.N.FillBytes(make([]byte, pk.k))
	if same("N itself", h[:], nBytes) || same("short", h[:], nBytes[1:]) {
		t.Fatal("out-of-range or short signature accepted")
	}
	if same("N+1", h[:], new(big.Int).Add(pub.N, big.NewInt(1)).FillBytes(make([]byte, pk.k))) {
		t.Fatal("signature above the modulus accepted")
	}
}

// FuzzPSSVerify holds the prepared-key verification to crypto/rsa's verdict
// on any signature bytes and message digest.
func FuzzPSSVerify(f *testing.F) {
	m := testMint(f, nil)
	pub := &testRSA[0].PublicKey
	pk, err := newPSSKey(pub)
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range fastCredits(f, m, 4) {
		h := sha512.Sum384(c.Credit.prepared())
		f.Add(h[:], c.Credit.Signature)
	}
	f.Fuzz(func(t *testing.T, mHash, sig []byte) {
		if ours, std := pk.verify(mHash, sig) == nil, stdVerify(pub, mHash, sig); ours != std {
			t.Fatalf("prepared key says %v, crypto/rsa %v", ours, std)
		}
	})
}
