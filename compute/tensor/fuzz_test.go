package tensor

import (
	"encoding/binary"
	"math"
	"testing"
)

// FuzzQ8Product: any bytes as a Q8_0 matrix (every scale and quant,
// −128 included, NaN and Inf scales) and any float32 bit patterns as the
// vectors give DotQ8's bits on every kernel the machine has, packed or not.
func FuzzQ8Product(f *testing.F) {
	f.Add(uint8(1), uint8(1), uint8(1), make([]byte, 34), make([]byte, 128))
	f.Add(uint8(3), uint8(2), uint8(2), []byte{0x00, 0x7c, 0x80, 0x7f, 0x01}, []byte{0, 0, 0xc0, 0x7f, 0, 0, 0x80, 0x7f})
	f.Fuzz(func(t *testing.T, rowsB, blocksB, nB uint8, wb, xb []byte) {
		rows, nb, n := 1+int(rowsB%40), 1+int(blocksB%6), 1+int(nB%10)
		cols := nb * Q8Block
		data := make([]byte, rows*nb*q8BlockBytes)
		for i := range data {
			if len(wb) > 0 {
				data[i] = wb[i%len(wb)] ^ byte(i/len(wb))
			}
		}
		x := make([]float32, n*cols)
		for i := range x {
			if len(xb) >= 4 {
				j := (4 * i) % (len(xb) - 3)
				x[i] = math.Float32frombits(binary.LittleEndian.Uint32(xb[j:]) ^ uint32(i/len(xb)))
			}
		}
		want := make([]float32, n*rows)
		for r := 0; r < rows; r++ {
			for k := 0; k < n; k++ {
				want[k*rows+r], _ = DotQ8(data[r*nb*q8BlockBytes:(r+1)*nb*q8BlockBytes], x[k*cols:(k+1)*cols])
			}
		}
		levels, restore := kernelLevels()
		defer restore()
		for name, set := range levels {
			set()
			for _, pack := range []bool{false, true} {
				m, err := NewMat(Q8_0, rows, cols, data)
				if err != nil {
					t.Fatal(err)
				}
				if pack {
					_ = m.Pack()
				}
				got := make([]float32, n*rows)
				if err := MatMul(got, m, x, n, 2); err != nil {
					t.Fatal(err)
				}
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%s packed %v: element %d is %v (%#x), want %v (%#x)", name, pack, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
					}
				}
			}
		}
	})
}

// FuzzFloatProduct: any bytes as an F32, F16 or BF16 matrix and any
// vectors give Dot's results on every kernel, bit for bit except that NaN
// results only have to be NaN (spec/07-model.md §6.1.3).
func FuzzFloatProduct(f *testing.F) {
	f.Add(uint8(0), uint8(3), uint8(1), uint8(2), []byte{1, 2, 3, 4}, []byte{0, 0, 0x80, 0x3f})
	f.Fuzz(func(t *testing.T, typB, rowsB, kbB, nB uint8, wb, xb []byte) {
		typ := []DType{F32, F16, BF16}[typB%3]
		rows, cols, n := 1+int(rowsB%20), 16*(1+int(kbB%5)), 1+int(nB%9)
		rb, _ := typ.RowBytes(cols)
		data := make([]byte, rows*rb)
		for i := range data {
			if len(wb) > 0 {
				data[i] = wb[i%len(wb)] ^ byte(i/len(wb))
			}
		}
		x := make([]float32, n*cols)
		for i := range x {
			if len(xb) >= 4 {
				j := (4 * i) % (len(xb) - 3)
				x[i] = math.Float32frombits(binary.LittleEndian.Uint32(xb[j:]) ^ uint32(i/len(xb)))
			}
		}
		m, err := NewMat(typ, rows, cols, data)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]float32, n*rows)
		row := make([]float32, cols)
		for r := 0; r < rows; r++ {
			m.Row(row, r)
			for k := 0; k < n; k++ {
				want[k*rows+r] = Dot(row, x[k*cols:(k+1)*cols])
			}
		}
		levels, restore := kernelLevels()
		defer restore()
		for name, set := range levels {
			set()
			got := make([]float32, n*rows)
			if err := MatMul(got, m, x, n, 2); err != nil {
				t.Fatal(err)
			}
			for i := range want {
				g, w := got[i], want[i]
				if math.Float32bits(g) != math.Float32bits(w) && !(g != g && w != w) {
					t.Fatalf("%v %s: element %d is %v, want %v", typ, name, i, g, w)
				}
			}
		}
	})
}
