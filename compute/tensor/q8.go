package tensor

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Q8_0 products, spec/07-model.md §6.1.2 (arithmetic version 2). The
// activation vector is quantised per block of 32 to int8 with a float32
// scale; each block's dot product with the weight block is an exact integer;
// the float steps are y = y + round(float32(isum) · round(dw · dx)), block by
// block in order from +0.
//
// Kernels read Q8_0 matrices packed 16 rows to a group (packQ8): per block,
// the 16 rows' f16 scales (32 bytes), then their quants in eight 64-byte
// runs, run k holding elements 4k…4k+3 of rows 0…15 in turn, each byte XOR
// 0x80 (so that VPDPBUSD reads it as the unsigned q+128; the activation
// block's −128·Σq corrects the sum exactly). A lane of a vector is a row.

const (
	q8ActBytes   = 40                         // activation block: 32 int8, float32 d, int32 −128·Σq
	q8GroupRows  = 16                         // rows per packed group
	q8ChunkBytes = 2*q8GroupRows + 16*Q8Block // one block of a packed group: 544
)

// quantizeActsGeneric quantises x (a multiple of 32 values) into
// len(x)/32 activation blocks of q8ActBytes in dst: per block, amax is the
// largest magnitude compared as bits (x with the sign cleared, as an
// unsigned integer, so NaNs order above Inf and the maximum does not depend
// on the order of comparison), d = amax/127, id = 1/d (0 when d = 0),
// v = x·id, v = (v > −127 ? v : −127), v = (v < 127 ? v : 127) (a NaN
// becomes −127), q = v rounded to the nearest integer, ties to even.
func quantizeActsGeneric(dst []byte, x []float32) {
	for b := 0; b*Q8Block < len(x); b++ {
		blk := x[b*Q8Block : (b+1)*Q8Block]
		out := dst[b*q8ActBytes : (b+1)*q8ActBytes]
		var a uint32
		for _, v := range blk {
			if m := math.Float32bits(v) & 0x7fffffff; m > a {
				a = m
			}
		}
		d := math.Float32frombits(a) / 127
		var id float32
		if d != 0 {
			id = 1 / d
		}
		var sum int32
		for i, v := range blk {
			t := float32(v * id)
			if !(t > -127) {
				t = -127
			}
			if !(t < 127) {
				t = 127
			}
			q := int32(math.RoundToEven(float64(t)))
			out[i] = byte(int8(q))
			sum += q
		}
		binary.LittleEndian.PutUint32(out[32:], math.Float32bits(d))
		binary.LittleEndian.PutUint32(out[36:], uint32(-128*sum))
	}
}

// quantizeActs quantises n vectors of cols values (cols a multiple of 32)
// from x into dst, n·cols/32 activation blocks.
func quantizeActs(dst []byte, x []float32) {
	if len(x) == 0 {
		return
	}
	if !quantizeActsAsm(dst, x) {
		quantizeActsGeneric(dst, x)
	}
}

// DotQ8 returns the canonical product (spec/07-model.md §6.1.2) of one Q8_0
// row as a model file stores it (blocks of a f16 scale and 32 int8) with x.
// It is the portable reference the kernels are tested against.
func DotQ8(row []byte, x []float32) (float32, error) {
	if len(x)%Q8Block != 0 || len(row) != len(x)/Q8Block*q8BlockBytes {
		return 0, fmt.Errorf("tensor: q8_0 row of %d bytes with %d values", len(row), len(x))
	}
	acts := make([]byte, len(x)/Q8Block*q8ActBytes)
	quantizeActsGeneric(acts, x)
	return dotQ8Acts(row, acts), nil
}

// dotQ8Acts is DotQ8 with x already quantised.
func dotQ8Acts(row, acts []byte) float32 {
	var y float32
	for b := 0; b*q8BlockBytes < len(row); b++ {
		w := row[b*q8BlockBytes : (b+1)*q8BlockBytes]
		a := acts[b*q8ActBytes : (b+1)*q8ActBytes]
		var isum int32
		for i := 0; i < Q8Block; i++ {
			isum += int32(int8(w[2+i])) * int32(int8(a[i]))
		}
		dw := F16ToF32(binary.LittleEndian.Uint16(w))
		dx := math.Float32frombits(binary.LittleEndian.Uint32(a[32:]))
		y = add32(y, float32(float32(isum)*mul32(dw, dx)))
	}
	return y
}

// mul32 and add32 are a·b and a+b with x86's choice of NaN when both
// operands are NaN (the first, quieted), which the Go compiler, free to
// commute the operands, does not promise; the kernels compute dw·dx and
// y + product with these operand orders.
func mul32(a, b float32) float32 {
	if p := a * b; p == p {
		return p
	}
	return nanOf(a, b, a*b)
}

func add32(a, b float32) float32 {
	if s := a + b; s == s {
		return s
	}
	return nanOf(a, b, a+b)
}

// nanOf returns a quieted if a is NaN, else b quieted if b is NaN, else r
// (the default NaN of an invalid operation such as Inf − Inf).
func nanOf(a, b, r float32) float32 {
	switch {
	case a != a:
		return math.Float32frombits(math.Float32bits(a) | 0x00400000)
	case b != b:
		return math.Float32frombits(math.Float32bits(b) | 0x00400000)
	}
	return r
}

// packQ8Groups packs groups [g0, g1) of the Q8_0 matrix data (rows × cols,
// file layout) into dst (the chunks of those groups, consecutively). Rows
// past the last are zero (scale 0, quants 0).
func packQ8Groups(dst, data []byte, rows, cols, g0, g1 int) {
	nb := cols / Q8Block
	rb := nb * q8BlockBytes
	for g := g0; g < g1; g++ {
		for b := 0; b < nb; b++ {
			c := dst[((g-g0)*nb+b)*q8ChunkBytes : ((g-g0)*nb+b+1)*q8ChunkBytes]
			for i := 0; i < q8GroupRows; i++ {
				r := g*q8GroupRows + i
				if r >= rows {
					c[2*i], c[2*i+1] = 0, 0
					for k := 0; k < 8; k++ {
						copy(c[32+64*k+4*i:32+64*k+4*i+4], []byte{0x80, 0x80, 0x80, 0x80})
					}
					continue
				}
				blk := data[r*rb+b*q8BlockBytes : r*rb+(b+1)*q8BlockBytes]
				c[2*i], c[2*i+1] = blk[0], blk[1]
				for k := 0; k < 8; k++ {
					binary.LittleEndian.PutUint32(c[32+64*k+4*i:], binary.LittleEndian.Uint32(blk[2+4*k:])^0x80808080)
				}
			}
		}
	}
}

// unpackQ8Row dequantises row r of a packed matrix into dst[:cols]
// (§5.2: float32(q) × float32(d)).
func unpackQ8Row(dst []float32, packed []byte, cols, r int) {
	nb := cols / Q8Block
	g, i := r/q8GroupRows, r%q8GroupRows
	for b := 0; b < nb; b++ {
		c := packed[(g*nb+b)*q8ChunkBytes : (g*nb+b+1)*q8ChunkBytes]
		d := F16ToF32(uint16(c[2*i]) | uint16(c[2*i+1])<<8)
		out := dst[b*Q8Block : (b+1)*Q8Block]
		for k := 0; k < 8; k++ {
			for j := 0; j < 4; j++ {
				out[4*k+j] = float32(int8(c[32+64*k+4*i+j]^0x80)) * d
			}
		}
	}
}

// q8PanelGeneric is the portable form of the q8vnniT kernels: groups
// consecutive packed groups at p, toks activation rows at x (stride ldx
// bytes), row 16g+i of token t into out[t*ldo+16g+i].
func q8PanelGeneric(p []byte, groups, nb int, x []byte, ldx, toks int, out []float32, ldo int) {
	for g := 0; g < groups; g++ {
		for t := 0; t < toks; t++ {
			xt := x[t*ldx:]
			var y [q8GroupRows]float32
			for b := 0; b < nb; b++ {
				c := p[(g*nb+b)*q8ChunkBytes : (g*nb+b+1)*q8ChunkBytes]
				a := xt[b*q8ActBytes : (b+1)*q8ActBytes]
				dx := math.Float32frombits(binary.LittleEndian.Uint32(a[32:]))
				corr := int32(binary.LittleEndian.Uint32(a[36:]))
				for i := 0; i < q8GroupRows; i++ {
					isum := corr
					for k := 0; k < 8; k++ {
						w := c[32+64*k+4*i : 32+64*k+4*i+4]
						isum += int32(w[0])*int32(int8(a[4*k])) + int32(w[1])*int32(int8(a[4*k+1])) +
							int32(w[2])*int32(int8(a[4*k+2])) + int32(w[3])*int32(int8(a[4*k+3]))
					}
					dw := F16ToF32(uint16(c[2*i]) | uint16(c[2*i+1])<<8)
					y[i] = add32(y[i], float32(float32(isum)*mul32(dw, dx)))
				}
			}
			copy(out[t*ldo+g*q8GroupRows:t*ldo+(g+1)*q8GroupRows], y[:])
		}
	}
}
