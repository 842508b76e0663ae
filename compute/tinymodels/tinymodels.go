// Package tinymodels ships the small real models UNFED's demo and tests run
// offline: stories260K (GGUF, and llama2.c with tok512.bin) and
// llama-2-tiny-random.gguf, about 4 MB in all, under files/ with their
// licences and provenance (files/README.md).
//
// Every file's SHA-256 is pinned here and checked before the file is used.
// The default model, stories260K.gguf, is also embedded in the binaries that
// import this package, so `unfed testnet` and `make demo` need neither a
// model folder nor the network.
package tinymodels

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
)

// File describes one shipped model file.
type File struct {
	Name   string
	Size   int64
	SHA256 string // lower-case hex
}

// Default is the model the demo and the testnet run when none is given.
const Default = "stories260K.gguf"

// Files lists every shipped file; files/README.md gives licence and source.
var Files = []File{
	{"stories260K.gguf", 1185376, "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d"},
	{"stories260K.bin", 1056540, "b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696"},
	{"tok512.bin", 6227, "037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312"},
	{"llama-2-tiny-random.gguf", 1750560, "81f226c62d28ed4a1a9b9fa080fcd9f0cc40e0f9d5680036583ff98fbcd035cb"},
}

//go:embed files/stories260K.gguf
var defaultModel []byte

// ErrMismatch is returned when a file's contents are not the pinned ones.
var ErrMismatch = errors.New("tinymodels: SHA-256 mismatch")

// Lookup returns the pinned description of the file called name.
func Lookup(name string) (File, bool) {
	for _, f := range Files {
		if f.Name == name {
			return f, true
		}
	}
	return File{}, false
}

// verified caches paths already hashed in this process (path → size and
// modification time at the check), so tests that open a model many times
// hash it once.
var verified sync.Map

type stamp struct {
	size  int64
	mtime int64
}

// Verify checks the file at path against the pinned SHA-256 of the shipped
// file of the same base name. A name that is not shipped is an error.
func Verify(path string) error {
	f, ok := Lookup(filepath.Base(path))
	if !ok {
		return fmt.Errorf("tinymodels: %s is not a shipped model file", filepath.Base(path))
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("tinymodels: %w", err)
	}
	s := stamp{st.Size(), st.ModTime().UnixNano()}
	if v, ok := verified.Load(path); ok && v.(stamp) == s {
		return nil
	}
	if st.Size() != f.Size {
		return fmt.Errorf("%w: %s is %d bytes, want %d", ErrMismatch, path, st.Size(), f.Size)
	}
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("tinymodels: %w", err)
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return fmt.Errorf("tinymodels: reading %s: %w", path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return fmt.Errorf("%w: %s has %s, want %s", ErrMismatch, path, got, f.SHA256)
	}
	verified.Store(path, s)
	return nil
}

// embedded returns the embedded default model; tests replace it to show
// Install refuses altered contents.
var embedded = func() []byte { return defaultModel }

// Install writes the embedded default model into dir (created 0700 if
// missing) after checking its SHA-256, and returns the file's path. A copy
// already there that verifies is reused.
func Install(dir string) (string, error) {
	f, _ := Lookup(Default)
	p := filepath.Join(dir, Default)
	if err := Verify(p); err == nil {
		return p, nil
	}
	data := embedded()
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != f.SHA256 {
		return "", fmt.Errorf("%w: embedded %s has %s, want %s", ErrMismatch, Default, got, f.SHA256)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("tinymodels: %w", err)
	}
	tmp, err := os.CreateTemp(dir, Default+".*")
	if err != nil {
		return "", fmt.Errorf("tinymodels: %w", err)
	}
	if _, err := io.Copy(tmp, bytes.NewReader(data)); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return "", fmt.Errorf("tinymodels: writing %s: %w", p, err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("tinymodels: %w", err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("tinymodels: %w", err)
	}
	return p, nil
}

// SourceDir returns the files/ directory of this package in the source tree
// the binary was built from. Tests use it; an installed binary may not have
// the tree, and uses Install instead.
func SourceDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("tinymodels: cannot locate the source tree")
	}
	d := filepath.Join(filepath.Dir(file), "files")
	if st, err := os.Stat(d); err != nil || !st.IsDir() {
		return "", fmt.Errorf("tinymodels: source directory %s not found", d)
	}
	return d, nil
}
