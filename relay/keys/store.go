package keys

import (
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Files in <data-dir>/keys (spec/README.md §5.5). Each holds one PEM block.
const (
	KeysDir         = "keys"
	identityFile    = "identity_ed25519.key"
	onionFile       = "onion.key"
	onionOldFile    = "onion.key.old"
	linkFile        = "link_noise.key"
	pemIdentity     = "UNFED ED25519 IDENTITY KEY"
	pemOnion        = "UNFED ONION KEY"
	pemLink         = "UNFED NOISE LINK KEY"
	createdHeader   = "Created"
	maxKeyFileBytes = 16 << 10
)

// Default onion key schedule, as Tor's: a new onion key every 28 days, the
// previous one still accepted for 7 days.
const (
	DefaultOnionLifetime = 28 * 24 * time.Hour
	DefaultOnionGrace    = 7 * 24 * time.Hour
)

// ErrKeyFileMode is returned when a key file is readable or writable by
// anyone but its owner.
var ErrKeyFileMode = errors.New("keys: key file mode is not 0600")

// Options tune a Store. The zero value is ready to use.
type Options struct {
	// OnionLifetime is how long an onion key is current; 0 means 28 days.
	OnionLifetime time.Duration
	// OnionGrace is how long the previous onion key is still accepted; 0 means 7 days.
	OnionGrace time.Duration
	// Rand is the randomness for new keys; nil means crypto/rand.
	Rand io.Reader
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (o *Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// Store is the key material of one node, kept in its data directory.
type Store struct {
	dir      string
	opts     Options
	identity *Identity
	link     *LinkKey

	mu        sync.Mutex // guards onion and prevOnion
	onion     *OnionKey
	prevOnion *OnionKey
}

// Open loads the keys under dataDir/keys, creating any that do not exist yet.
// An existing file with a wrong mode or bad contents is an error.
func Open(dataDir string, opts Options) (*Store, error) {
	if opts.OnionLifetime <= 0 {
		opts.OnionLifetime = DefaultOnionLifetime
	}
	if opts.OnionGrace <= 0 {
		opts.OnionGrace = DefaultOnionGrace
	}
	dir := filepath.Join(dataDir, KeysDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("keys: creating %s: %w", dir, err)
	}
	s := &Store{dir: dir, opts: opts}
	now := opts.now()

	seed, _, err := loadOrCreate(dir, identityFile, pemIdentity, now, func() ([]byte, error) {
		id, err := NewIdentity(opts.Rand)
		if err != nil {
			return nil, err
		}
		return id.Seed(), nil
	})
	if err != nil {
		return nil, err
	}
	if s.identity, err = IdentityFromSeed(seed); err != nil {
		return nil, fmt.Errorf("keys: %s: %w", identityFile, err)
	}

	lk, _, err := loadOrCreate(dir, linkFile, pemLink, now, func() ([]byte, error) {
		k, err := NewLinkKey(opts.Rand)
		if err != nil {
			return nil, err
		}
		return k.Private[:], nil
	})
	if err != nil {
		return nil, err
	}
	if s.link, err = LinkKeyFromPrivate(lk); err != nil {
		return nil, fmt.Errorf("keys: %s: %w", linkFile, err)
	}

	sec, created, err := loadOrCreate(dir, onionFile, pemOnion, now, func() ([]byte, error) {
		k, err := NewOnionKey(opts.Rand, now)
		if err != nil {
			return nil, err
		}
		return k.Secret(), nil
	})
	if err != nil {
		return nil, err
	}
	if s.onion, err = OnionKeyFromSecret(sec, created); err != nil {
		return nil, fmt.Errorf("keys: %s: %w", onionFile, err)
	}
	if sec, created, err := readKeyFile(filepath.Join(dir, onionOldFile), pemOnion); err == nil {
		if s.prevOnion, err = OnionKeyFromSecret(sec, created); err != nil {
			return nil, fmt.Errorf("keys: %s: %w", onionOldFile, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := s.expirePreviousLocked(now); err != nil {
		return nil, err
	}
	return s, nil
}

// keepExpiredOnion, set only by tests, keeps the previous onion key past its
// grace period, as before issue 23 (TestPreviousOnionKeyDeleted's mutation).
var keepExpiredOnion bool

// expirePreviousLocked deletes the previous onion key once its grace period
// is over (README.md §5.3): after that no handshake may use it, and a secret
// that no longer exists cannot be taken to decrypt recorded handshakes.
// Its file is overwritten with zeros before it is removed.
func (s *Store) expirePreviousLocked(now time.Time) error {
	if s.prevOnion == nil || now.Sub(s.onion.Created) < s.opts.OnionGrace || keepExpiredOnion {
		return nil
	}
	path := filepath.Join(s.dir, onionOldFile)
	if f, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
		if st, err := f.Stat(); err == nil {
			_, _ = f.Write(make([]byte, st.Size()))
			_ = f.Sync()
		}
		f.Close()
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("keys: deleting the expired onion key: %w", err)
	}
	s.prevOnion = nil
	return nil
}

// Identity returns the node's identity key.
func (s *Store) Identity() *Identity { return s.identity }

// Link returns the node's Noise static link key.
func (s *Store) Link() *LinkKey { return s.link }

// Dir returns the key directory.
func (s *Store) Dir() string { return s.dir }

// OnionKeys returns the current onion key and the previous one while it is
// still within its grace period (nil otherwise).
func (s *Store) OnionKeys() (current, previous *OnionKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.prevOnion
	// The previous key was retired when the current one was created.
	if prev != nil && s.opts.now().Sub(s.onion.Created) >= s.opts.OnionGrace {
		prev = nil
	}
	return s.onion, prev
}

// RotateOnionIfDue replaces the current onion key with a new one when it is
// older than the configured lifetime; the old key is kept as the previous one
// for the grace period, and deleted, from memory and disk, by the first call
// after it ends. It reports whether it rotated.
func (s *Store) RotateOnionIfDue() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.now()
	if err := s.expirePreviousLocked(now); err != nil {
		return false, err
	}
	if now.Sub(s.onion.Created) < s.opts.OnionLifetime {
		return false, nil
	}
	next, err := NewOnionKey(s.opts.Rand, now)
	if err != nil {
		return false, err
	}
	if err := writeKeyFile(filepath.Join(s.dir, onionOldFile), pemOnion, s.onion.Secret(), s.onion.Created); err != nil {
		return false, err
	}
	if err := writeKeyFile(filepath.Join(s.dir, onionFile), pemOnion, next.Secret(), next.Created); err != nil {
		return false, err
	}
	s.prevOnion, s.onion = s.onion, next
	return true, nil
}

func loadOrCreate(dir, name, pemType string, now time.Time, create func() ([]byte, error)) ([]byte, time.Time, error) {
	path := filepath.Join(dir, name)
	secret, created, err := readKeyFile(path, pemType)
	if err == nil {
		return secret, created, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, time.Time{}, err
	}
	if secret, err = create(); err != nil {
		return nil, time.Time{}, err
	}
	created = now.UTC().Truncate(time.Second)
	if err := writeKeyFile(path, pemType, secret, created); err != nil {
		return nil, time.Time{}, err
	}
	return secret, created, nil
}

// readKeyFile reads one PEM key file, checking its mode first. A missing file
// yields an error wrapping fs.ErrNotExist.
func readKeyFile(path, pemType string) ([]byte, time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("keys: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("keys: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, time.Time{}, fmt.Errorf("keys: %s is not a regular file", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, time.Time{}, fmt.Errorf("%w: %s has mode %04o; fix it with chmod 600", ErrKeyFileMode, path, st.Mode().Perm())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes+1))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("keys: reading %s: %w", path, err)
	}
	if len(data) > maxKeyFileBytes {
		return nil, time.Time{}, fmt.Errorf("keys: %s is larger than %d bytes", path, maxKeyFileBytes)
	}
	return decodeKey(path, pemType, data)
}

func decodeKey(path, pemType string, data []byte) ([]byte, time.Time, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, time.Time{}, fmt.Errorf("keys: %s is corrupt: no PEM block", path)
	}
	if len(trimSpace(rest)) != 0 {
		return nil, time.Time{}, fmt.Errorf("keys: %s is corrupt: trailing data after the key", path)
	}
	if block.Type != pemType {
		return nil, time.Time{}, fmt.Errorf("keys: %s is corrupt: holds %q, want %q", path, block.Type, pemType)
	}
	var created time.Time
	if v, ok := block.Headers[createdHeader]; ok {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("keys: %s is corrupt: bad %s header: %w", path, createdHeader, err)
		}
		created = t.UTC()
	}
	return block.Bytes, created, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == '\n' || b[0] == '\r' || b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

// writeKeyFile writes a key file atomically: a 0600 temporary file in the same
// directory, synced, then renamed over the target, then the directory synced.
func writeKeyFile(path, pemType string, secret []byte, created time.Time) error {
	block := &pem.Block{Type: pemType, Bytes: secret, Headers: map[string]string{createdHeader: created.UTC().Format(time.RFC3339)}}
	return WriteFileAtomic(path, pem.EncodeToMemory(block), 0o600)
}

// WriteFileAtomic writes data to path through a temporary file and a rename,
// so a reader sees either the old or the new contents, never a mix.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("keys: writing %s: %w", path, err)
	}
	tmpName := tmp.Name()
	cleanup := func(err error) error {
		tmp.Close()
		os.Remove(tmpName)
		return fmt.Errorf("keys: writing %s: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		return cleanup(err)
	}
	if _, err := tmp.Write(data); err != nil {
		return cleanup(err)
	}
	if err := tmp.Sync(); err != nil {
		return cleanup(err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmpName)
		return fmt.Errorf("keys: writing %s: %w", path, err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		os.Remove(tmpName)
		return fmt.Errorf("keys: writing %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
