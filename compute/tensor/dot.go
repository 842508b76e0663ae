package tensor

// Dot returns the dot product of a and b (equal lengths) in the canonical
// order of spec/07-model.md §6: 16 accumulation slots, slot j mod 16 for
// element j, then the pairwise reduction slots[i] += slots[i+8], [i+4],
// [i+2], [i+1].
func Dot(a, b []float32) float32 {
	var s [16]float32
	n := len(a)
	b = b[:n]
	n16 := n &^ 15
	if n16 > 0 {
		dot16(a[:n16], b[:n16], &s)
	}
	for j := n16; j < n; j++ {
		s[j&15] += float32(a[j] * b[j])
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
	s0, s1, s2, s3 := s[0], s[1], s[2], s[3]
	s4, s5, s6, s7 := s[4], s[5], s[6], s[7]
	s8, s9, s10, s11 := s[8], s[9], s[10], s[11]
	s12, s13, s14, s15 := s[12], s[13], s[14], s[15]
	for len(a) >= 16 && len(b) >= 16 {
		x, y := a[:16:16], b[:16:16]
		s0 += float32(x[0] * y[0])
		s1 += float32(x[1] * y[1])
		s2 += float32(x[2] * y[2])
		s3 += float32(x[3] * y[3])
		s4 += float32(x[4] * y[4])
		s5 += float32(x[5] * y[5])
		s6 += float32(x[6] * y[6])
		s7 += float32(x[7] * y[7])
		s8 += float32(x[8] * y[8])
		s9 += float32(x[9] * y[9])
		s10 += float32(x[10] * y[10])
		s11 += float32(x[11] * y[11])
		s12 += float32(x[12] * y[12])
		s13 += float32(x[13] * y[13])
		s14 += float32(x[14] * y[14])
		s15 += float32(x[15] * y[15])
		a, b = a[16:], b[16:]
	}
	s[0], s[1], s[2], s[3] = s0, s1, s2, s3
	s[4], s[5], s[6], s[7] = s4, s5, s6, s7
	s[8], s[9], s[10], s[11] = s8, s9, s10, s11
	s[12], s[13], s[14], s[15] = s12, s13, s14, s15
}

// dequantQ8RowGeneric dequantises a whole Q8_0 row (len(dst) a multiple of 32).
func dequantQ8RowGeneric(dst []float32, src []byte) { dequantQ8(dst, src) }
