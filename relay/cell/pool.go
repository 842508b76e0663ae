package cell

import "sync"

// Large frames are recycled. A confidential circuit moves about a megabyte
// of PREP per party and token in ClassLarge cells: each made fresh, its
// bytes land in memory the process has not touched since the last
// collection (cold in the caches, and after the scavenger's returns, faulted
// in again), and that copy cost a dealer more than its sealing. A frame the
// switch has written, or whose fragment a reassembly has joined, goes back
// to this free list, and the next large cell is made in it while its bytes
// are still in the cache.

// largePool holds ClassLarge frames nothing refers to.
var largePool = sync.Pool{New: func() any { return new([ClassLarge]byte) }}

// NewLarge returns a ClassLarge frame, from the free list when one is there.
// Its bytes are not zeroed: the caller writes every byte of it (header,
// payload and zero padding) before it leaves the process.
func NewLarge() []byte { return largePool.Get().(*[ClassLarge]byte)[:] }

// FreeLarge hands f back to the free list if it is a whole ClassLarge frame
// (any other slice is left to the collector). The caller must hold the only
// reference to f and not touch it again.
func FreeLarge(f []byte) {
	if len(f) == ClassLarge && cap(f) == ClassLarge {
		largePool.Put((*[ClassLarge]byte)(f))
	}
}
