//go:build !purego

package tensor

import (
	"math"
	"math/rand/v2"
	"testing"
)

// kernelLevels returns the kernel selections this machine can run, as
// functions that set them; restore resets the detected ones.
func kernelLevels() (levels map[string]func(), restore func()) {
	a2, a5, vn := useAVX2, useAVX512, useVNNI
	levels = map[string]func(){"generic": func() { useAVX2, useAVX512, useVNNI = false, false, false }}
	if a2 {
		levels["avx2"] = func() { useAVX2, useAVX512, useVNNI = true, false, false }
	}
	if a5 {
		levels["avx512"] = func() { useAVX2, useAVX512, useVNNI = true, true, false }
	}
	if vn {
		levels["avx512-vnni"] = func() { useAVX2, useAVX512, useVNNI = true, true, true }
	}
	return levels, func() { useAVX2, useAVX512, useVNNI = a2, a5, vn }
}

// TestF32RowKernelMatchesGeneric: the AVX2 + FMA row kernel gives the
// portable code's bits, so a result does not depend on the CPU's features.
func TestF32RowKernelMatchesGeneric(t *testing.T) {
	if !useAVX2 || !useAVX512 || !useVNNI {
		t.Logf("kernels available here: avx2 %v, avx512 %v, vnni %v; the others are not exercised", useAVX2, useAVX512, useVNNI)
	}
	r := rand.New(rand.NewPCG(9, 9))
	rows, cols := 37, 896
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(r.NormFloat64())
	}
	x := make([]float32, cols)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	var data []byte
	for i := 0; i < rows; i++ {
		data, _ = QuantizeRow(data, F32, w[i*cols:(i+1)*cols])
	}
	m, _ := NewMat(F32, rows, cols, data)
	levels, restore := kernelLevels()
	defer restore()
	row := make([]float32, cols)
	for name, set := range levels {
		set()
		if !hasKernel(m) {
			continue
		}
		for _, span := range [][2]int{{0, rows}, {3, 4}, {5, 8}, {1, rows}} {
			out := make([]float32, span[1]-span[0])
			matVecRows(out, m, x, span[0], span[1])
			for i := span[0]; i < span[1]; i++ {
				m.Row(row, i)
				if want := Dot(row, x); math.Float32bits(out[i-span[0]]) != math.Float32bits(want) {
					t.Fatalf("%s rows %v: row %d = %v, generic %v", name, span, i, out[i-span[0]], want)
				}
			}
		}
	}
}

// TestQ8ScaleEdgeCases: zero, subnormal, tiny, large, negative, Inf and NaN
// f16 scales give the bits of the portable reference in every kernel,
// packed or not.
func TestQ8ScaleEdgeCases(t *testing.T) {
	scales := []uint16{0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00, 0xbc00, 0x7bff, 0x7c00, 0xfc00, 0x7e00, 0x7d01, 0xfd00, 0x1234, 0x8001}
	var row []byte
	for i, s := range scales {
		row = append(row, byte(s), byte(s>>8))
		for j := 0; j < 32; j++ {
			row = append(row, byte(int8(j-16+i)))
		}
	}
	x := make([]float32, 32*len(scales))
	for i := range x {
		x[i] = 0.5 + float32(i%5)
	}
	levels, restore := kernelLevels()
	defer restore()
	for _, blocks := range []int{len(scales), 8} { // with and without the Inf/NaN blocks
		cols := 32 * blocks
		want, err := DotQ8(row[:34*blocks], x[:cols])
		if err != nil {
			t.Fatal(err)
		}
		if blocks == 8 && (math.IsInf(float64(want), 0) || want != want) {
			t.Fatalf("finite blocks gave %v", want)
		}
		// 17 identical rows: a whole group and one row of the next
		var data []byte
		for r := 0; r < 17; r++ {
			data = append(data, row[:34*blocks]...)
		}
		for name, set := range levels {
			set()
			for _, pack := range []bool{false, true} {
				m, _ := NewMat(Q8_0, 17, cols, data)
				if pack {
					if err := m.Pack(); err != nil {
						t.Fatal(err)
					}
				}
				out := make([]float32, 17)
				if err := MatMul(out, m, x[:cols], 1, 1); err != nil {
					t.Fatal(err)
				}
				for r, v := range out {
					if math.Float32bits(v) != math.Float32bits(want) {
						t.Fatalf("%s packed %v blocks %d row %d: %v %#x, want %v %#x", name, pack, blocks, r, v, math.Float32bits(v), want, math.Float32bits(want))
					}
				}
			}
		}
	}
}
