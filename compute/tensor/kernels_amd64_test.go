package tensor

import (
	"math"
	"math/rand/v2"
	"testing"
)

// kernelLevels returns the kernel selections this machine can run, as
// functions that set them; restore resets the detected ones.
func kernelLevels() (levels map[string]func(), restore func()) {
	a2, a5 := useAVX2, useAVX512
	levels = map[string]func(){"sse2": func() { useAVX2, useAVX512 = false, false }}
	if a2 {
		levels["avx2"] = func() { useAVX2, useAVX512 = true, false }
	}
	if a5 {
		levels["avx512"] = func() { useAVX2, useAVX512 = true, true }
	}
	return levels, func() { useAVX2, useAVX512 = a2, a5 }
}

// TestAVX2MatchesSSE2: both kernel families give identical bits, so a
// result does not depend on the CPU's features.
func TestAVX2MatchesSSE2(t *testing.T) {
	if !useAVX2 || !useAVX512 {
		t.Logf("kernels available here: avx2 %v, avx512 %v; the others are not exercised", useAVX2, useAVX512)
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
	for _, typ := range []DType{F32, Q8_0} {
		var data []byte
		for i := 0; i < rows; i++ {
			data, _ = QuantizeRow(data, typ, w[i*cols:(i+1)*cols])
		}
		m, _ := NewMat(typ, rows, cols, data)
		levels, restore := kernelLevels()
		row := make([]float32, cols)
		for name, set := range levels {
			set()
			for _, span := range [][2]int{{0, rows}, {3, 4}, {5, 8}, {1, rows}} {
				out := make([]float32, span[1]-span[0])
				matVecRows(out, m, x, span[0], span[1])
				for i := span[0]; i < span[1]; i++ {
					m.Row(row, i)
					if want := Dot(row, x); math.Float32bits(out[i-span[0]]) != math.Float32bits(want) {
						restore()
						t.Fatalf("%v %s rows %v: row %d = %v, generic %v", typ, name, span, i, out[i-span[0]], want)
					}
				}
			}
		}
		restore()
	}
}

// TestQ8ScaleEdgeCases: zero, subnormal, tiny, large, negative, Inf and NaN
// f16 scales convert exactly as F16ToF32 does in every kernel.
func TestQ8ScaleEdgeCases(t *testing.T) {
	scales := []uint16{0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00, 0xbc00, 0x7bff, 0x7c00, 0xfc00, 0x7e00, 0x7d01, 0xfd00, 0x1234, 0x8001}
	cols := 32 * len(scales)
	var row []byte
	for i, s := range scales {
		row = append(row, byte(s), byte(s>>8))
		for j := 0; j < 32; j++ {
			row = append(row, byte(int8(j-16+i)))
		}
	}
	m, err := NewMat(Q8_0, 1, cols, row)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, cols)
	for i := range x {
		x[i] = 0.5 + float32(i%5)
	}
	deq := make([]float32, cols)
	m.Row(deq, 0)
	want := Dot(deq, x)
	// two identical rows, so the two-row kernels are exercised too
	m, _ = NewMat(Q8_0, 2, cols, append(append([]byte(nil), row...), row...))
	levels, restore := kernelLevels()
	defer restore()
	for name, set := range levels {
		set()
		out := make([]float32, 2)
		matVecRows(out, m, x, 0, 2)
		if math.Float32bits(out[0]) != math.Float32bits(want) || math.Float32bits(out[1]) != math.Float32bits(want) {
			t.Fatalf("%s: %v, want %v", name, out, want)
		}
	}
	// without the Inf/NaN blocks the result is finite and still identical
	m2, _ := NewMat(Q8_0, 1, 32*8, row[:34*8])
	m2.Row(deq[:256], 0)
	want = Dot(deq[:256], x[:256])
	for name, set := range levels {
		set()
		out := make([]float32, 1)
		matVecRows(out, m2, x[:256], 0, 1)
		if math.Float32bits(out[0]) != math.Float32bits(want) || math.IsInf(float64(want), 0) {
			t.Fatalf("%s finite: %v, want %v", name, out[0], want)
		}
	}
}
