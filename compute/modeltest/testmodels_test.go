package modeltest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestShippedModelsWithoutEnv: with UNFED_MODEL_DIR unset the tests use the
// files shipped in the repository, so a fresh clone needs no model folder.
func TestShippedModelsWithoutEnv(t *testing.T) {
	t.Setenv("UNFED_MODEL_DIR", "")
	for _, name := range []string{"stories260K.gguf", "stories260K.bin", "tok512.bin", "llama-2-tiny-random.gguf"} {
		p, err := Find(name)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(filepath.ToSlash(p), "compute/tinymodels/files/") {
			t.Errorf("%s resolved to %s, want the shipped copy", name, p)
		}
	}
}

// TestAlteredModelInEnvDirRejected: a shipped name in UNFED_MODEL_DIR whose
// contents differ from the pinned file fails with a clear error.
func TestAlteredModelInEnvDirRejected(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tok512.bin"), []byte("not the tokenizer"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("UNFED_MODEL_DIR", dir)
	if _, err := Find("tok512.bin"); err == nil || !strings.Contains(err.Error(), "SHA-256 mismatch") {
		t.Fatalf("altered tok512.bin: %v", err)
	}
	if _, err := Find("absent.gguf"); err == nil || !strings.Contains(err.Error(), "absent.gguf") {
		t.Fatalf("missing file: %v", err)
	}
}
