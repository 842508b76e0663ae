package keys

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// previousAfterGrace rotates a store's onion key, lets the grace period end,
// and reports whether the previous secret is still on disk or loaded, after
// the relay's periodic check and after a restart.
func previousAfterGrace(t *testing.T) (onDisk, loaded bool) {
	t.Helper()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	opts := Options{OnionLifetime: time.Hour, OnionGrace: 10 * time.Minute, Now: func() time.Time { return now }}
	dir := t.TempDir()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour)
	if rotated, err := s.RotateOnionIfDue(); err != nil || !rotated {
		t.Fatalf("rotation: %v %v", rotated, err)
	}
	old := filepath.Join(s.Dir(), onionOldFile)
	if _, err := os.Stat(old); err != nil {
		t.Fatalf("previous key not kept during its grace period: %v", err)
	}
	now = now.Add(10 * time.Minute)
	if _, err := s.RotateOnionIfDue(); err != nil {
		t.Fatal(err)
	}
	_, err = os.Stat(old)
	onDisk = !errors.Is(err, fs.ErrNotExist)
	s.mu.Lock()
	loaded = s.prevOnion != nil
	s.mu.Unlock()
	s2, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	loaded = loaded || s2.prevOnion != nil
	return onDisk, loaded
}

// TestPreviousOnionKeyDeleted: once the grace period ends the previous onion
// secret is gone from disk and memory (README §5.3), not kept until the next
// rotation. The mutation keeps it, and the test sees it.
func TestPreviousOnionKeyDeleted(t *testing.T) {
	if onDisk, loaded := previousAfterGrace(t); onDisk || loaded {
		t.Fatalf("previous onion key after its grace period: on disk %v, loaded %v", onDisk, loaded)
	}
	t.Run("mutation", func(t *testing.T) {
		keepExpiredOnion = true
		defer func() { keepExpiredOnion = false }()
		if onDisk, loaded := previousAfterGrace(t); !onDisk || !loaded {
			t.Fatal("the mutation should keep the previous key")
		}
	})
}
