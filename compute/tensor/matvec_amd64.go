package tensor

import "golang.org/x/sys/cpu"

// Row kernels in matvec_amd64.s; each computes out[r] = Dot(row r, x) in the
// canonical order for a run of rows whose length is a multiple of 16.

//go:noescape
func matVecF32(w, x, out *float32, rows, cols int)

//go:noescape
func matVecQ8(w *byte, x, out *float32, rows, blocks int, tab *float32)

//go:noescape
func matVecF32AVX2(w, x, out *float32, rows, cols int)

//go:noescape
func matVecQ8AVX2(w *byte, x, out *float32, rows, blocks int, tab *float32)

//go:noescape
func matVecQ8x2AVX512(w *byte, x, out *float32, pairs, blocks int)

// useAVX512 selects the two-row AVX-512 Q8_0 kernel (same bits again).
var useAVX512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX2

// useAVX2 selects the AVX2 kernels. They give the same bits as the SSE2 ones
// (same per-slot order, no FMA); only speed differs. Tests flip it.
var useAVX2 = cpu.X86.HasAVX2

var f16Table = func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for i := range t {
		t[i] = F16ToF32(uint16(i))
	}
	return &t
}()

// hasKernel reports whether matVecRows handles m.
func hasKernel(m *Mat) bool { return m.Cols%16 == 0 && (m.Type == F32 || m.Type == Q8_0) }

// matVecRows computes out[i] = Dot(row lo+i, x) for rows [lo, hi), lo < hi,
// with an assembly kernel; hasKernel(m) must hold.
func matVecRows(out []float32, m *Mat, x []float32, lo, hi int) {
	x = x[:m.Cols]
	out = out[:hi-lo]
	_ = m.data[hi*m.rowBytes-1] // bounds check for the kernel's reads
	switch {
	case m.Type == F32 && useAVX2:
		matVecF32AVX2(&m.f32[lo*m.Cols], &x[0], &out[0], hi-lo, m.Cols)
	case m.Type == F32:
		matVecF32(&m.f32[lo*m.Cols], &x[0], &out[0], hi-lo, m.Cols)
	case useAVX512 && hi-lo >= 2:
		pairs := (hi - lo) / 2
		matVecQ8x2AVX512(&m.data[lo*m.rowBytes], &x[0], &out[0], pairs, m.Cols/Q8Block)
		if lo+2*pairs < hi {
			r := hi - 1
			matVecQ8AVX2(&m.data[r*m.rowBytes], &x[0], &out[hi-1-lo], 1, m.Cols/Q8Block, &f16Table[0])
		}
	case useAVX2:
		matVecQ8AVX2(&m.data[lo*m.rowBytes], &x[0], &out[0], hi-lo, m.Cols/Q8Block, &f16Table[0])
	default:
		matVecQ8(&m.data[lo*m.rowBytes], &x[0], &out[0], hi-lo, m.Cols/Q8Block, &f16Table[0])
	}
}
