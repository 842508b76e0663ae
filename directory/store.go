package directory

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/unfed/unfed/relay/keys"
)

// ConsensusFile is the name of the stored consensus in a data directory
// (spec/04-directory.md §10.2).
const ConsensusFile = "cached-consensus"

var errNoStoredConsensus = errors.New("directory: no stored consensus")

// Store keeps the last valid consensus in a data directory, so that a
// restarted node can use it until its valid-until. The zero value with Dir
// set is ready to use.
type Store struct {
	// Dir is the data directory.
	Dir string

	mu sync.Mutex // serializes writes
}

func (s *Store) path() string { return filepath.Join(s.Dir, ConsensusFile) }

// Save writes a consensus document atomically. Callers save only documents
// they verified.
func (s *Store) Save(raw []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("directory: %w", err)
	}
	return keys.WriteFileAtomic(s.path(), raw, 0o600)
}

// Load reads the stored consensus and verifies it against trust at now. A
// stored consensus that no longer verifies (for example, expired) is an
// error; the file is left in place.
func (s *Store) Load(trust AuthoritySet, now time.Time) (*Consensus, error) {
	f, err := os.Open(s.path())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoStoredConsensus
	}
	if err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, MaxConsensusSize+1))
	if err != nil {
		return nil, fmt.Errorf("directory: reading %s: %w", s.path(), err)
	}
	if len(raw) > MaxConsensusSize {
		return nil, fmt.Errorf("directory: %s is larger than %d bytes", s.path(), MaxConsensusSize)
	}
	u, err := ParseConsensus(raw)
	if err != nil {
		return nil, fmt.Errorf("directory: %s: %w", s.path(), err)
	}
	return u.Verify(trust, now)
}
