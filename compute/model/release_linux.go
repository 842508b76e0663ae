//go:build linux

package model

import (
	"os"
	"syscall"
	"unsafe"
)

// fileMapped: gguf.Open and llama2c.Open map files on Linux.
const fileMapped = true

// dropPages tells the kernel that this process no longer needs the whole
// pages inside b, a view into a read-only file mapping: they leave the
// process's resident set (the page cache keeps them) and are read again
// from the file if touched. Used after a matrix has been packed into its
// own memory, so the weights are not resident twice.
func dropPages(b []byte) {
	if len(b) == 0 {
		return
	}
	ps := uintptr(os.Getpagesize())
	start := uintptr(unsafe.Pointer(&b[0]))
	end := start + uintptr(len(b))
	lo, hi := (start+ps-1)&^(ps-1), end&^(ps-1)
	if lo >= hi {
		return
	}
	_ = syscall.Madvise(b[lo-start:hi-start], syscall.MADV_DONTNEED)
}
