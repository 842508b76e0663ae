package mmap

import (
	"testing"
	"unsafe"
)

// TestAnonHugeAligned: a mapping of at least 2 MiB starts on a 2 MiB
// boundary (where a huge page can back it), is zeroed and writable to its
// last byte, and is released; a smaller one is an ordinary mapping.
func TestAnonHugeAligned(t *testing.T) {
	for _, n := range []int{hugePage, 5*hugePage/2 + 12345, 100} {
		b, release, err := AnonHuge(n)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != n || cap(b) != n {
			t.Fatalf("AnonHuge(%d): len %d cap %d", n, len(b), cap(b))
		}
		if a := uintptr(unsafe.Pointer(&b[0])); n >= hugePage && a%hugePage != 0 {
			t.Fatalf("AnonHuge(%d) at %#x, not on a 2 MiB boundary", n, a)
		}
		for i := 0; i < n; i += 4096 {
			if b[i] != 0 {
				t.Fatalf("AnonHuge(%d): byte %d is %d", n, i, b[i])
			}
			b[i] = 1
		}
		b[n-1] = 1
		if err := release(); err != nil {
			t.Fatalf("release of %d bytes: %v", n, err)
		}
	}
}
