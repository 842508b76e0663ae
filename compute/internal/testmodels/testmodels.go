// Package testmodels finds the shared model files for tests: the directory
// named by UNFED_MODEL_DIR, else ../shared/models relative to the repository
// root. A missing file fails the test with a clear message; it never skips.
package testmodels

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir returns the model directory or fails t.
func Dir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("UNFED_MODEL_DIR"); d != "" {
		return d
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatalf("testmodels: %v", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			m := filepath.Join(d, "..", "shared", "models")
			if _, err := os.Stat(m); err != nil {
				t.Fatalf("testmodels: UNFED_MODEL_DIR is unset and %s does not exist", m)
			}
			return m
		}
		if filepath.Dir(d) == d {
			t.Fatalf("testmodels: UNFED_MODEL_DIR is unset and no go.mod above %s", wd)
		}
	}
}

// Path returns the path of the model file name or fails t.
func Path(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(Dir(t), name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("testmodels: model file %s: %v (set UNFED_MODEL_DIR to the shared models folder)", name, err)
	}
	return p
}
