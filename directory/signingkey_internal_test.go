package directory

import (
	"log/slog"
	"testing"
	"time"
)

// TestSigningKeyRotation: an authority with signing_key_lifetime certifies
// a signing key at its first signature and a new one once less than a
// quarter of the lifetime is left; the key survives a restart. With an
// offline identity it signs with the copied key until the certificate
// expires, then refuses.
func TestSigningKeyRotation(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	dir := t.TempDir()
	cfg := AuthorityConfig{DataDir: dir, SigningKeyLifetime: 40 * 24 * time.Hour, Now: clock}
	s, err := loadSigner(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a := &Authority{cfg: cfg, signer: s, log: slog.New(slog.DiscardHandler)}
	first, err := a.signerAt(now)
	if err != nil || first.Signing == nil {
		t.Fatalf("no signing key: %v", err)
	}
	now = now.Add(29 * 24 * time.Hour) // 11 days of 40 left: keep
	if s2, _ := a.signerAt(now); !s2.Signing.Key.Public.Equal(first.Signing.Key.Public) {
		t.Fatal("rotated too early")
	}
	restarted, err := loadSigner(cfg, slog.New(slog.DiscardHandler))
	if err != nil || restarted.Signing == nil || !restarted.Signing.Key.Public.Equal(first.Signing.Key.Public) {
		t.Fatalf("signing key lost across a restart: %v", err)
	}
	now = now.Add(2 * 24 * time.Hour) // 9 days left, under a quarter
	s3, err := a.signerAt(now)
	if err != nil || s3.Signing.Key.Public.Equal(first.Signing.Key.Public) {
		t.Fatalf("not rotated with 9 of 40 days left: %v", err)
	}
	if sigs, err := s3.sign(consensusSigContext, [32]byte{1}, false); err != nil || sigs[0].Alg != SigEd25519Cert {
		t.Fatalf("sign: %+v %v", sigs, err)
	}

	off := t.TempDir()
	if _, err := CertifyAuthority(dir, off, 10*24*time.Hour, now); err != nil {
		t.Fatal(err)
	}
	ocfg := AuthorityConfig{DataDir: off, OfflineIdentity: true, Now: clock}
	osg, err := loadSigner(ocfg, slog.New(slog.DiscardHandler))
	if err != nil || osg.Identity != nil || osg.fingerprint() != s.Identity.Fingerprint() {
		t.Fatalf("offline signer: %v", err)
	}
	oa := &Authority{cfg: ocfg, signer: osg, log: slog.New(slog.DiscardHandler)}
	if _, err := oa.signerAt(now.Add(9 * 24 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := oa.signerAt(now.Add(10 * 24 * time.Hour)); err == nil {
		t.Fatal("signed with an expired certificate")
	}
}
