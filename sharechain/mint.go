package sharechain

// A mint (spec 12 §2.3): per-epoch, per-denomination RSA keys that blindly
// sign credits against deposits its operator records. It logs what it saw
// (the blinded message and its blind signature) and nothing else.

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"

	"github.com/cloudflare/circl/blindsign/blindrsa"
)

// MintKeyBits is the size of the mint keys this implementation creates.
const MintKeyBits = 2048

// MaxIssue bounds the blinded messages of one issuance request.
const MaxIssue = 1024

// Issuer is what a wallet needs from a mint, in process or over HTTP.
type Issuer interface {
	// PublicKeys returns the keys the mint signs with now.
	PublicKeys(ctx context.Context) ([]MintPublicKey, error)
	// Issue blindly signs each message with the key id, against deposit.
	Issue(ctx context.Context, deposit string, id KeyID, blinded [][]byte) ([][]byte, error)
}

// mintKey is one private mint key.
type mintKey struct {
	pub    MintPublicKey
	signer blindrsa.Signer
	priv   *rsa.PrivateKey
}

// Mint signs credits. Its keys are fixed at creation; rotating to a new
// epoch is a new Mint (keys expire implicitly, spec 12 §3.2).
type Mint struct {
	db *DB // optional: the issuance log

	mu   sync.Mutex // guards keys
	keys map[KeyID]*mintKey
}

// NewMint creates keys for epoch and each denomination. db, if not nil,
// receives the issuance log.
func NewMint(db *DB, epoch uint64, denoms []uint64) (*Mint, error) {
	m := &Mint{db: db, keys: make(map[KeyID]*mintKey)}
	for _, d := range denoms {
		priv, err := rsa.GenerateKey(rand.Reader, MintKeyBits)
		if err != nil {
			return nil, fmt.Errorf("sharechain: mint key: %w", err)
		}
		if err := m.addKey(epoch, d, priv); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Mint) addKey(epoch, denom uint64, priv *rsa.PrivateKey) error {
	pub := MintPublicKey{Epoch: epoch, Denom: denom, Key: &priv.PublicKey}
	var ks KeySet
	if err := ks.Add(pub); err != nil {
		return err
	}
	if m.keys == nil {
		m.keys = make(map[KeyID]*mintKey)
	}
	m.keys[pub.ID()] = &mintKey{pub: pub, signer: blindrsa.NewSigner(priv), priv: priv}
	return nil
}

// PublicKeys implements Issuer.
func (m *Mint) PublicKeys(context.Context) ([]MintPublicKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]MintPublicKey, 0, len(m.keys))
	for _, k := range m.keys {
		out = append(out, k.pub)
	}
	return out, nil
}

// Issue implements Issuer: it signs each blinded message with key id and
// logs (key id, deposit, blinded, blind signature) before returning.
func (m *Mint) Issue(ctx context.Context, deposit string, id KeyID, blinded [][]byte) ([][]byte, error) {
	if len(blinded) == 0 || len(blinded) > MaxIssue {
		return nil, fmt.Errorf("sharechain: issue %d messages, want 1..%d", len(blinded), MaxIssue)
	}
	m.mu.Lock()
	k, ok := m.keys[id]
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("sharechain: unknown mint key %x", id)
	}
	sigs := make([][]byte, len(blinded))
	for i, b := range blinded {
		s, err := k.signer.BlindSign(b)
		if err != nil {
			return nil, fmt.Errorf("sharechain: blind sign: %w", err)
		}
		sigs[i] = s
	}
	if m.db != nil {
		if err := m.db.logIssuance(ctx, id, deposit, blinded, sigs); err != nil {
			return nil, err
		}
	}
	return sigs, nil
}

func (db *DB) logIssuance(ctx context.Context, id KeyID, deposit string, blinded, sigs [][]byte) error {
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return fmt.Errorf("sharechain: issuance log: %w", err)
	}
	defer tx.Rollback()
	for i := range blinded {
		if _, err := tx.Exec("INSERT INTO issuance(key_id, deposit, blinded, blind_sig) VALUES (?,?,?,?)",
			id[:], deposit, blinded[i], sigs[i]); err != nil {
			return fmt.Errorf("sharechain: issuance log: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sharechain: issuance log: %w", err)
	}
	return nil
}

// IssuanceRecord is one row of a mint's issuance log.
type IssuanceRecord struct {
	KeyID    KeyID
	Deposit  string
	Blinded  []byte
	BlindSig []byte
}

// IssuanceLog returns the mint's records, oldest first.
func (db *DB) IssuanceLog(ctx context.Context) ([]IssuanceRecord, error) {
	rows, err := db.sql.QueryContext(ctx, "SELECT key_id, deposit, blinded, blind_sig FROM issuance ORDER BY seq")
	if err != nil {
		return nil, fmt.Errorf("sharechain: issuance log: %w", err)
	}
	defer rows.Close()
	var out []IssuanceRecord
	for rows.Next() {
		var r IssuanceRecord
		var id []byte
		if err := rows.Scan(&id, &r.Deposit, &r.Blinded, &r.BlindSig); err != nil {
			return nil, fmt.Errorf("sharechain: issuance log: %w", err)
		}
		copy(r.KeyID[:], id)
		out = append(out, r)
	}
	return out, rows.Err()
}

// WriteKeys writes the mint's private keys as PEM blocks (mode 0600), each
// with Epoch and Denom headers.
func (m *Mint) WriteKeys(path string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []byte
	for _, k := range m.keys {
		der, err := x509.MarshalPKCS8PrivateKey(k.priv)
		if err != nil {
			return fmt.Errorf("sharechain: %w", err)
		}
		out = append(out, pem.EncodeToMemory(&pem.Block{
			Type:    "UNFED MINT KEY",
			Headers: map[string]string{"Epoch": strconv.FormatUint(k.pub.Epoch, 10), "Denom": strconv.FormatUint(k.pub.Denom, 10)},
			Bytes:   der,
		})...)
	}
	// Write and rename, so a crash leaves the old keys or the new ones.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		return fmt.Errorf("sharechain: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("sharechain: %w", err)
	}
	return nil
}

// LoadMint reads keys written by WriteKeys.
func LoadMint(db *DB, path string) (*Mint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sharechain: %w", err)
	}
	m := &Mint{db: db}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "UNFED MINT KEY" {
			return nil, fmt.Errorf("sharechain: %s: unexpected PEM block %q", path, blk.Type)
		}
		epoch, err1 := strconv.ParseUint(blk.Headers["Epoch"], 10, 64)
		denom, err2 := strconv.ParseUint(blk.Headers["Denom"], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("sharechain: %s: %w", path, err)
		}
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("sharechain: %s: %w", path, err)
		}
		priv, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("sharechain: %s: not an RSA key", path)
		}
		if err := m.addKey(epoch, denom, priv); err != nil {
			return nil, err
		}
	}
	if len(m.keys) == 0 {
		return nil, fmt.Errorf("sharechain: %s: no mint keys", path)
	}
	return m, nil
}

// Rotate keeps the mint's keys in step with the epochs (spec 12 §2.1): it
// adds a key per denomination for epoch and epoch+1 where they are missing,
// drops keys of epochs before epoch-1 (their credits can no longer be
// redeemed, §3.2), and reports whether the key set changed, so that the
// caller writes the keys again.
func (m *Mint) Rotate(epoch uint64, denoms []uint64) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	have := map[[2]uint64]bool{}
	changed := false
	for id, k := range m.keys {
		if k.pub.Epoch+1 < epoch {
			delete(m.keys, id)
			changed = true
			continue
		}
		have[[2]uint64{k.pub.Epoch, k.pub.Denom}] = true
	}
	for _, e := range []uint64{epoch, epoch + 1} {
		for _, d := range denoms {
			if have[[2]uint64{e, d}] {
				continue
			}
			priv, err := rsa.GenerateKey(rand.Reader, MintKeyBits)
			if err != nil {
				return changed, fmt.Errorf("sharechain: mint key: %w", err)
			}
			if err := m.addKey(e, d, priv); err != nil {
				return changed, err
			}
			changed = true
		}
	}
	return changed, nil
}

// AuthorityMint is the mint an authority runs (spec 12 §2.1): its keys live
// in path (WriteKeys' format) and rotate with the epoch; its issuance log is
// in db.
type AuthorityMint struct {
	*Mint
	path   string
	denoms []uint64

	rot   sync.Mutex // serializes Rotate and the write of the key file
	dirty bool       // keys changed and not yet written; guarded by rot
}

// OpenAuthorityMint loads the keys in path (an empty mint when there are
// none yet) and rotates them to the epoch of nowMs.
func OpenAuthorityMint(db *DB, path string, denoms []uint64, epochSeconds uint64, nowMs uint64) (*AuthorityMint, error) {
	if len(denoms) == 0 || len(denoms) > 16 || epochSeconds == 0 {
		return nil, fmt.Errorf("sharechain: mint of %d denominations, epoch of %d s: want 1..16 and a positive epoch", len(denoms), epochSeconds)
	}
	m, err := LoadMint(db, path)
	if errors.Is(err, os.ErrNotExist) {
		m, err = &Mint{db: db, keys: map[KeyID]*mintKey{}}, nil
	}
	if err != nil {
		return nil, err
	}
	am := &AuthorityMint{Mint: m, path: path, denoms: denoms}
	if _, err := am.KeysAt(epochSeconds, nowMs); err != nil {
		return nil, err
	}
	return am, nil
}

// KeysAt rotates the keys to the epoch of nowMs (writing the key file when
// they changed) and returns the public keys: those of the previous, the
// current and the next epoch.
func (am *AuthorityMint) KeysAt(epochSeconds uint64, nowMs uint64) ([]MintPublicKey, error) {
	am.rot.Lock()
	defer am.rot.Unlock()
	changed, err := am.Rotate(nowMs/1000/epochSeconds, am.denoms)
	if err != nil {
		return nil, err
	}
	if am.dirty = am.dirty || changed; am.dirty {
		if err := am.WriteKeys(am.path); err != nil {
			return nil, err
		}
		am.dirty = false
	}
	pubs, _ := am.PublicKeys(context.Background())
	return pubs, nil
}

// SharedWindow reports an 8-byte window present in a record of a and in a
// record of b, ignoring windows inside the public values: the linkage
// check of spec 12 P6, run between a mint's issuance records and relays'
// redemption records (TestMintCannotLink, and testnet's
// TestPaidCompletion on the running processes' stores).
func SharedWindow(a, b, public [][]byte) ([]byte, bool) {
	const w = 8
	pub := map[string]bool{}
	for _, p := range public {
		for i := 0; i+w <= len(p); i++ {
			pub[string(p[i:i+w])] = true
		}
	}
	seen := map[string]bool{}
	for _, r := range a {
		for i := 0; i+w <= len(r); i++ {
			if s := string(r[i : i+w]); !pub[s] {
				seen[s] = true
			}
		}
	}
	for _, r := range b {
		for i := 0; i+w <= len(r); i++ {
			if seen[string(r[i:i+w])] {
				return r[i : i+w], true
			}
		}
	}
	return nil, false
}
