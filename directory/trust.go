package directory

import (
	"crypto/ed25519"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/unfed/unfed/relay/keys"
)

// Authorities, trust and signing (spec/04-directory.md §8).

// TrustedAuthority is one configured directory authority.
type TrustedAuthority struct {
	Name        string
	Fingerprint keys.Fingerprint
	Identity    ed25519.PublicKey
	// MLDSA is the authority's ML-DSA-65 key, nil when it has none.
	MLDSA *mldsa65.PublicKey
	// Address is the authority's HTTP host:port.
	Address string
}

// AuthoritySet is the set of authorities a client, relay or authority
// trusts. A consensus is valid only when signed by more than half of them.
type AuthoritySet struct {
	Authorities []TrustedAuthority
	// RequirePQ makes every counted signature need an ML-DSA-65 signature
	// alongside its Ed25519 one, whatever the document's parameters say.
	RequirePQ bool
}

// Threshold is the number of signatures a consensus needs: more than half
// of all configured authorities.
func (s AuthoritySet) Threshold() int { return len(s.Authorities)/2 + 1 }

// Lookup returns the authority with fingerprint fp, or nil.
func (s AuthoritySet) Lookup(fp keys.Fingerprint) *TrustedAuthority {
	for i := range s.Authorities {
		if s.Authorities[i].Fingerprint == fp {
			return &s.Authorities[i]
		}
	}
	return nil
}

// AuthorityEntry configures one authority (all of them, this one included).
type AuthorityEntry struct {
	// Name is the authority's short name.
	Name string `mapstructure:"name" doc:"Short name of the authority."`
	// Identity is the authority's Ed25519 identity public key, base64.
	Identity string `mapstructure:"identity" doc:"Ed25519 identity public key, base64 (unpadded or padded)."`
	// Fingerprint, when set, must match the identity key's fingerprint.
	Fingerprint string `mapstructure:"fingerprint" doc:"Optional fingerprint (40 hex digits) checked against the identity key."`
	// MLDSA65 is the authority's ML-DSA-65 public key, base64; empty if none.
	MLDSA65 string `mapstructure:"mldsa65" doc:"Optional ML-DSA-65 public key, base64."`
	// Address is the authority's HTTP host:port.
	Address string `mapstructure:"address" doc:"HTTP host:port of the authority."`
}

// RequirePQFor decides, for a client's or relay's require_pq_signatures
// setting, whether a consensus must carry ML-DSA-65 signatures (spec/04-
// directory.md §8.1): "on" and "off" say so; "auto" or empty means on when
// every configured authority lists an ML-DSA-65 key, so that a consensus
// signed with Ed25519 alone (and without the pq-signatures parameter, which
// those same signatures would vouch for) is refused once the authorities
// sign with ML-DSA.
func RequirePQFor(setting string, entries []AuthorityEntry) (bool, error) {
	switch setting {
	case "on":
		return true, nil
	case "off":
		return false, nil
	case "", "auto":
		for _, e := range entries {
			if e.MLDSA65 == "" {
				return false, nil
			}
		}
		return len(entries) > 0, nil
	}
	return false, fmt.Errorf("directory: require_pq_signatures %q: want auto, on or off", setting)
}

// NewAuthoritySet builds a trust set from configuration entries.
func NewAuthoritySet(entries []AuthorityEntry, requirePQ bool) (AuthoritySet, error) {
	set := AuthoritySet{RequirePQ: requirePQ}
	if len(entries) == 0 || len(entries) > maxSignatures/2 {
		return set, fmt.Errorf("directory: want 1..%d authorities, got %d", maxSignatures/2, len(entries))
	}
	for i, e := range entries {
		a, err := e.parse()
		if err != nil {
			return set, fmt.Errorf("directory: authority %d (%s): %w", i, e.Name, err)
		}
		if set.Lookup(a.Fingerprint) != nil {
			return set, fmt.Errorf("directory: authority %s listed twice", a.Fingerprint)
		}
		if requirePQ && a.MLDSA == nil {
			return set, fmt.Errorf("directory: authority %s has no ML-DSA-65 key but PQ signatures are required", a.Name)
		}
		set.Authorities = append(set.Authorities, a)
	}
	return set, nil
}

func (e AuthorityEntry) parse() (TrustedAuthority, error) {
	a := TrustedAuthority{Name: e.Name, Address: e.Address}
	if !validName(e.Name) || !validAddr(e.Address) {
		return a, errors.New("bad name or address")
	}
	id, err := decodeB64Any(e.Identity)
	if err != nil || len(id) != ed25519.PublicKeySize {
		return a, errors.New("identity is not a base64 Ed25519 public key")
	}
	a.Identity = id
	a.Fingerprint = keys.FingerprintOf(id)
	if e.Fingerprint != "" {
		fp, err := keys.ParseFingerprint(e.Fingerprint)
		if err != nil || fp != a.Fingerprint {
			return a, fmt.Errorf("fingerprint %q does not match the identity key (%s)", clip(e.Fingerprint), a.Fingerprint)
		}
	}
	if e.MLDSA65 != "" {
		raw, err := decodeB64Any(e.MLDSA65)
		if err != nil || len(raw) != mldsa65.PublicKeySize {
			return a, errors.New("mldsa65 is not a base64 ML-DSA-65 public key")
		}
		a.MLDSA = new(mldsa65.PublicKey)
		if err := a.MLDSA.UnmarshalBinary(raw); err != nil {
			return a, fmt.Errorf("mldsa65: %w", err)
		}
	}
	return a, nil
}

func decodeB64Any(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if strings.HasSuffix(s, "=") {
		return base64.StdEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// EntryFor returns the configuration entry describing an authority with the
// given keys; operators paste it into every authority's and client's config.
func EntryFor(name, address string, id *keys.Identity, pq *mldsa65.PublicKey) AuthorityEntry {
	e := AuthorityEntry{Name: name, Address: address, Identity: fmtB64(id.Public), Fingerprint: id.Fingerprint().String()}
	if pq != nil {
		b, _ := pq.MarshalBinary()
		e.MLDSA65 = fmtB64(b)
	}
	return e
}

// Signer signs votes and consensuses for one authority.
type Signer struct {
	// Identity signs directly when Signing is nil; it may be nil (an
	// offline identity) when Signing is set.
	Identity *keys.Identity
	// Signing, when set, signs instead, with its certificate (§8.4).
	Signing *SigningKey
	// MLDSA is nil when the authority has no ML-DSA-65 key.
	MLDSA *mldsa65.PrivateKey
}

// fingerprint is the signing authority's identity fingerprint.
func (s *Signer) fingerprint() keys.Fingerprint {
	if s.Signing != nil {
		return keys.FingerprintOf(s.Signing.certIdentity())
	}
	return s.Identity.Fingerprint()
}

// Signature contexts (spec §8.2).
const (
	voteSigContext      = "unfed-vote-v1"
	consensusSigContext = "unfed-consensus-v1"
)

// sign returns the authority's signatures on digest: Ed25519, plus ML-DSA-65
// when pq is set.
func (s *Signer) sign(ctx string, digest [32]byte, pq bool) ([]Signature, error) {
	fp := s.fingerprint()
	msg := append([]byte(ctx), digest[:]...)
	var sigs []Signature
	if s.Signing != nil {
		sig := append(append([]byte(nil), s.Signing.Cert...), s.Signing.Key.Sign(msg)...)
		sigs = append(sigs, Signature{Alg: SigEd25519Cert, Authority: fp, Sig: sig})
	} else {
		sigs = append(sigs, Signature{Alg: SigEd25519, Authority: fp, Sig: s.Identity.Sign(msg)})
	}
	if pq {
		if s.MLDSA == nil {
			return nil, errors.New("directory: PQ signatures are enabled but this authority has no ML-DSA-65 key")
		}
		sig := make([]byte, mldsa65.SignatureSize)
		if err := mldsa65.SignTo(s.MLDSA, digest[:], []byte(ctx), false, sig); err != nil {
			return nil, fmt.Errorf("directory: ML-DSA-65 signing: %w", err)
		}
		sigs = append(sigs, Signature{Alg: SigMLDSA65, Authority: fp, Sig: sig})
	}
	return sigs, nil
}

// validSigners returns the authorities of set whose signatures on digest
// verify: Ed25519 always, and ML-DSA-65 too when requirePQ.
func validSigners(set AuthoritySet, sigs []Signature, ctx string, digest [32]byte, requirePQ bool, now time.Time) map[keys.Fingerprint]bool {
	ed := map[keys.Fingerprint]bool{}
	pq := map[keys.Fingerprint]bool{}
	msg := append([]byte(ctx), digest[:]...)
	for _, s := range sigs {
		a := set.Lookup(s.Authority)
		if a == nil {
			continue
		}
		switch s.Alg {
		case SigEd25519:
			if keys.Verify(a.Identity, msg, s.Sig) {
				ed[a.Fingerprint] = true
			}
		case SigEd25519Cert:
			if verifyCertSig(a.Identity, s.Sig, msg, now) {
				ed[a.Fingerprint] = true
			}
		case SigMLDSA65:
			if a.MLDSA != nil && mldsa65.Verify(a.MLDSA, digest[:], []byte(ctx), s.Sig) {
				pq[a.Fingerprint] = true
			}
		}
	}
	if requirePQ {
		for fp := range ed {
			if !pq[fp] {
				delete(ed, fp)
			}
		}
	}
	return ed
}

const (
	mldsaKeyFile = "authority_mldsa65.key"
	pemMLDSA     = "UNFED MLDSA65 AUTHORITY KEY"
)

// LoadOrCreateMLDSAKey loads the authority's ML-DSA-65 key from
// dataDir/keys, creating it (mode 0600) on first use. A file with a wrong mode
// or contents is an error, never replaced.
func LoadOrCreateMLDSAKey(dataDir string, rand io.Reader) (*mldsa65.PrivateKey, error) {
	dir := filepath.Join(dataDir, keys.KeysDir)
	path := filepath.Join(dir, mldsaKeyFile)
	data, err := readPrivateFile(path, 16<<10)
	if err == nil {
		block, rest := pem.Decode(data)
		if block == nil || block.Type != pemMLDSA || len(block.Bytes) != mldsa65.SeedSize || len(strings.TrimSpace(string(rest))) != 0 {
			return nil, fmt.Errorf("directory: %s is corrupt", path)
		}
		var seed [mldsa65.SeedSize]byte
		copy(seed[:], block.Bytes)
		_, sk := mldsa65.NewKeyFromSeed(&seed)
		return sk, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	var seed [mldsa65.SeedSize]byte
	if rand == nil {
		rand = crand.Reader
	}
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return nil, fmt.Errorf("directory: reading randomness: %w", err)
	}
	if err := keys.WriteFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: pemMLDSA, Bytes: seed[:]}), 0o600); err != nil {
		return nil, err
	}
	_, sk := mldsa65.NewKeyFromSeed(&seed)
	return sk, nil
}

// readPrivateFile reads a file that must be 0600 or stricter.
func readPrivateFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("directory: %s must be a regular file with mode 0600", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil || int64(len(data)) > limit {
		return nil, fmt.Errorf("directory: reading %s: too large or unreadable", path)
	}
	return data, nil
}
