package tensor

import "golang.org/x/sys/cpu"

// The row kernel in matvec_avx2_amd64.s computes out[r] = Dot(row r, x) in
// the canonical order for a run of F32 rows whose length is a multiple of
// 16. The batched kernels are in gemm_avx512_amd64.s (gen_kernels.go).

//go:noescape
func matVecF32AVX2(w, x, out *float32, rows, cols int)

//go:noescape
func q8QuantAVX512(x *float32, dst *byte, nb int)

type gemmKernel = func(w *byte, ldw int, x *float32, ldx int, out *float32, ldo int, kb, nr int)

type q8Kernel = func(p *byte, groups, nb int, x *byte, ldx int, out *float32, ldo int)

// useAVX512 selects the batched AVX-512 float kernels, useVNNI the AVX-512
// VNNI Q8_0 kernels and activation quantiser, useAVX2 the AVX2 + FMA
// kernels (the F32 row kernel, Dot's slots, the Q8_0 kernels without VNNI).
// Every selection gives the same bits as the portable Go code (the same
// fused multiply-add per slot in the same order; exact integer sums); only
// speed differs. Tests flip them.
var (
	useAVX512 = cpu.X86.HasAVX512F && useAVX2
	useVNNI   = cpu.X86.HasAVX512F && cpu.X86.HasAVX512VNNI && useAVX2
	useAVX2   = cpu.X86.HasAVX2 && cpu.X86.HasFMA
)

// hasKernel reports whether matVecRows handles m.
func hasKernel(m *Mat) bool { return useAVX2 && m.Cols%16 == 0 && m.Type == F32 }

// hasGemm reports whether the batched float kernels handle m with n vectors.
func hasGemm(m *Mat, n int) bool {
	return useAVX512 && m.Cols%16 == 0 && m.Type != Q8_0 && (n > 1 || m.Type != F32 || gemmDecodeF32)
}

// gemmDecodeF32 selects the AVX-512 four-row kernel over the AVX2 row
// kernel for F32 products with one vector.
var gemmDecodeF32 = true

// matVecRows computes out[i] = Dot(row lo+i, x) for rows [lo, hi), lo < hi,
// with an assembly kernel; hasKernel(m) must hold.
func matVecRows(out []float32, m *Mat, x []float32, lo, hi int) {
	x = x[:m.Cols]
	out = out[:hi-lo]
	_ = m.f32[hi*m.Cols-1] // bounds check for the kernel's reads
	matVecF32AVX2(&m.f32[lo*m.Cols], &x[0], &out[0], hi-lo, m.Cols)
}

type attnValueKernel = func(aT, v *float32, ldv, n int, outT *float32, p0 int)

// gemmF32R16 is F32 decode's kernel, 16 rows a tile (nil where there is no
// assembly: matvec_other.go).
var gemmF32R16 gemmKernel = gemmF32R16T1
