//go:build !purego

package dpf

import "golang.org/x/sys/cpu"

// The kernels run where the CPU has AES-NI and SSE4.1, and the VAES ones
// where it also has AVX-512 VAES.
func init() {
	aesni = cpu.X86.HasAES && cpu.X86.HasSSE41
	vaes = aesni && cpu.X86.HasAVX512F && cpu.X86.HasAVX512VAES
}

// mmoAsm is mmoBatch (n > 0, dst and src long enough) on the kernels:
// mmoBlocks512 does the multiple-of-16 part of a batch with contiguous
// outputs (stride 2 words: EvalLess's levels, the leaf conversion),
// mmoBlocks the rest. It reports false, having done nothing, without
// AES-NI. The kernels are called directly, not through function values:
// escape analysis sees their //go:noescape only in a direct call, and a call
// through a function value would move every caller's seed arrays to the
// heap (a dealer allocated several of them per key it dealt).
func mmoAsm(rk *roundKeys, dst, src []uint64, n, stride int) bool {
	if !aesni {
		return false
	}
	if n16 := n &^ 15; vaes && stride == 2 && n16 > 0 {
		mmoBlocks512(rk, &dst[0], &src[0], n16)
		if n == n16 {
			return true
		}
		dst, src, n = dst[2*n16:], src[2*n16:], n-n16
	}
	mmoBlocks(rk, &dst[0], &src[0], n, 8*stride)
	return true
}

// expandAsm is one level of expandTree for pairs parents, both children
// each, on the kernels: expandParents512 does an even number of them,
// expandPairs the odd one or all. It reports false, having done nothing,
// without AES-NI or without parents.
func expandAsm(cur []uint64, curT []byte, next []uint64, nextT []byte, pairs int, cw *levelCW) bool {
	if !aesni || pairs <= 0 {
		return false
	}
	_, _, _, _ = cur[2*pairs-1], curT[pairs-1], next[4*pairs-1], nextT[2*pairs-1]
	done := 0
	if vaes {
		done = pairs &^ 1
		if done > 0 {
			expandParents512(fixed.l.rk, fixed.r.rk, &cur[0], &curT[0], &next[0], &nextT[0], done, cw)
		}
	}
	if done < pairs {
		expandPairs(fixed.l.rk, fixed.r.rk, &cur[2*done], &curT[done], &next[4*done], &nextT[2*done], pairs-done, cw)
	}
	return true
}

// leavesAsm is leafOutputs for the first leaves leaves of eight outputs
// (leaves > 0) on convertLeaves. It reports false, having done nothing,
// without VAES.
func leavesAsm(out, seeds []uint64, t []byte, final []uint64, neg uint64, leaves int) bool {
	if !vaes {
		return false
	}
	_, _, _, _ = out[8*leaves-1], seeds[2*leaves-1], t[leaves-1], final[7]
	convertLeaves(fixed.c.rk, &out[0], &seeds[0], &t[0], &final[0], neg, leaves)
	return true
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
