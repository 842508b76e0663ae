package sharechain

// RSASSA-PSS verification (RFC 8017 §8.1.2, EMSA-PSS-VERIFY §9.1.2) with
// the modulus prepared once per mint key: crypto/rsa prepares it (a
// Montgomery constant R² mod N) on every call, a third of a verification.
// The arithmetic is filippo.io/bigmod, the module crypto/rsa's own bigmod
// is published as; the encoding checks follow crypto/rsa's line by line,
// and TestPSSMatchesCryptoRSA and FuzzPSSVerify hold the two to the same
// verdicts.

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha512"
	"encoding/binary"
	"errors"

	"filippo.io/bigmod"
)

// pssSaltLen is RFC 9474's salt length for RSABSSA-SHA384-PSS-*.
const pssSaltLen = sha512.Size384

var errPSS = errors.New("sharechain: bad credit signature: PSS verification failed")

// pssKey is a mint key prepared for verification.
type pssKey struct {
	n      *bigmod.Modulus
	e      uint
	k      int // modulus bytes
	emBits int
}

func newPSSKey(pub *rsa.PublicKey) (*pssKey, error) {
	if err := checkMintKey(pub); err != nil {
		return nil, err
	}
	m, err := bigmod.NewModulus(pub.N.Bytes())
	if err != nil {
		return nil, err
	}
	return &pssKey{n: m, e: uint(pub.E), k: (pub.N.BitLen() + 7) / 8, emBits: pub.N.BitLen() - 1}, nil
}

// verify checks sig over the SHA-384 digest mHash, with a 48-byte salt and
// MGF1-SHA-384.
func (pk *pssKey) verify(mHash, sig []byte) error {
	if len(sig) != pk.k || len(mHash) != sha512.Size384 {
		return errPSS
	}
	s, err := bigmod.NewNat().SetBytes(sig, pk.n) // fails for sig ≥ N
	if err != nil {
		return errPSS
	}
	em := bigmod.NewNat().ExpShortVarTime(s, pk.e, pk.n).Bytes(pk.n)
	emLen := (pk.emBits + 7) / 8
	if emLen < len(em) {
		if em[0] != 0 {
			return errPSS
		}
		em = em[1:]
	}
	return emsaPSSVerify(mHash, em, pk.emBits)
}

// emsaPSSVerify is RFC 8017 §9.1.2 with SHA-384 and a salt of pssSaltLen.
func emsaPSSVerify(mHash, em []byte, emBits int) error {
	const hLen, sLen = sha512.Size384, pssSaltLen
	emLen := (emBits + 7) / 8
	if emLen != len(em) || emLen < hLen+sLen+2 || em[emLen-1] != 0xbc {
		return errPSS
	}
	db := em[:emLen-hLen-1]
	h := em[emLen-hLen-1 : emLen-1]
	bitMask := byte(0xff >> (8*emLen - emBits))
	if em[0]&^bitMask != 0 {
		return errPSS
	}
	mgf1XOR(db, h)
	db[0] &= bitMask
	psLen := emLen - hLen - sLen - 2
	for _, b := range db[:psLen] {
		if b != 0 {
			return errPSS
		}
	}
	if db[psLen] != 0x01 {
		return errPSS
	}
	salt := db[len(db)-sLen:]
	d := sha512.New384()
	var prefix [8]byte
	d.Write(prefix[:])
	d.Write(mHash)
	d.Write(salt)
	if !bytes.Equal(d.Sum(nil), h) {
		return errPSS
	}
	return nil
}

// mgf1XOR XORs out with MGF1-SHA-384(seed).
func mgf1XOR(out, seed []byte) {
	var counter [4]byte
	var digest []byte
	d := sha512.New384()
	for done := 0; done < len(out); {
		d.Reset()
		d.Write(seed)
		d.Write(counter[:])
		digest = d.Sum(digest[:0])
		for i := 0; i < len(digest) && done < len(out); i++ {
			out[done] ^= digest[i]
			done++
		}
		binary.BigEndian.PutUint32(counter[:], binary.BigEndian.Uint32(counter[:])+1)
	}
}
