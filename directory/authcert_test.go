package directory_test

import (
	"encoding/pem"
	"errors"
	"testing"
	"time"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/keys"
)

// certified returns a signer with identity s.Identity kept offline: a
// signing key certified by it until expires.
func certified(t *testing.T, id *keys.Identity, expires time.Time) *directory.Signer {
	t.Helper()
	k, err := keys.NewIdentity(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &directory.Signer{Signing: &directory.SigningKey{Key: k, Cert: directory.CertifySigningKey(id, k.Public, expires), Expires: expires}}
}

func verifyCertSigned(t *testing.T, c *directory.Consensus, set directory.AuthoritySet, now time.Time, sigs []directory.Signature) error {
	t.Helper()
	sc, err := c.WithSignatures(sigs)
	if err != nil {
		t.Fatal(err)
	}
	u, err := directory.ParseConsensus(sc.Raw())
	if err != nil {
		t.Fatal(err)
	}
	_, err = u.Verify(set, now)
	return err
}

// TestAuthorityCertificates: a consensus signed with signing keys that the
// configured identities certified (spec §8.4) verifies; a signature whose
// certificate expired, or was made by another identity for the named
// authority, does not count. The mutation (the certificate's identity not
// checked against the configured one) lets an attacker's own certificate
// sign for an authority.
func TestAuthorityCertificates(t *testing.T) {
	base, signers, set := threeSigned(t, false)
	now := base.ValidAfter.Add(time.Minute)
	signAs := func(s *directory.Signer) []directory.Signature {
		sigs, err := s.SignConsensus(base)
		if err != nil {
			t.Fatal(err)
		}
		return sigs
	}
	var good []directory.Signature
	for _, s := range signers {
		sigs := signAs(certified(t, s.Identity, now.Add(30*24*time.Hour)))
		if len(sigs) != 1 || sigs[0].Alg != directory.SigEd25519Cert || sigs[0].Authority != s.Identity.Fingerprint() {
			t.Fatalf("certified signature %+v", sigs)
		}
		good = append(good, sigs...)
	}
	if err := verifyCertSigned(t, base, set, now, good); err != nil {
		t.Fatalf("consensus signed by certified signing keys: %v", err)
	}

	// Expired certificates: only authority 0 still counts.
	expired := append(signAs(certified(t, signers[0].Identity, now.Add(time.Hour))),
		append(signAs(certified(t, signers[1].Identity, now.Add(-time.Second))),
			signAs(certified(t, signers[2].Identity, now))...)...)
	if err := verifyCertSigned(t, base, set, now, expired); !errors.Is(err, directory.ErrNotEnoughSignatures) {
		t.Fatalf("expired certificates counted: %v", err)
	}

	// An attacker's identity certifies its own key and signs as authority 1.
	attacker := mustIdentity(t, "attacker")
	forge := func() []directory.Signature {
		sigs := signAs(certified(t, attacker, now.Add(time.Hour)))
		sigs[0].Authority = signers[1].Identity.Fingerprint()
		return append(good[:1:1], sigs...)
	}
	if err := verifyCertSigned(t, base, set, now, forge()); !errors.Is(err, directory.ErrNotEnoughSignatures) {
		t.Fatalf("a certificate by another identity counted: %v", err)
	}
	t.Run("mutation", func(t *testing.T) {
		defer directory.SetSkipCertIdentityCheck()()
		if err := verifyCertSigned(t, base, set, now, forge()); err != nil {
			t.Fatalf("without the identity check the forged certificate should count: %v", err)
		}
	})
}

// TestCertifyAuthorityOffline: a signing key certified where the identity
// is kept loads in another data directory, holding no identity key; a key
// file that does not match its certificate is refused.
func TestCertifyAuthorityOffline(t *testing.T) {
	idDir, authDir := t.TempDir(), t.TempDir()
	ks, err := keys.Open(idDir, keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := directory.CertifyAuthority(t.TempDir()+"/none", authDir, time.Hour, now); err == nil {
		t.Fatal("certified without an identity key")
	}
	sk, err := directory.CertifyAuthority(idDir, authDir, 24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	got, err := directory.LoadSigningKey(authDir, now)
	if err != nil || !got.Key.Public.Equal(sk.Key.Public) {
		t.Fatalf("load: %v", err)
	}
	c, err := directory.ParseAuthorityCert(got.Cert, now)
	if err != nil || !c.Identity.Equal(ks.Identity().Public) {
		t.Fatalf("certificate: %+v %v", c, err)
	}
	if _, err := directory.LoadSigningKey(authDir, now.Add(25*time.Hour)); !errors.Is(err, directory.ErrAuthorityCert) {
		t.Fatalf("expired certificate loaded: %v", err)
	}
	// Another certification replaces the key; an old certificate with the
	// new key does not load.
	old := got.Cert
	if _, err := directory.CertifyAuthority(idDir, authDir, 24*time.Hour, now); err != nil {
		t.Fatal(err)
	}
	if err := keys.WriteFileAtomic(authDir+"/keys/authority_signing.cert", pemCert(old), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := directory.LoadSigningKey(authDir, now); !errors.Is(err, directory.ErrAuthorityCert) {
		t.Fatalf("a certificate for another key loaded: %v", err)
	}
}

func pemCert(b []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "UNFED AUTHORITY SIGNING CERTIFICATE", Bytes: b})
}

// FuzzAuthorityCert: the certificate parser never panics, and accepts only
// certificates whose signature by the identity they name verifies.
func FuzzAuthorityCert(f *testing.F) {
	id := mustIdentity(f, "fuzz-authority")
	k := mustIdentity(f, "fuzz-signing")
	exp := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	good := directory.CertifySigningKey(id, k.Public, exp)
	f.Add(good)
	f.Add(good[:100])
	f.Add(append([]byte{2}, good[1:]...))
	now := time.Date(2029, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := directory.ParseAuthorityCert(b, now)
		if err != nil {
			return
		}
		if !c.Expires.After(now) || len(b) != len(good) {
			t.Fatalf("accepted %x", b)
		}
	})
}
