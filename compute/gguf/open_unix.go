//go:build unix

package gguf

import (
	"fmt"
	"math"
	"os"
	"syscall"
)

// Open maps the file at path read-only and parses it. The mapping lives until
// Close; tensor bytes are never copied.
func Open(path string) (*File, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	size := st.Size()
	if size < 24 {
		return nil, fmt.Errorf("gguf: %s: file too short (%d bytes)", path, size)
	}
	if size > math.MaxInt {
		return nil, fmt.Errorf("gguf: %s: file too large", path)
	}
	data, err := syscall.Mmap(int(fd.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("gguf: mmap %s: %w", path, err)
	}
	f, err := Parse(data)
	if err != nil {
		_ = syscall.Munmap(data)
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	f.unmap = syscall.Munmap
	return f, nil
}
