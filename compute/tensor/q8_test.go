package tensor

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// quantMat quantises the rows × cols values w to a typ matrix, row by row.
func quantMat(t testing.TB, typ DType, rows, cols int, w []float32) *Mat {
	t.Helper()
	var data []byte
	for i := 0; i < rows; i++ {
		data, _ = QuantizeRow(data, typ, w[i*cols:(i+1)*cols])
	}
	m, err := NewMat(typ, rows, cols, data)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// randQ8Mat returns a rows×cols Q8_0 matrix of random quants in [−128, 127]
// (including −128, which no quantiser writes but a file may hold) and
// random f16 scales.
func randQ8Mat(r *rand.Rand, rows, cols int) *Mat {
	var data []byte
	for i := 0; i < rows*cols/Q8Block; i++ {
		d := F32ToF16(float32(r.Float64()*0.02 + 1e-4))
		data = append(data, byte(d), byte(d>>8))
		for j := 0; j < Q8Block; j++ {
			data = append(data, byte(r.IntN(256)))
		}
	}
	m, err := NewMat(Q8_0, rows, cols, data)
	if err != nil {
		panic(err)
	}
	return m
}

func randVec(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * math.Exp(r.NormFloat64()))
	}
	return x
}

// TestQuantizeActsMatchesGeneric: the AVX-512 activation quantiser gives
// the portable one's bytes, including zeros, subnormals, huge values,
// infinities and NaNs.
func TestQuantizeActsMatchesGeneric(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	special := []float32{0, float32(math.Copysign(0, -1)), 1e-45, -1e-45, 1e-40, 1e-38, 3e38, -3e38,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), math.Float32frombits(0xff800001),
		127, -127, 0.5, -0.5, 1.5, 2.5, -2.5}
	for trial := 0; trial < 400; trial++ {
		nb := 1 + r.IntN(9)
		x := randVec(r, nb*Q8Block)
		switch trial % 4 {
		case 1: // sprinkle special values
			for i := 0; i < 1+r.IntN(6); i++ {
				x[r.IntN(len(x))] = special[r.IntN(len(special))]
			}
		case 2: // a block of one special value with small neighbours
			b := r.IntN(nb)
			for i := 0; i < Q8Block; i++ {
				x[b*Q8Block+i] = float32(r.NormFloat64()) * 1e-42
			}
			x[b*Q8Block+r.IntN(Q8Block)] = special[r.IntN(len(special))]
		case 3: // values that land on halves after scaling: max 127 so id = 1
			for i := range x {
				x[i] = float32(r.IntN(509)-254) / 2
			}
			for b := 0; b < nb; b++ {
				x[b*Q8Block] = 127
			}
		}
		want := make([]byte, nb*q8ActBytes)
		quantizeActsGeneric(want, x)
		got := make([]byte, nb*q8ActBytes)
		quantizeActs(got, x)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("trial %d byte %d (block %d offset %d): %#x, want %#x; x = %v", trial, i, i/q8ActBytes, i%q8ActBytes, got[i], want[i], x[(i/q8ActBytes)*32:(i/q8ActBytes+1)*32])
			}
		}
	}
	// ties go to even: 2.5 → 2, −2.5 → −2, 1.5 → 2
	x := make([]float32, 32)
	x[0], x[1], x[2], x[3] = 127, 2.5, -2.5, 1.5
	out := make([]byte, q8ActBytes)
	quantizeActsGeneric(out, x)
	if int8(out[0]) != 127 || int8(out[1]) != 2 || int8(out[2]) != -2 || int8(out[3]) != 2 ||
		math.Float32frombits(binary.LittleEndian.Uint32(out[32:])) != 1 || int32(binary.LittleEndian.Uint32(out[36:])) != -128*129 {
		t.Fatalf("quantised block %v", out)
	}
}

// TestQ8ProductsMatchReference: every Q8_0 product path — VNNI kernels and
// portable code, packed and packed on the fly, any vector count, thread
// count and row range — gives DotQ8's bits for every row and vector.
func TestQ8ProductsMatchReference(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	levels, restore := kernelLevels()
	defer restore()
	for trial := 0; trial < 12; trial++ {
		rows := []int{1, 5, 16, 17, 37, 64, 100, 300}[trial%8]
		cols := Q8Block * (1 + r.IntN(40))
		n := 1 + r.IntN(19)
		m := randQ8Mat(r, rows, cols)
		x := randVec(r, n*cols)
		want := make([]float32, n*rows)
		for i := 0; i < rows; i++ {
			for k := 0; k < n; k++ {
				want[k*rows+i], _ = DotQ8(m.data[i*m.rowBytes:(i+1)*m.rowBytes], x[k*cols:(k+1)*cols])
			}
		}
		pm, _ := NewMat(Q8_0, rows, cols, m.data)
		if err := pm.Pack(); err != nil {
			t.Fatal(err)
		}
		for name, set := range levels {
			set()
			for _, mat := range []*Mat{m, pm} {
				for _, th := range []int{1, 2, 3} {
					got := make([]float32, n*rows)
					if err := MatMul(got, mat, x, n, th); err != nil {
						t.Fatal(err)
					}
					sameBits(t, fmt.Sprintf("%s packed %v %d×%d n %d threads %d", name, mat.Packed(), rows, cols, n, th), got, want)
				}
				got := make([]float32, n*rows)
				b := NewBatch(x, n, cols)
				for lo := 0; lo < rows; {
					hi := min(rows, lo+1+r.IntN(23))
					if err := MatMulBatchRange(got, mat, b, lo, hi); err != nil {
						t.Fatal(err)
					}
					lo = hi
				}
				sameBits(t, fmt.Sprintf("%s packed %v ranges", name, mat.Packed()), got, want)
			}
		}
		row := make([]float32, cols)
		deq := make([]float32, cols)
		for i := 0; i < rows; i++ {
			m.Row(row, i)
			pm.Row(deq, i)
			sameBits(t, "packed Row", deq, row)
		}
	}
}

// TestFloatProductsMatchDot: the batched F32, F16 and BF16 kernels give
// Dot's bits for odd row counts, every vector count up to 13 and any row
// range, with one or several threads.
func TestFloatProductsMatchDot(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	levels, restore := kernelLevels()
	defer restore()
	for _, typ := range []DType{F32, F16, BF16} {
		for trial := 0; trial < 6; trial++ {
			rows := []int{1, 3, 4, 9, 37, 130}[trial]
			cols := 16 * (1 + r.IntN(50))
			if trial == 5 {
				cols = 100 // not a multiple of 16: the generic path
			}
			w := randVec(r, rows*cols)
			m := quantMat(t, typ, rows, cols, w)
			for n := 1; n <= 13; n++ {
				x := randVec(r, n*cols)
				want := make([]float32, n*rows)
				row := make([]float32, cols)
				for i := 0; i < rows; i++ {
					m.Row(row, i)
					for k := 0; k < n; k++ {
						want[k*rows+i] = Dot(row, x[k*cols:(k+1)*cols])
					}
				}
				for name, set := range levels {
					set()
					for _, th := range []int{1, 2} {
						got := make([]float32, n*rows)
						if err := MatMul(got, m, x, n, th); err != nil {
							t.Fatal(err)
						}
						sameBits(t, fmt.Sprintf("%v %s %d×%d n %d threads %d", typ, name, rows, cols, n, th), got, want)
					}
					// short ranges, and long ones that start anywhere (the
					// 16-row decode tiles at unaligned rows)
					for _, maxLen := range []int{7, 40} {
						got := make([]float32, n*rows)
						for lo := 0; lo < rows; {
							hi := min(rows, lo+1+r.IntN(maxLen))
							if err := MatMulRange(got, m, x, n, lo, hi); err != nil {
								t.Fatal(err)
							}
							lo = hi
						}
						sameBits(t, fmt.Sprintf("%v %s ranges of up to %d rows", typ, name, maxLen), got, want)
					}
				}
			}
		}
	}
}

func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: element %d is %v, want %v", what, i, got[i], want[i])
		}
	}
}

// TestPackReleasing: the release callback gets every byte of the original
// matrix exactly once, in order, and only after it has been copied (the
// packed matrix still gives the reference bits after the original bytes
// are overwritten).
func TestPackReleasing(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	rows, cols := 16*600+5, 1024 // 5.2 MiB: two runs of 4 MiB
	m := randQ8Mat(r, rows, cols)
	orig := append([]byte(nil), m.data...)
	x := randVec(r, cols)
	want := make([]float32, rows)
	for i := 0; i < rows; i++ {
		want[i], _ = DotQ8(orig[i*m.rowBytes:(i+1)*m.rowBytes], x)
	}
	next := 0
	err := m.PackReleasing(func(b []byte) {
		off := int(uintptr(unsafe.Pointer(&b[0])) - uintptr(unsafe.Pointer(&m.data[0])))
		if off != next {
			t.Fatalf("released from byte %d, want %d", off, next)
		}
		next += len(b)
		clear(b) // the original is gone
	})
	if err != nil {
		t.Fatal(err)
	}
	if next != len(m.data) {
		t.Fatalf("released %d of %d bytes", next, len(m.data))
	}
	got := make([]float32, rows)
	if err := MatMul(got, m, x, 1, 2); err != nil {
		t.Fatal(err)
	}
	sameBits(t, "after release", got, want)
}
