package tensor

import (
	"encoding/binary"
	"fmt"
	"math"
)

// F16ToF32 converts an IEEE binary16 value to float32 exactly.
func F16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // inf or nan
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0:
		if mant == 0 {
			return math.Float32frombits(sign)
		}
		// subnormal: normalise
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		mant &= 0x3ff
		return math.Float32frombits(sign | e<<23 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// F32ToF16 converts a float32 to binary16, rounding to nearest even.
func F32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint32(14 - e)
		half := uint32(1) << (shift - 1)
		rest := mant & (1<<shift - 1)
		m := mant >> shift
		if rest > half || (rest == half && m&1 == 1) {
			m++
		}
		return sign | uint16(m)
	}
	m := mant >> 13
	rest := mant & 0x1fff
	out := uint32(e)<<10 | m
	if rest > 0x1000 || (rest == 0x1000 && m&1 == 1) {
		out++ // may carry into the exponent, which is the correct rounding
	}
	return sign | uint16(out)
}

// BF16ToF32 converts a bfloat16 value to float32 exactly.
func BF16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// F32ToBF16 converts a float32 to bfloat16, rounding to nearest even.
func F32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// DequantRow converts one row of n elements of type t from src into dst[:n].
// src must hold exactly the row's bytes.
func DequantRow(dst []float32, t DType, src []byte) error {
	n := len(dst)
	rb, err := t.RowBytes(n)
	if err != nil {
		return err
	}
	if len(src) != rb {
		return fmt.Errorf("tensor: %v row of %d elements needs %d bytes, have %d", t, n, rb, len(src))
	}
	switch t {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = F16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = BF16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case Q8_0:
		dequantQ8(dst, src)
	}
	return nil
}

func dequantQ8(dst []float32, src []byte) {
	for b := 0; b*Q8Block < len(dst); b++ {
		blk := src[b*q8BlockBytes : (b+1)*q8BlockBytes]
		d := F16ToF32(binary.LittleEndian.Uint16(blk))
		out := dst[b*Q8Block : (b+1)*Q8Block]
		q := blk[2:]
		for i := range out {
			out[i] = float32(int8(q[i])) * d
		}
	}
}

// QuantizeRow encodes the float32 values src as a row of type t, appending
// to dst. Q8_0 follows GGML's reference quantiser: d = max|x|/127 rounded to
// f16 storage, q = round(x/d) with halves away from zero.
func QuantizeRow(dst []byte, t DType, src []float32) ([]byte, error) {
	if _, err := t.RowBytes(len(src)); err != nil {
		return dst, err
	}
	switch t {
	case F32:
		for _, v := range src {
			dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
		}
	case F16:
		for _, v := range src {
			dst = binary.LittleEndian.AppendUint16(dst, F32ToF16(v))
		}
	case BF16:
		for _, v := range src {
			dst = binary.LittleEndian.AppendUint16(dst, F32ToBF16(v))
		}
	case Q8_0:
		for b := 0; b < len(src); b += Q8Block {
			blk := src[b : b+Q8Block]
			var amax float32
			for _, v := range blk {
				if a := float32(math.Abs(float64(v))); a > amax {
					amax = a
				}
			}
			d := amax / 127
			var id float32
			if d != 0 {
				id = 1 / d
			}
			dst = binary.LittleEndian.AppendUint16(dst, F32ToF16(d))
			for _, v := range blk {
				dst = append(dst, byte(int8(math.Round(float64(v*id)))))
			}
		}
	}
	return dst, nil
}
