package mmap

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// anonHuge maps n bytes starting on a 2 MiB boundary and advises the kernel
// to back them with huge pages; the advice failing (a kernel without
// transparent huge pages) leaves ordinary pages. The mapping is made 2 MiB
// larger and the parts before the boundary and after the n bytes are
// unmapped.
func anonHuge(n int) ([]byte, func() error, error) {
	size := uintptr(n + hugePage)
	p, err := unix.MmapPtr(-1, 0, nil, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return nil, nil, err
	}
	lead := (hugePage - uintptr(p)%hugePage) % hugePage
	start := unsafe.Add(p, lead)
	if lead > 0 {
		_ = unix.MunmapPtr(p, lead)
	}
	if tail := size - lead - uintptr(n); tail > 0 {
		_ = unix.MunmapPtr(unsafe.Add(start, n), tail)
	}
	data := unsafe.Slice((*byte)(start), n)
	_ = unix.Madvise(data, unix.MADV_HUGEPAGE)
	return data, func() error { return unix.MunmapPtr(start, uintptr(n)) }, nil
}
