// Package modeltest finds the shared model files for tests: the directory
// named by UNFED_MODEL_DIR, else ../shared/models relative to the repository
// root. A missing file fails the test with a clear message; it never skips.
// Only tests import it.
package modeltest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// FindDir returns the model directory.
func FindDir() (string, error) {
	if d := os.Getenv("UNFED_MODEL_DIR"); d != "" {
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("modeltest: %w", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			m := filepath.Join(d, "..", "shared", "models")
			if _, err := os.Stat(m); err != nil {
				return "", fmt.Errorf("modeltest: UNFED_MODEL_DIR is unset and %s does not exist", m)
			}
			return m, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("modeltest: UNFED_MODEL_DIR is unset and no go.mod above %s", wd)
		}
	}
}

// Find returns the absolute path of the model file name.
func Find(name string) (string, error) {
	dir, err := FindDir()
	if err != nil {
		return "", err
	}
	p, err := filepath.Abs(filepath.Join(dir, name))
	if err != nil {
		return "", fmt.Errorf("modeltest: %w", err)
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("modeltest: model file %s: %w (set UNFED_MODEL_DIR to the shared models folder)", name, err)
	}
	return p, nil
}

// Dir returns the model directory or fails t.
func Dir(t testing.TB) string {
	t.Helper()
	d, err := FindDir()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Path returns the path of the model file name or fails t.
func Path(t testing.TB, name string) string {
	t.Helper()
	p, err := Find(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
