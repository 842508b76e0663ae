package gguf

import (
	"os"
	"path/filepath"
	"testing"
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
				t.Fatal("gguf test: repository root (go.mod) not found")
			}
		}
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("test model %s not found (set UNFED_MODEL_DIR to the shared models folder): %v", name, err)
	}
	return p
}
