package tensor

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestAVX2MatchesSSE2: both kernel families give identical bits, so a
// result does not depend on the CPU's features.
func TestAVX2MatchesSSE2(t *testing.T) {
	if !useAVX2 {
		t.Log("no AVX2 on this machine: only the SSE2 kernels are exercised")
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
		saved := useAVX2
		var outs [2][]float32
		for k, avx := range []bool{false, saved} {
			useAVX2 = avx
			outs[k] = make([]float32, rows)
			matVecRows(outs[k], m, x, 0, rows)
		}
		useAVX2 = saved
		row := make([]float32, cols)
		for i := 0; i < rows; i++ {
			m.Row(row, i)
			want := Dot(row, x)
			if math.Float32bits(outs[0][i]) != math.Float32bits(want) || math.Float32bits(outs[1][i]) != math.Float32bits(want) {
				t.Fatalf("%v row %d: sse2 %v avx2 %v generic %v", typ, i, outs[0][i], outs[1][i], want)
			}
		}
	}
}

// TestQ8ScaleEdgeCases: zero, subnormal, tiny, large, negative, Inf and NaN
// f16 scales convert exactly as F16ToF32 does in every kernel.
func TestQ8ScaleEdgeCases(t *testing.T) {
	scales := []uint16{0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00, 0xbc00, 0x7bff, 0x7c00, 0xfc00, 0x7e00, 0x1234, 0x8001}
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
	saved := useAVX2
	defer func() { useAVX2 = saved }()
	for _, avx := range []bool{false, saved} {
		useAVX2 = avx
		out := make([]float32, 1)
		matVecRows(out, m, x, 0, 1)
		if math.Float32bits(out[0]) != math.Float32bits(want) {
			t.Fatalf("avx2=%v: %v, want %v", avx, out[0], want)
		}
	}
	// without the Inf/NaN blocks the result is finite and still identical
	m2, _ := NewMat(Q8_0, 1, 32*8, row[:34*8])
	m2.Row(deq[:256], 0)
	want = Dot(deq[:256], x[:256])
	for _, avx := range []bool{false, saved} {
		useAVX2 = avx
		out := make([]float32, 1)
		matVecRows(out, m2, x[:256], 0, 1)
		if math.Float32bits(out[0]) != math.Float32bits(want) || math.IsInf(float64(want), 0) {
			t.Fatalf("avx2=%v finite: %v, want %v", avx, out[0], want)
		}
	}
}
