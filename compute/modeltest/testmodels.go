// Package modeltest finds the model files for tests: the directory named by
// UNFED_MODEL_DIR, else the small real models shipped in the repository
// (compute/tinymodels/files). A shipped file's SHA-256 is checked before a
// test gets its path, whichever directory it comes from. A missing file
// fails the test with a clear message; it never skips. Only tests import it.
package modeltest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/unfed/unfed/compute/tinymodels"
)

// FindDir returns the model directory: $UNFED_MODEL_DIR, else the shipped
// models.
func FindDir() (string, error) {
	if d := os.Getenv("UNFED_MODEL_DIR"); d != "" {
		return d, nil
	}
	d, err := tinymodels.SourceDir()
	if err != nil {
		return "", fmt.Errorf("modeltest: UNFED_MODEL_DIR is unset and %w", err)
	}
	return d, nil
}

// Find returns the absolute path of the model file name, after checking a
// shipped file's SHA-256.
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
		return "", fmt.Errorf("modeltest: model file %s: %w (unset UNFED_MODEL_DIR to use the shipped models, or point it at a folder holding the file)", name, err)
	}
	if _, shipped := tinymodels.Lookup(name); shipped {
		if err := tinymodels.Verify(p); err != nil {
			return "", fmt.Errorf("modeltest: %w", err)
		}
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
