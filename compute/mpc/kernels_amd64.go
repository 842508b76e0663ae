package mpc

import "golang.org/x/sys/cpu"

// The AVX-512 kernels (embed4_amd64.s, dot_amd64.s), installed where the
// CPU has AVX-512 F and DQ (VPMULLQ). Each gives the bits of its portable
// loop in kernels.go.
func init() {
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ {
		embed4 = embed4AVX512
		dotU64Kernel = dotU64AVX512
		dot2U64Kernel = dot2U64AVX512
		dotI32U64Kernel = dotI32U64AVX512
		dotI16U64Kernel = dotI16U64AVX512
	}
}

// embed4AVX512: for i < n (a multiple of 16), with y_k = lo_k + 2^32*hi_k
// and lo_k the low 32 bits of y_k read as signed,
// acc[i] += sum_k lo_k*r_k[i] mod 2^64 and accHi[i] += sum_k hi_k*r_k[i]
// mod 2^32, the int16 entries sign-extended; acc[i] + accHi[i]*2^32 is
// then the four rows' sum mod 2^64 (embed4_amd64.s).
//
//go:noescape
func embed4AVX512(acc *uint64, accHi *uint32, r0, r1, r2, r3 *int16, y *uint64, n int)

// dotU64AVX512 returns sum_i a[i]*b[i] mod 2^64 for i < n, n a multiple of 8.
//
//go:noescape
func dotU64AVX512(a, b *uint64, n int) uint64

// dot2U64AVX512 returns the dot products of a with b and with c (n a
// multiple of 8), reading a once.
//
//go:noescape
func dot2U64AVX512(a, b, c *uint64, n int) (ab, ac uint64)

// dotI32U64AVX512 returns sum_i w[i]*x[i] mod 2^64, w sign-extended, n a
// multiple of 8.
//
//go:noescape
func dotI32U64AVX512(w *int32, x *uint64, n int) uint64

// dotI16U64AVX512 returns sum_i w[i]*x[i] mod 2^64, w sign-extended from
// 16 bits, n a multiple of 8.
//
//go:noescape
func dotI16U64AVX512(w *int16, x *uint64, n int) uint64
