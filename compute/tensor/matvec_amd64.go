//go:build !purego

package tensor

import (
	"runtime"

	"golang.org/x/sys/cpu"
)

// The wrappers here call the product kernels directly and report whether
// they ran; where they did not (the CPU lacks the kernel's features, or the
// matrix does not suit it), the caller runs the portable Go code, as it does
// on other architectures and with the purego tag (matvec_other.go). Every
// kernel gives the portable code's bits (the same fused multiply-add per
// slot in the same order; exact integer sums); only speed differs. The row
// kernel in matvec_avx2_amd64.s computes out[r] = Dot(row r, x) in the
// canonical order for a run of F32 rows whose length is a multiple of 16;
// the batched kernels are in gemm_avx512_amd64.s (gen_kernels.go).

// The kernels run where the CPU has them: useAVX2 selects the AVX2 + FMA
// kernels (the F32 row kernel, Dot's slots, the Q8_0 kernels without VNNI),
// useAVX512 the batched AVX-512 float and attention kernels, useVNNI the
// AVX-512 VNNI Q8_0 kernels and activation quantiser. Tests flip them.
func init() {
	useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA
	useAVX512 = useAVX2 && cpu.X86.HasAVX512F
	useVNNI = useAVX512 && cpu.X86.HasAVX512VNNI
}

//go:noescape
func matVecF32AVX2(w, x, out *float32, rows, cols int)

//go:noescape
func q8QuantAVX512(x *float32, dst *byte, nb int)

type gemmKernel = func(w *byte, ldw int, x *float32, ldx int, out *float32, ldo int, kb, nr int)

type q8Kernel = func(p *byte, groups, nb int, x *byte, ldx int, out *float32, ldo int)

type attnValueKernel = func(aT, v *float32, ldv, n int, outT *float32, p0 int)

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
// with the AVX2 row kernel; hasKernel(m) must hold.
func matVecRows(out []float32, m *Mat, x []float32, lo, hi int) {
	x = x[:m.Cols]
	out = out[:hi-lo]
	_ = m.f32[hi*m.Cols-1] // bounds check for the kernel's reads
	matVecF32AVX2(&m.f32[lo*m.Cols], &x[0], &out[0], hi-lo, m.Cols)
}

// rowTile is the number of rows a row kernel call covers, so that the rows
// stay in cache while every vector of a batch passes over them.
const rowTile = 32

// matVecAsm is matMulRows on the AVX2 row kernel: rows [lo, hi) of w·x_t
// for the n vectors of x. It reports false, having done nothing, where
// hasKernel(w) does not hold.
func matVecAsm(out []float32, w *Mat, x []float32, n, lo, hi int) bool {
	if !hasKernel(w) {
		return false
	}
	cols, rows := w.Cols, w.Rows
	for r0 := lo; r0 < hi; r0 += rowTile {
		r1 := min(r0+rowTile, hi)
		for t := 0; t < n; t++ {
			matVecRows(out[t*rows+r0:t*rows+r1], w, x[t*cols:(t+1)*cols], r0, r1)
		}
	}
	return true
}

// gemmTileTokens is the number of activation rows a float kernel call takes.
const gemmTileTokens = 6

// gemmBlockBytes is the size of the block of weight rows the float kernels
// keep in L2 (2 MiB here) while the tiles of vectors pass; 512 KiB was the
// best of 32 KiB … 4 MiB on the reference machine (docs/perf/compute.md).
var gemmBlockBytes = 512 << 10

// tokenTiles returns the vectors in the float kernels' order: tiles of
// gemmTileTokens vectors (the last may be shorter), tile t0 at the same
// offset t0·cols as in x, with its vectors interleaved by blocks of 16
// (block k of vector t of a tile of tt at 16(k·tt + t)).
func (b *Batch) tokenTiles() []float32 {
	if b.n == 1 {
		return b.x
	}
	k := &b.tiles
	k.once.Do(func() {
		if cap(k.x) < len(b.x) {
			k.x = make([]float32, len(b.x))
		}
		k.x = k.x[:len(b.x)]
		cols := b.cols
		for t0 := 0; t0 < b.n; t0 += gemmTileTokens {
			tt := min(gemmTileTokens, b.n-t0)
			tile := k.x[t0*cols : (t0+tt)*cols]
			for t := 0; t < tt; t++ {
				src := b.x[(t0+t)*cols : (t0+t+1)*cols]
				for k := 0; k < cols/16; k++ {
					copy(tile[(k*tt+t)*16:(k*tt+t+1)*16], src[16*k:16*k+16])
				}
			}
		}
	})
	return k.x
}

// gemmAsm computes rows [lo, hi) with the batched float kernels: tiles of
// four rows by up to six vectors (sixteen rows for an F32 product with one
// vector), rows left over one at a time. It reports false, having done
// nothing, where hasGemm does not hold.
func gemmAsm(out []float32, w *Mat, b *Batch, lo, hi int) bool {
	if !hasGemm(w, b.n) {
		return false
	}
	n, cols, rows := b.n, w.Cols, w.Rows
	kb, ldw, ldx, ldo := cols/16, w.rowBytes, 4*cols, 4*rows
	_, _ = out[(n-1)*rows+hi-1], w.data[hi*ldw-1] // bounds checks for the kernels
	ks := gemmKernels[w.Type]
	x := b.tokenTiles()
	_ = x[n*cols-1]
	if n == 1 && w.Type == F32 {
		// decode: tiles of 16 rows (gemmF32R16T1), the rest as below
		if r16 := lo + (hi-lo)/16*16; r16 > lo {
			gemmF32R16T1(&w.data[lo*ldw], ldw, &x[0], ldx, &out[lo], ldo, kb, (r16-lo)/16)
			lo = r16
		}
	}
	r4 := lo + (hi-lo)/4*4
	if n == 1 {
		if r4 > lo {
			ks[0][0](&w.data[lo*ldw], ldw, &x[0], ldx, &out[lo], ldo, kb, (r4-lo)/4)
		}
		if r4 < hi {
			ks[1][0](&w.data[r4*ldw], ldw, &x[0], ldx, &out[r4], ldo, kb, hi-r4)
		}
		runtime.KeepAlive(w)
		return true
	}
	// Rows in blocks whose weights stay in L2 while every tile of vectors
	// passes over them; within a block, one kernel call runs all its
	// four-row tiles for one tile of vectors, which stays in L1.
	rb := max(4, (gemmBlockBytes/ldw)&^3)
	for b0 := lo; b0 < r4; b0 += rb {
		b1 := min(b0+rb, r4)
		for t0 := 0; t0 < n; t0 += gemmTileTokens {
			tt := min(gemmTileTokens, n-t0)
			ks[0][tt-1](&w.data[b0*ldw], ldw, &x[t0*cols], ldx, &out[t0*rows+b0], ldo, kb, (b1-b0)/4)
		}
	}
	if r4 < hi {
		for t0 := 0; t0 < n; t0 += gemmTileTokens {
			tt := min(gemmTileTokens, n-t0)
			ks[1][tt-1](&w.data[r4*ldw], ldw, &x[t0*cols], ldx, &out[t0*rows+r4], ldo, kb, hi-r4)
		}
	}
	runtime.KeepAlive(w)
	return true
}

// q8PanelAsm is q8PanelGeneric on the VNNI or AVX2 kernels: groups packed
// groups (p) of nb blocks each times the n activation rows of acts (row t at
// acts[t*ldx:]), row 16g+i of vector t to out[t*ldo+16g+i]. It reports
// false, having done nothing, without AVX2.
func q8PanelAsm(p []byte, groups, nb int, acts []byte, ldx, n int, out []float32, ldo int) bool {
	if !useAVX2 {
		return false
	}
	_, _, _ = p[groups*nb*q8ChunkBytes-1], acts[(n-1)*ldx+nb*q8ActBytes-1], out[(n-1)*ldo+groups*q8GroupRows-1]
	if useVNNI {
		for t0 := 0; t0 < n; t0 += len(q8Kernels) {
			tt := min(len(q8Kernels), n-t0)
			q8Kernels[tt-1](&p[0], groups, nb, &acts[t0*ldx], ldx, &out[t0*ldo], 4*ldo)
		}
		return true
	}
	for t0 := 0; t0 < n; t0 += len(q8AVX2Kernels) {
		tt := min(len(q8AVX2Kernels), n-t0)
		q8AVX2Kernels[tt-1](&p[0], groups, nb, &acts[t0*ldx], ldx, &out[t0*ldo], 4*ldo)
	}
	return true
}

// quantizeActsAsm is quantizeActs on the AVX-512 quantiser (x not empty).
// It reports false, having done nothing, without VNNI (the quantiser is
// used with the VNNI product kernels only).
func quantizeActsAsm(dst []byte, x []float32) bool {
	if !useVNNI {
		return false
	}
	nb := len(x) / Q8Block
	_ = dst[nb*q8ActBytes-1]
	q8QuantAVX512(&x[0], &dst[0], nb)
	return true
}
