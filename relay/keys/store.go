package keys

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
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
	checkHeader     = "Check"
	maxKeyFileBytes = 16 << 10
	// FingerprintFile, in the data directory itself, records the identity
	// the directory has held (as Tor's <DataDirectory>/fingerprint does), so
	// that a lost identity key is noticed rather than silently replaced.
	FingerprintFile = "fingerprint"
	// keyCheckContext domain-separates the key file check value (spec §5.5).
	keyCheckContext = "unfed-key-file-check-v1"
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

// ErrDirMode is returned when the data directory or its keys directory is
// accessible by anyone but its owner.
var ErrDirMode = errors.New("keys: directory mode is not 0700")

// ErrKeyCorrupt is returned when a key file does not parse or fails its
// check value (a flipped bit would otherwise load as another key).
var ErrKeyCorrupt = errors.New("keys: key file is corrupt")

// ErrIdentityLost is returned when the data directory once held an identity
// (its fingerprint file says so) whose key file is now missing or differs.
// A new identity is never created in its place: the operator restores the
// key from a backup, or removes the fingerprint file to start over as a new
// relay.
var ErrIdentityLost = errors.New("keys: the identity this data directory held is missing")

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
	// Log receives warnings (a data directory whose mode was tightened);
	// nil means slog.Default().
	Log *slog.Logger
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
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	for _, d := range []string{dataDir, dir} {
		if err := checkDirMode(d, log); err != nil {
			return nil, err
		}
	}
	s := &Store{dir: dir, opts: opts}
	now := opts.now()

	marker, err := readFingerprintFile(dataDir)
	if err != nil {
		return nil, err
	}
	idPath := filepath.Join(dir, identityFile)
	if _, err := os.Lstat(idPath); errors.Is(err, fs.ErrNotExist) && marker != nil {
		return nil, fmt.Errorf("%w: %s is gone but %s names identity %s; restore the key from a backup, "+
			"or delete %s to become a new relay", ErrIdentityLost, idPath, filepath.Join(dataDir, FingerprintFile), marker, FingerprintFile)
	}
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
		return nil, fmt.Errorf("%w: %s: %w", ErrKeyCorrupt, idPath, err)
	}
	fp := s.identity.Fingerprint()
	switch {
	case marker == nil:
		if err := WriteFileAtomic(filepath.Join(dataDir, FingerprintFile), []byte(fp.String()+"\n"), 0o600); err != nil {
			return nil, err
		}
	case *marker != fp:
		return nil, fmt.Errorf("%w: %s holds identity %s but %s names %s; restore the key from a backup, "+
			"or delete %s to become a new relay", ErrIdentityLost, idPath, fp, filepath.Join(dataDir, FingerprintFile), marker, FingerprintFile)
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

// checkDirMode refuses a directory that group or others can write (its
// keys could have been swapped), and tightens one they can only read to
// 0700 with a warning, as Tor does with its data directory (spec §5.5).
func checkDirMode(dir string, log *slog.Logger) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("keys: %s is not a directory", dir)
	}
	perm := st.Mode().Perm()
	if perm&0o022 != 0 {
		return fmt.Errorf("%w: %s has mode %04o: others can write where this node keeps its keys; "+
			"check the keys, then chmod 700", ErrDirMode, dir, perm)
	}
	if perm&0o077 != 0 {
		if err := os.Chmod(dir, perm&^0o077); err != nil {
			return fmt.Errorf("%w: %s has mode %04o and could not be made 0700: %w", ErrDirMode, dir, perm, err)
		}
		log.Warn("keys: directory was readable by group or others; its mode is now 0700", "dir", dir, "was", fmt.Sprintf("%04o", perm))
	}
	return nil
}

// readFingerprintFile returns the fingerprint recorded in dataDir, or nil
// when there is none.
func readFingerprintFile(dataDir string) (*Fingerprint, error) {
	path := filepath.Join(dataDir, FingerprintFile)
	b, err := readSmallFile(path, 256)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	fp, err := parseFingerprintFile(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrKeyCorrupt, path, err)
	}
	return &fp, nil
}

// parseFingerprintFile parses the fingerprint file: a FP and a newline
// (surrounding white space ignored).
func parseFingerprintFile(b []byte) (Fingerprint, error) {
	return ParseFingerprint(string(trimSpace(reverseTrim(b))))
}

func reverseTrim(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// readSmallFile reads a regular file of mode 0600 of at most limit bytes.
func readSmallFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("keys: %s is not a regular file", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; fix it with chmod 600", ErrKeyFileMode, path, st.Mode().Perm())
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("keys: reading %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("keys: %s is larger than %d bytes", path, limit)
	}
	return data, nil
}

// readKeyFile reads one PEM key file, checking its mode first. A missing file
// yields an error wrapping fs.ErrNotExist.
func readKeyFile(path, pemType string) ([]byte, time.Time, error) {
	data, err := readSmallFile(path, maxKeyFileBytes)
	if err != nil {
		return nil, time.Time{}, err
	}
	return decodeKey(path, pemType, data)
}

func decodeKey(path, pemType string, data []byte) ([]byte, time.Time, error) {
	corrupt := func(format string, args ...any) ([]byte, time.Time, error) {
		return nil, time.Time{}, fmt.Errorf("%w: %s: %s", ErrKeyCorrupt, path, fmt.Sprintf(format, args...))
	}
	block, rest := pem.Decode(data)
	if block == nil {
		return corrupt("no PEM block")
	}
	if len(trimSpace(rest)) != 0 {
		return corrupt("trailing data after the key")
	}
	if block.Type != pemType {
		return corrupt("holds %q, want %q", block.Type, pemType)
	}
	var created time.Time
	v, ok := block.Headers[createdHeader]
	if ok {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return corrupt("bad %s header: %v", createdHeader, err)
		}
		created = t.UTC()
	}
	// Files written before check values existed have none; every file
	// written since has one, and a mismatch is refused.
	if c, ok := block.Headers[checkHeader]; ok && c != keyCheck(pemType, v, block.Bytes) {
		return corrupt("%s value does not match its contents (a damaged file; restore it from a backup)", checkHeader)
	}
	return block.Bytes, created, nil
}

// keyCheck is a key file's check value (spec §5.5): the first 8 bytes of
// SHA-256(context || 0 || type || 0 || created || 0 || secret), in hex.
func keyCheck(pemType, created string, secret []byte) string {
	h := sha256.New()
	for _, p := range []string{keyCheckContext, pemType, created} {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	h.Write(secret)
	return hex.EncodeToString(h.Sum(nil)[:8])
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
	c := created.UTC().Format(time.RFC3339)
	block := &pem.Block{Type: pemType, Bytes: secret, Headers: map[string]string{createdHeader: c, checkHeader: keyCheck(pemType, c, secret)}}
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
