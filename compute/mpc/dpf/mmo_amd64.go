package dpf

import "golang.org/x/sys/cpu"

// The AES-NI kernels, installed where the CPU has AES-NI and SSE4.1.
func init() {
	if cpu.X86.HasAES && cpu.X86.HasSSE41 {
		asmMMO, asmExpand = mmoBlocks, expandPairs
	}
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512VAES {
		asmLeaves, asmExpand512 = convertLeaves, expandParents512
		asmMMO512 = mmoBlocks512
	}
}

// convertLeaves is implemented in leaves_amd64.s: EvalAll's leaf
// conversion and output correction for leaves of eight outputs, with
// VAES on 512-bit registers (neg is all ones for party 1, else 0).
//
//go:noescape
func convertLeaves(rk *roundKeys, out, seeds *uint64, t *byte, final *uint64, neg uint64, leaves int)

// mmoBlocks is implemented in mmo_amd64.s: for i < n, the 16 bytes at
// dst + i*stride become AES(rk, src[i]) xor src[i], src being n contiguous
// 16-byte blocks. stride is in bytes.
//
//go:noescape
func mmoBlocks(rk *roundKeys, dst, src *uint64, n, stride int)

// expandPairs is implemented in expand_amd64.s: one tree level for pairs
// parents, both children each (EvalAll's portable loop documents the
// arithmetic).
//
//go:noescape
func expandPairs(rkL, rkR *roundKeys, cur *uint64, curT *byte, next *uint64, nextT *byte, pairs int, cw *levelCW)

// expandParents512 is implemented in expand512_amd64.s: expandPairs for an
// even number of parents, with VAES on 512-bit registers.
//
//go:noescape
func expandParents512(rkL, rkR *roundKeys, cur *uint64, curT *byte, next *uint64, nextT *byte, parents int, cw *levelCW)

// mmoBlocks512 is implemented in mmo512_amd64.s: mmoBlocks for outputs of
// stride 16 bytes and n a multiple of 16, with VAES on 512-bit registers.
//
//go:noescape
func mmoBlocks512(rk *roundKeys, dst, src *uint64, n int)
