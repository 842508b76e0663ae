// Package mmap maps model files read-only into memory, so that a process
// touches (and keeps resident) only the pages of the tensors it uses.
package mmap

import (
	"fmt"
	"os"
)

// File is a read-only mapping of a whole file.
type File struct {
	Data  []byte
	unmap func() error
}

// Open maps path read-only. An empty file maps to an empty slice.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mmap: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("mmap: %w", err)
	}
	size := st.Size()
	if size < 0 || size != int64(int(size)) {
		return nil, fmt.Errorf("mmap: %s: size %d out of range", path, size)
	}
	if size == 0 {
		return &File{unmap: func() error { return nil }}, nil
	}
	data, unmap, err := mapFile(f, int(size))
	if err != nil {
		return nil, fmt.Errorf("mmap: %s: %w", path, err)
	}
	return &File{Data: data, unmap: unmap}, nil
}

// Close unmaps the file; Data must not be used afterwards.
func (f *File) Close() error {
	if f == nil || f.unmap == nil {
		return nil
	}
	u := f.unmap
	f.unmap, f.Data = nil, nil
	return u()
}

// Anon returns n zeroed bytes outside the Go heap and a function that
// releases them (where the platform has no anonymous mappings, an ordinary
// slice and a no-op). The garbage collector neither scans nor counts this
// memory, so a large table that lives as long as the process does not raise
// the heap goal, and with it the resident memory, by its own size.
func Anon(n int) ([]byte, func() error, error) {
	if n <= 0 {
		return nil, func() error { return nil }, nil
	}
	b, release, err := anon(n)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap: %d anonymous bytes: %w", n, err)
	}
	return b, release, nil
}

// AnonHuge is Anon for memory that is streamed in full again and again (the
// weights a decode step reads): where the system offers transparent huge
// pages on request (Linux with transparent_hugepage set to madvise or
// always), the bytes start on a 2 MiB boundary and are advised as huge
// pages, so that streaming them takes one TLB entry per 2 MiB instead of
// one per 4 KiB. Elsewhere, or when n is below 2 MiB, it is Anon.
func AnonHuge(n int) ([]byte, func() error, error) {
	if n < hugePage {
		return Anon(n)
	}
	b, release, err := anonHuge(n)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap: %d anonymous bytes: %w", n, err)
	}
	return b, release, nil
}

const hugePage = 2 << 20
