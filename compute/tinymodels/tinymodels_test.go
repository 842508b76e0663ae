package tinymodels

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unfed/unfed/compute/gguf"
)

func TestShippedFilesVerify(t *testing.T) {
	dir, err := SourceDir()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range Files {
		if err := Verify(filepath.Join(dir, f.Name)); err != nil {
			t.Errorf("%s: %v", f.Name, err)
		}
	}
}

// TestVerifyRejectsAlteredFile flips one byte of a shipped file: the check
// must fail, so a corrupted or substituted model is never used.
func TestVerifyRejectsAlteredFile(t *testing.T) {
	dir, err := SourceDir()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 1
	p := filepath.Join(t.TempDir(), "tok512.bin")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Verify(p); !errors.Is(err, ErrMismatch) {
		t.Fatalf("altered file: %v, want ErrMismatch", err)
	}
	if err := Verify(filepath.Join(t.TempDir(), "other.gguf")); err == nil || !strings.Contains(err.Error(), "not a shipped") {
		t.Fatalf("unknown name: %v", err)
	}
}

func TestInstallDefault(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "models")
	p, err := Install(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(p); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	// A second install reuses the verified copy.
	if p2, err := Install(dir); err != nil || p2 != p {
		t.Fatalf("second install: %q, %v", p2, err)
	}
}

// TestInstallRefusesAlteredEmbedded swaps the embedded bytes: Install must
// refuse rather than write a model that is not the pinned one.
func TestInstallRefusesAlteredEmbedded(t *testing.T) {
	old := embedded
	t.Cleanup(func() { embedded = old })
	bad := append([]byte(nil), defaultModel...)
	bad[100] ^= 0x80
	embedded = func() []byte { return bad }
	if _, err := Install(t.TempDir()); !errors.Is(err, ErrMismatch) {
		t.Fatalf("Install with altered embedded model: %v, want ErrMismatch", err)
	}
}

// TestReadmeAgrees keeps files/README.md's table and Files in step.
func TestReadmeAgrees(t *testing.T) {
	dir, err := SourceDir()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range Files {
		st, err := os.Stat(filepath.Join(dir, f.Name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() != f.Size {
			t.Errorf("%s: %d bytes on disk, Files says %d", f.Name, st.Size(), f.Size)
		}
		if !strings.Contains(string(readme), "| "+f.Name+" | ") || !strings.Contains(string(readme), f.SHA256) {
			t.Errorf("files/README.md lacks %s or its SHA-256", f.Name)
		}
	}
}
