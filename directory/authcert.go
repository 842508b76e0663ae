package directory

// Authority signing-key certificates (spec/04-directory.md §8.4), as Tor's
// authority certificates: an authority's identity key, the one clients and
// relays are configured with, can stay offline; it certifies a medium-term
// Ed25519 signing key, which signs votes and consensuses. A signature made
// with the signing key carries its certificate:
//
//	directory-signature ed25519-cert FP
//	-----BEGIN SIGNATURE-----  certificate (137 bytes) || Ed25519 signature (64 bytes)
//
// Certificate, 137 bytes:
//
//	version  u8   1
//	identity 32   the authority's Ed25519 identity public key
//	signing  32   the Ed25519 signing public key
//	expires  u64  Unix seconds
//	sig      64   Ed25519(identity, "unfed-authority-cert-v1" || the 73 bytes above)

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/unfed/unfed/relay/keys"
)

// SigEd25519Cert is the algorithm of a signature by a certified signing key.
const SigEd25519Cert = "ed25519-cert"

const (
	authCertLen     = 1 + 32 + 32 + 8 + 64
	authCertContext = "unfed-authority-cert-v1"
	signingKeyFile  = "authority_signing.key"
	signingCertFile = "authority_signing.cert"
	pemSigningKey   = "UNFED ED25519 AUTHORITY SIGNING KEY"
	pemSigningCert  = "UNFED AUTHORITY SIGNING CERTIFICATE"
)

// ErrAuthorityCert is wrapped by certificate errors.
var ErrAuthorityCert = errors.New("directory: authority certificate")

// AuthorityCert is a verified signing-key certificate.
type AuthorityCert struct {
	Identity   ed25519.PublicKey
	SigningKey ed25519.PublicKey
	Expires    time.Time
}

// CertifySigningKey returns identity's certificate for signing, valid until
// expires.
func CertifySigningKey(identity *keys.Identity, signing ed25519.PublicKey, expires time.Time) []byte {
	b := make([]byte, 0, authCertLen)
	b = append(b, 1)
	b = append(b, identity.Public...)
	b = append(b, signing...)
	b = binary.BigEndian.AppendUint64(b, uint64(expires.Unix()))
	return append(b, identity.Sign(append([]byte(authCertContext), b...))...)
}

// ParseAuthorityCert verifies a certificate: its layout, its signature by
// the identity it names, and that it has not expired at now.
func ParseAuthorityCert(b []byte, now time.Time) (*AuthorityCert, error) {
	if len(b) != authCertLen || b[0] != 1 {
		return nil, fmt.Errorf("%w: %d bytes or unknown version", ErrAuthorityCert, len(b))
	}
	c := &AuthorityCert{Identity: ed25519.PublicKey(b[1:33]), SigningKey: ed25519.PublicKey(b[33:65]),
		Expires: time.Unix(int64(binary.BigEndian.Uint64(b[65:73])&(1<<63-1)), 0).UTC()}
	if !keys.Verify(c.Identity, append([]byte(authCertContext), b[:73]...), b[73:]) {
		return nil, fmt.Errorf("%w: bad signature", ErrAuthorityCert)
	}
	if !now.Before(c.Expires) {
		return nil, fmt.Errorf("%w: expired at %s", ErrAuthorityCert, fmtTime(c.Expires))
	}
	return c, nil
}

// skipCertIdentityCheck, set only by tests, accepts a certified signature
// whatever identity its certificate names (TestAuthorityCertificates'
// mutation).
var skipCertIdentityCheck bool

// verifyCertSig reports whether sig (certificate || signature) is a valid
// signature of msg by a signing key that identity certified, unexpired at now.
func verifyCertSig(identity ed25519.PublicKey, sig, msg []byte, now time.Time) bool {
	if len(sig) != authCertLen+ed25519.SignatureSize {
		return false
	}
	c, err := ParseAuthorityCert(sig[:authCertLen], now)
	if err != nil || (!c.Identity.Equal(identity) && !skipCertIdentityCheck) {
		return false
	}
	return keys.Verify(c.SigningKey, msg, sig[authCertLen:])
}

// SigningKey is an authority's certified signing key.
type SigningKey struct {
	Key  *keys.Identity
	Cert []byte
	// Expires is the certificate's expiry.
	Expires time.Time
}

// CertifyAuthority creates a new signing key for the authority whose
// identity is in identityDataDir and writes it with its certificate, valid
// for lifetime from now, into dataDir/keys (mode 0600): the operator runs it
// where the identity key is kept, offline, and copies the two files to the
// authority, which is then configured with offline_identity.
func CertifyAuthority(identityDataDir, dataDir string, lifetime time.Duration, now time.Time) (*SigningKey, error) {
	if _, err := os.Stat(filepath.Join(identityDataDir, keys.KeysDir, "identity_ed25519.key")); err != nil {
		return nil, fmt.Errorf("directory: no identity key in %s: %w", identityDataDir, err)
	}
	ks, err := keys.Open(identityDataDir, keys.Options{})
	if err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	return newSigningKey(ks.Identity(), dataDir, lifetime, now)
}

func newSigningKey(identity *keys.Identity, dataDir string, lifetime time.Duration, now time.Time) (*SigningKey, error) {
	if lifetime <= 0 {
		return nil, errors.New("directory: a signing key needs a positive lifetime")
	}
	k, err := keys.NewIdentity(nil)
	if err != nil {
		return nil, err
	}
	expires := now.Add(lifetime).UTC().Truncate(time.Second)
	sk := &SigningKey{Key: k, Cert: CertifySigningKey(identity, k.Public, expires), Expires: expires}
	dir := filepath.Join(dataDir, keys.KeysDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	// The key first: a certificate without its key is useless, a key
	// without its certificate is replaced on the next start.
	if err := keys.WriteFileAtomic(filepath.Join(dir, signingKeyFile),
		pem.EncodeToMemory(&pem.Block{Type: pemSigningKey, Bytes: k.Seed()}), 0o600); err != nil {
		return nil, err
	}
	if err := keys.WriteFileAtomic(filepath.Join(dir, signingCertFile),
		pem.EncodeToMemory(&pem.Block{Type: pemSigningCert, Bytes: sk.Cert}), 0o600); err != nil {
		return nil, err
	}
	return sk, nil
}

// LoadSigningKey loads the signing key and certificate from dataDir/keys and
// checks that they belong together and that the certificate verifies at now.
func LoadSigningKey(dataDir string, now time.Time) (*SigningKey, error) {
	dir := filepath.Join(dataDir, keys.KeysDir)
	read := func(name, typ string, n int) ([]byte, error) {
		data, err := readPrivateFile(filepath.Join(dir, name), 16<<10)
		if err != nil {
			return nil, err
		}
		block, rest := pem.Decode(data)
		if block == nil || block.Type != typ || len(block.Bytes) != n || strings.TrimSpace(string(rest)) != "" {
			return nil, fmt.Errorf("directory: %s is corrupt", filepath.Join(dir, name))
		}
		return block.Bytes, nil
	}
	seed, err := read(signingKeyFile, pemSigningKey, ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	cert, err := read(signingCertFile, pemSigningCert, authCertLen)
	if err != nil {
		return nil, err
	}
	k, err := keys.IdentityFromSeed(seed)
	if err != nil {
		return nil, err
	}
	c, err := ParseAuthorityCert(cert, now)
	if err != nil {
		return nil, err
	}
	if !c.SigningKey.Equal(k.Public) {
		return nil, fmt.Errorf("%w: it certifies another signing key than %s", ErrAuthorityCert, signingKeyFile)
	}
	return &SigningKey{Key: k, Cert: cert, Expires: c.Expires}, nil
}

// certIdentity returns the identity a SigningKey's certificate names.
func (k *SigningKey) certIdentity() ed25519.PublicKey {
	return ed25519.PublicKey(k.Cert[1:33])
}

// CertifyCommand is `unfed authority certify`: run where an authority's
// identity key is kept, it certifies a new signing key for the authority
// into --out (keys/authority_signing.key and .cert), to be copied to the
// authority's data directory (offline_identity).
func CertifyCommand(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("authority certify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	idDir := fs.String("identity-dir", "", "data directory holding the authority's identity key (keys/identity_ed25519.key)")
	out := fs.String("out", "", "data directory to write the signing key and certificate into")
	lifetime := fs.Duration("lifetime", 90*24*time.Hour, "how long the certificate is valid")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *idDir == "" || *out == "" || fs.NArg() != 0 {
		return errors.New("usage: unfed authority certify --identity-dir DIR --out DIR [--lifetime 2160h]")
	}
	sk, err := CertifyAuthority(*idDir, *out, *lifetime, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "certified signing key for %s until %s in %s\n",
		keys.FingerprintOf(sk.certIdentity()), fmtTime(sk.Expires), filepath.Join(*out, keys.KeysDir))
	return nil
}
