package directory

import (
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/unfed/unfed/directory/doc"
	"github.com/unfed/unfed/relay/keys"
)

// Mint keys and economy parameters in votes and consensuses
// (spec/04-directory.md §5.1, §6.1, §7.2; spec/12-economy.md §2.1). Each
// authority runs a mint; its vote lists the public keys its mint signs
// credits with in the current and the next epoch, and a consensus of method
// MintKeyMethod or later carries every voter's keys. The directory does not
// interpret the keys beyond their limits: relays and clients turn them into
// a sharechain.KeySet.

// MintKey is one mint public key as a vote or consensus lists it:
//
//	mint-key AUTHORITY-FP EPOCH DENOM BASE64(PKIX DER)
type MintKey struct {
	// Authority is the fingerprint of the authority whose mint holds the key.
	Authority keys.Fingerprint
	// Epoch is the mint epoch the key signs in (spec 12 §2.1).
	Epoch uint64
	// Denom is the denomination of the credits it signs, in units.
	Denom uint64
	// PKIX is the RSA public key, DER-encoded SubjectPublicKeyInfo.
	PKIX []byte
}

// Limits of mint-key lines.
const (
	// MaxMintKeysPerAuthority bounds one authority's keys in a document:
	// three epochs (the previous, whose credits are still redeemable, the
	// current and the next) of at most 16 denominations.
	MaxMintKeysPerAuthority = 48
	// MaxMintDenom bounds a denomination (2^40 units).
	MaxMintDenom = 1 << 40
	// maxMintPKIX bounds the DER of a 4096-bit key (550 bytes) with room.
	maxMintPKIX = 1024
)

// Economy parameter names (spec §6.1; their meaning in spec/12-economy.md).
const (
	// ParamPayRequired = 1 makes relays refuse circuit work that is not
	// paid for (spec 12 §2.6).
	ParamPayRequired = "pay-required"
	// ParamMintEpoch is the mint key epoch in seconds (spec 12 §2.1).
	ParamMintEpoch = "mint-epoch"
	// ParamPPLNSWindow is the PPLNS window N in share blocks (spec 12 §6.1).
	ParamPPLNSWindow = "pplns-window"
	// ParamPPLNSMaturity is the verification depth V in share blocks.
	ParamPPLNSMaturity = "pplns-maturity"
	// ParamStake is the stake, in units, a relay locks on the share-chain
	// for the Compute and MPC flags (spec 12 §7.1).
	ParamStake = "stake"
	// ParamUnitsPerCredit bounds the work units one unit of credit pays for.
	ParamUnitsPerCredit = "units-per-credit"
	// ParamChainID names the network's share-chain (spec 12 §5.1): its
	// genesis binds the name, so two networks' chains cannot mix.
	ParamChainID = "chain-id"
	// ParamUnbond is the unbonding period in share blocks: stake a relay
	// asked to withdraw stays locked, and slashable, that long (spec 12 §7.4).
	ParamUnbond = "unbond"
)

// RSAKey parses the key and checks the limits of spec 12 §2.1: RSA of 2048
// to 4096 bits, public exponent 65537.
func (k MintKey) RSAKey() (*rsa.PublicKey, error) {
	if len(k.PKIX) > maxMintPKIX {
		return nil, fmt.Errorf("mint key of %d bytes", len(k.PKIX))
	}
	pk, err := x509.ParsePKIXPublicKey(k.PKIX)
	if err != nil {
		return nil, fmt.Errorf("mint key: %v", err)
	}
	rk, ok := pk.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("mint key of type %T, want RSA", pk)
	}
	if n := rk.N.BitLen(); n < 2048 || n > 4096 || rk.E != 65537 {
		return nil, fmt.Errorf("mint key of %d bits, exponent %d: want 2048..4096 bits, 65537", n, rk.E)
	}
	return rk, nil
}

func compareMintKeys(a, b MintKey) int {
	if c := compareFP(a.Authority, b.Authority); c != 0 {
		return c
	}
	if a.Epoch != b.Epoch {
		if a.Epoch < b.Epoch {
			return -1
		}
		return 1
	}
	switch {
	case a.Denom < b.Denom:
		return -1
	case a.Denom > b.Denom:
		return 1
	}
	return 0
}

// checkMintKeys checks an authority's own key list before it goes in a
// vote: limits, each key parses, sorted and unique by (epoch, denomination).
func checkMintKeys(ks []MintKey, self keys.Fingerprint) ([]MintKey, error) {
	out := slices.Clone(ks)
	if len(out) > MaxMintKeysPerAuthority {
		return nil, fmt.Errorf("directory: %d mint keys, at most %d", len(out), MaxMintKeysPerAuthority)
	}
	for i := range out {
		out[i].Authority = self
		if out[i].Denom == 0 || out[i].Denom > MaxMintDenom {
			return nil, fmt.Errorf("directory: mint key of denomination %d", out[i].Denom)
		}
		if _, err := out[i].RSAKey(); err != nil {
			return nil, fmt.Errorf("directory: %w", err)
		}
	}
	slices.SortFunc(out, compareMintKeys)
	for i := 1; i < len(out); i++ {
		if compareMintKeys(out[i-1], out[i]) == 0 {
			return nil, fmt.Errorf("directory: two mint keys for epoch %d, denomination %d", out[i].Epoch, out[i].Denom)
		}
	}
	return out, nil
}

func encodeMintKey(w *doc.Writer, k MintKey) {
	w.Item("mint-key", k.Authority.String(), fmtUint(k.Epoch), fmtUint(k.Denom), fmtB64(k.PKIX))
}

// mintKey parses one mint-key line: the authority must be a dir-source of
// the document (so the line follows them), lines are sorted by (authority,
// epoch, denomination) and unique, at most MaxMintKeysPerAuthority per
// authority.
func (p *statusParser) mintKey(a []string) error {
	s := p.s
	if len(a) < 4 {
		return errors.New("want AUTHORITY EPOCH DENOM KEY")
	}
	fp, err := parseFP(a[0])
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(s.sources, func(d DirSource) bool { return d.Fingerprint == fp }) {
		return fmt.Errorf("authority %s is not a dir-source of the document", fp)
	}
	epoch, err := parseUint(a[1], 1<<62)
	if err != nil {
		return err
	}
	denom, err := parseUint(a[2], MaxMintDenom)
	if err != nil || denom == 0 {
		return fmt.Errorf("bad denomination %q", clip(a[2]))
	}
	if len(a[3]) > b64.EncodedLen(maxMintPKIX) {
		return errors.New("mint key too long")
	}
	der, err := b64.DecodeString(a[3])
	if err != nil {
		return fmt.Errorf("bad base64: %v", err)
	}
	k := MintKey{Authority: fp, Epoch: epoch, Denom: denom, PKIX: der}
	if _, err := k.RSAKey(); err != nil {
		return err
	}
	if n := len(s.mintKeys); n > 0 && compareMintKeys(s.mintKeys[n-1], k) >= 0 {
		return errors.New("unsorted or repeated")
	}
	count := 0
	for _, o := range s.mintKeys {
		if o.Authority == fp {
			count++
		}
	}
	if count >= MaxMintKeysPerAuthority {
		return fmt.Errorf("more than %d mint keys of one authority", MaxMintKeysPerAuthority)
	}
	s.mintKeys = append(s.mintKeys, k)
	return nil
}

// finishMintKeys checks what the document's kind and method allow: a
// consensus of a method before MintKeyMethod carries none (older
// authorities would not compute them).
func (p *statusParser) finishMintKeys() error {
	s := p.s
	if len(s.mintKeys) > 0 && s.kind == "consensus" && s.methods[0] < MintKeyMethod {
		return fmt.Errorf("mint-key in a method-%d consensus", s.methods[0])
	}
	return nil
}

// consensusMintKeys (method 5, spec §7.2): every voter's own mint keys. A
// mint is one authority's; the consensus, signed by a majority, lists
// it, so no majority per key is needed or meaningful.
func consensusMintKeys(votes []*Vote) []MintKey {
	var out []MintKey
	for _, v := range votes {
		for _, k := range v.MintKeys {
			if k.Authority == v.Authority.Fingerprint {
				out = append(out, k)
			}
		}
	}
	slices.SortFunc(out, compareMintKeys)
	return slices.CompactFunc(out, func(a, b MintKey) bool { return compareMintKeys(a, b) == 0 })
}

// MintKeysAt returns the consensus's mint keys that are valid for credits
// redeemed at epoch (keys of epoch and epoch-1, spec 12 §3.2).
func (c *Consensus) MintKeysAt(epoch uint64) []MintKey {
	var out []MintKey
	for _, k := range c.MintKeys {
		if k.Epoch == epoch || k.Epoch+1 == epoch {
			out = append(out, k)
		}
	}
	return out
}

// MintEpoch returns the mint epoch of t under the consensus's mint-epoch
// parameter (spec 12 §2.1).
func (c *Consensus) MintEpoch(t time.Time) uint64 {
	sec := c.Param(ParamMintEpoch, DefaultParams[ParamMintEpoch])
	if sec < 1 {
		sec = 1
	}
	return uint64(t.Unix()) / uint64(sec)
}

// String renders a key for logs.
func (k MintKey) String() string {
	return k.Authority.String()[:8] + "/" + strconv.FormatUint(k.Epoch, 10) + "/" + strconv.FormatUint(k.Denom, 10)
}
