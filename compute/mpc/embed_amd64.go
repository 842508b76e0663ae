package mpc

import "golang.org/x/sys/cpu"

// The AVX-512 kernel of the embedding inner product, installed where the CPU
// has AVX-512 F and DQ (VPMULLQ).
func init() {
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ {
		embed4 = embed4AVX512
	}
}

// embed4AVX512 is implemented in embed_amd64.s: for i < n (a multiple of
// 8), acc[i] += y[0]*r0[i] + y[1]*r1[i] + y[2]*r2[i] + y[3]*r3[i] mod 2^64,
// the int32 entries sign-extended.
//
//go:noescape
func embed4AVX512(acc *uint64, r0, r1, r2, r3 *int32, y *uint64, n int)
