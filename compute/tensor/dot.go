package tensor

import "math"

// Dot returns the dot product of a and b (equal lengths) in the canonical
// order of spec/07-model.md §6.1.1: 16 accumulation slots, slot j mod 16
// for element j updated with a fused multiply-add (s = a·b + s, rounded
// once), then the pairwise reduction slots[i] += slots[i+8], [i+4], [i+2],
// [i+1].
func Dot(a, b []float32) float32 {
	var s [16]float32
	n := len(a)
	b = b[:n]
	n16 := n &^ 15
	if n16 > 0 {
		dot16(a[:n16], b[:n16], &s)
	}
	if n16 < n {
		if useAVX2 {
			// the tail as one more block, padded with a = −0, b = +0:
			// fma(−0, +0, s) = s + (−0) = s for every s, −0 included
			var ta, tb [16]float32
			for j := range ta {
				ta[j] = float32(math.Copysign(0, -1))
			}
			copy(ta[:], a[n16:])
			copy(tb[:], b[n16:])
			dot16(ta[:], tb[:], &s)
		} else {
			for j := n16; j < n; j++ {
				s[j&15] = fma32(a[j], b[j], s[j&15])
			}
		}
	}
	return reduce16(&s)
}

func reduce16(s *[16]float32) float32 {
	for i := 0; i < 8; i++ {
		s[i] += s[i+8]
	}
	for i := 0; i < 4; i++ {
		s[i] += s[i+4]
	}
	s[0] += s[2]
	s[1] += s[3]
	return s[0] + s[1]
}

// dot16Generic accumulates a·b into the 16 slots; len(a) is a multiple of 16.
func dot16Generic(a, b []float32, s *[16]float32) {
	for len(a) >= 16 && len(b) >= 16 {
		x, y := a[:16:16], b[:16:16]
		for i := range 16 {
			s[i] = fma32(x[i], y[i], s[i])
		}
		a, b = a[16:], b[16:]
	}
}

// fma32 returns a·b + c rounded once to float32, to nearest even: IEEE
// 754's fusedMultiplyAdd in binary32, as VFMADD computes it. The product is
// exact in float64 (24 + 24 bits); the sum is rounded to float64 with its
// error recovered exactly (TwoSum) and made round-to-odd (an inexact sum
// gets an odd last bit), which makes the final rounding to float32 correct:
// float64 carries more than two bits beyond float32's 24.
func fma32(a, b, c float32) float32 {
	p := float64(a) * float64(b)
	cc := float64(c)
	s := p + cc
	if math.IsInf(s, 0) || s != s {
		// NaN or infinite operands, or a product of ±Inf: the IEEE
		// result is what float64 gives (a float32 product never
		// overflows float64)
		return float32(s)
	}
	bb := s - p
	err := (p - (s - bb)) + (cc - bb)
	if err != 0 && math.Float64bits(s)&1 == 0 {
		if (err > 0) == (s > 0) {
			s = math.Float64frombits(math.Float64bits(s) + 1)
		} else {
			s = math.Float64frombits(math.Float64bits(s) - 1)
		}
	}
	return float32(s)
}

// dequantQ8Row dequantises a whole Q8_0 row (len(dst) a multiple of 32).
func dequantQ8Row(dst []float32, src []byte) { dequantQ8(dst, src) }
