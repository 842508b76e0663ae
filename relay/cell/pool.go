package cell

import (
	"sync"
	"unsafe"
)

// Frames are recycled, per size class. A confidential circuit moves about a megabyte
// of PREP per party and token in ClassLarge cells: each made fresh, its
// bytes land in memory the process has not touched since the last
// collection (cold in the caches, and after the scavenger's returns, faulted
// in again), and that copy cost a dealer more than its sealing. A frame the
// switch has written, or whose fragment a reassembly has joined, goes back
// to this free list, and the next large cell is made in it while its bytes
// are still in the cache; a client's cells of every class go back the same
// way once written (relay/origin).

// framePools[i] holds frames of Classes[i] bytes nothing refers to, as
// pointers to their first byte (a frame's length and capacity are its
// class).
var framePools [len(Classes)]sync.Pool

func classIndex(n int) int {
	for i, c := range Classes {
		if c == n {
			return i
		}
	}
	return -1
}

// NewFrame returns a frame of class bytes (one of Classes), from the free
// list when one is there. Its bytes are not zeroed: the caller writes every
// byte of it (header, payload and zero padding) before it leaves the
// process, or clears it.
func NewFrame(class int) []byte {
	i := classIndex(class)
	if i < 0 {
		return make([]byte, class)
	}
	if p, ok := framePools[i].Get().(*byte); ok {
		return unsafe.Slice(p, class)
	}
	return make([]byte, class)
}

// FreeFrame hands f back to the free list if it is a whole frame of one of
// Classes (any other slice is left to the collector). The caller must hold
// the only reference to f and not touch it again.
func FreeFrame(f []byte) {
	if i := classIndex(len(f)); i >= 0 && cap(f) == len(f) {
		framePools[i].Put(unsafe.SliceData(f))
	}
}

// NewLarge is NewFrame(ClassLarge).
func NewLarge() []byte { return NewFrame(ClassLarge) }

// FreeLarge hands f back if it is a whole ClassLarge frame (FreeFrame);
// any other slice is left to the collector.
func FreeLarge(f []byte) {
	if len(f) == ClassLarge {
		FreeFrame(f)
	}
}

// Messages of several cells are joined into buffers of a power of two from
// msgMin to MaxMessage, recycled the same way: a party hands a PREP's
// message back once it has taken the PREP, a compute hop a HIDDEN or
// ACTIVATIONS message once it has decoded its rows (FreeMessage). A
// 128-row prompt of a small model crosses as a 32 KiB message in medium
// cells; joined into new memory at every hop it cost each hop eight or
// more first touches of a page, 12-18 µs each on the development VM.
const msgMin = 8 << 10

// msgPools[i] holds buffers of capacity msgMin << i.
var msgPools [8]sync.Pool // 8 KiB … 1 MiB

func msgClass(c int) int {
	for i := range msgPools {
		if msgMin<<i >= c {
			return i
		}
	}
	return -1
}

// newMessage returns a buffer of length 0 and a power-of-two capacity of at
// least n and under twice n, from the free list when one is there; n of
// half msgMin or less, or over MaxMessage, gets a new buffer of n.
func newMessage(n int) []byte {
	i := msgClass(n)
	if i < 0 || 2*n <= msgMin {
		return make([]byte, 0, n)
	}
	if b, ok := msgPools[i].Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, msgMin<<i)
}

// FreeMessage hands back a message buffer (a reassembled edge message) whose
// capacity is one of the joins' powers of two; any other slice is left to
// the collector. The caller must hold the only reference to b, from its
// first byte, and not touch it again.
func FreeMessage(b []byte) {
	if i := msgClass(cap(b)); i >= 0 && cap(b) == msgMin<<i {
		b = b[:0]
		msgPools[i].Put(&b)
	}
}
