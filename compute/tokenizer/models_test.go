package tokenizer

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/unfed/unfed/compute/gguf"
)

// modelPath finds a shared test model: $UNFED_MODEL_DIR, else ../shared/models
// relative to the repository root.
func modelPath(t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv("UNFED_MODEL_DIR")
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				dir = filepath.Join(d, "..", "shared", "models")
				break
			}
			if filepath.Dir(d) == d {
				t.Fatal("tokenizer test: repository root (go.mod) not found")
			}
		}
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("test model %s not found (set UNFED_MODEL_DIR to the shared models folder): %v", name, err)
	}
	return p
}

func ggufTokenizer(t testing.TB, name string) *Tokenizer {
	t.Helper()
	f, err := gguf.Open(modelPath(t, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tok, err := FromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func llama2cTokenizer(t testing.TB) *Tokenizer {
	t.Helper()
	fd, err := os.Open(modelPath(t, "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	tok, err := FromLlama2C(fd, 512)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
