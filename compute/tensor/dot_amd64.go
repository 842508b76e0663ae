package tensor

// dot16 and dequantQ8Row use SSE2 only, which every amd64 CPU has, so the
// same instructions (and bits) run on every amd64 machine.

func dot16(a, b []float32, s *[16]float32) {
	if len(a) >= 16 {
		dot16SSE(&a[0], &b[0], len(a)>>4, s)
	}
}

//go:noescape
func dot16SSE(a, b *float32, blocks int, s *[16]float32)

func dequantQ8Row(dst []float32, src []byte) { dequantQ8RowGeneric(dst, src) }
