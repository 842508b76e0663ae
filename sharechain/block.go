package sharechain

// Share blocks (spec 12 §4): the codec and the producer's signature. Pure
// functions; chain.go decides what a valid block is in context.

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/unfed/unfed/relay/keys"
)

// Block layout limits (spec 12 §4.1).
const (
	BlockVersion = 1
	MaxUncles    = 2
	MaxEntries   = 1024
	// MaxUnits bounds the work units one entry claims.
	MaxUnits = 1 << 24
	// MaxBlockLen bounds an encoded block.
	MaxBlockLen = blockHead + MaxUncles*32 + 2 + MaxEntries*(4+2+MaxCreditLen+ed25519.SignatureSize) + ed25519.SignatureSize
	blockHead   = 1 + 8 + 8 + 32 + ed25519.PublicKeySize + 1
	blockDomain = "unfed-share-v1"
)

// BlockID is H(the block's encoding, signature included).
type BlockID [32]byte

// Entry is one redeemed credit, the work units it paid for, and the
// spend signature binding both to the relay it paid (spec 12 §2.5). An entry
// of 0 units is a stake entry: the relay locks the credit's value as its
// stake (spec 12 §7.1) instead of paying it into the pool.
type Entry struct {
	Units    uint32
	Credit   *Credit
	SpendSig []byte
}

const spendDomain = "unfed-spend-v1"

// SpendMessage is what a credit's one-time key signs when the client pays
// relay fp for units: "unfed-spend-v1" || credit id || fp || u32 units.
func SpendMessage(id CreditID, fp keys.Fingerprint, units uint32) []byte {
	m := make([]byte, 0, len(spendDomain)+32+keys.FingerprintLen+4)
	m = append(m, spendDomain...)
	m = append(m, id[:]...)
	m = append(m, fp[:]...)
	return binary.BigEndian.AppendUint32(m, units)
}

// VerifySpend reports whether e's spend signature binds it to relay fp: the
// credit's nonce is the one-time Ed25519 public key that must have signed,
// under the cofactored rule of spec 12 §2.5 (spendsig.go).
func (e Entry) VerifySpend(fp keys.Fingerprint) bool {
	if e.Credit == nil {
		return false
	}
	return verifySpendSig(spendCheckOf(e, fp))
}

// Block is a share block.
type Block struct {
	Height   uint64
	TimeMs   uint64
	Parent   BlockID
	Producer ed25519.PublicKey
	Uncles   []BlockID
	Entries  []Entry
	Sig      []byte

	raw []byte // the encoding, set by Sign and ParseBlock
	id  BlockID
}

// unsigned encodes every field before the signature.
func (b *Block) unsigned() ([]byte, error) {
	if len(b.Producer) != ed25519.PublicKeySize {
		return nil, errors.New("sharechain: block producer is not an Ed25519 key")
	}
	if len(b.Uncles) > MaxUncles || len(b.Entries) > MaxEntries {
		return nil, fmt.Errorf("sharechain: block of %d uncles, %d entries", len(b.Uncles), len(b.Entries))
	}
	out := make([]byte, 0, 1024)
	out = append(out, BlockVersion)
	out = binary.BigEndian.AppendUint64(out, b.Height)
	out = binary.BigEndian.AppendUint64(out, b.TimeMs)
	out = append(out, b.Parent[:]...)
	out = append(out, b.Producer...)
	out = append(out, byte(len(b.Uncles)))
	for _, u := range b.Uncles {
		out = append(out, u[:]...)
	}
	out = binary.BigEndian.AppendUint16(out, uint16(len(b.Entries)))
	for _, e := range b.Entries {
		if e.Credit == nil {
			return nil, errors.New("sharechain: block entry without a credit")
		}
		if len(e.SpendSig) != ed25519.SignatureSize {
			return nil, errors.New("sharechain: block entry without a spend signature")
		}
		c := e.Credit.Marshal()
		out = binary.BigEndian.AppendUint32(out, e.Units)
		out = binary.BigEndian.AppendUint16(out, uint16(len(c)))
		out = append(out, c...)
		out = append(out, e.SpendSig...)
	}
	return out, nil
}

func signedMessage(unsigned []byte) []byte {
	return append([]byte(blockDomain), unsigned...)
}

// Sign sets Producer to id's key, signs the block and fixes its encoding.
func (b *Block) Sign(id *keys.Identity) error {
	b.Producer = id.Public
	u, err := b.unsigned()
	if err != nil {
		return err
	}
	b.Sig = id.Sign(signedMessage(u))
	b.raw = append(u, b.Sig...)
	b.id = sha256.Sum256(b.raw)
	return nil
}

// Marshal returns the encoding of a signed or parsed block.
func (b *Block) Marshal() []byte { return b.raw }

// ID returns the block id of a signed or parsed block.
func (b *Block) ID() BlockID { return b.id }

// Fingerprint returns the producer's relay fingerprint.
func (b *Block) Fingerprint() keys.Fingerprint { return keys.FingerprintOf(b.Producer) }

// Units returns the work units of the block's own entries.
func (b *Block) Units() uint64 {
	var s uint64
	for _, e := range b.Entries {
		if e.Units != UnbondUnits {
			s += uint64(e.Units)
		}
	}
	return s
}

// ParseBlock decodes a block and checks its layout and signature.
func ParseBlock(raw []byte) (*Block, error) {
	if len(raw) > MaxBlockLen {
		return nil, fmt.Errorf("sharechain: block of %d bytes exceeds %d", len(raw), MaxBlockLen)
	}
	r := reader{b: raw}
	if v := r.u8(); v != BlockVersion {
		if r.err != nil {
			return nil, r.err
		}
		return nil, fmt.Errorf("sharechain: block version %d", v)
	}
	b := &Block{}
	b.Height = r.u64()
	b.TimeMs = r.u64()
	copy(b.Parent[:], r.bytes(32))
	b.Producer = ed25519.PublicKey(append([]byte(nil), r.bytes(ed25519.PublicKeySize)...))
	nu := int(r.u8())
	if nu > MaxUncles {
		return nil, fmt.Errorf("sharechain: block with %d uncles, at most %d", nu, MaxUncles)
	}
	for i := 0; i < nu && r.err == nil; i++ {
		var u BlockID
		copy(u[:], r.bytes(32))
		b.Uncles = append(b.Uncles, u)
	}
	ne := int(r.u16())
	if ne > MaxEntries {
		return nil, fmt.Errorf("sharechain: block with %d entries, at most %d", ne, MaxEntries)
	}
	for i := 0; i < ne && r.err == nil; i++ {
		units := r.u32()
		cl := int(r.u16())
		cb := r.bytes(cl)
		sig := r.bytes(ed25519.SignatureSize)
		if r.err != nil {
			break
		}
		if units > MaxUnits && units != UnbondUnits {
			return nil, fmt.Errorf("sharechain: block entry %d claims %d units, want 0..%d or %d (unbond)", i, units, MaxUnits, uint32(UnbondUnits))
		}
		c, err := ParseCredit(cb)
		if err != nil {
			return nil, fmt.Errorf("sharechain: block entry %d: %w", i, err)
		}
		b.Entries = append(b.Entries, Entry{Units: units, Credit: c, SpendSig: append([]byte(nil), sig...)})
	}
	body := r.off
	b.Sig = append([]byte(nil), r.bytes(ed25519.SignatureSize)...)
	if r.err != nil {
		return nil, r.err
	}
	if r.off != len(raw) {
		return nil, fmt.Errorf("sharechain: %d trailing bytes after block", len(raw)-r.off)
	}
	if !keys.Verify(b.Producer, signedMessage(raw[:body]), b.Sig) {
		return nil, errors.New("sharechain: bad block signature")
	}
	b.raw = append([]byte(nil), raw...)
	b.id = sha256.Sum256(b.raw)
	return b, nil
}

// reader is a bounds-checked big-endian cursor; after the first short read
// every read returns zeros and err stays set.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return make([]byte, 0)
	}
	if n < 0 || len(r.b)-r.off < n {
		r.err = errors.New("sharechain: truncated block")
		return make([]byte, 0)
	}
	out := r.b[r.off : r.off+n]
	r.off += n
	return out
}

func pad(b []byte, n int) []byte {
	if len(b) == n {
		return b
	}
	return make([]byte, n)
}

func (r *reader) u8() uint8   { return r.bytesN(1)[0] }
func (r *reader) u16() uint16 { return binary.BigEndian.Uint16(r.bytesN(2)) }
func (r *reader) u32() uint32 { return binary.BigEndian.Uint32(r.bytesN(4)) }
func (r *reader) u64() uint64 { return binary.BigEndian.Uint64(r.bytesN(8)) }
func (r *reader) bytesN(n int) []byte {
	return pad(r.bytes(n), n)
}
