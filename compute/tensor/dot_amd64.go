//go:build !purego

package tensor

// dot16 uses the AVX2 FMA kernel where the CPU has one and the portable
// code elsewhere; both give the same bits.
func dot16(a, b []float32, s *[16]float32) {
	if useAVX2 && len(a) >= 16 {
		dot16FMA(&a[0], &b[0], len(a)>>4, s)
		return
	}
	dot16Generic(a, b, s)
}

//go:noescape
func dot16FMA(a, b *float32, blocks int, s *[16]float32)
