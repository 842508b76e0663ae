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
	tx, err := db.sql.BeginTx(ctx, nil)
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
